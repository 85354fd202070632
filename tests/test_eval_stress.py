"""The stress conditions of the rhythm benchmark (darc_bridge.eval.stress): each changes what it says."""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.eval.stress import (
    CONDITIONS,
    ONE_SOUNDS,
    STRESS_VOICES,
    agc,
    build_stress_take,
    drift_warp,
    ogg_roundtrip,
    stress_cases,
    swing_warp,
)
from darc_bridge.eval.takes import _hydrogen_kits, _kit_layers, build_take
from darc_bridge.kits import read_drumkit
from darc_bridge.kits.splits import ESPEAK_VOICES, HYDROGEN_KITS


def test_cases_are_clean_held_out_and_rotate_prompt_types():
    cases = stress_cases(9, 6)
    assert cases == stress_cases(9, 6)
    assert [c.prompt_type for c in cases] == ["kit", "gm", "vocal", "synth", "kit", "gm"]
    assert all(c.split == "held_out" and c.tier == "clean" for c in cases)
    assert len({c.seed for c in cases}) == 6
    with pytest.raises(ValueError, match="at least one"):
        stress_cases(9, 0)
    with pytest.raises(ValueError, match="unknown stress condition"):
        build_stress_take("underwater", cases[0])
    tune = stress_cases(9, 6, "tune")
    assert all(c.split == "tune" and c.tier == "clean" for c in tune)
    assert [c.prompt_type for c in tune] == [c.prompt_type for c in cases]


def test_voices_and_sounds_are_in_neither_split():
    used = {v for names in ESPEAK_VOICES.values() for v in names}
    for voices in STRESS_VOICES.values():
        for voice in voices:
            lang, variant = voice.split("+")
            assert lang not in {u.split("+")[0] for u in used} and not lang.startswith("en")
            assert variant not in {u.split("+")[1] for u in used}
    langs = {s: {v.split("+")[0] for v in vs} for s, vs in STRESS_VOICES.items()}
    variants = {s: {v.split("+")[1] for v in vs} for s, vs in STRESS_VOICES.items()}
    assert not langs["tune"] & langs["held_out"] and not variants["tune"] & variants["held_out"]
    for split, sounds in ONE_SOUNDS.items():
        for kit, instrument in sounds:
            if kit != "sox":
                assert kit in HYDROGEN_KITS[split]
                played = {path for layers in _kit_layers(kit) for path, _, _ in layers}
                inst = next(i for i in read_drumkit(_hydrogen_kits()[kit]).instruments if i.name == instrument)
                ours = {str(la.path) for la in inst.layers}
                assert ours and not ours & played  # never one of the takes' kick, snare, hat samples


def test_drift_wanders_five_percent_and_swing_delays_the_offbeat():
    warp = drift_warp(8.0, 0.0)
    grid = np.arange(0.0, 8.0, 0.125)
    played = warp(grid)
    assert played[0] == 0.0 and np.all(np.diff(played) > 0)
    local = np.diff(played) / 0.125  # the player's beat length against the song's: 0.95-1.05 tempo
    assert 0.94 < local.min() < 0.96 and 1.04 < local.max() < 1.06
    assert np.max(np.abs(played - grid)) > 0.05  # well off the song's grid at some point
    sw = swing_warp(120.0)  # beat 0.5 s: the offbeat 8th moves from 0.25 to 1/3 of a second
    np.testing.assert_allclose(sw(np.array([0.0, 0.25, 0.5, 0.75])), [0.0, 1 / 3, 0.5, 0.5 + 1 / 3])


