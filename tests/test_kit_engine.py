"""The kit engine: region length, no clipping, following the prompt, blending with the grid,
quantise, humanise, determinism, user kits, cancellation and the grid groove."""

from __future__ import annotations

from pathlib import Path

import librosa
import mir_eval
import numpy as np
import pytest
import soundfile as sf

from darc_bridge.audio.io import Audio
from darc_bridge.audio.music import synth_drumless_mix
from darc_bridge.audio.prompts import random_pattern, synth_prompt
from darc_bridge.beat.grid import BeatGrid
from darc_bridge.engines import CancelToken, GenerationParams, create_engine
from darc_bridge.engines.groove import blend, grid_groove, humanise, quantize
from darc_bridge.engines.kit import KitEngine
from darc_bridge.errors import Cancelled, InputError
from darc_bridge.rhythm.features import Onset, RhythmFeatures

SR = 22050
BPM = 120.0
CEILING = 10 ** (-1 / 20)


def known_grid(duration: float, bpm: float = BPM) -> BeatGrid:
    beats = np.arange(0.0, duration, 60.0 / bpm)
    return BeatGrid(bpm, beats, beats[::4].copy(), duration)


def off_grid_prompt(duration: float, n_classes: int = 3) -> RhythmFeatures:
    """Hits deliberately off the 8th grid (70 ms and 290 ms after each beat) so they are recognisable."""
    hits = []
    for k, t in enumerate(np.arange(0.07, duration - 0.1, 0.5)):
        hits.append(Onset(float(t), k % n_classes, 0.5 + 0.5 * ((k * 7) % 5) / 4))
        hits.append(Onset(float(t + 0.22), 2, 0.6))
    return RhythmFeatures.from_onsets(hits, duration, n_classes=n_classes)


def detected_onsets(stem: np.ndarray, sr: int) -> np.ndarray:
    """librosa's onset detector, a little more sensitive than its default (soft hats next to kicks)."""
    return librosa.onset.onset_detect(y=stem.mean(axis=0), sr=sr, units="time", hop_length=256, delta=0.03)


def times_of(onsets: list[Onset]) -> np.ndarray:
    return np.array(sorted({round(o.time, 4) for o in onsets}))


@pytest.fixture(scope="module")
def engine() -> KitEngine:
    e = KitEngine()
    e.load()
    return e


@pytest.fixture(scope="module")
def mix6() -> Audio:
    samples, _, _ = synth_drumless_mix(6.0, bpm=BPM, sample_rate=SR, seed=2)
    return Audio(samples, SR)


# ------------------------------------------------------------------ length, level, basics


@pytest.mark.parametrize("sr", [22050, 44100, 48000])
def test_stem_is_exactly_the_region_length(engine: KitEngine, sr: int) -> None:
    samples, _, _ = synth_drumless_mix(3.0, bpm=100, sample_rate=sr, seed=1)
    samples = samples[:, : samples.shape[1] - 37]  # an odd frame count
    res = engine.generate(Audio(samples, sr), None, GenerationParams(seed=0))
    assert res.sample_rate == sr
    assert res.stem.shape == (2, samples.shape[1])
    assert res.stem.dtype == np.float32
    assert np.max(np.abs(res.stem)) > 0.05


def test_requested_output_rate_keeps_the_region_duration(engine: KitEngine, mix6: Audio) -> None:
    mix = Audio(mix6.samples[:, :SR * 3 + 11], SR)
    res = engine.generate(mix, None, GenerationParams(seed=0, output_sample_rate=32000))
    assert res.sample_rate == 32000
    assert res.stem.shape == (2, round((SR * 3 + 11) * 32000 / SR))


def test_never_clips_with_hundreds_of_loud_overlapping_hits(engine: KitEngine) -> None:
    hits = [Onset(0.003 * k, k % 8, 1.0) for k in range(600)]
    rhythm = RhythmFeatures.from_onsets(hits, 2.0, n_classes=8)
    res = engine.render_from_rhythm(rhythm, known_grid(2.0), 2 * SR, SR, GenerationParams(seed=1, temperature=0))
    assert np.max(np.abs(res.stem)) <= CEILING + 1e-6
    assert res.info["n_hits"] > 400


def test_result_reports_grid_rhythm_and_info(engine: KitEngine, mix6: Audio) -> None:
    res = engine.generate(mix6, None, GenerationParams(seed=7))
    assert res.beat_grid is not None and abs(res.beat_grid.tempo - BPM) < 0.04 * BPM
    assert res.info["seed"] == 7 and res.info["n_hits"] == len(res.rhythm.onsets) > 0
    assert res.info["tempo"] == pytest.approx(res.beat_grid.tempo, abs=0.01)
    assert res.rhythm.duration == pytest.approx(6.0)
    assert res.rhythm.n_frames == 300


