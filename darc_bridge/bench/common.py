"""Benchmark plumbing: run each case in a fresh process so its peak memory is its own."""

from __future__ import annotations

import importlib
import multiprocessing as mp
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BenchRow:
    """One line of the `make bench` table."""

    section: str
    case: str
    seconds: float
    peak_mb: float
    extra: dict[str, Any] = field(default_factory=dict)


def _child(target: str, args: tuple, queue: mp.Queue) -> None:
    module, func = target.rsplit(":", 1)
    fn: Callable = getattr(importlib.import_module(module), func)
    try:
        t0 = time.perf_counter()
        extra = fn(*args) or {}
        seconds = extra.pop("seconds", time.perf_counter() - t0)
        peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
        queue.put(("ok", seconds, peak_mb, extra))
    except BaseException as exc:  # report, never hang the parent
        queue.put(("error", 0.0, 0.0, {"error": repr(exc)}))


def run_isolated(section: str, case: str, target: str, *args: Any, timeout: float = 900) -> BenchRow:
    """Run `module:function(*args)` in a spawned process; time it and read its peak RSS.

    The function may return a dict of extra figures, and may report its own `seconds`
    (to exclude set-up such as imports or model loading from the timed part).
    """
    ctx = mp.get_context("spawn")
    queue: mp.Queue = ctx.Queue()
    proc = ctx.Process(target=_child, args=(target, args, queue))
    proc.start()
    try:
        status, seconds, peak_mb, extra = queue.get(timeout=timeout)
    finally:
        proc.join(timeout=10)
        if proc.is_alive():
            proc.kill()
    if status != "ok":
        extra = {"error": extra.get("error", "failed")}
    return BenchRow(section, case, seconds, peak_mb, extra)


def format_table(rows: list[BenchRow]) -> str:
    """A plain-text table, one row per case, extra figures as key=value."""
    head = f"{'section':<10} {'case':<34} {'seconds':>9} {'peak MB':>9}  extra"
    lines = [head, "-" * len(head)]
    for r in rows:
        extra = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in r.extra.items())
        lines.append(f"{r.section:<10} {r.case:<34} {r.seconds:>9.3f} {r.peak_mb:>9.0f}  {extra}")
    return "\n".join(lines)
