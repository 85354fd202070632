"""Generation of drum tokens, window by window for long regions, one job or several batched.

One window is the sequence `[mix window | delimiter | drums]`: the prefix goes through the model
in one chunk (a prefill), then one pattern step per call with cached keys/values
(`darc_bridge.model.decode`). Guidance, sampling and the forced tokens stay on the device; the
host only counts steps, reports progress every `PROGRESS_EVERY` steps and checks for a
cancel after every step. Several jobs of the same length decode as rows of one batch, each with
its own guidance rows, generator, progress and cancel. A region longer than the
window is cut into overlapping windows; each later window is prompted with the last `overlap`
frames of drums already made (forced tokens right after the delimiter) and continues from there.
All windows write into one token stream that is decoded once, so there is no seam in the audio.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

import torch

from darc_bridge.engines.base import CancelToken
from darc_bridge.errors import Cancelled
from darc_bridge.model.conditioning import ConditionStream
from darc_bridge.model.lm import DarcLM
from darc_bridge.model.sampling import Guidance, sample_tokens
from darc_bridge.model.tokens import build_codes

log = logging.getLogger(__name__)

UNKNOWN = -1  # not generated yet (never fed to the model)
PROGRESS_EVERY = 25  # steps between progress reports (half a second of drums): a report can cost a message


@dataclass(frozen=True)
class SamplingSettings:
    temperature: float = 1.0
    top_k: int = 250
    top_p: float = 0.0
    cfg_coef: float = 3.0
    rhythm_strength: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class Window:
    """Drum frames [start, end); the first `n_forced` are carried over from the previous window."""

    start: int
    end: int
    n_forced: int

    @property
    def length(self) -> int:
        return self.end - self.start


def plan_windows(n_frames: int, window: int, overlap: int) -> list[Window]:
    """Cover [0, n_frames) with windows of at most `window` frames, each continuing the previous.

    Every window but the first starts `overlap` frames (or more, for the last one, so that it is
    full length) before the end of what exists, so each new window has drums to continue from.
    """
    if n_frames <= 0:
        raise ValueError("nothing to generate: region has no frames")
    if window < 2:
        raise ValueError(f"window must hold at least 2 frames, got {window}")
    overlap = max(1, min(overlap, window - 1))
    plan = [Window(0, min(window, n_frames), 0)]
    while plan[-1].end < n_frames:
        done = plan[-1].end
        start = min(done - overlap, max(0, n_frames - window))
        end = min(start + window, n_frames)
        plan.append(Window(start, end, done - start))
    return plan


def _rows(guidance: Guidance, has_rhythm: bool) -> tuple[list[str], dict[str, float]]:
    weights = guidance.weights(has_rhythm)
    return [r for r in ("full", "context", "null") if r in weights], weights


@dataclass
class WindowJob:
    """One job's window: mix codes (K, Tm), forced drum codes (K, F), rhythm/beat (C, Tm) or None."""

    mix: torch.Tensor
    forced: torch.Tensor
    rhythm: torch.Tensor | None
    beat: torch.Tensor | None
    settings: SamplingSettings
    generator: torch.Generator
    on_step: Callable[[], None] | None = None
    cancel: CancelToken | None = None


@dataclass
class _Prepared:
    names: list[str]
    weights: dict[str, float]
    seq: torch.Tensor  # (R, K, S)
    cond: torch.Tensor | None  # (R, S, dim)
    valid: torch.Tensor  # (K, S)
    pattern: object


def _prepare(model: DarcLM, job: WindowJob, device: torch.device) -> _Prepared:
    k, n_mix = job.mix.shape
    names, weights = _rows(Guidance(job.settings.cfg_coef, job.settings.rhythm_strength), job.rhythm is not None)
    r = len(names)
    drums = torch.full((k, n_mix), UNKNOWN, dtype=torch.long, device=device)
    drums[:, :job.forced.shape[-1]] = job.forced.to(device)
    mix = job.mix.to(device)
    ctx = torch.stack([mix if row != "null" else torch.full_like(mix, model.pad) for row in names])
    codes = build_codes(ctx, drums[None].expand(r, -1, -1), model.delimiter_token)
    pattern = model.lm.pattern_provider.get_pattern(codes.shape[-1])
    seq, _, valid = pattern.build_pattern_sequence(codes, model.pad)
    n_steps = seq.shape[-1]
    rhythm_on = torch.tensor([row == "full" for row in names], device=device, dtype=torch.float32)
    context_on = torch.tensor([row != "null" for row in names], device=device, dtype=torch.float32)
    cond = model.step_conditioning(
        n_mix, n_steps,
        None if job.rhythm is None else job.rhythm.to(device)[None],
        rhythm_on,
        None if job.beat is None else job.beat.to(device)[None],
        context_on,
    )
    return _Prepared(names, weights, seq, cond, valid.to(device), pattern)


