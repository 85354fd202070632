"""Turn per-stage progress (stage, fraction) into one whole-job fraction that never goes back.

Engines report progress per stage; users (the CLI bar, OSC progress messages, the DAW status
line) want one number. Each stage covers a fixed span of the job; alternatives share a span
(the kit renders where the model generates), and a skipped stage is simply jumped over.
"""

from __future__ import annotations

import threading

# Whole-job fraction covered by each stage: (start, end).
STAGE_SPANS: dict[str, tuple[float, float]] = {
    "queued": (0.0, 0.0),
    "load": (0.0, 0.05),
    "rhythm": (0.05, 0.15),
    "beats": (0.15, 0.25),
    "encode": (0.25, 0.30),
    "generate": (0.30, 0.85),
    "render": (0.30, 0.85),
    "decode": (0.85, 0.95),
    "write": (0.95, 1.0),
    "record": (0.0, 1.0),
}


class OverallProgress:
    """Thread-safe, monotone whole-job progress; an unknown stage keeps the current value."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.fraction = 0.0
        self.stage = "queued"

    def update(self, stage: str, fraction: float) -> float:
        """Record a stage's progress; return the whole job's fraction in 0..1."""
        f = min(max(float(fraction), 0.0), 1.0) if fraction == fraction else 0.0  # NaN counts as 0
        with self._lock:
            lo, hi = STAGE_SPANS.get(stage, (self.fraction, self.fraction))
            self.fraction = max(self.fraction, lo + (hi - lo) * f)
            if stage in STAGE_SPANS:
                self.stage = stage
            return self.fraction
