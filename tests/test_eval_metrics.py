"""Metrics respond to what they claim to measure."""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.audio.music import synth_drum_stem, synth_drumless_mix
from darc_bridge.beat.grid import BeatGrid
from darc_bridge.eval import metrics
from darc_bridge.rhythm.features import Onset

SR = 22050


def grid(bpm=120.0, duration=8.0) -> BeatGrid:
    beats = np.arange(0.0, duration, 60.0 / bpm)
    return BeatGrid(bpm, beats, beats[::4], duration)


def test_onset_f1_perfect_shifted_and_empty():
    ref = np.array([0.5, 1.0, 1.5, 2.0])
    assert metrics.onset_f1(ref, ref + 0.02)["f1"] == 1.0
    assert metrics.onset_f1(ref, ref + 0.08)["f1"] == 0.0
    half = metrics.onset_f1(ref, ref[:2])
    assert half["precision"] == 1.0 and half["recall"] == 0.5
    assert metrics.onset_f1([], [])["f1"] == 1.0 and metrics.onset_f1(ref, [])["f1"] == 0.0


def test_per_class_f1_catches_swapped_classes():
    ref = [Onset(0.5, 0, 1), Onset(1.0, 1, 1), Onset(1.5, 2, 1)]
    swapped = [Onset(0.5, 1, 1), Onset(1.0, 0, 1), Onset(1.5, 2, 1)]
    scores = metrics.per_class_f1(ref, swapped)
    assert scores["kick"]["f1"] == 0.0 and scores["snare"]["f1"] == 0.0 and scores["hat"]["f1"] == 1.0


def test_grid_alignment_on_and_off_the_sixteenths():
    g = grid()
    on = np.arange(0.0, 4.0, 0.125)  # 16ths at 120 BPM
    assert metrics.grid_alignment(on, g) == 1.0
    assert metrics.grid_alignment(on + 0.0625, g) == 0.0  # 32nd-note offsets sit between the 16ths
    assert np.isnan(metrics.grid_alignment(np.array([]), g))


def test_tempo_agreement_allows_double_and_half():
    assert metrics.tempo_agreement(120, 121) == 1.0
    assert metrics.tempo_agreement(240, 120) == 1.0 and metrics.tempo_agreement(60.5, 120) == 1.0
    assert metrics.tempo_agreement(100, 120) == 0.0


def test_coherence_prefers_drums_in_time_with_the_mix():
    mix, beats, _ = synth_drumless_mix(8.0, bpm=120, sample_rate=SR, seed=1)
    mix = mix.mean(axis=0)
    hits = [Onset(float(b), 0 if i % 2 == 0 else 1, 1.0) for i, b in enumerate(beats)]
    hits += [Onset(float(b) + 0.25, 2, 0.7) for b in beats]
    in_time = synth_drum_stem(hits, 8.0, SR).mean(axis=0)
    shifted = synth_drum_stem([Onset(o.time + 0.11, o.cls, o.strength) for o in hits], 8.0, SR).mean(axis=0)
    g = grid()
    good = metrics.coherence(in_time, mix, SR, g, g)
    bad = metrics.coherence(shifted, mix, SR, g, g)
    assert good["envelope_corr"] > bad["envelope_corr"] + 0.1
    assert good["coherence"] > bad["coherence"]
    assert abs(good["best_lag_s"]) <= 0.05  # one or two envelope frames: pads swell slower than drums hit
    assert bad["best_lag_s"] - good["best_lag_s"] == pytest.approx(0.11, abs=0.03)  # positive: the stem is late


def test_beat_f_measure():
    g = grid()
    assert metrics.beat_f_measure(g.beats, g.beats + 0.01) == 1.0
    assert metrics.beat_f_measure(g.beats, g.beats + 0.25) == 0.0
