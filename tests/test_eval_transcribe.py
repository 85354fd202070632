"""Validate the drum transcriber on stems rendered from known onsets.

The templates were shaped while looking at the "acoustic" family of data/voices.py; the product's
built-in kit (engines/drumkit.py), the beatbox voice (audio/prompts.py) and the clap/808-style
"electro" family test kits it was not tuned on.
"""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.audio.music import synth_drum_stem
from darc_bridge.audio.prompts import synth_prompt
from darc_bridge.data.synth_corpus import song_drum_pattern
from darc_bridge.data.voices import render_onsets
from darc_bridge.eval.metrics import per_class_f1
from darc_bridge.eval.transcribe import transcribe
from darc_bridge.rhythm.features import Onset

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


@pytest.mark.parametrize("kind", ["builtin", "acoustic", "electro"])
@pytest.mark.parametrize("cls", [0, 1, 2])
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
    assert transcribe(np.zeros(SR, dtype=np.float32), SR).onsets == []
    stereo = synth_drum_stem([Onset(0.2, 0, 1.0)], 1.0, SR)
    assert transcribe(stereo, SR).times(0).size == 1
