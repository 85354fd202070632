"""The drum transcriber's training material (eval/drum_material.py): the tune sources and what they
refuse (held-out kits, unlisted added sources), rendering, augmentation and the frames taught."""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.data.kit_pack import build_pack
from darc_bridge.errors import InputError
from darc_bridge.eval import drum_material, drum_model
from darc_bridge.kits import find_drumkits, read_drumkit
from darc_bridge.kits.splits import HYDROGEN_KITS


def _kit_xml(name: str):
    return next(p for p in find_drumkits() if read_drumkit(p).name == name)


TINY = drum_model.Recipe(stems_per_source=2, duration=3.0, hidden=8, max_iter=3, synthetic_stems=0, members=1)


def test_degradations_keep_length_and_level():
    rng = np.random.default_rng(0)
    x, _ = drum_material.render_stem("builtin", 1, 2.0, augment=False)
    for _ in range(6):
        y = drum_material.degrade(drum_material.equalise(x, drum_model.SAMPLE_RATE, rng), drum_model.SAMPLE_RATE, rng)
        assert y.shape == x.shape and np.all(np.isfinite(y))
        assert 0.1 < np.sqrt(np.mean(y ** 2)) / np.sqrt(np.mean(x ** 2)) < 10


def test_gm_program_becomes_a_kit_with_velocity_layers():
    kit = drum_material._gm_kit("standard", drum_model.SAMPLE_RATE)
    assert {"kick", "snare", "hat", "open_hat", "crash", "ride", "tom"} <= set(kit.pieces)
    layers = kit.pieces["snare"][0]
    assert len(layers) == 3 and [s.velocity for s in layers] == sorted(s.velocity for s in layers)
    peaks = [float(np.max(np.abs(s.audio))) for s in layers]
    assert peaks[0] < peaks[-1] <= 1.0 + 1e-6


def test_a_snare_under_a_louder_kick_or_hat_is_not_taught():
    from darc_bridge.rhythm.features import Onset

    truth = [Onset(0.2, 1, 0.2), Onset(0.2, 2, 0.7), Onset(0.6, 1, 0.9), Onset(0.6, 2, 0.7), Onset(1.0, 1, 0.2)]
    n = int(1.3 * drum_model.FPS)
    masked = drum_material.masked_snares(n, truth)
    frame = [int(round((t + drum_model.LEAD_IN_S) * drum_model.FPS)) for t in (0.2, 0.6, 1.0)]
    assert masked[frame[0]] and not masked[frame[1]] and not masked[frame[2]]
    assert not drum_material.masked_snares(n, truth, ratio=0.0).any()


def test_hybrid_kit_takes_whole_classes_from_its_partner():
    pack = build_pack(drum_model.SAMPLE_RATE, drumkits=[_kit_xml("Millo-Drums_v.1"), _kit_xml("HardElectro1")],
                      splits=("tune",))
    from darc_bridge.data.grooves import PIECE_CLASS

    a, b = pack.kits
    for seed in range(4):
        h = drum_material.hybrid_kit(a, b, np.random.default_rng(seed))
        from_b = {PIECE_CLASS[p] for p, v in h.pieces.items() if v is b.pieces.get(p)}
        from_a = {PIECE_CLASS[p] for p, v in h.pieces.items() if v is a.pieces.get(p)}
        assert 1 <= len(from_b) <= 2 and not from_a & from_b and h.split == "tune", (from_a, from_b)


# ---------------------------------------------------------------- the enlarged tune sources


def test_added_sources_sit_in_their_own_split_tables_and_leave_the_gate_and_darc_as_they_were():
    """Debian hydrogen-data's and TimGM6mb's kits are the transcriber's alone: the gate's held-out
    kits are still exactly the five, and DARC's training pack (build_pack, HYDROGEN_KITS) does not
    read the added kits, so its training songs do not change with them."""
    from darc_bridge.kits.splits import (
        GM_PROGRAMS,
        SOUNDFONT_PROGRAMS,
        TRANSCRIBER_HYDROGEN_KITS,
        split_of_kit,
    )

    assert HYDROGEN_KITS["held_out"] == ("Audiophob", "BJA_Pacific", "Forzee Stereo Drumkit", "The Black Pearl 1.0",
                                         "VariBreaks")
    assert TRANSCRIBER_HYDROGEN_KITS["tune"] == ("TR808EmulationKit",)
    assert "GMRockKit" in TRANSCRIBER_HYDROGEN_KITS["held_out"]  # The Black Pearl's samples
    for table in (TRANSCRIBER_HYDROGEN_KITS, *SOUNDFONT_PROGRAMS.values()):
        assert set(table["tune"]).isdisjoint(table["held_out"])
    for name in (*TRANSCRIBER_HYDROGEN_KITS["tune"], *TRANSCRIBER_HYDROGEN_KITS["held_out"]):
        assert split_of_kit(name) is None  # not in HYDROGEN_KITS: build_pack leaves it out
    assert set(SOUNDFONT_PROGRAMS["TimGM6mb.sf2"]["tune"]).isdisjoint({"jazz", "room"})  # its standard again
    assert GM_PROGRAMS["held_out"] == ("room", "tr808", "brush")
    with pytest.raises(InputError, match="no usable Hydrogen drumkit"):
        build_pack(drum_model.SAMPLE_RATE, drumkits=[_kit_xml("TR808EmulationKit"), _kit_xml("GMRockKit")])