def test_agc_ducks_what_follows_a_loud_hit_and_lifts_the_quiet():
    sr = 16000
    x = np.zeros(sr)
    x[: sr // 20] = 0.9 * np.sin(np.arange(sr // 20) * 0.3)  # a loud burst
    soft = 0.01 * np.sin(np.arange(sr // 20) * 0.3)
    x[sr // 5: sr // 5 + soft.size] = soft  # a soft one 150 ms later
    alone = np.zeros(sr)
    alone[sr // 5: sr // 5 + soft.size] = soft
    y, y_alone = agc(x, sr), agc(alone, sr)
    seg = slice(sr // 5, sr // 5 + soft.size)
    assert np.max(np.abs(y_alone[seg])) > 5 * np.max(np.abs(soft))  # lifted up to 24 dB when alone
    assert np.max(np.abs(y[seg])) < 0.5 * np.max(np.abs(y_alone[seg]))  # ducked after the loud burst


@pytest.mark.parametrize("subtype", ["VORBIS", "OPUS"])
def test_ogg_roundtrip_keeps_the_length_and_time_and_changes_the_signal(subtype):
    sr = 16000
    x = np.zeros(sr, dtype=np.float32)
    x[4000:4400] = 0.5 * np.random.default_rng(0).standard_normal(400)  # a burst at 0.25 s
    y = ogg_roundtrip(x, sr, 1.0 if subtype == "VORBIS" else 0.95, subtype)
    assert y.shape == x.shape and np.all(np.isfinite(y))
    err = np.sqrt(np.mean((y - x) ** 2)) / np.sqrt(np.mean(x**2))
    assert 0.01 < err < 1.0
    lag = int(np.argmax(np.correlate(y, x, "full"))) - (x.size - 1)
    assert lag == 0  # no codec delay: training labels stay on the hits


def test_build_take_overrides_leave_the_other_draws_alone():
    case = stress_cases(9, 1)[0]
    plain = build_take(case)
    again = build_take(case, bpm=plain.bpm, source=plain.source, warp=lambda t: t)
    assert again.audio.tobytes() == plain.audio.tobytes() and again.truth == plain.truth


@pytest.mark.slow
def test_each_condition_is_applied():
    case = stress_cases(9, 1)[0]  # a held-out Hydrogen kit take
    takes = {c: build_stress_take(c, case) for c in CONDITIONS}
    control = takes["control"]
    assert control.audio.tobytes() == build_take(case).audio.tobytes()
    grid_step = 60.0 / control.bpm / 4

    def off_grid(take):
        t = np.array([o.time for o in take.truth])
        return np.abs(t / grid_step - np.round(t / grid_step)) * grid_step

    assert off_grid(control).max() < 1e-3
    drift = off_grid(takes["drift 5%"])
    assert drift.max() > 0.03 and drift.std() > 0.005  # not a constant offset: the take drifts
    swing = off_grid(takes["swing"])
    assert np.isclose(swing.max(), grid_step / 3, atol=2e-3)  # offbeat 8ths a triplet 16th late
    assert takes["60 BPM"].bpm == 60.0 and takes["180 BPM"].bpm == 180.0
    assert takes["phone 8k"].sample_rate == 8000 and takes["laptop 16k"].sample_rate == 16000
    assert takes["new voices"].source in STRESS_VOICES["held_out"] and takes["new voices"].case.prompt_type == "vocal"
    one = takes["one sound"]
    assert {o.cls for o in one.truth} == {1} and ": " in one.source
    assert len(one.truth) == len({o.time for o in control.truth})
    mix = control.mix.mean(axis=0)[: control.audio.size]
    corr = [abs(np.corrcoef(takes[c].audio, mix)[0, 1]) for c in ("control", "bed -12 dB", "bed -6 dB")]
    assert corr[0] < corr[1] < corr[2]
    quiet = takes["quiet 6 dB SNR"].audio
    assert np.max(np.abs(quiet)) < 10 ** (-40 / 20)
    assert np.mean(np.abs(takes["clipped"].audio) >= 0.999) > 0.01


@pytest.mark.slow
def test_tune_stress_takes_hear_tune_voices_and_sounds():
    case = stress_cases(9, 1, "tune")[0]
    voice = build_stress_take("new voices", case, 1)
    one = build_stress_take("one sound", case, 0)
    assert voice.source == STRESS_VOICES["tune"][1] and voice.case.split == "tune"
    assert one.source == ": ".join(ONE_SOUNDS["tune"][0])


def test_sox_taps_are_repeatable():
    from darc_bridge.eval.stress import _sox_tap

    for name in ("pen", "table"):
        a, b = _sox_tap.__wrapped__(name, 44100), _sox_tap.__wrapped__(name, 44100)  # two sox runs, no cache
        assert a.tobytes() == b.tobytes() and 0.02 < a.size / 44100 < 0.2
