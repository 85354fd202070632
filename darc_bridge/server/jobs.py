"""Running journalled jobs: generation through `run_job`, recording through the recorder.

Each state change is committed to the journal before the client hears of it. Each attempt gets
a unique tag (its temporary files hold it) and journals its files' identities before they
appear, so a restart after a crash can tell a finished-but-unacknowledged job from one that must
be resolved, and removes only files it provably wrote. A job the daemon died during is not run
again (it may be what killed the daemon); one interrupted by a clean stop is.
"""

from __future__ import annotations

import logging
import random
import secrets
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf

from darc_bridge.audio import Audio
from darc_bridge.engines import Engine, GenerationParams
from darc_bridge.errors import Cancelled, DarcError
from darc_bridge.outputs import is_same_file, temp_names
from darc_bridge.pipeline import OutputPlan, run_job
from darc_bridge.server import kits as server_kits  # issue 14
from darc_bridge.server.config import ServerConfig
from darc_bridge.server.files import FilePolicy
from darc_bridge.server.journal import JobRecord, Journal, JournalError
from darc_bridge.server.protocol import ENGINE_EXTRA
from darc_bridge.server.worker import Task

log = logging.getLogger(__name__)

Notify = Callable[[str, str, tuple], None]  # notify(job_id, address, args): reply to the job's client


def params_from_options(options: dict[str, Any]) -> GenerationParams:
    """GenerationParams from a job's (already checked, defaults merged) options.

    An engine option left out (or None) means "the model's value": it is not passed at all."""
    return GenerationParams(
        temperature=float(options["temperature"]),
        rhythm_strength=float(options["rhythm_strength"]),
        seed=options.get("seed"),
        quantize=float(options["quantize"]),
        output_sample_rate=options.get("sample_rate") or None,
        extra={**{k: options[k] for k in ENGINE_EXTRA if options.get(k) is not None},
               **server_kits.job_extra(options)},  # issue 14: kit
    ).validate()


def fix_random_seed(options: dict[str, Any]) -> dict[str, Any]:
    """Choose the seed at accept time, so a job re-run after a restart makes the same stem."""
    if options.get("seed") in (None, -1):
        options["seed"] = random.randrange(2**31)
    return options


