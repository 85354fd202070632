"""Cut songs into training segments, STAGE style, and skip those with no drums to learn from.

A segment is a window of `target_s` seconds: the target is the drums over the window and the
context is the drumless mix over the same window. STAGE cuts the context to a random 5-10 s;
DARC's generator (darc_bridge/model/generate.py) always pairs a mix window with a drum window of
the same length, so the trainer instead crops each batch, context and target together, to a random
length in [context_min_s, context_max_s]: prefixes of varying length, as in STAGE, without teaching
the model a length mismatch it never meets at inference.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass

import numpy as np

from darc_bridge.data.stems import SongStems
from darc_bridge.eval.onsets import detect_onsets

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SegmentSettings:
    """Defaults follow STAGE (REFERENCE section 3): 10 s targets, 5-10 s context."""

    target_s: float = 10.0
    context_min_s: float = 5.0  # shortest batch crop (trainer)
    context_max_s: float = 10.0  # longest batch crop (trainer)
    hop_s: float | None = None  # None: target_s (no overlap)
    min_drums_dbfs: float = -45.0  # RMS below this: no drums here
    min_onsets_per_s: float = 0.4  # fewer detected drum onsets than this: no groove here
    min_context_dbfs: float = -60.0  # a silent drumless mix gives nothing to fit

    def __post_init__(self) -> None:
        if self.target_s <= 0:
            raise ValueError(f"target_s must be positive, got {self.target_s}")
        if not 0 < self.context_min_s <= self.context_max_s <= self.target_s:
            raise ValueError("need 0 < context_min_s <= context_max_s <= target_s")
        if self.hop_s is not None and self.hop_s <= 0:
            raise ValueError(f"hop_s must be positive, got {self.hop_s}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class Segment:
    """One training example before tokenisation; audio is mono float32."""

    song: str
    index: int
    start: float
    context: np.ndarray  # drumless mix over the window
    drums: np.ndarray  # target drums over the window, same length
    sample_rate: int

    @property
    def key(self) -> str:
        return f"{self.song}/{self.index:04d}"


def rms_dbfs(x: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(np.square(x, dtype=np.float64)))) if x.size else 0.0
    return -np.inf if rms <= 0 else 20.0 * np.log10(rms)


def has_drums(drums: np.ndarray, sample_rate: int, settings: SegmentSettings) -> bool:
    """Loud enough and with enough onsets: a faded tail or a single cymbal swell is not a groove."""
    if rms_dbfs(drums) < settings.min_drums_dbfs:
        return False
    onsets = detect_onsets(drums, sample_rate)
    return len(onsets) >= settings.min_onsets_per_s * drums.size / sample_rate


def cut_segments(song: SongStems, settings: SegmentSettings = SegmentSettings()) -> Iterator[Segment]:
    """Yield the song's usable segments in order (index counts every window, skipped or not)."""
    sr = song.sample_rate
    n_target = int(round(settings.target_s * sr))
    hop = int(round((settings.hop_s or settings.target_s) * sr))
    skipped = 0
    for index, start in enumerate(range(0, song.drums.size - n_target + 1, hop)):
        drums = song.drums[start : start + n_target]
        context = song.drumless[start : start + n_target]
        if not has_drums(drums, sr, settings) or rms_dbfs(context) < settings.min_context_dbfs:
            skipped += 1
            continue
        yield Segment(song.name, index, start / sr, context.astype(np.float32), drums.astype(np.float32), sr)
    if skipped:
        log.info("%s: skipped %d segments without drums or context", song.name, skipped)