def _default_steps(model: DarcLM):
    from darc_bridge.model.decode import Decoder, EagerSteps

    return EagerSteps(Decoder(model))


@torch.no_grad()
def decode_windows(model: DarcLM, jobs: list[WindowJob], steps=None) -> list[torch.Tensor | Cancelled]:
    """Drum codes (K, Tm) for each job's window, decoded as rows of one batch.

    All jobs share the window length and the number of forced frames (so they step in lockstep).
    `steps` provides decode sessions (`EagerSteps`, or `CudaGraphSteps` on a GPU); by default a
    fresh eager one. A job whose cancel token is set stops after the current step: its rows
    leave the batch and its entry is a `Cancelled` error; the others carry on.
    """
    if not jobs:
        return []
    device = next(model.parameters()).device
    n_mix, n_forced = jobs[0].mix.shape[-1], jobs[0].forced.shape[-1]
    for job in jobs:
        if job.mix.shape[-1] != n_mix or job.forced.shape[-1] != n_forced:
            raise ValueError("jobs decoded together need the same window length and forced frames")
    prep = [_prepare(model, job, device) for job in jobs]
    pattern, valid = prep[0].pattern, prep[0].valid
    seq = torch.cat([p.seq for p in prep])
    n_steps = seq.shape[-1]
    cond = None
    if any(p.cond is not None for p in prep):
        cond = torch.cat([p.cond if p.cond is not None else model.conditioner.rhythm_proj.weight.new_zeros(
            p.seq.shape[0], n_steps, model.config.dim) for p in prep])
    first = pattern.get_first_step_with_timesteps(n_mix + 1 + n_forced)
    active = list(range(len(jobs)))
    results: list[torch.Tensor | Cancelled | None] = [None] * len(jobs)
    pad = torch.full((model.n_q,), model.pad, dtype=torch.long, device=device)

    source = steps if steps is not None else _default_steps(model)

    def layout() -> tuple[list[tuple[int, int]], torch.Tensor]:
        """Each active job's rows, and the job slot of every batch row (built on the device:
        a job leaving the batch mid-window costs no upload of host data, see model.syncs)."""
        spans, slots, o = [], [], 0
        for s, j in enumerate(active):
            n = len(prep[j].names)
            spans.append((o, o + n))
            slots.append(torch.full((n,), s, dtype=torch.long, device=device))
            o += n
        return spans, torch.cat(slots)

    spans, row_slot = layout()
    with source.session(seq.shape[0], n_steps, tuple(b - a for a, b in spans)) as session:
        logits = session.prefill(seq[..., :first], None if cond is None else cond[:, :first])
        stream = None if cond is None else ConditionStream(cond, start=first)
        position = torch.full((1,), first, dtype=torch.long, device=device)
        for step in range(first, n_steps):
            if step > first:
                row = None if stream is None else stream.next()
                logits = session.decode_step(seq[..., step - 1:step], position, row, attend=step)
                position.add_(1)
            picked = []
            for j, (a, b) in zip(active, spans, strict=True):
                job, p = jobs[j], prep[j]
                guided = Guidance.combine(logits[a:b], p.names, p.weights)  # [K, card]
                st = job.settings
                tokens = sample_tokens(guided, st.temperature, st.top_k, st.top_p, job.generator)
                picked.append(torch.where(valid[:, step], tokens, pad))
            if len(picked) == 1:  # one job: all rows get its tokens
                tokens = picked[0].expand(seq.shape[0], -1)
            else:
                tokens = torch.stack(picked).index_select(0, row_slot)  # [B, K]
            column = seq[:, :, step]
            seq[:, :, step] = torch.where(column == UNKNOWN, tokens, column)
            dropped = []
            for j in active:
                if jobs[j].on_step is not None:
                    jobs[j].on_step()
                if jobs[j].cancel is not None and jobs[j].cancel.cancelled:
                    dropped.append(j)
            if dropped:
                for j in dropped:
                    results[j] = Cancelled("generation was cancelled")
                if len(dropped) == len(active):
                    active, spans = [], []
                    break
                keep = torch.cat([torch.arange(a, b, device=device)
                                  for j, (a, b) in zip(active, spans, strict=True) if j not in dropped])
                active = [j for j in active if j not in dropped]
                seq = seq.index_select(0, keep)
                stream = None if stream is None else stream.select_rows(keep)
                spans, row_slot = layout()
                session = session.select_rows(keep, tuple(b - a for a, b in spans))
    for j, (a, _) in zip(active, spans, strict=True):
        out, _, _ = pattern.revert_pattern_sequence(seq[a:a + 1], special_token=UNKNOWN)
        result = out[0, :, n_mix + 1:2 * n_mix + 1]
        if (result < 0).any() or (result >= model.config.card).any():
            raise RuntimeError("generation left frames unfilled or produced special tokens")
        results[j] = result
    return results  # type: ignore[return-value]