def test_create_engine_builds_the_kit_engine() -> None:
    e = create_engine("kit")
    assert isinstance(e, KitEngine) and e.name == "kit"
    assert e.describe()["kit"] == "builtin"


def test_progress_reports_each_stage_in_order(engine: KitEngine, mix6: Audio) -> None:
    prompt = Audio(synth_prompt(random_pattern(2.0, BPM, seed=1), 2.0, SR, voice="tap")[None], SR)
    calls: list[tuple[str, float]] = []
    engine.generate(mix6, prompt, GenerationParams(seed=0), progress=lambda s, f: calls.append((s, f)))
    stages = [s for i, (s, _) in enumerate(calls) if i == 0 or calls[i - 1][0] != s]
    assert stages == ["beats", "rhythm", "render"]
    for stage in stages:
        fractions = [f for s, f in calls if s == stage]
        assert fractions[0] == 0.0 and fractions[-1] == 1.0 and fractions == sorted(fractions)


def test_invalid_params_are_refused(engine: KitEngine, mix6: Audio) -> None:
    with pytest.raises(InputError, match="quantize"):
        engine.generate(mix6, None, GenerationParams(quantize=2.0))


# ------------------------------------------------------------------ following the prompt


@pytest.mark.parametrize(("seed", "voice"), [(3, "beatbox"), (8, "tap")])
def test_full_strength_plays_the_prompts_rhythm(engine: KitEngine, mix6: Audio, seed: int, voice: str) -> None:
    pattern = random_pattern(3.0, BPM, seed=seed)
    prompt = Audio(synth_prompt(pattern, 3.0, SR, voice=voice, seed=seed)[None], SR)
    res = engine.generate(mix6, prompt, GenerationParams(seed=0, rhythm_strength=1.0, temperature=0.0))
    truth = times_of([*pattern, *(Onset(o.time + 3.0, o.cls, o.strength) for o in pattern)])  # looped to 6 s
    f, _, _ = mir_eval.onset.f_measure(truth, detected_onsets(res.stem, SR), window=0.05)
    assert f >= 0.9


def test_full_strength_renders_exactly_the_prompt_hits(engine: KitEngine) -> None:
    rhythm = off_grid_prompt(4.0)
    res = engine.render_from_rhythm(rhythm, known_grid(4.0), 4 * SR, SR, GenerationParams(rhythm_strength=1.0,
                                                                                           temperature=0.0))
    assert sorted(res.rhythm.onsets, key=lambda o: (o.time, o.cls)) == sorted(rhythm.onsets, key=lambda o: (o.time,
                                                                                                          o.cls))
    f, _, _ = mir_eval.onset.f_measure(times_of(rhythm.onsets), detected_onsets(res.stem, SR), window=0.05)
    assert f >= 0.9


def test_strength_above_one_plays_the_prompt(engine: KitEngine) -> None:
    rhythm = off_grid_prompt(3.0)
    a = engine.render_from_rhythm(rhythm, known_grid(3.0), 3 * SR, SR, GenerationParams(rhythm_strength=3.0,
                                                                                         temperature=0))
    assert len(a.rhythm.onsets) == len(rhythm.onsets)


def test_zero_strength_ignores_the_prompt_and_plays_the_grid(engine: KitEngine) -> None:
    grid = known_grid(4.0)
    rhythm = off_grid_prompt(4.0)
    res = engine.render_from_rhythm(rhythm, grid, 4 * SR, SR, GenerationParams(rhythm_strength=0.0, temperature=0))
    assert res.rhythm.onsets == grid_groove(grid)
    prompt_times = times_of(rhythm.onsets)
    played = times_of(res.rhythm.onsets)
    assert np.min(np.abs(played[:, None] - prompt_times[None, :])) > 0.03
    eighths = grid.subdivisions(per_beat=2)
    det = detected_onsets(res.stem, SR)
    assert len(det) >= 12
    assert np.all(np.min(np.abs(det[:, None] - eighths[None, :]), axis=1) < 0.035)


