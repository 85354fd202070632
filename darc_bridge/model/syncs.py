"""Finding host syncs in the decode loop, on any device.

Why: on a GPU one host sync a step (a `.item()`, a device-to-host copy, an op whose output shape
depends on the data) makes the host wait for the whole queue, so kernel launches stop
overlapping and a CUDA graph cannot be captured. The decode loop promises none after the
prefill (issue 11). `torch.cuda.set_sync_debug_mode` only exists on cuda; the recorder here
sees the same mistakes on the CPU, through the dispatcher, so the CPU test suite keeps the
promise and the GPU check script runs the very same test on cuda (there also with
`set_sync_debug_mode("error")`, see `SyncCheckedSteps`).

What counts (`SYNC_OPS` and the checks in `HostSyncRecorder`):
- reading a value back: `aten._local_scalar_dense` (`.item()`, `int(t)`, `bool(t)`, `float(t)`,
  `if t.any():`), `torch.equal` / `allclose` (they return a Python bool), `.tolist()` and
  `.numpy()` (not dispatched on the CPU: the recorder wraps the two methods meanwhile);
- data-dependent shapes: `nonzero`, `masked_select`, `unique`, indexing or assigning with a
  boolean mask;
- `multinomial` (its input checks read the probabilities back on cuda);
- a tensor made from host data (`torch.tensor(list)`, `as_tensor`, `from_numpy`: an upload on a
  GPU) and any copy between two devices.
"""

from __future__ import annotations

import contextlib
import traceback
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

_aten = torch.ops.aten
SYNC_OPS = {
    _aten._local_scalar_dense.default: "read a value to the host",
    _aten.is_nonzero.default: "read a value to the host",
    _aten.equal.default: "read a value to the host",
    _aten.allclose.default: "read a value to the host",
    _aten.nonzero.default: "data-dependent shape",
    _aten.masked_select.default: "data-dependent shape",
    _aten._unique2.default: "data-dependent shape",
    _aten.unique_dim.default: "data-dependent shape",
    _aten.unique_consecutive.default: "data-dependent shape",
    _aten.multinomial.default: "multinomial (input checks read back on cuda)",
    _aten.lift_fresh.default: "tensor from host data",
    _aten.lift_fresh_copy.default: "tensor from host data",
}
_MASK_INDEXED = {_aten.index.Tensor, _aten.index_put.default, _aten.index_put_.default,
                 _aten._index_put_impl_.default}


@dataclass(frozen=True)
class SyncEvent:
    op: str
    why: str
    phase: str
    where: str  # the innermost frames of our code that issued it

    def __str__(self) -> str:
        return f"{self.op} ({self.why}) in phase {self.phase!r} at {self.where}"


def _where() -> str:
    frames = [f for f in traceback.extract_stack()[:-3]
              if "darc_bridge" in f.filename or "/tests/" in f.filename]
    return " <- ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno} {f.name}" for f in reversed(frames[-3:]))


def _same_device(a: torch.device, b: torch.device) -> bool:
    """`cuda` and `cuda:0` are one device when 0 is the current one."""
    if a.type != b.type:
        return False
    if a.type != "cuda" or a.index == b.index:
        return True
    current = torch.cuda.current_device()
    return (current if a.index is None else a.index) == (current if b.index is None else b.index)


def _devices(x) -> set[torch.device]:
    if isinstance(x, torch.Tensor):
        return {x.device}
    if isinstance(x, (list, tuple)):
        return set().union(*(_devices(v) for v in x)) if x else set()
    return set()


