"""The drum transcriber's CNN candidate (eval/drum_cnn.py): it reads drum_model's feature layout,
fits deterministically, round-trips through its file, refuses bad files, and learns a separable case."""

from __future__ import annotations

import json

import numpy as np
import pytest

from darc_bridge.data.grooves import Hit
from darc_bridge.data.kit_corpus import render_kit
from darc_bridge.data.kit_pack import build_pack
from darc_bridge.errors import InputError
from darc_bridge.eval import drum_cnn, drum_material, drum_model, drum_scoring
from darc_bridge.kits import find_drumkits, read_drumkit
from darc_bridge.rhythm.features import Onset

SR = drum_model.SAMPLE_RATE
TINY = drum_cnn.CnnSpec(channels=(2, 4), dense=4, max_epochs=2, patience=1)


@pytest.fixture(scope="module")
def kit():
    xml = next(p for p in find_drumkits() if read_drumkit(p).name == "Millo-Drums_v.1")
    return build_pack(SR, drumkits=[xml], splits=("tune",)).kits[0]


def _stem(kit, pieces: tuple[str, ...], seed: int, duration: float = 4.0) -> tuple[np.ndarray, list]:
    """`pieces` struck one at a time (never together) at random moments 150-400 ms apart."""
    rng = np.random.default_rng(seed)
    times = np.cumsum(rng.uniform(0.15, 0.4, 40))
    hits = [Hit(float(t), str(rng.choice(pieces)), float(rng.uniform(0.5, 1.0))) for t in times if t < duration - 0.3]
    x = render_kit(hits, duration, SR, kit, rng)
    return x, [Onset(h.time, h.cls, h.velocity) for h in hits]


def _frames(kit, pieces, seeds) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    parts = [drum_material.stem_frames(*_stem(kit, pieces, s), rng) for s in seeds]
    return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])


def test_cnn_input_reads_drum_models_feature_layout():
    bands, n = 40, 30
    base = np.arange(3 * bands * n, dtype=np.float32).reshape(3 * bands, n)  # every value distinct
    img = drum_cnn.cnn_input(drum_model.stacked(base))
    assert img.shape == (n, 3, len(drum_model.CONTEXT), bands)
    for f in (0, 12, n - 1):
        for k, c in enumerate(drum_model.CONTEXT):
            g = min(max(f + c, 0), n - 1)  # stacked repeats the edges
            for ch in range(3):  # stem_features: above background, SuperFlux rise, plain log-mel
                assert np.array_equal(img[f, ch, k], base[ch * bands:(ch + 1) * bands, g])
    with pytest.raises(ValueError, match="channels"):
        drum_cnn.cnn_input(np.zeros((2, 1000), dtype=np.float32))


def test_fit_is_deterministic_and_predicts_whole_stems(kit):
    x, y = _frames(kit, ("kick", "snare", "hat"), (1, 2))
    a = drum_cnn.fit_cnn(x, y, TINY)
    b = drum_cnn.fit_cnn(x, y, TINY)
    other = drum_cnn.fit_cnn(x, y, drum_cnn.CnnSpec(**{**TINY.__dict__, "seed": 2}))
    sa, sb = a.net.state_dict(), b.net.state_dict()
    assert all(np.array_equal(sa[k].numpy(), sb[k].numpy()) for k in sa)
    assert not np.array_equal(sa["0.weight"].numpy(), other.net.state_dict()["0.weight"].numpy())
    stem, _ = _stem(kit, ("kick", "hat"), 9)
    probs = drum_model.probabilities(stem, SR, a)  # drum_model reads it as it reads its MLP
    assert probs.shape == drum_model.probabilities(stem, SR).shape and probs.shape[1] == 3
    assert np.all((probs >= 0) & (probs <= 1))
    base = drum_model.stem_features(drum_model.prepare(stem, SR))
    whole = 1 / (1 + np.exp(-a.logits(drum_model.stacked(base))))
    assert np.allclose(a.predict(base, chunk=37), whole, atol=1e-5)  # chunked stacking = the whole stack


def test_save_load_round_trip(tmp_path, kit):
    x, y = _frames(kit, ("kick", "snare", "hat"), (3,))
    model = drum_cnn.fit_cnn(x, y, TINY)
    path = model.save(tmp_path / "cnn.safetensors")
    assert not (tmp_path / "cnn.safetensors.tmp").exists()
    loaded = drum_cnn.CnnModel.load(path)
    assert loaded.spec.channels == TINY.channels and loaded.context == drum_model.CONTEXT
    assert np.array_equal(loaded.mean, model.mean) and np.array_equal(loaded.scale, model.scale)
    assert np.array_equal(loaded.logits(x[:50]), model.logits(x[:50]))


