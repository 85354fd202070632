"""Validate the drum transcriber on stems rendered from known onsets.

The transcriber is the rhythm extractor's learned onset/class model (trained on the `tune` split of
darc_bridge.kits.splits): the product's built-in kit (engines/drumkit.py), the beatbox voice
(audio/prompts.py), the data/voices.py families and takes from *held-out* recorded Hydrogen kits
(eval/takes.py) are all material it was not trained on.
"""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.audio.music import synth_drum_stem
from darc_bridge.audio.prompts import synth_prompt
from darc_bridge.data.synth_corpus import song_drum_pattern
from darc_bridge.data.voices import render_onsets
from darc_bridge.eval.metrics import per_class_f1
from darc_bridge.eval.takes import build_take, take_cases
from darc_bridge.eval.transcribe import transcribe
from darc_bridge.kits.splits import HYDROGEN_KITS
from darc_bridge.rhythm.features import Onset, RhythmSettings

SR = 32000


def render(kind: str, onsets: list[Onset], seed: int) -> np.ndarray:
    if kind == "builtin":
        return synth_drum_stem(onsets, 8.0, SR).mean(axis=0)
    if kind == "beatbox":
        return synth_prompt(onsets, 8.0, SR, voice="beatbox", seed=seed)
    return render_onsets(onsets, 8.0, SR, family=kind, rng=np.random.default_rng(seed))


@pytest.mark.parametrize(("kind", "floor"), [("builtin", 0.85), ("beatbox", 0.9), ("electro", 0.8), ("acoustic", 0.8)])
def test_per_class_f1_on_known_onsets(kind, floor):
    scores = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        onsets = song_drum_pattern(float(rng.uniform(90, 130)), 8.0, rng)
        found = transcribe(render(kind, onsets, seed), SR).onsets
        scores.append([s["f1"] for s in per_class_f1(onsets, found).values()])
    assert np.mean(scores, axis=0).min() >= floor, np.mean(scores, axis=0)


# Known limitation (docs/evaluation.md): a stem of nothing but kicks every 250 ms, whose tails
# overlap, leaves the learned model little low band above the take's own background, so the built-in
# kit's kicks are heard as hats and the "acoustic" family's kick decay grows a second snare+hat hit.
# Real drum stems (kick, snare and hats together) are scored by the tests below.
KICK_ONLY_MISHEARD = pytest.mark.xfail(strict=True, reason="kick-only stems with overlapping tails: see docs/evaluation.md")


@pytest.mark.parametrize(("kind", "cls"), [
    pytest.param(kind, cls, marks=KICK_ONLY_MISHEARD if cls == 0 and kind in ("builtin", "acoustic") else ())
    for kind in ("builtin", "acoustic", "electro") for cls in (0, 1, 2)
])
def test_a_one_drum_stem_grows_no_other_drums(kind, cls):
    """A kick's click must not become snares, a snare's noise not hats: leakage is not a hit."""
    hits = [Onset(0.1 + 0.25 * i, cls, 0.8) for i in range(16)]
    tr = transcribe(render(kind, hits, 0)[: int(4.2 * SR)], SR)
    counts = [tr.times(c).size for c in range(3)]
    assert counts[cls] >= 15 and sum(counts) - counts[cls] == 0, counts


def test_class_order_kick_snare_hat_for_isolated_hits():
    hits = [Onset(0.5, 0, 1.0), Onset(1.5, 1, 1.0), Onset(2.5, 2, 1.0)]
    tr = transcribe(render("builtin", hits, 0), SR)
    for o in hits:
        assert np.min(np.abs(tr.times(o.cls) - o.time)) < 0.03


def test_silence_gives_no_hits_and_stereo_is_accepted():
    silent = transcribe(np.zeros(SR, dtype=np.float32), SR)
    assert silent.onsets == [] and silent.activations.shape[0] == 3
    stereo = synth_drum_stem([Onset(0.2, 0, 1.0)], 1.0, SR)
    assert transcribe(stereo, SR).times(0).size == 1


def _held_out_kit_f1(cases) -> np.ndarray:
    scores = []
    for case in cases:
        take = build_take(case)
        assert take.source in HYDROGEN_KITS["held_out"]
        found = transcribe(take.audio, take.sample_rate).onsets
        scores.append([s["f1"] for s in per_class_f1(take.truth, found).values()])
    return np.array(scores)


def test_per_class_f1_on_held_out_recorded_kits():
    """Regression: the fixed-template transcriber heard held-out Hydrogen kits' hats at F1 0.20 and
    kicks at 0.66 on these takes (reference drums of the gate scored hat 0.46), so the gate's ceiling
    sat below its own targets."""
    cases = take_cases(4, "held_out", 5, tiers=("clean",), prompt_types=("kit",))
    scores = _held_out_kit_f1(cases)
    kick, snare, hat = scores.mean(axis=0)
    assert kick >= 0.8 and hat >= 0.8, scores
    sources = [build_take(c).source for c in cases]
    other = [i for i, name in enumerate(sources) if name != "Audiophob"]
    assert other and scores[other, 1].mean() >= 0.9, scores


@pytest.mark.xfail(strict=True, reason="the learned model hears Audiophob's snare as a hat (docs/evaluation.md)")
def test_audiophob_snare_is_heard_as_a_snare():
    cases = [c for c in take_cases(4, "held_out", 5, tiers=("clean",), prompt_types=("kit",))
             if build_take(c).source == "Audiophob"]
    assert cases
    assert _held_out_kit_f1(cases)[:, 1].mean() >= 0.5


def test_transcription_needs_the_three_model_classes():
    with pytest.raises(ValueError, match="3 classes"):
        transcribe(np.ones(SR, dtype=np.float32), SR, RhythmSettings(n_classes=4))
