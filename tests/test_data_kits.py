"""Training data from recorded kits: the sample pack, grooves, songs on `tune` kits, the gate set on
`held_out` kits (Debian's hydrogen-drumkits, installed in CI)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from darc_bridge.data.grooves import PIECE_CLASS, make_groove
from darc_bridge.data.kit_corpus import GATE_VOICES, kit_song, write_gate_set, write_kit_corpus
from darc_bridge.data.kit_pack import build_pack, check_training_kits, load_pack, save_pack
from darc_bridge.errors import InputError
from darc_bridge.kits import find_drumkits, read_drumkit
from darc_bridge.kits.splits import HYDROGEN_KITS

KITS = {read_drumkit(p).name: p for p in find_drumkits()}  # a missing Debian package fails these tests


@pytest.fixture(scope="module")
def pack(tmp_path_factory):
    """One tuning kit and one held-out kit, through save and load."""
    built = build_pack(32000, [KITS["Millo-Drums_v.1"], KITS["VariBreaks"]])
    path = save_pack(built, tmp_path_factory.mktemp("pack") / "pack.npz")
    return load_pack(path), built, path


def test_pack_round_trips_with_splits_and_stays_compact(pack):
    loaded, built, path = pack
    assert [(k.name, k.split) for k in loaded.kits] == [("Millo-Drums_v.1", "tune"), ("VariBreaks", "held_out")]
    assert loaded.sample_rate == 32000 and path.stat().st_size < 3 * 2**20
    for a, b in zip(loaded.kits, built.kits, strict=True):
        assert sorted(a.pieces) == sorted(b.pieces) and {"kick", "snare", "hat"} <= set(a.pieces)
        x, y = a.pieces["snare"][0][-1].audio, b.pieces["snare"][0][-1].audio
        assert x.shape == y.shape and np.max(np.abs(x - y)) < 1e-4  # int16 storage
        assert max(float(np.max(np.abs(s.audio))) for s in a.pieces["kick"][0]) == pytest.approx(1.0, abs=1e-3)


def test_held_out_kits_are_never_trained_on(pack):
    loaded, _, _ = pack
    with pytest.raises(InputError, match="held-out"):
        check_training_kits(loaded.split("held_out"))
    with pytest.raises(InputError, match="held-out"):
        kit_song(0, loaded, duration=4.0, kits=loaded.kits)
    assert set(HYDROGEN_KITS["tune"]).isdisjoint(HYDROGEN_KITS["held_out"])


def test_grooves_vary_meter_and_play_ghosts_fills_open_hats_crashes_and_rests():
    meters, feels, pieces, ghosts, rests, tempos = set(), set(), set(), 0, 0, []
    for seed in range(40):
        g = make_groove(np.random.default_rng(seed), 20.0)
        meters.add(g.beats_per_bar)
        feels.add(g.feel)
        tempos.append(g.tempo)
        pieces |= {h.piece for h in g.hits}
        ghosts += sum(h.piece == "snare" and h.velocity < 0.4 for h in g.hits)
        bar = g.downbeats[1] - g.downbeats[0]
        starts = np.array([h.time for h in g.hits])
        rests += sum(not np.any((starts >= d + 0.02) & (starts < d + bar - 0.02)) for d in g.downbeats[1:-1])
        assert all(0 <= h.time < 20.0 and 0 < h.velocity <= 1 for h in g.hits)
        assert {o.cls for o in g.onsets()} <= {0, 1, 2}
    assert meters == {3, 4, 5, 6} and len(feels) >= 5 and max(tempos) - min(tempos) > 60
    assert {"kick", "snare", "hat", "open_hat", "crash", "tom"} <= pieces and set(PIECE_CLASS) >= pieces
    assert ghosts > 20 and rests >= 3


def test_corpus_songs_use_tuning_kits_and_write_their_truth(pack, tmp_path):
    loaded, _, _ = pack
    folders = write_kit_corpus(tmp_path / "corpus", 6, loaded, duration=4.0, seed=3)
    from darc_bridge.audio.io import load_audio
    from darc_bridge.data.stems import find_songs

    assert len(find_songs(tmp_path / "corpus")) == 6
    kits = set()
    for f in folders:
        truth = json.loads((f / "onsets.json").read_text())
        kits.add(truth["kit"])
        assert truth["kit"] != "VariBreaks" and truth["onsets"] and truth["hits"]
        drums = load_audio(f / "drums.wav").mono()
        assert drums.size == 4 * 32000 and np.max(np.abs(drums)) > 0.1
    assert "Millo-Drums_v.1" in kits
    stamp = (folders[0] / "drums.wav").stat().st_mtime_ns
    write_kit_corpus(tmp_path / "corpus", 6, loaded, duration=4.0, seed=3)  # resumable: complete songs kept
    assert (folders[0] / "drums.wav").stat().st_mtime_ns == stamp


def test_gate_set_uses_held_out_kits_every_voice_family_clean_and_noisy(pack, tmp_path):
    from darc_bridge.eval.runner import load_case

    loaded, _, _ = pack
    folders = write_gate_set(tmp_path / "gate", loaded, cases=10, duration=4.0)
    metas = [json.loads((f / "case.json").read_text()) for f in folders]
    assert {m["kit"] for m in metas} == {"VariBreaks"}
    assert {m["prompt_voice"] for m in metas} == set(GATE_VOICES)
    assert {m["noise_snr_db"] is None for m in metas} == {True, False}
    case = load_case(folders[0])
    assert case.prompt_onsets and case.drums is not None and case.mix.duration == pytest.approx(4.0)