class JobRunner:
    """Runs one task at a time for a Worker; reports through `notify`, the journal and `on_finished`.

    `stopping` is set by the server while it shuts down: a job cancelled then is queued again."""

    def __init__(self, engine: Engine, journal: Journal, files: FilePolicy, config: ServerConfig,
                 notify: Notify, on_finished: Callable[[str], None], stopping: threading.Event) -> None:
        self.engine = engine
        self.journal = journal
        self.files = files
        self.config = config
        self.notify = notify
        self.on_finished = on_finished
        self.stopping = stopping

    # --- generation -------------------------------------------------------------------------
    def run_generate(self, task: Task) -> None:
        rec: JobRecord = task.payload
        req = rec.request
        opts = req["options"]
        try:
            tag = self._start(task, rec)
            with self.files.open_folder(opts.get("out_dir")) as folder:
                plan = OutputPlan(folder, opts.get("name") or f"drums-{rec.job_id}", bool(opts["midi"]), tag,
                                  on_planned=self._planned(rec.job_id),
                                  stems=server_kits.job_stems(opts))  # issue 14
                out = run_job(
                    self.engine, req["mix"], req["prompt"] or None, None, params_from_options(opts),
                    start=opts.get("start"), end=opts.get("end"), limits=self.config.limits,
                    progress=self._progress(task), cancel=task.cancel, plan=plan,
                )
        except BaseException as exc:  # noqa: B036 - every failure is journalled, then re-raised if fatal
            self._failed(task, exc)
            if not isinstance(exc, Exception):
                raise
            return
        midi_path = str(out.midi_path or "")
        log.info("job %s done in %.2fs: %s", rec.job_id, time.monotonic() - task.started, out.stem_path)
        self._finish(rec.job_id, "/darc/done", (rec.job_id, str(out.stem_path), midi_path, float(out.duration),
                                                int(out.sample_rate), *server_kits.done_pairs(out.pieces)),  # issue 14
                     state="done", stage="write", fraction=1.0, stem_path=str(out.stem_path), midi_path=midi_path,
                     duration=out.duration, sample_rate=out.sample_rate)

    # --- recording --------------------------------------------------------------------------
    def run_record(self, task: Task) -> None:
        from darc_bridge.server.recorder import record_prompt

        rec: JobRecord = task.payload
        opts = rec.request["options"]
        try:
            tag = self._start(task, rec)
            sr = int(opts["sample_rate"])
            with self.files.open_folder(opts.get("out_dir")) as folder:
                plan = OutputPlan(folder, opts.get("name") or f"prompt-{rec.job_id}", False, tag,
                                  on_planned=self._planned(rec.job_id))
                path, duration = record_prompt(
                    plan, float(rec.request["seconds"]), sample_rate=sr, count_in=int(opts["count_in"]),
                    bpm=float(opts["bpm"]), device=opts.get("device"), progress=self._progress(task),
                    cancel=task.cancel,
                )
        except Exception as exc:
            self._failed(task, exc, resumable=False)
            return
        self._finish(rec.job_id, "/darc/recorded", (rec.job_id, str(path), float(duration), sr),
                     state="done", stage="record", fraction=1.0, stem_path=str(path), duration=duration,
                     sample_rate=sr)

    # --- shared -----------------------------------------------------------------------------
    def _start(self, task: Task, rec: JobRecord) -> str:
        """One commit: running, one more attempt, a fresh tag for this attempt's temporary files."""
        current = self.journal.get(rec.job_id)
        attempts = (current.attempts if current else 0) + 1
        tag = secrets.token_hex(8)
        self.journal.update(rec.job_id, state="running", stage="load", attempts=attempts, tag=tag, files=[],
                            stem_path="", midi_path="")
        log.info("job %s started (attempt %d)", rec.job_id, attempts)
        return tag

    def _planned(self, job_id: str) -> Callable[[list[dict[str, Any]]], None]:
        """Journal the identities of a job's files before they appear under their final names."""
        return lambda files: self.journal.update(job_id, files=files)

    def _finish(self, job_id: str, address: str, args: tuple, **changes: Any) -> None:
        """Journal the end, then tell the client; a journal that cannot be written ends the job in error."""
        try:
            self.journal.update(job_id, **changes)
        except JournalError as exc:
            log.error("job %s finished but %s", job_id, exc)
            message = f"{exc}; the files were written: {args[1]}"
            self.record_error(job_id, "error", exc.code, message)
            self.notify(job_id, "/darc/error", (job_id, exc.code, message))
        else:
            self.notify(job_id, address, args)
        self.on_finished(job_id)

    def record_error(self, job_id: str, state: str, code: str, message: str) -> None:
        try:
            self.journal.update(job_id, state=state, error_code=code, error_message=message)
        except JournalError as exc:  # kept in memory: /darc/status still tells the truth
            log.error("job %s: %s", job_id, exc)

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
        if isinstance(exc, Cancelled) and self.stopping.is_set():
            if resumable:
                log.info("job %s interrupted by shutdown: it will run again at the next start", job_id)
                try:
                    self.journal.update(job_id, state="queued", stage="queued", fraction=0.0, files=[], tag="")
                except JournalError as jexc:
                    log.error("job %s: %s", job_id, jexc)
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
        self.record_error(job_id, state, code, message)
        self.notify(job_id, "/darc/error", (job_id, code, message))
        self.on_finished(job_id)

    # --- crash recovery ---------------------------------------------------------------------
    def recover(self) -> list[JobRecord]:
        """Resolve jobs left queued or running by the last run; return those to run again.

        Never raises: a job that cannot be resolved ends in an error naming why. Only files whose
        identity the journal recorded (or temporary files holding the attempt's unique tag) are
        ever removed or adopted."""
        again = []
        for rec in self.journal.unfinished():
            try:
                if self._recover_one(rec):
                    again.append(rec)
            except Exception as exc:
                log.exception("job %s could not be recovered", rec.job_id)
                self._give_up(rec, f"the job could not be recovered after a restart ({type(exc).__name__}: {exc})")
        out = [self.journal.get(r.job_id) for r in again]
        return [r for r in out if r is not None]

    def _recover_one(self, rec: JobRecord) -> bool:
        if rec.kind == "record":
            if rec.state == "running" and self._adopt(rec):  # killed just after the take was written
                return False
            self._remove_own(rec)
            self._give_up(rec, "the daemon stopped during this recording; record again")
            return False
        if rec.state == "running":
            if self._adopt(rec):
                return False
            self._remove_own(rec)
            mix = str(rec.request.get("mix", ""))[:200]
            self._give_up(rec, "the daemon stopped unexpectedly (a crash, kill -9 or running out of memory) while "
                               f"running this job (mix {mix}); it is not run again, so that it cannot stop the "
                               f"daemon again")
            return False
        if rec.attempts >= self.config.max_attempts:
            self._give_up(rec, f"the daemon stopped {rec.attempts} times during this job; it was given up")
            return False
        self.journal.update(rec.job_id, state="queued", stage="queued", fraction=0.0, stem_path="", midi_path="",
                            files=[], tag="")
        return True

    def _adopt(self, rec: JobRecord) -> bool:
        """A job killed after all its files were in place: mark it done (they are provably its own)."""
        files = {f["role"]: f for f in rec.files}
        main = files.get("stem") or files.get("prompt")
        if main is None or not all(is_same_file(f["path"], f["dev"], f["ino"], f["size"]) for f in files.values()):
            return False
        for f in files.values():
            _remove_if_same(f["tmp"], f)
        info = sf.info(main["path"])
        self.journal.update(rec.job_id, state="done", stage="write", fraction=1.0, stem_path=main["path"],
                            midi_path=files["midi"]["path"] if "midi" in files else "", duration=info.duration,
                            sample_rate=info.samplerate)
        log.info("job %s had finished before the daemon stopped: %s", rec.job_id, main["path"])
        return True

    def _remove_own(self, rec: JobRecord) -> None:
        """Remove what an unfinished attempt wrote: recorded files still ours, temporary files with its tag."""
        for f in rec.files:
            for key in ("path", "tmp"):
                _remove_if_same(f[key], f)
        if not rec.tag:
            return
        opts = rec.request.get("options", {})
        default = "prompt" if rec.kind == "record" else "drums"
        try:
            folder = self.files.output_folder(opts.get("out_dir"))
        except DarcError:
            return
        for tmp in temp_names(opts.get("name") or f"{default}-{rec.job_id}", rec.tag, folder):
            if tmp.is_file() and not tmp.is_symlink():
                log.info("removing a temporary file left by job %s: %s", rec.job_id, tmp)
                tmp.unlink(missing_ok=True)

    def _give_up(self, rec: JobRecord, message: str) -> None:
        try:
            self.journal.update(rec.job_id, state="error", error_code="interrupted", error_message=message,
                                stem_path="", midi_path="")
        except JournalError as exc:
            log.error("job %s: %s", rec.job_id, exc)
        log.warning("job %s: %s", rec.job_id, message)


def _remove_if_same(path: str, ident: dict[str, Any]) -> None:
    if path and is_same_file(path, ident["dev"], ident["ino"], ident["size"]):
        log.info("removing a file written by an unfinished job: %s", path)
        Path(path).unlink(missing_ok=True)


def warm_up(engine: Engine) -> None:
    """One tiny generation, so the first real job does not pay for lazy initialisation."""
    sr = 32000
    rng = np.random.default_rng(0)
    mix = Audio((0.01 * rng.standard_normal((1, sr))).astype(np.float32), sr)
    t0 = time.monotonic()
    engine.generate(mix, None, GenerationParams(seed=0))
    log.info("engine warm-up took %.2fs", time.monotonic() - t0)
