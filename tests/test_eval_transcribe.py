"""Validate the drum transcriber on stems rendered from known onsets.

The transcriber's drum model (eval/drum_model.py) is trained on stems of the `tune` split of
darc_bridge.kits.splits (tune Hydrogen kits, tune GM programs) and the built-in kit. Takes and
grooves from *held-out* recorded Hydrogen kits (the gate's), the beatbox voice (audio/prompts.py)
and the data/voices.py families are material it was not trained on.
"""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.audio.music import synth_drum_stem
from darc_bridge.audio.prompts import synth_prompt
from darc_bridge.data.grooves import make_groove
from darc_bridge.data.kit_corpus import render_kit
from darc_bridge.data.kit_pack import build_pack
from darc_bridge.data.synth_corpus import song_drum_pattern
from darc_bridge.data.voices import render_onsets
from darc_bridge.errors import InputError
from darc_bridge.eval.metrics import per_class_f1
from darc_bridge.eval.takes import build_take, take_cases
from darc_bridge.eval.transcribe import transcribe
from darc_bridge.kits.splits import HYDROGEN_KITS
from darc_bridge.rhythm.features import Onset

SR = 32000


def render(kind: str, onsets: list[Onset], seed: int) -> np.ndarray:
    if kind == "builtin":
        return synth_drum_stem(onsets, 8.0, SR).mean(axis=0)
    if kind == "beatbox":
        return synth_prompt(onsets, 8.0, SR, voice="beatbox", seed=seed)
    return render_onsets(onsets, 8.0, SR, family=kind, rng=np.random.default_rng(seed))


@pytest.fixture(scope="module")
def held_out_pack():
    """The gate's held-out Hydrogen kits, as write_gate_set reads them (at the codec's 32 kHz)."""
    pack = build_pack(SR, splits=("held_out",))
    assert sorted(k.name for k in pack.kits) == sorted(HYDROGEN_KITS["held_out"])
    return pack


@pytest.mark.parametrize(("kind", "floor"), [("builtin", 0.85), ("beatbox", 0.9), ("electro", 0.8), ("acoustic", 0.8)])
def test_per_class_f1_on_known_onsets(kind, floor):
    scores = []
    for seed in range(2):
        rng = np.random.default_rng(seed)
        onsets = song_drum_pattern(float(rng.uniform(90, 130)), 8.0, rng)
        found = transcribe(render(kind, onsets, seed), SR).onsets
        scores.append([s["f1"] for s in per_class_f1(onsets, found).values()])
    assert np.mean(scores, axis=0).min() >= floor, np.mean(scores, axis=0)


# Known limit (docs/evaluation.md): the synthetic kits' snares are noise bursts reaching 9 kHz, and
# in drum stems nearly every snare comes with a hat, so a bare run of the built-in and `acoustic`
# snares is heard as snare + hat. (One MLP also heard the built-in kick's 2 kHz click as a hat now
# and then, and `electro` snare runs as snare + hat; the average of three, drum_model.DrumEnsemble,
# does not.) Recorded kits: test_a_recorded_kick_only_stem_is_kicks_only and the held-out tests below.
SYNTH_SNARE_HAT = pytest.mark.xfail(strict=True, reason="synthetic snare runs heard as snare + hat: docs/evaluation.md")


@pytest.mark.parametrize(("kind", "cls"), [
    pytest.param(kind, cls, marks=SYNTH_SNARE_HAT if (kind, cls) in (("builtin", 1), ("acoustic", 1)) else ())
    for kind in ("builtin", "acoustic", "electro") for cls in (0, 1, 2)
])
def test_a_one_drum_stem_grows_no_other_drums(kind, cls):
    """A kick's click must not become snares, a snare's noise not hats: leakage is not a hit.
    Regression: through the extractor's model a run of `acoustic` kicks every 250 ms (tails
    overlapping) grew a second snare+hat hit."""
    hits = [Onset(0.1 + 0.25 * i, cls, 0.8) for i in range(16)]
    tr = transcribe(render(kind, hits, 0)[: int(4.2 * SR)], SR)
    counts = [tr.times(c).size for c in range(3)]
    assert counts[cls] >= 15 and sum(counts) - counts[cls] == 0, counts