def test_partial_strength_blends_monotonically(engine: KitEngine) -> None:
    grid = known_grid(6.0)
    rhythm = off_grid_prompt(6.0)
    prompt_times = times_of(rhythm.onsets)
    kept_prompt, kept_grid = [], []
    for s in (0.0, 0.2, 0.4, 0.6, 0.8, 1.0):
        res = engine.render_from_rhythm(rhythm, grid, 6 * SR, SR, GenerationParams(rhythm_strength=s, temperature=0))
        played = np.array([o.time for o in res.rhythm.onsets])
        from_prompt = np.min(np.abs(played[:, None] - prompt_times[None, :]), axis=1) < 1e-3
        kept_prompt.append(int(from_prompt.sum()))
        kept_grid.append(int((~from_prompt).sum()))
    assert kept_prompt == sorted(kept_prompt) and kept_prompt[0] == 0 and kept_prompt[-1] == len(rhythm.onsets)
    assert len(set(kept_prompt)) == len(kept_prompt)  # strictly more prompt hits at each step
    assert kept_grid == sorted(kept_grid, reverse=True) and kept_grid[-1] == 0


def test_blend_keeps_the_strongest_hits_first() -> None:
    prompt = [Onset(0.1 * k, 0, s) for k, s in enumerate((0.2, 0.9, 0.5, 1.0))]
    grid = [Onset(1.0 + 0.5 * k, 1, s) for k, s in enumerate((0.4, 0.9, 0.6, 0.3))]
    out = blend(prompt, grid, 0.5)
    assert sorted(o.strength for o in out if o.cls == 0) == [0.9, 1.0]
    assert sorted(o.strength for o in out if o.cls == 1) == [0.6, 0.9]


def test_blend_drops_grid_hits_that_double_a_prompt_hit() -> None:
    prompt = [Onset(1.0, 0, 1.0), Onset(2.0, 1, 1.0)]
    grid = [Onset(1.01, 0, 1.0), Onset(2.01, 0, 1.0), Onset(3.0, 2, 1.0)]
    out = blend(prompt, grid, 0.5)
    assert (1.01, 0) not in {(o.time, o.cls) for o in out}
    assert (2.01, 0) in {(o.time, o.cls) for o in out}  # other class: kept


# ------------------------------------------------------------------ quantise and humanise


def test_full_quantize_puts_every_hit_on_a_sixteenth(engine: KitEngine) -> None:
    grid = known_grid(4.0)
    rhythm = off_grid_prompt(4.0)
    res = engine.render_from_rhythm(rhythm, grid, 4 * SR, SR, GenerationParams(quantize=1.0, temperature=0))
    sixteenths = grid.subdivisions(per_beat=4)
    played = np.array([o.time for o in res.rhythm.onsets])
    assert np.all(np.min(np.abs(played[:, None] - sixteenths[None, :]), axis=1) < 0.005)
    starts = np.nonzero(np.abs(res.stem).max(axis=0) > 1e-6)[0]
    assert np.min(np.abs(starts[0] / SR - sixteenths)) < 0.005


def test_half_quantize_halves_the_distance() -> None:
    pts = np.arange(0, 2, 0.125)
    out = quantize([Onset(0.165, 0, 1.0), Onset(0.9, 1, 1.0)], pts, 0.5)
    assert out[0].time == pytest.approx(0.145) and out[1].time == pytest.approx(0.8875)
    assert quantize([Onset(0.165, 0, 1.0)], pts, 0.0)[0].time == 0.165


def test_humanise_amount_follows_temperature() -> None:
    hits = [Onset(0.5 * k, k % 3, 0.7) for k in range(1, 400)]
    assert humanise(hits, 0.0, np.random.default_rng(0)) == hits
    for t in (0.5, 2.0):
        out = humanise(hits, t, np.random.default_rng(0))
        dt = np.array([o.time for o in out]) - np.array([o.time for o in hits])
        dv = np.array([o.strength for o in out]) / 0.7 - 1.0
        assert np.std(dt) == pytest.approx(0.003 * t, rel=0.2)
        assert np.std(dv) == pytest.approx(0.06 * t, rel=0.25)


# ------------------------------------------------------------------ determinism and seeds


def _render(engine: KitEngine, rhythm: RhythmFeatures, **params) -> np.ndarray:
    return engine.render_from_rhythm(rhythm, known_grid(4.0), 4 * SR, SR, GenerationParams(**params)).stem


def test_temperature_zero_is_deterministic_whatever_the_seed(engine: KitEngine) -> None:
    rhythm = off_grid_prompt(4.0)
    a = _render(engine, rhythm, temperature=0.0, seed=1, rhythm_strength=0.5)
    b = _render(engine, rhythm, temperature=0.0, seed=2, rhythm_strength=0.5)
    c = _render(engine, rhythm, temperature=0.0, seed=None, rhythm_strength=0.5)
    assert np.array_equal(a, b) and np.array_equal(a, c)