def test_a_bad_file_is_an_input_error(tmp_path, kit):
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"not a model at all")
    with pytest.raises(InputError, match="not a drum CNN file"):
        drum_cnn.CnnModel.load(junk)
    with pytest.raises(InputError, match="no such"):
        drum_cnn.CnnModel.load(tmp_path / "missing.safetensors")
    with pytest.raises(InputError, match="not a drum CNN file"):
        drum_cnn.CnnModel.load(drum_model.MODEL_PATH)  # the MLP's npz
    from safetensors.torch import save_file

    x, y = _frames(kit, ("kick", "hat"), (4,))
    model = drum_cnn.fit_cnn(x, y, TINY)
    other = tmp_path / "other.safetensors"
    tensors = {k: v.contiguous() for k, v in model.net.state_dict().items()}
    save_file(tensors, str(other), metadata={"meta": json.dumps({"format": "something else"})})
    with pytest.raises(InputError, match="does not match"):
        drum_cnn.CnnModel.load(other)
    with pytest.raises(SystemExit) as exit_:
        drum_cnn.main(["heldout", "--model", str(junk), "--set", str(tmp_path / "set")])
    assert exit_.value.code == 2 and not (tmp_path / "set").exists()
    with pytest.raises(SystemExit) as exit_:
        drum_cnn.main(["train"])
    assert exit_.value.code == 2


def test_kick_alone_against_hat_alone_is_learned(kit):
    x, y = _frames(kit, ("kick", "hat"), range(10, 20))
    model = drum_cnn.fit_cnn(x, y, drum_cnn.CnnSpec(channels=(4, 8), dense=8, max_epochs=60, patience=8, lr=3e-3))
    figures, snares = [], 0
    for seed in (30, 31, 32):
        stem, truth = _stem(kit, ("kick", "hat"), seed)
        frames = drum_model.pick_hits(drum_model.probabilities(stem, SR, model))
        found = [Onset(f / drum_model.FPS, c, 1.0) for c, fs in enumerate(frames) for f in fs]
        figures.append(drum_scoring._runner_figures(truth, found))
        snares += frames[1].size
    kick, _, hat, _ = np.mean(figures, axis=0)
    assert kick >= 0.9 and hat >= 0.8, figures
    assert snares == 0  # no snare where none was taught or played


def test_cross_validation_fits_the_given_model_kind(monkeypatch):
    xmls = [p for p in find_drumkits() if read_drumkit(p).name in ("Millo-Drums_v.1", "ColomboAcousticDrumkit")]
    kits = build_pack(SR, drumkits=xmls, splits=("tune",)).kits
    asked = []
    monkeypatch.setattr(drum_scoring, "tune_sources", lambda **kw: asked.append(kw) or kits)  # where cross_validate reads it
    fitted = []

    def fit(x, y, recipe):
        fitted.append(x.shape)
        return drum_cnn.fitter(TINY)(x, y, recipe)

    recipe = drum_model.Recipe(stems_per_source=1, duration=2.0, synthetic_stems=0, members=1)
    out = drum_scoring.cross_validate(recipe, val_stems=1, folds=(kits[0].name,), fitter=fit)
    assert len(fitted) == 1 and fitted[0][1] == 3 * 40 * len(drum_model.CONTEXT)
    # the fold's fit saw exactly the other patched kit's frames (no synthetic stems, no borrowed pieces)
    assert asked == [{"sources": recipe.sources}]
    assert fitted[0][0] == drum_material._source_parts(recipe, kits)[1][0].shape[0]
    assert len(out[kits[0].name]) == len(drum_scoring.SCORE_COLUMNS) and kits[1].name not in out


def test_train_writes_a_model_the_transcriber_reads(tmp_path, kit):
    from darc_bridge.eval.transcribe import transcribe

    recipe = drum_model.Recipe(stems_per_source=2, duration=3.0, synthetic_stems=0, members=1)
    model = drum_cnn.train(recipe, TINY, tmp_path / "cnn.safetensors", sources=[kit])
    loaded = drum_cnn.CnnModel.load(tmp_path / "cnn.safetensors")
    stem, _ = _stem(kit, ("kick", "snare", "hat"), 7)
    assert np.array_equal(drum_model.probabilities(stem, SR, loaded), drum_model.probabilities(stem, SR, model))
    result = transcribe(stem, SR, model=loaded)
    assert result.activations.shape[0] == 3 and all(o.cls in (0, 1, 2) for o in result.onsets)
