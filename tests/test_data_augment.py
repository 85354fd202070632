"""Rhythm augmentation keeps *when* the drums play and changes *what it sounds like*."""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.data.augment import (
    PROMPT_VOICES,
    VOICE_FAMILIES,
    AugmentSettings,
    augment_context,
    jitter_onsets,
    rerender_prompt,
    training_rhythm,
)
from darc_bridge.data.synth_corpus import synth_song
from darc_bridge.eval.metrics import onset_f1
from darc_bridge.rhythm.nmf import extract_rhythm

SR = 32000
CLEAN = AugmentSettings(noise_prob=0.0, jitter_s=0.0)


@pytest.fixture(scope="module")
def song():
    return synth_song(3, 6.0, SR)


def truth(song) -> np.ndarray:
    return np.array(sorted({o.time for o in song.onsets}))


@pytest.mark.parametrize("family", VOICE_FAMILIES + PROMPT_VOICES)
def test_rerendered_prompt_keeps_the_onsets_with_another_timbre(song, family):
    y = rerender_prompt(song.onsets, song.duration, SR, np.random.default_rng(0), CLEAN, family=family)
    assert y.shape == song.stems["drums"].shape and np.max(np.abs(y)) <= 1.0
    heard = extract_rhythm(y, sample_rate=SR).onset_times()
    assert onset_f1(truth(song), heard)["f1"] >= 0.8
    drums = song.stems["drums"]
    corr = abs(np.corrcoef(y, drums)[0, 1])
    assert corr < 0.5, "the prompt must not be the drums themselves"


def test_jitter_moves_hits_by_about_its_std(song):
    moved = jitter_onsets(song.onsets, np.random.default_rng(0), 0.01)
    shifts = np.array([b.time - a.time for a, b in zip(song.onsets, moved, strict=True) if a.time > 0.05])
    assert 0.006 < shifts.std() < 0.014 and [o.cls for o in moved] == [o.cls for o in song.onsets]


def test_training_rhythm_follows_the_drums_with_known_or_transcribed_onsets(song):
    for onsets in (song.onsets, None):
        feats = training_rhythm(song.stems["drums"], SR, np.random.default_rng(1), onsets=onsets)
        assert feats.activations.shape == (3, 300)
        assert onset_f1(truth(song), feats.onset_times())["f1"] >= 0.75


def test_speed_changes_mix_and_drums_together_and_pitch_only_the_mix(song):
    mix, drums = song.stems["bass"], song.stems["drums"]
    fast = AugmentSettings(speed_prob=1.0, speed_range=(1.25, 1.25), pitch_prob=0.0)
    ctx, dr, ons, done = augment_context(mix, drums, SR, np.random.default_rng(0), fast, song.onsets)
    assert done == {"speed": 1.25}
    assert ctx.size == pytest.approx(mix.size / 1.25, abs=2) and dr.size == drums.size
    assert ons[5].time == pytest.approx(song.onsets[5].time / 1.25)
    up = AugmentSettings(speed_prob=0.0, pitch_prob=1.0, pitch_semitones=4.0)
    ctx, dr, _, done = augment_context(mix, drums, SR, np.random.default_rng(0), up)
    assert ctx.size == mix.size and np.array_equal(dr, drums) and abs(done["pitch"]) <= 4.0

    def centroid(x):
        spec = np.abs(np.fft.rfft(x))
        return float(np.sum(spec * np.arange(spec.size)) / np.sum(spec))

    assert np.sign(centroid(ctx) - centroid(mix)) == np.sign(done["pitch"])
