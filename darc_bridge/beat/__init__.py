"""Beat grid of the mix (tempo, beats, downbeats)."""

from darc_bridge.beat.grid import BeatGrid

__all__ = ["BeatGrid"]