def test_same_seed_same_stem_different_seed_different_stem(engine: KitEngine) -> None:
    rhythm = off_grid_prompt(4.0)
    a = _render(engine, rhythm, temperature=1.0, seed=5, rhythm_strength=0.6)
    b = _render(engine, rhythm, temperature=1.0, seed=5, rhythm_strength=0.6)
    c = _render(engine, rhythm, temperature=1.0, seed=6, rhythm_strength=0.6)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_random_seed_is_recorded_and_reproduces(engine: KitEngine) -> None:
    rhythm = off_grid_prompt(4.0)
    grid = known_grid(4.0)
    first = engine.render_from_rhythm(rhythm, grid, 4 * SR, SR, GenerationParams(temperature=1.0, seed=None))
    seed = first.info["seed"]
    again = engine.render_from_rhythm(rhythm, grid, 4 * SR, SR, GenerationParams(temperature=1.0, seed=seed))
    assert np.array_equal(first.stem, again.stem)


def test_grid_groove_varies_with_temperature_and_seed() -> None:
    grid = known_grid(16.0)
    plain = grid_groove(grid)
    assert grid_groove(grid, 0.0, np.random.default_rng(1)) == plain
    varied = [grid_groove(grid, 1.0, np.random.default_rng(s)) for s in (1, 2)]
    assert varied[0] != plain and varied[0] != varied[1]
    assert varied[0] == grid_groove(grid, 1.0, np.random.default_rng(1))


# ------------------------------------------------------------------ velocity, kits, cancel, no prompt


def test_velocity_follows_onset_strength(engine: KitEngine) -> None:
    def peak_for(strength: float) -> float:
        rhythm = RhythmFeatures.from_onsets([Onset(0.5, 1, strength), Onset(1.5, 1, strength)], 2.0)
        res = engine.render_from_rhythm(rhythm, known_grid(2.0), 2 * SR, SR, GenerationParams(temperature=0))
        return float(np.max(np.abs(res.stem)))

    peaks = [peak_for(s) for s in (0.1, 0.4, 0.7, 1.0)]
    assert peaks == sorted(peaks) and peaks[-1] > 2.5 * peaks[0]


def _write_kit(folder: Path, freq: float) -> None:
    folder.mkdir()
    t = np.arange(int(0.08 * 16000)) / 16000
    for name in ("kick.wav", "snare.wav", "hh.wav"):
        sf.write(str(folder / name), (0.9 * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.02)).astype(np.float32), 16000)


def test_user_kit_folder_is_played(tmp_path: Path) -> None:
    _write_kit(tmp_path / "kit", 1000.0)
    engine = KitEngine(kit_dir=str(tmp_path / "kit"))
    res = engine.render_from_rhythm(off_grid_prompt(2.0), known_grid(2.0), 2 * SR, SR, GenerationParams(temperature=0))
    assert res.info["kit"] == "kit"
    spectrum = np.abs(np.fft.rfft(res.stem.mean(axis=0)))
    freqs = np.fft.rfftfreq(res.stem.shape[1], 1 / SR)
    assert abs(freqs[np.argmax(spectrum)] - 1000.0) < 30.0
    assert engine.describe()["kit"] == str(tmp_path / "kit")


def test_missing_kit_folder_fails_at_construction(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="kit folder not found"):
        KitEngine(kit_dir=str(tmp_path / "missing"))