@torch.no_grad()
def generate_window(
    model: DarcLM,
    mix: torch.Tensor,
    forced: torch.Tensor,
    rhythm: torch.Tensor | None,
    beat: torch.Tensor | None,
    settings: SamplingSettings,
    generator: torch.Generator,
    on_step: Callable[[], None] | None = None,
    cancel: CancelToken | None = None,
    steps=None,
) -> torch.Tensor:
    """Drum codes (K, Tm) for one window: mix codes (K, Tm), forced drum codes (K, F), rhythm (C, Tm)."""
    out, = decode_windows(model, [WindowJob(mix, forced, rhythm, beat, settings, generator, on_step, cancel)], steps)
    if isinstance(out, Cancelled):
        raise out
    return out


def count_steps(plan: list[Window], n_q: int) -> int:
    """Generation steps over a plan: one per generated frame, plus the delay tail of each window."""
    return sum(w.length - w.n_forced + n_q - 1 for w in plan)


class _Progress:
    """Counts steps; reports the fraction done every PROGRESS_EVERY steps and at the end."""

    def __init__(self, total: int, progress: Callable[[float], None] | None) -> None:
        self.total, self.progress, self.done = total, progress, 0

    def __call__(self) -> None:
        self.done += 1
        if self.progress is not None and (self.done % PROGRESS_EVERY == 0 or self.done == self.total):
            self.progress(self.done / self.total)


def _check(mix: torch.Tensor, rhythm: torch.Tensor | None, beat: torch.Tensor | None) -> None:
    n = mix.shape[-1]
    for name, feats in (("rhythm", rhythm), ("beat", beat)):
        if feats is not None and feats.shape[-1] != n:
            raise ValueError(f"{name} covers {feats.shape[-1]} frames, the mix {n}")


def _window_sizes(model: DarcLM, window_frames: int | None, overlap_frames: int | None) -> tuple[int, int]:
    cfg = model.config
    return (window_frames or int(round(cfg.window_s * cfg.frame_rate)),
            overlap_frames or int(round(cfg.overlap_s * cfg.frame_rate)))


def _generator(model: DarcLM, seed: int) -> torch.Generator:
    generator = torch.Generator(device=next(model.parameters()).device)
    generator.manual_seed(int(seed))
    return generator