KICK_HEARD_AS_SNARE = {  # known limits (docs/evaluation.md)
    "Audiophob": "Audiophob's kick is heard as a snare (24 of 24)",
    "The Black Pearl 1.0": "The Black Pearl's kick alone is heard as a snare by one of the drum model's three "
                           "members (24 of 24; 12 of 24 through their mean)",
}


@pytest.mark.parametrize("kit_name", [
    pytest.param(k, marks=pytest.mark.xfail(strict=True, reason=KICK_HEARD_AS_SNARE[k]) if k in KICK_HEARD_AS_SNARE
                 else ())
    for k in HYDROGEN_KITS["held_out"]])
def test_a_recorded_kick_only_stem_is_kicks_only(held_out_pack, kit_name):
    """A held-out kit's kick alone, at a drummer's range of velocities, 16ths at 120 BPM. Regression:
    through the extractor's model The Black Pearl's kicks were heard as 19 snares of 24 (and
    Audiophob's as 24); one MLP (the drum model's first member) heard The Black Pearl's as kicks only,
    its second member as 24 snares: on an unheard kit a fit's kick/snare boundary is partly luck."""
    from darc_bridge.data.grooves import Hit

    rng = np.random.default_rng(0)
    hits = [Hit(0.1 + 0.125 * i, "kick", float(v)) for i, v in enumerate(rng.uniform(0.4, 1.0, 24))]
    stem = render_kit(hits, 3.3, SR, held_out_pack.kit(kit_name), np.random.default_rng(1))
    tr = transcribe(stem, SR)
    counts = [tr.times(c).size for c in range(3)]
    assert counts[0] >= 22 and counts[1] + counts[2] <= 1, counts


def test_class_order_kick_snare_hat_for_isolated_hits():
    hits = [Onset(0.5, 0, 1.0), Onset(1.5, 1, 1.0), Onset(2.5, 2, 1.0)]
    tr = transcribe(render("builtin", hits, 0), SR)
    for o in hits:
        assert np.min(np.abs(tr.times(o.cls) - o.time)) < 0.03


def test_silence_gives_no_hits_and_stereo_is_accepted():
    silent = transcribe(np.zeros(SR, dtype=np.float32), SR)
    assert silent.onsets == [] and silent.activations.shape == (3, 50)
    assert transcribe(np.full(SR, 1e-5, dtype=np.float32), SR).onsets == []  # below -70 dBFS: silence
    assert transcribe(np.zeros(0, dtype=np.float32), SR).onsets == []
    stereo = synth_drum_stem([Onset(0.2, 0, 1.0)], 1.0, SR)
    tr = transcribe(stereo, SR)
    assert tr.times(0).size == 1 and tr.times(1).size == tr.times(2).size == 0
    assert tr.activations.shape == (3, 50) and 0.0 <= tr.activations.min() <= tr.activations.max() <= 1.0


def test_a_stem_shorter_than_one_analysis_window_is_transcribed():
    click = synth_drum_stem([Onset(0.0, 0, 1.0)], 0.03, SR).mean(axis=0)
    tr = transcribe(click, SR)
    assert tr.activations.shape == (3, 2) and all(0 <= o.time < 0.03 for o in tr.onsets)


def test_the_extractor_method_is_kept_for_comparison():
    hits = [Onset(0.5, 0, 1.0), Onset(1.5, 1, 1.0), Onset(2.5, 2, 1.0)]
    x = render("builtin", hits, 0)
    for method in ("drum", "extractor"):
        tr = transcribe(x, SR, method=method)
        assert tr.activations.shape[0] == 3 and all(np.min(np.abs(tr.times(o.cls) - o.time)) < 0.03 for o in hits)
    with pytest.raises(ValueError, match="unknown transcription method"):
        transcribe(x, SR, method="nmf")


def test_bad_stems_are_input_errors():
    x = np.zeros(SR, dtype=np.float32)
    x[100] = np.nan
    with pytest.raises(InputError, match="invalid samples"):
        transcribe(x, SR)
    with pytest.raises(InputError, match="sample rate"):
        transcribe(np.ones(100, dtype=np.float32), 2000)
    with pytest.raises(InputError, match="shape"):
        transcribe(np.ones((2, 2, 10), dtype=np.float32), SR)


