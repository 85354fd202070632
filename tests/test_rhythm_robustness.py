"""The rhythm extractor on prompts it was not tuned on: the held-out timbre families of data/voices.py
("voice", "acoustic", "electro"), with noise and a little reverb, and prompts
that hold only two of the three sounds. A compact subset of darc_bridge.rhythm.robustness."""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.rhythm.features import Onset, RhythmFeatures
from darc_bridge.rhythm.robustness import UNSEEN_SOURCES, Case, add_reverb, render_case, run_case, score

SEEDS = (1, 2)  # 44.1 and 48 kHz (sample rates rotate with the seed)


def _mean(scores: list, field: str) -> float:
    return float(np.mean([getattr(s, field) for s in scores]))


@pytest.mark.parametrize("family", UNSEEN_SOURCES)
@pytest.mark.parametrize("condition,min_onset,min_class", [("clean", 0.9, 0.9), ("noise20", 0.8, 0.85),
                                                           ("reverb", 0.8, 0.85)])
def test_unseen_families_three_sounds(family, condition, min_onset, min_class):
    scores = [run_case(Case(family, "kick+snare+hat", condition, seed)) for seed in SEEDS]
    assert _mean(scores, "onset_f1") >= min_onset
    # The acoustic kit's snare carries a 185 Hz tone that is often reported as a kick as well:
    # its class F1 averages 0.73 over 50 harness prompts (docs/rhythm.md), the others 0.93-0.99.
    assert _mean(scores, "class_f1") >= (0.7 if family == "acoustic" else min_class)


@pytest.mark.parametrize("source", ["beatbox", "click", "voice"])
def test_two_high_sounds_are_classed_consistently(source):
    """"pff-ts" (snare and hat only): NMF splits one of the two sounds over two components;
    they must be merged and land in the snare and hat slots (recall was about 0.45)."""
    scores = [run_case(Case(source, "snare+hat", "clean", seed)) for seed in range(4)]
    assert _mean(scores, "onset_f1") >= 0.95
    assert _mean(scores, "class_f1") >= 0.85


def test_reverb_has_the_requested_decay_and_level():
    sr = 16000
    impulse = np.zeros(sr, dtype=np.float32)
    impulse[100] = 1.0
    wet = add_reverb(impulse, sr, rt60_s=0.3, drr_db=3.0, seed=1).astype(np.float64)
    direct, tail = wet[100] ** 2, np.sum(wet[101:] ** 2)
    assert 10 * np.log10(direct / tail) == pytest.approx(3.0, abs=0.5)
    early, late = np.sum(wet[101:1100] ** 2), np.sum(wet[3100:4100] ** 2)
    assert 10 * np.log10(early / late) == pytest.approx(60 * (3000 / sr) / 0.3, abs=3.0)  # 60 dB per RT60
    assert np.max(np.abs(wet)) == pytest.approx(1.0)


def test_score_counts_classes_and_duplicates():
    truth = [Onset(0.5, 0, 1.0), Onset(1.0, 1, 1.0), Onset(1.5, 0, 1.0), Onset(1.5, 2, 1.0)]
    right = RhythmFeatures.from_onsets([Onset(0.51, 0, 1.0), Onset(1.0, 1, 1.0), Onset(1.5, 0, 1.0),
                                        Onset(1.5, 2, 1.0)], 2.0)
    s = score(truth, right)
    assert s.onset_f1 == 1.0 and s.class_f1 == 1.0 and s.duplicates == 0.0
    doubled = RhythmFeatures.from_onsets([Onset(0.5, 0, 1.0), Onset(0.5, 1, 1.0), Onset(1.0, 1, 1.0),
                                          Onset(1.5, 0, 1.0), Onset(1.5, 2, 1.0)], 2.0)
    s = score(truth, doubled)
    assert s.onset_f1 == 1.0 and s.duplicates == pytest.approx(1 / 3) and s.class_f1 < 1.0


def test_two_sound_patterns_hold_only_their_classes():
    truth, x, sr = render_case(Case("electro", "snare+hat", "quiet-40", 0))
    assert {o.cls for o in truth} == {1, 2} and sr == 16000
    assert np.max(np.abs(x)) == pytest.approx(0.01, rel=1e-3)
