"""Segments: fixed windows, equal mix/drum length, windows without drums skipped."""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.data.segments import SegmentSettings, cut_segments
from darc_bridge.data.stems import SongStems
from darc_bridge.data.synth_corpus import synth_song

SR = 16000


def song_with_silent_second_half() -> SongStems:
    s = synth_song(5, duration=8.0, sample_rate=SR)
    drumless = s.stems["bass"] + s.stems["other"]
    drums = s.stems["drums"].copy()
    drums[4 * SR:] = 0.0
    return SongStems("half", drumless, drums, SR)


def test_windows_without_drums_are_skipped():
    segs = list(cut_segments(song_with_silent_second_half(), SegmentSettings(target_s=2.0, context_min_s=1.0,
                                                                              context_max_s=2.0)))
    assert [s.index for s in segs] == [0, 1]
    assert all(s.drums.size == s.context.size == 2 * SR for s in segs)
    assert segs[1].start == pytest.approx(2.0)


def test_hop_overlaps_and_sparse_drums_are_skipped():
    song = song_with_silent_second_half()
    segs = list(cut_segments(song, SegmentSettings(target_s=2.0, context_min_s=1.0, context_max_s=2.0, hop_s=1.0)))
    assert [s.start for s in segs] == [0.0, 1.0, 2.0, 3.0]  # 3-5 s holds a second of groove; 4-6 s none
    sparse = SongStems("sparse", song.drumless, np.zeros_like(song.drums), SR)
    sparse.drums[SR] = 0.9  # one click: loud enough in RMS terms nowhere, and not a groove
    assert list(cut_segments(sparse, SegmentSettings(target_s=2.0, context_min_s=1.0, context_max_s=2.0))) == []


def test_bad_settings_are_refused():
    with pytest.raises(ValueError):
        SegmentSettings(target_s=4.0, context_min_s=5.0, context_max_s=6.0)
    with pytest.raises(ValueError):
        SegmentSettings(hop_s=0)
