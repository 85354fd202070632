"""Running journalled jobs: generation through `run_job`, recording through the recorder.

Each state change is committed to the journal before the client hears of it. Output names are
reserved (and journalled) before the engine runs, so a restart after a crash can tell a
finished-but-unacknowledged job from one that must run again.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from darc_bridge.audio import Audio
from darc_bridge.engines import Engine, GenerationParams
from darc_bridge.errors import Cancelled, DarcError
from darc_bridge.pipeline import run_job
from darc_bridge.server import kits as server_kits  # issue 14
from darc_bridge.server.config import ServerConfig
from darc_bridge.server.files import FilePolicy, remove_leftovers, reserve_outputs
from darc_bridge.server.journal import JobRecord, Journal
from darc_bridge.server.protocol import ENGINE_EXTRA
from darc_bridge.server.worker import Task

log = logging.getLogger(__name__)

Notify = Callable[[str, str, tuple], None]  # notify(job_id, address, args): reply to the job's client


def params_from_options(options: dict[str, Any]) -> GenerationParams:
    """GenerationParams from a job's (already checked, defaults merged) options."""
    return GenerationParams(
        temperature=float(options["temperature"]),
        rhythm_strength=float(options["rhythm_strength"]),
        seed=options.get("seed"),
        quantize=float(options["quantize"]),
        output_sample_rate=options.get("sample_rate") or None,
        extra={**{k: options[k] for k in ENGINE_EXTRA if k in options}, **server_kits.job_extra(options)},  # 14
    ).validate()


def fix_random_seed(options: dict[str, Any]) -> dict[str, Any]:
    """Choose the seed at accept time, so a job re-run after a crash makes the same stem."""
    if options.get("seed") in (None, -1):
        options["seed"] = random.randrange(2**31)
    return options