class HostSyncRecorder(TorchDispatchMode):
    """Records every host-sync-ish operation while active, labelled with the current `phase`
    (whoever drives the code under test sets it, e.g. `SyncCheckedSteps`)."""

    def __init__(self) -> None:
        super().__init__()
        self.phase = "outside"
        self.events: list[SyncEvent] = []
        self._saved: dict[str, object] = {}

    def _record(self, op: str, why: str) -> None:
        self.events.append(SyncEvent(op, why, self.phase, _where()))

    def in_phase(self, phase: str) -> list[SyncEvent]:
        return [e for e in self.events if e.phase == phase]

    def counts(self, phase: str | None = None) -> Counter:
        return Counter(e.op for e in self.events if phase is None or e.phase == phase)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        why = SYNC_OPS.get(func)
        if why is not None:
            self._record(str(func), why)
        elif func in _MASK_INDEXED:
            indices = args[1] if len(args) > 1 else kwargs.get("indices", ())
            if any(isinstance(i, torch.Tensor) and i.dtype in (torch.bool, torch.uint8) for i in indices or ()):
                self._record(str(func), "boolean-mask index: data-dependent shape")
        elif func is _aten._to_copy.default:
            target = kwargs.get("device")
            if target is not None and not _same_device(torch.device(target), args[0].device):
                self._record(str(func), f"copy {args[0].device} -> {target}")
        elif func in (_aten.copy_.default, _aten._copy_from.default):
            found = {(d.type, d.index if d.index is not None or d.type != "cuda" else torch.cuda.current_device())
                     for d in _devices(args[:2])}
            if len(found) > 1 and not (isinstance(args[1], torch.Tensor) and args[1].dim() == 0
                                       and args[1].device.type == "cpu"):
                self._record(str(func), "copy between devices " + ", ".join(sorted(f"{t}:{i}" for t, i in found)))
        return func(*args, **kwargs)

    def __enter__(self):
        recorder = self
        for name in ("tolist", "numpy"):
            original = getattr(torch.Tensor, name)
            self._saved[name] = original

            def wrapped(t, *a, _original=original, _name=name, **k):
                recorder._record(f"Tensor.{_name}", "read values to the host")
                return _original(t, *a, **k)

            setattr(torch.Tensor, name, wrapped)
        return super().__enter__()

    def __exit__(self, *exc):
        for name, original in self._saved.items():
            setattr(torch.Tensor, name, original)
        self._saved.clear()
        return super().__exit__(*exc)


class SyncCheckedSteps:
    """A step source (EagerSteps, CudaGraphSteps) whose sessions set the recorder's phase:
    "prefill" during a prefill, "steps" from its end until the session closes (the decode loop:
    sampling, guidance, forced tokens, progress and cancel checks included), "outside" otherwise.

    `cuda_error_mode`: on cuda, also run the "steps" phase under
    `torch.cuda.set_sync_debug_mode("error")`, so the CUDA runtime itself refuses a sync.
    Counts the decode steps run (`decode_steps`).
    """

    def __init__(self, inner, recorder: HostSyncRecorder, cuda_error_mode: bool = False) -> None:
        self.inner = inner
        self.recorder = recorder
        self.cuda_error_mode = cuda_error_mode and torch.cuda.is_available()
        self.decode_steps = 0
        self.prefills = 0

    def _phase(self, phase: str) -> None:
        self.recorder.phase = phase
        if self.cuda_error_mode:
            torch.cuda.set_sync_debug_mode("error" if phase == "steps" else "default")

    @contextlib.contextmanager
    def session(self, rows: int, steps: int, groups: tuple[int, ...] | None = None) -> Iterator[_CheckedSession]:
        with self.inner.session(rows, steps, groups) as session:
            try:
                yield _CheckedSession(session, self)
            finally:
                self._phase("outside")


class _CheckedSession:
    def __init__(self, session, owner: SyncCheckedSteps) -> None:
        self.session, self.owner = session, owner

    @property
    def cache(self):
        return self.session.cache

    def prefill(self, sequence: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        self.owner._phase("prefill")
        self.owner.prefills += 1
        out = self.session.prefill(sequence, cond)
        self.owner._phase("steps")
        return out

    def decode_step(self, *args, **kwargs) -> torch.Tensor:
        self.owner.decode_steps += 1
        return self.session.decode_step(*args, **kwargs)

    def select_rows(self, index: torch.Tensor, groups: tuple[int, ...] | None = None) -> _CheckedSession:
        return _CheckedSession(self.session.select_rows(index, groups), self.owner)
