"""The drum transcriber's model (eval/drum_model.py): its training refuses held-out kits, its retrain
command is deterministic, and the committed weights are small and load."""

from __future__ import annotations

import numpy as np
import pytest

from darc_bridge.data.kit_pack import build_pack
from darc_bridge.errors import InputError
from darc_bridge.eval import drum_model
from darc_bridge.kits import find_drumkits, read_drumkit
from darc_bridge.kits.splits import HYDROGEN_KITS


def _kit_xml(name: str):
    return next(p for p in find_drumkits() if read_drumkit(p).name == name)


@pytest.fixture(scope="module")
def tiny_sources():
    """One tune Hydrogen kit and the built-in kit: enough for a tiny, fast fit."""
    pack = build_pack(drum_model.SAMPLE_RATE, drumkits=[_kit_xml("Millo-Drums_v.1")], splits=("tune",))
    return [*pack.kits, "builtin"]


TINY = drum_model.Recipe(stems_per_source=2, duration=3.0, hidden=8, max_iter=3, synthetic_stems=0)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")  # 3 epochs: a tiny fit
def test_retrain_is_deterministic_on_a_tiny_subset(tmp_path, tiny_sources):
    a = drum_model.train(TINY, tmp_path / "a.npz", sources=tiny_sources)
    b = drum_model.train(TINY, tmp_path / "b.npz", sources=tiny_sources)
    loaded = drum_model.DrumModel.load(tmp_path / "a.npz")
    for k in ("mean", "scale", "w1", "b1", "w2", "b2"):
        assert np.array_equal(getattr(a, k), getattr(b, k)), k
        assert np.array_equal(getattr(a, k), getattr(loaded, k)), k
    assert loaded.context == drum_model.CONTEXT
    other = drum_model.train(drum_model.Recipe(**{**TINY.__dict__, "seed": 2}), tmp_path / "c.npz", sources=tiny_sources)
    assert not np.array_equal(a.w1, other.w1)  # the seed is what fixes it, not a constant
    x, truth = drum_model.render_stem(tiny_sources[0], 5, 3.0)
    probs = drum_model.probabilities(x, drum_model.SAMPLE_RATE, loaded)
    assert probs.shape[1] == 3 and np.all((probs >= 0) & (probs <= 1))


def test_training_refuses_held_out_kits(tmp_path):
    pack = build_pack(drum_model.SAMPLE_RATE, drumkits=[_kit_xml(HYDROGEN_KITS["held_out"][0])], splits=("held_out",))
    with pytest.raises(InputError, match="held-out"):
        drum_model.train(TINY, tmp_path / "x.npz", sources=pack.kits)
    assert not (tmp_path / "x.npz").exists()


def test_committed_model_is_small_and_matches_the_features():
    assert drum_model.MODEL_PATH.stat().st_size < 400_000
    model = drum_model.load_model()
    d = 3 * 40 * len(model.context)
    assert model.w1.shape[0] == d and model.w2.shape[1] == 3


def test_a_model_file_from_another_version_is_refused(tmp_path):
    path = tmp_path / "old.npz"
    np.savez(path, meta=np.frombuffer(b'{"format": "something else"}', dtype=np.uint8))
    with pytest.raises(ValueError, match="does not match"):
        drum_model.DrumModel.load(path)


def test_degradations_keep_length_and_level():
    rng = np.random.default_rng(0)
    x, _ = drum_model.render_stem("builtin", 1, 2.0, augment=False)
    for _ in range(6):
        y = drum_model.degrade(drum_model.equalise(x, drum_model.SAMPLE_RATE, rng), drum_model.SAMPLE_RATE, rng)
        assert y.shape == x.shape and np.all(np.isfinite(y))
        assert 0.1 < np.sqrt(np.mean(y ** 2)) / np.sqrt(np.mean(x ** 2)) < 10


def test_gm_program_becomes_a_kit_with_velocity_layers():
    kit = drum_model._gm_kit("standard", drum_model.SAMPLE_RATE)
    assert {"kick", "snare", "hat", "open_hat", "crash", "ride", "tom"} <= set(kit.pieces)
    layers = kit.pieces["snare"][0]
    assert len(layers) == 3 and [s.velocity for s in layers] == sorted(s.velocity for s in layers)
    peaks = [float(np.max(np.abs(s.audio))) for s in layers]
    assert peaks[0] < peaks[-1] <= 1.0 + 1e-6