@torch.no_grad()
def generate_drums(
    model: DarcLM,
    mix: torch.Tensor,
    rhythm: torch.Tensor | None,
    settings: SamplingSettings,
    *,
    beat: torch.Tensor | None = None,
    window_frames: int | None = None,
    overlap_frames: int | None = None,
    progress: Callable[[float], None] | None = None,
    cancel: CancelToken | None = None,
    steps=None,
) -> tuple[torch.Tensor, dict]:
    """Drum codes (K, N) for mix codes (K, N), following `rhythm` (C, N) when given."""
    _check(mix, rhythm, beat)
    n = mix.shape[-1]
    window, overlap = _window_sizes(model, window_frames, overlap_frames)
    plan = plan_windows(n, window, overlap)
    counter = _Progress(count_steps(plan, model.n_q), progress)
    generator = _generator(model, settings.seed)
    drums = torch.full((model.n_q, n), UNKNOWN, dtype=torch.long)
    for w in plan:
        piece = generate_window(
            model,
            mix[:, w.start:w.end],
            drums[:, w.start:w.start + w.n_forced],
            None if rhythm is None else rhythm[:, w.start:w.end],
            None if beat is None else beat[:, w.start:w.end],
            settings,
            generator,
            counter,
            cancel,
            steps,
        )
        drums[:, w.start:w.end] = piece.cpu()
        log.debug("window %d..%d done (%d forced)", w.start, w.end, w.n_forced)
    if (drums == UNKNOWN).any():
        raise RuntimeError("the window plan left frames without drums")
    return drums, {"windows": len(plan), "steps": counter.done, "frames": n}


@dataclass
class DrumJob:
    """One job for `generate_drums_batch`: its own inputs, settings (seed), progress and cancel."""

    mix: torch.Tensor
    rhythm: torch.Tensor | None
    settings: SamplingSettings
    beat: torch.Tensor | None = None
    window_frames: int | None = None
    overlap_frames: int | None = None
    progress: Callable[[float], None] | None = None
    cancel: CancelToken | None = None


@torch.no_grad()
def generate_drums_batch(model: DarcLM, jobs: list[DrumJob], steps=None) -> list[tuple[torch.Tensor, dict] | Cancelled]:
    """`generate_drums` for several jobs at once: jobs with the same length and window plan decode
    as rows of one batch (the others in their own groups). Each job samples from its own generator
    (its seed) and its own guidance rows, so it gets the tokens it would get alone up to float
    rounding: matrix products over a larger batch can round differently (about 1e-6 in the
    logits), which on long jobs can flip a sampled token and let the continuation diverge. The
    same batch reproduces exactly. A cancelled job's entry is a `Cancelled` error."""
    results: list[tuple[torch.Tensor, dict] | Cancelled | None] = [None] * len(jobs)
    groups: dict[tuple[int, int, int], list[int]] = {}
    for i, job in enumerate(jobs):
        _check(job.mix, job.rhythm, job.beat)
        window, overlap = _window_sizes(model, job.window_frames, job.overlap_frames)
        groups.setdefault((job.mix.shape[-1], window, overlap), []).append(i)
    for (n, window, overlap), members in groups.items():
        plan = plan_windows(n, window, overlap)
        total = count_steps(plan, model.n_q)
        counters = {i: _Progress(total, jobs[i].progress) for i in members}
        generators = {i: _generator(model, jobs[i].settings.seed) for i in members}
        drums = {i: torch.full((model.n_q, n), UNKNOWN, dtype=torch.long) for i in members}
        live = list(members)
        for w in plan:
            if not live:
                break
            window_jobs = []
            for i in live:
                job = jobs[i]
                if job.cancel is not None and job.cancel.cancelled:
                    window_jobs.append(None)
                    continue
                window_jobs.append(WindowJob(
                    job.mix[:, w.start:w.end], drums[i][:, w.start:w.start + w.n_forced],
                    None if job.rhythm is None else job.rhythm[:, w.start:w.end],
                    None if job.beat is None else job.beat[:, w.start:w.end],
                    job.settings, generators[i], counters[i], job.cancel))
            running = [i for i, wj in zip(live, window_jobs, strict=True) if wj is not None]
            for i in live:
                if i not in running:
                    results[i] = Cancelled("generation was cancelled")
            outs = decode_windows(model, [wj for wj in window_jobs if wj is not None], steps)
            live = []
            for i, out in zip(running, outs, strict=True):
                if isinstance(out, Cancelled):
                    results[i] = out
                else:
                    drums[i][:, w.start:w.end] = out.cpu()
                    live.append(i)
        for i in live:
            results[i] = (drums[i], {"windows": len(plan), "steps": counters[i].done, "frames": n})
    return results  # type: ignore[return-value]
