"""Quantising a prompt's rhythm moves its hits and its activations toward the beat grid."""

from __future__ import annotations

import numpy as np

from darc_bridge.beat.grid import BeatGrid, snap_times
from darc_bridge.rhythm.features import Onset, RhythmFeatures

SIXTEENTHS = np.arange(0.0, 4.0, 0.125)  # 120 BPM


def _late_take() -> RhythmFeatures:
    return RhythmFeatures.from_onsets([Onset(0.56, 0, 1.0), Onset(1.06, 1, 0.8), Onset(1.56, 0, 1.0)], 4.0)


def test_snap_times_moves_part_or_all_of_the_way():
    np.testing.assert_allclose(snap_times(np.array([0.56, 1.06]), SIXTEENTHS, 1.0), [0.5, 1.0])
    np.testing.assert_allclose(snap_times(np.array([0.56, 1.06]), SIXTEENTHS, 0.5), [0.53, 1.03])
    np.testing.assert_allclose(snap_times(np.array([0.56]), SIXTEENTHS, 0.0), [0.56])


def test_full_quantize_puts_hits_and_activation_peaks_on_the_grid():
    take = _late_take()
    tight = take.quantized(SIXTEENTHS, 1.0)
    np.testing.assert_allclose(tight.onset_times(), [0.5, 1.0, 1.5], atol=1e-9)
    assert [o.cls for o in sorted(tight.onsets, key=lambda o: o.time)] == [0, 1, 0]
    assert tight.n_frames == take.n_frames and tight.duration == take.duration
    kick_peaks = np.flatnonzero(tight.activations[0] > 0.95)
    assert set(kick_peaks) == {25, 75}  # 0.5 s and 1.5 s at 50 Hz, were 28 and 78
    assert int(np.argmax(tight.activations[1])) == 50


def test_no_quantize_is_the_identity_and_half_is_halfway():
    take = _late_take()
    assert take.quantized(SIXTEENTHS, 0.0) is take
    np.testing.assert_allclose(take.quantized(SIXTEENTHS, 0.5).onset_times(), [0.53, 1.03, 1.53], atol=1e-9)


def test_hits_snapped_onto_one_point_keep_a_monotone_warp():
    take = RhythmFeatures.from_onsets([Onset(0.49, 0, 1.0), Onset(0.52, 2, 0.5), Onset(2.0, 1, 1.0)], 3.0)
    tight = take.quantized(BeatGrid(120.0, np.arange(0, 3, 0.5), np.arange(0, 3, 2.0), 3.0).subdivisions(4), 1.0)
    np.testing.assert_allclose(sorted(tight.onset_times()), [0.5, 0.5, 2.0], atol=1e-9)
    assert np.all(np.isfinite(tight.activations)) and tight.activations.max() <= 1.0 + 1e-6