def test_kit_folder_without_samples_fails_at_load(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("no samples here")
    engine = KitEngine(kit_dir=str(tmp_path))
    with pytest.raises(InputError, match="no usable drum samples"):
        engine.load()


def test_unknown_beat_method_fails_at_construction() -> None:
    with pytest.raises(InputError, match="unknown beat method"):
        KitEngine(beat_method="oracle")


def test_cancelled_before_start_raises(engine: KitEngine, mix6: Audio) -> None:
    token = CancelToken()
    token.cancel()
    with pytest.raises(Cancelled):
        engine.generate(mix6, None, GenerationParams(), cancel=token)


@pytest.mark.parametrize("stage", ["beats", "rhythm"])
def test_cancel_between_stages_stops_before_the_next(engine: KitEngine, mix6: Audio, stage: str) -> None:
    prompt = Audio(synth_prompt(random_pattern(2.0, BPM, seed=2), 2.0, SR)[None], SR)
    token = CancelToken()
    seen: list[str] = []

    def progress(s: str, f: float) -> None:
        seen.append(s)
        if s == stage and f == 1.0:
            token.cancel()

    with pytest.raises(Cancelled):
        engine.generate(mix6, prompt, GenerationParams(), progress=progress, cancel=token)
    assert "render" not in seen
    if stage == "beats":
        assert "rhythm" not in seen


def test_without_prompt_the_grid_groove_plays(engine: KitEngine, mix6: Audio) -> None:
    res = engine.generate(mix6, None, GenerationParams(temperature=0.0, seed=0))
    assert res.rhythm.onsets == grid_groove(res.beat_grid)
    kicks = res.rhythm.onset_times(0)
    assert np.all(np.min(np.abs(kicks[:, None] - res.beat_grid.beats[None, :]), axis=1) < 1e-6)
    det = detected_onsets(res.stem, SR)
    eighths = res.beat_grid.subdivisions(per_beat=2)
    assert len(det) >= 10
    assert np.mean(np.min(np.abs(det[:, None] - eighths[None, :]), axis=1) < 0.035) >= 0.9


def test_prompt_without_hits_falls_back_to_the_grid(engine: KitEngine) -> None:
    grid = known_grid(3.0)
    empty = RhythmFeatures(np.zeros((3, 150), dtype=np.float32), [], duration=3.0)
    res = engine.render_from_rhythm(empty, grid, 3 * SR, SR, GenerationParams(temperature=0))
    assert res.rhythm.onsets == grid_groove(grid)


def test_grid_groove_is_a_backbeat_with_eighth_hats() -> None:
    grid = known_grid(4.0)  # 120 BPM, two bars
    groove = grid_groove(grid)
    kicks = [o.time for o in groove if o.cls == 0]
    snares = [o.time for o in groove if o.cls == 1]
    hats = [o.time for o in groove if o.cls == 2]
    assert np.allclose(kicks, [0.0, 1.0, 2.0, 3.0])  # beats 1 and 3
    assert np.allclose(snares, [0.5, 1.5, 2.5, 3.5])  # beats 2 and 4
    assert np.allclose(hats, np.arange(0.0, 4.0, 0.25))  # eighths
    downbeat_kick = next(o for o in groove if o.cls == 0 and o.time == 0.0)
    assert downbeat_kick.strength == max(o.strength for o in groove)


def test_grid_groove_follows_the_downbeat_phase() -> None:
    beats = np.arange(0.0, 4.0, 0.5)
    grid = BeatGrid(120.0, beats, np.array([0.5, 2.5]), 4.0)  # bars start on the second beat
    kicks = [o.time for o in grid_groove(grid) if o.cls == 0]
    assert np.allclose(kicks, [0.5, 1.5, 2.5, 3.5])


def test_a_looped_take_stays_on_the_songs_downbeats():
    """Two bars tapped at the song's tempo but cut 3 % long, looped over 24 s: every repeat's
    kick still lands on a downbeat of the mix (no drift from the take's inexact length)."""
    bpm, sr = 100.0, 22050
    mix, _, downbeats = synth_drumless_mix(24.0, bpm=bpm, sample_rate=sr, seed=3)
    bar = 4 * 60.0 / bpm
    pattern = [Onset(0.0, 0, 1.0), Onset(bar / 2, 1, 0.9), Onset(bar, 0, 1.0), Onset(1.5 * bar, 1, 0.9)]
    take = synth_prompt(pattern, 2 * bar * 1.03, 44100, voice="beatbox", seed=4)
    result = KitEngine().generate(Audio(mix, sr), Audio(take[None, :], 44100),
                                  GenerationParams(temperature=0.0, seed=0))
    kicks = result.rhythm.onset_times(0)
    assert len(kicks) == 10
    offsets = [np.min(np.abs(np.asarray(downbeats) - k)) for k in kicks]
    assert max(offsets) < 0.05, offsets


def test_a_region_shorter_than_the_takes_lead_in_says_the_hits_are_outside_it(engine: KitEngine, caplog) -> None:
    # said "no hits found in the prompt" although the take has hits, all after the 1 s region
    hits = [Onset(1.5 + 0.25 * k, k % 3, 1.0) for k in range(6)]
    prompt = Audio(synth_prompt(hits, 3.0, SR, "tap", seed=4)[None, :], SR)
    mix, _, _ = synth_drumless_mix(1.0, bpm=BPM, sample_rate=SR, seed=5)
    with caplog.at_level("WARNING", logger="darc_bridge.engines.kit"):
        res = engine.generate(Audio(mix, SR), prompt, GenerationParams(temperature=0))
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert len(warnings) == 1, warnings
    assert warnings[0].startswith("the prompt has 6 hits, but none in the part of it that plays over the 1s region")
    assert "its first hit is at 1.5" in warnings[0] and "beat grid instead" in warnings[0]
    assert res.stem.shape[-1] == SR