class JobRunner:
    """Runs one task at a time for a Worker; reports through `notify` and the journal."""

    def __init__(self, engine: Engine, journal: Journal, files: FilePolicy, config: ServerConfig,
                 notify: Notify) -> None:
        self.engine = engine
        self.journal = journal
        self.files = files
        self.config = config
        self.notify = notify
        self.stopping = False
        self.on_finished: Callable[[str], None] = lambda job_id: None

    # --- generation -------------------------------------------------------------------------
    def run_generate(self, task: Task) -> None:
        rec: JobRecord = task.payload
        req = rec.request
        opts = req["options"]
        try:
            folder = self.files.output_folder(opts.get("out_dir"))
            reserve = server_kits.reserve_split_outputs if server_kits.job_stems(opts) == "split" else reserve_outputs  # 14
            stem, midi = reserve(folder, opts.get("name") or f"drums-{rec.job_id}", bool(opts["midi"]))
            self._start(task, rec, stem_path=str(stem), midi_path=str(midi or ""))
            out = run_job(
                self.engine, req["mix"], req["prompt"] or None, stem, params_from_options(opts),
                midi_path=midi, start=opts.get("start"), end=opts.get("end"), limits=self.config.limits,
                overwrite=False, progress=self._progress(task), cancel=task.cancel,
                stems=server_kits.job_stems(opts),  # issue 14
            )
        except BaseException as exc:  # noqa: B036 - every failure is journalled, then re-raised if fatal
            self._failed(task, exc)
            if not isinstance(exc, Exception):
                raise
            return
        midi_path = str(out.midi_path or "")
        self.journal.update(rec.job_id, state="done", stage="write", fraction=1.0, stem_path=str(out.stem_path),
                            midi_path=midi_path, duration=out.duration, sample_rate=out.sample_rate)
        log.info("job %s done in %.2fs: %s", rec.job_id, time.monotonic() - task.started, out.stem_path)
        self.notify(rec.job_id, "/darc/done", (rec.job_id, str(out.stem_path), midi_path, float(out.duration),
                                               int(out.sample_rate), *server_kits.done_pairs(out.pieces)))  # 14
        self.on_finished(rec.job_id)

    # --- recording --------------------------------------------------------------------------
    def run_record(self, task: Task) -> None:
        from darc_bridge.server.recorder import record_prompt

        rec: JobRecord = task.payload
        opts = rec.request["options"]
        try:
            folder = self.files.output_folder(opts.get("out_dir"))
            path, _ = reserve_outputs(folder, opts.get("name") or f"prompt-{rec.job_id}", False)
            self._start(task, rec, stem_path=str(path))
            sr = int(opts["sample_rate"])
            path, duration = record_prompt(
                path, float(rec.request["seconds"]), sample_rate=sr, count_in=int(opts["count_in"]),
                bpm=float(opts["bpm"]), device=opts.get("device"), progress=self._progress(task),
                cancel=task.cancel,
            )
        except Exception as exc:
            self._failed(task, exc, resumable=False)
            return
        self.journal.update(rec.job_id, state="done", stage="record", fraction=1.0, stem_path=str(path),
                            duration=duration, sample_rate=sr)
        self.notify(rec.job_id, "/darc/recorded", (rec.job_id, str(path), float(duration), sr))
        self.on_finished(rec.job_id)

    # --- shared -----------------------------------------------------------------------------
    def _start(self, task: Task, rec: JobRecord, **paths: str) -> None:
        """One commit: running, one more attempt, and the reserved output names (for crash recovery)."""
        current = self.journal.get(rec.job_id)
        attempts = (current.attempts if current else 0) + 1
        self.journal.update(rec.job_id, state="running", stage="load", attempts=attempts, **paths)
        log.info("job %s started (attempt %d)", rec.job_id, attempts)

    def _progress(self, task: Task) -> Callable[[str, float], None]:
        last = {"stage": "", "fraction": -1.0, "time": 0.0}

        def progress(stage: str, fraction: float) -> None:
            f = task.progress.update(stage, fraction)  # live progress stays in memory: status reads it
            now = time.monotonic()
            if stage != last["stage"] or (f - last["fraction"] >= 0.01 and now - last["time"] >= 0.05) or f >= 1.0:
                last.update(stage=stage, fraction=f, time=now)
                self.notify(task.job_id, "/darc/progress", (task.job_id, task.progress.stage, float(f)))

        return progress

    def _failed(self, task: Task, exc: BaseException, resumable: bool = True) -> None:
        job_id = task.job_id
        if isinstance(exc, Cancelled) and self.stopping:
            if resumable:
                log.info("job %s interrupted by shutdown: it will run again at the next start", job_id)
                self.journal.update(job_id, state="queued", stage="queued", fraction=0.0, stem_path="", midi_path="")
                return
            code, message = "interrupted", "the daemon stopped during this job"
        elif isinstance(exc, Cancelled):
            code, message = "cancelled", "the job was cancelled"
        elif isinstance(exc, DarcError):
            code, message = exc.code, str(exc)
        elif isinstance(exc, Exception):
            log.error("job %s failed", job_id, exc_info=exc)
            code, message = "internal", f"{type(exc).__name__}: {exc}"
        else:
            code, message = "interrupted", "the daemon stopped during this job"
        state = "cancelled" if code == "cancelled" else "error"
        log.info("job %s %s: %s: %s", job_id, state, code, message)
        self.journal.update(job_id, state=state, error_code=code, error_message=message)
        self.notify(job_id, "/darc/error", (job_id, code, message))
        self.on_finished(job_id)

    # --- crash recovery ---------------------------------------------------------------------
    def recover(self) -> list[JobRecord]:
        """Resolve jobs left queued or running by the last run; return those to run again."""
        again = []
        for rec in self.journal.unfinished():
            if rec.kind == "record":
                self._give_up(rec, "the daemon stopped during this recording; record again")
            elif rec.attempts >= self.config.max_attempts:
                self._give_up(rec, f"the daemon stopped {rec.attempts} times during this job; it was given up")
            elif rec.state == "running" and self._outputs_complete(rec):
                info = sf.info(rec.stem_path)
                self.journal.update(rec.job_id, state="done", fraction=1.0, duration=info.duration,
                                    sample_rate=info.samplerate)
                log.info("job %s had finished before the daemon stopped: %s", rec.job_id, rec.stem_path)
            else:
                remove_leftovers([Path(p) for p in (rec.stem_path, rec.midi_path) if p])
                self.journal.update(rec.job_id, state="queued", stage="queued", fraction=0.0, stem_path="",
                                    midi_path="")
                again.append(self.journal.get(rec.job_id))
        return [r for r in again if r is not None]

    def _give_up(self, rec: JobRecord, message: str) -> None:
        if rec.stem_path:
            remove_leftovers([Path(p) for p in (rec.stem_path, rec.midi_path) if p])
        self.journal.update(rec.job_id, state="error", error_code="interrupted", error_message=message,
                            stem_path="", midi_path="")
        log.warning("job %s: %s", rec.job_id, message)

    @staticmethod
    def _outputs_complete(rec: JobRecord) -> bool:
        return bool(rec.stem_path) and Path(rec.stem_path).is_file() and (
            not rec.midi_path or Path(rec.midi_path).is_file())


def warm_up(engine: Engine) -> None:
    """One tiny generation, so the first real job does not pay for lazy initialisation."""
    sr = 32000
    rng = np.random.default_rng(0)
    mix = Audio((0.01 * rng.standard_normal((1, sr))).astype(np.float32), sr)
    t0 = time.monotonic()
    engine.generate(mix, None, GenerationParams(seed=0))
    log.info("engine warm-up took %.2fs", time.monotonic() - t0)
