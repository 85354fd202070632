"""The realistic take builder and the rhythm benchmark harness (darc_bridge.eval.takes, bench.rhythm)."""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.bench.rhythm import markdown, score_take, summarise
from darc_bridge.eval.onsets import class_f1, kmeans_classes, onset_f1
from darc_bridge.eval.takes import PROMPT_TYPES, ROOM_SHAPES, TakeCase, build_take, take_cases
from darc_bridge.kits.splits import ESPEAK_VOICES, GM_PROGRAMS, HYDROGEN_KITS, ROOMS


def test_cases_are_deterministic_and_distinct():
    a = take_cases(3, "held_out", 2)
    assert a == take_cases(3, "held_out", 2)
    assert len(a) == 2 * len(PROMPT_TYPES) * 2
    assert len({c.seed for c in a}) == len(a)
    with pytest.raises(ValueError, match="split"):
        take_cases(3, "train", 2)  # type: ignore[arg-type]


def test_rooms_are_split_and_in_range():
    assert not set(ROOMS["tune"]) & set(ROOMS["held_out"])
    assert set(ROOM_SHAPES) == set(ROOMS["tune"]) | set(ROOMS["held_out"])
    assert all(0.3 <= rt60 <= 0.8 for rt60, _ in ROOM_SHAPES.values())


def test_scores_count_misses_and_classes():
    ref = np.array([1.0, 2.0, 3.0, 4.0])
    assert onset_f1(ref, ref + 0.02) == 1.0
    assert onset_f1(ref, ref + 0.08) == 0.0
    assert onset_f1(ref, np.array([1.0, 2.0])) == pytest.approx(2 / 3)
    cls = np.array([0, 1, 0, 2])
    assert class_f1(ref, cls, ref, cls) == 1.0
    swapped = np.array([1, 0, 1, 2])
    assert class_f1(ref, cls, ref, swapped) == pytest.approx(1 / 3)


def test_kmeans_baseline_orders_clusters_low_to_high():
    sr = 22050
    rng = np.random.default_rng(0)
    x = np.zeros(sr * 3, dtype=np.float32)
    t = np.arange(int(0.05 * sr)) / sr
    times = np.arange(0.2, 2.8, 0.3)
    freqs = (80.0, 1000.0, 7000.0)
    for i, start in enumerate(times):
        s = int(start * sr)
        x[s:s + t.size] += np.sin(2 * np.pi * freqs[i % 3] * t) * np.exp(-t / 0.02) + 0.001 * rng.standard_normal(t.size)
    labels = kmeans_classes(x, sr, times)
    assert labels.tolist() == [i % 3 for i in range(times.size)]


@pytest.mark.slow
@pytest.mark.parametrize("ptype", PROMPT_TYPES)
def test_takes_hold_their_hits(ptype):
    """Each prompt type builds from its split's sources; the truth lies on the mix's 16th grid (clean)
    and a constant late offset after it (realistic); a realistic take is a different, noisier signal."""
    clean = build_take(TakeCase(ptype, "clean", "held_out", 5))
    real = build_take(TakeCase(ptype, "realistic", "held_out", 5))
    names = {"kit": HYDROGEN_KITS, "gm": GM_PROGRAMS, "vocal": ESPEAK_VOICES}
    if ptype in names:
        assert clean.source in names[ptype]["held_out"]
    assert real.room in ROOMS["held_out"]
    for take in (clean, real):
        assert take.audio.dtype == np.float32 and np.all(np.isfinite(take.audio))
        assert 0.5 < np.max(np.abs(take.audio)) <= 0.9 + 1e-6
        assert {o.cls for o in take.truth} == {0, 1, 2}
        late = take.details["late_s"]
        off = np.min(np.abs(np.array([o.time for o in take.truth])[:, None] - late - take.grid[None, :]), axis=1)
        assert np.max(off) < 1e-3
    assert clean.details["late_s"] == 0.0
    # the hits are in the take: it is loud where the truth says and much quieter in the lead-in beat
    x, sr = clean.audio, clean.sample_rate
    first = min(o.time for o in clean.truth)
    assert np.max(np.abs(x[: int(first * sr) - 16])) < 0.01
    assert build_take(TakeCase(ptype, "realistic", "held_out", 5)).audio.tobytes() == real.audio.tobytes()


@pytest.mark.slow
def test_harness_scores_takes_and_baselines():
    scores = [score_take(build_take(c)) for c in take_cases(1, "held_out", 1, tiers=("clean",),
                                                              prompt_types=("kit", "synth"))]
    for s in scores:
        for f in (s.onset_f1, s.class_f1, s.librosa_f1, s.kmeans_f1, s.stem_f1, s.on_grid):
            assert 0.0 <= f <= 1.0
        assert s.librosa_f1 > 0.8  # clean dry takes: the plain detector finds them
    table = markdown(summarise(scores))
    assert "| clean | kit | 1 |" in table and "| clean | all | 2 |" in table
