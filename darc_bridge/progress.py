"""Turn per-stage progress (stage, fraction) into one overall fraction that never goes back.

Engines report progress per stage; users (the CLI bar, OSC progress messages, the DAW status
line) want one number. Stages follow a fixed order with rough weights; an engine that skips a
stage (the kit never decodes) simply jumps over it.
"""

from __future__ import annotations

import threading

STAGE_WEIGHTS: dict[str, float] = {
    "queued": 0.0,
    "load": 0.04,
    "beats": 0.06,
    "rhythm": 0.06,
    "encode": 0.08,
    "generate": 0.56,
    "render": 0.08,
    "decode": 0.08,
    "write": 0.04,
}


class OverallProgress:
    """Thread-safe, monotone overall progress; stages not in the table count as 'generate'."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._overall = 0.0
        self._starts: dict[str, float] = {}
        acc = 0.0
        for stage, weight in STAGE_WEIGHTS.items():
            self._starts[stage] = acc
            acc += weight
        self._total = acc

    def update(self, stage: str, fraction: float) -> float:
        """Record a stage's progress; return the overall fraction in 0..1."""
        key = stage if stage in STAGE_WEIGHTS else "generate"
        f = min(max(float(fraction), 0.0), 1.0)
        value = (self._starts[key] + STAGE_WEIGHTS[key] * f) / self._total
        with self._lock:
            self._overall = max(self._overall, min(value, 1.0))
            return self._overall

    @property
    def overall(self) -> float:
        return self._overall