def test_held_out_and_unlisted_added_sources_are_refused_for_training(tmp_path):
    near_copy = drum_material._hydrogen_kit("GMRockKit", drum_model.SAMPLE_RATE)
    assert near_copy.split == "held_out" and {"kick", "snare", "hat"} <= set(near_copy.pieces)
    with pytest.raises(InputError, match="held-out"):
        drum_model.train(TINY, tmp_path / "x.npz", sources=[near_copy, "builtin"])
    assert not (tmp_path / "x.npz").exists()
    held_gm = drum_material._gm_kit("tr808", drum_model.SAMPLE_RATE)  # FluidR3's: held out
    with pytest.raises(InputError, match="held-out"):
        drum_model.train(TINY, tmp_path / "x.npz", sources=[held_gm])
    with pytest.raises(InputError, match="no split table"):
        drum_material._gm_kit("jazz", drum_model.SAMPLE_RATE, "TimGM6mb.sf2")
    with pytest.raises(InputError, match="not in TRANSCRIBER_HYDROGEN_KITS"):
        drum_material._hydrogen_kit("Audiophob", drum_model.SAMPLE_RATE)
    with pytest.raises(InputError, match="unknown source set"):
        drum_material.tune_sources(sources="everything")


def _correlation(a: np.ndarray, b: np.ndarray) -> float:
    """Largest normalised cross-correlation of two shots' first 0.4 s (1: the same samples)."""
    n = int(0.4 * drum_model.SAMPLE_RATE)
    a, b = a[:n], b[:n]
    return float(np.max(np.abs(np.correlate(a, b, "full"))) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


@pytest.mark.slow
def test_added_tune_sources_render_and_are_no_near_copy_of_held_out_material():
    """The enlarged set is the base set in the same order (so its stems are the same) and then the
    added kits, each with velocity layers of a kick, a snare and a hat; none of their kicks, snares
    or hats is a near copy of a held-out kit's or FluidR3 program's (splits.py's rule), while the
    check does find the one it is there for (GMRockKit is The Black Pearl 1.0)."""
    from darc_bridge.kits.splits import GM_PROGRAMS, SOUNDFONT_PROGRAMS, TRANSCRIBER_HYDROGEN_KITS

    base = [k.name for k in drum_material.tune_sources(sources="base")]
    kits = drum_material.tune_sources(sources="enlarged")
    added = kits[len(base):]
    assert [k.name for k in kits[:len(base)]] == base
    assert [k.name for k in added] == [*TRANSCRIBER_HYDROGEN_KITS["tune"],
                                       *(f"TimGM6mb:{p}" for p in SOUNDFONT_PROGRAMS["TimGM6mb.sf2"]["tune"])]
    held = build_pack(drum_model.SAMPLE_RATE, splits=("held_out",)).kits
    held += [drum_material._gm_kit(p, drum_model.SAMPLE_RATE) for p in GM_PROGRAMS["held_out"]]
    for kit in added:
        assert kit.split == "tune"
        for piece in ("kick", "snare", "hat"):
            layers = kit.pieces[piece][0]
            assert max(float(np.max(np.abs(s.audio))) for s in layers) > 0.5
            assert layers[0].velocity <= layers[-1].velocity
            nearest = max(_correlation(a[-1].audio, b[-1].audio) for a in kit.pieces[piece]
                          for h in held for b in h.pieces[piece])
            assert nearest < 0.9, (kit.name, piece, nearest)
    black_pearl = next(k for k in held if k.name == "The Black Pearl 1.0")
    near_copy = drum_material._hydrogen_kit("GMRockKit", drum_model.SAMPLE_RATE)
    assert _correlation(near_copy.pieces["snare"][0][-1].audio, black_pearl.pieces["snare"][0][-1].audio) > 0.97