def _held_out_kit_f1(cases) -> np.ndarray:
    scores = []
    for case in cases:
        take = build_take(case)
        assert take.source in HYDROGEN_KITS["held_out"]
        found = transcribe(take.audio, take.sample_rate).onsets
        scores.append([s["f1"] for s in per_class_f1(take.truth, found).values()])
    return np.array(scores)


def test_per_class_f1_on_held_out_recorded_takes():
    """Regression: the fixed-template transcriber heard held-out Hydrogen kits' hats at F1 0.20 and
    kicks at 0.66 on these takes (one MLP: kick 0.89, hat 0.74, snare 0.53; the average of three:
    kick 0.89, hat 0.71, snare 0.60; Audiophob's snare 0, below)."""
    cases = take_cases(4, "held_out", 5, tiers=("clean",), prompt_types=("kit",))
    scores = _held_out_kit_f1(cases)
    kick, _, hat = scores.mean(axis=0)
    assert kick >= 0.85 and hat >= 0.7, scores
    sources = [build_take(c).source for c in cases]
    other = [i for i, name in enumerate(sources) if name != "Audiophob"]
    assert other and scores[other, 1].mean() >= 0.8, scores


@pytest.mark.xfail(strict=True, reason="Audiophob's snare on these takes is still missed (docs/evaluation.md)")
def test_audiophob_snare_is_heard_as_a_snare():
    """Known limit: the extractor's model and the drum model both score Audiophob's snare F1 0 here."""
    cases = [c for c in take_cases(4, "held_out", 5, tiers=("clean",), prompt_types=("kit",))
             if build_take(c).source == "Audiophob"]
    assert cases
    assert _held_out_kit_f1(cases)[:, 1].mean() >= 0.5


def _held_out_groove_f1(pack) -> dict[str, np.ndarray]:
    """Per held-out kit, mean kick, snare, hat F1 over two grooves with ghost notes, open hats,
    fills and crashes (kit_corpus.render_kit, as write_gate_set renders the gate's reference drums;
    other seeds than the gate's)."""
    scores = {}
    for i, kit in enumerate(pack.kits):
        rows = []
        for j in range(2):
            rng = np.random.default_rng([900, i, j])
            groove = make_groove(rng, 8.0, feel=("funk", "rock", "shuffle")[(i + j) % 3])
            stem = render_kit(groove.hits, 8.0, SR, kit, rng)
            pc = per_class_f1(groove.onsets(), transcribe(stem, SR).onsets)
            rows.append([pc[c]["f1"] for c in ("kick", "snare", "hat")])
        scores[kit.name] = np.mean(rows, axis=0)
    return scores


def test_per_class_f1_on_held_out_kits_playing_grooves(held_out_pack):
    """Regression: through the extractor's model these stems scored snare F1 0.56 (lowest kit 0.46);
    one MLP scored kick 0.72, snare 0.69 (lowest kit 0.58), hat 0.85; the average of three
    (drum_model.DrumEnsemble) kick 0.83, snare 0.70, hat 0.91. A kit's own snare F1 swings by up to
    0.2 from one fit to another (Forzee: 0.71, 0.48, 0.61 for the three members, 0.50 through their
    mean; docs/evaluation.md), so the floor per kit guards against a collapse, not one fit's luck."""
    scores = _held_out_groove_f1(held_out_pack)
    mean = np.mean(list(scores.values()), axis=0)
    assert mean[0] >= 0.75 and mean[1] >= 0.65 and mean[2] >= 0.85, scores
    assert min(s[1] for s in scores.values()) >= 0.45, scores


def test_held_out_grooves_reach_kick_0_8_and_snare_0_7(held_out_pack):
    """The brief's transcriber targets on held-out kits (one MLP fell short: kick 0.72, snare 0.69)."""
    mean = np.mean(list(_held_out_groove_f1(held_out_pack).values()), axis=0)
    assert mean[0] >= 0.8 and mean[1] >= 0.7, mean
