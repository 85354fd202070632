"""Beat grid of the mix (tempo, beats, downbeats)."""

from __future__ import annotations

from typing import Any

from darc_bridge.beat.grid import BeatGrid

__all__ = ["BeatGrid", "estimate_beat_grid"]


def __getattr__(name: str) -> Any:
    """Import the tracker (and librosa) only when used, so importing the grid stays cheap."""
    if name == "estimate_beat_grid":
        from darc_bridge.beat.tracking import estimate_beat_grid

        return estimate_beat_grid
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
