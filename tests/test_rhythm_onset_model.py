"""The learned onset / class model (darc_bridge.rhythm.onset_model) and what the extractor makes of it:
flams once at their first stroke, kick and hat together as two onsets, on a held-out recorded kit."""

from __future__ import annotations

import json

import numpy as np
import pytest

from darc_bridge.eval.takes import SAMPLE_RATE, _kit_shot
from darc_bridge.kits.splits import HYDROGEN_KITS
from darc_bridge.rhythm import onset_model
from darc_bridge.rhythm.nmf import _pick_onsets, extract_rhythm

KIT = HYDROGEN_KITS["held_out"][1]  # BJA_Pacific: multi-velocity, never trained on


def _place(hits: list[tuple[float, int, float]], duration: float) -> np.ndarray:
    x = np.zeros(int(duration * SAMPLE_RATE))
    for t, cls, s in hits:
        shot = _kit_shot(KIT, cls, s)
        start = int(round(t * SAMPLE_RATE))
        end = min(x.size, start + shot.size)
        x[start:end] += (1.0, 0.8, 0.45)[cls] * s * shot[: end - start]
    return (0.9 * x / np.max(np.abs(x))).astype(np.float32)


def test_committed_model_matches_the_features():
    model = onset_model.load_model()
    y = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.01
    x = onset_model.frame_features(y)
    assert x.shape[1] == model.mean.size == model.w1.shape[0]
    p = model.predict(x)
    assert p.shape == (x.shape[0], 4) and np.all((p >= 0) & (p <= 1))
    assert p[10:-10, 0].max() < 0.5  # steady noise holds no hit (its start from silence may be one)


def test_model_file_of_another_feature_version_is_refused(tmp_path):
    d = json.loads(onset_model.MODEL_PATH.read_text())
    d["hop"] = 256
    bad = tmp_path / "m.json"
    bad.write_text(json.dumps(d))
    with pytest.raises(ValueError, match="does not match"):
        onset_model.load_model(str(bad))


def test_peak_picking_keeps_the_first_of_close_peaks():
    prob = np.array([0, 0.6, 0.4, 0.9, 0.1, 0, 0, 0, 0.7, 0.2, 0.55, 0])
    assert _pick_onsets(prob, 0.5, 4).tolist() == [1, 8]  # 3 is 2 frames after 1: the same hit
    assert _pick_onsets(prob, 0.5, 1).tolist() == [1, 3, 8, 10]


@pytest.mark.slow
def test_flam_once_at_first_stroke_and_kick_with_hat_twice():
    beat = 0.5
    hits, flams, pairs = [], [], []
    for i in range(8):
        t = 0.3 + i * beat
        if i % 2:
            hits += [(t, 1, 0.4), (t + 0.022, 1, 0.95)]  # flam: soft grace stroke, then the hit
            flams.append(t)
        else:
            hits += [(t, 0, 0.95), (t, 2, 0.7), (t + beat / 2, 2, 0.6)]  # kick and hat together, a hat alone
            pairs.append(t)
    feats = extract_rhythm(_place(hits, 4.6), SAMPLE_RATE)
    times = np.array([o.time for o in feats.onsets])
    for t in flams:
        near = [o for o in feats.onsets if abs(o.time - t) < 0.06]
        assert len({o.time for o in near}) == 1, f"flam at {t} reported {len(near)} times"
        assert abs(near[0].time - t) < 0.012 and near[0].cls == 1
    for t in pairs:
        near = [o for o in feats.onsets if abs(o.time - t) < 0.03]
        assert sorted(o.cls for o in near) == [0, 2] and len({o.time for o in near}) == 1
    assert len(np.unique(times)) == 12


@pytest.mark.slow
def test_training_is_deterministic_and_writes_a_loadable_model(tmp_path, monkeypatch):
    import darc_bridge.eval.takes as takes

    monkeypatch.setattr(takes, "TAKE_S", 2.5)  # a tiny set: the path, not the accuracy
    a = onset_model.train(n_per_type=1, seed=3, hidden=4, out=tmp_path / "a.json", codec_share=0.5)
    onset_model.train(n_per_type=1, seed=3, hidden=4, out=tmp_path / "b.json", codec_share=0.5)
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    back = onset_model.load_model(str(tmp_path / "a.json"))
    assert np.allclose(back.w1, a.w1, atol=1e-6) and back.w2.shape == (4, 4)
    assert not list(tmp_path.glob("*.tmp"))


def test_fast_path_equals_the_context_matrix_path():
    model = onset_model.load_model()
    y = _place([(0.2, 0, 0.9), (0.45, 2, 0.7), (0.7, 1, 0.8)], 1.2)
    y22 = __import__("librosa").resample(y, orig_sr=SAMPLE_RATE, target_sr=onset_model.SAMPLE_RATE)
    slow = model.predict(onset_model.frame_features(y22))
    fast = model.predict_base(onset_model.base_features(y22))
    np.testing.assert_allclose(fast, slow, atol=1e-4)
    assert slow[:, 0].max() > 0.5


def test_voice_path_draws_the_same_whatever_the_share():
    x = _place([(0.2, 0, 0.9), (0.45, 2, 0.7), (0.7, 1, 0.8)], 1.2)
    skip, take = np.random.default_rng(4), np.random.default_rng(4)
    assert onset_model._voice_path(x, SAMPLE_RATE, skip, 0, 0.0) is None
    y, rate = onset_model._voice_path(x, SAMPLE_RATE, take, 0, 1.0)
    assert skip.random() == take.random()  # the stream moved on alike: the share changes no other draw
    assert rate in (8000, 16000) and abs(y.size - x.size * rate / SAMPLE_RATE) <= 1
    assert np.all(np.isfinite(y)) and np.max(np.abs(y)) > 0.01


def test_noise_scaling_leaves_a_clean_take_and_shrinks_a_noisy_band():
    y = _place([(0.2, 0, 0.9), (0.45, 2, 0.7), (0.7, 1, 0.8), (0.95, 2, 0.6)], 1.2)
    y22 = __import__("librosa").resample(y, orig_sr=SAMPLE_RATE, target_sr=onset_model.SAMPLE_RATE)
    plain = onset_model.base_features(y22)
    np.testing.assert_array_equal(onset_model.base_features(y22, noise_scaled=True), plain)  # under the floor
    noisy = y22 + 0.05 * np.random.default_rng(1).standard_normal(y22.size).astype(np.float32)
    noisy /= np.max(np.abs(noisy))
    a, b = onset_model.base_features(noisy), onset_model.base_features(noisy, noise_scaled=True)
    bands = onset_model.N_MELS
    np.testing.assert_array_equal(b[:bands], a[:bands])  # the level above the background stays
    moving = a[bands:] > 1e-6
    ratio = np.where(moving, b[bands:], 0).sum(axis=1) / np.where(moving, a[bands:], 1e-9).sum(axis=1)
    assert ratio.max() <= 1.0 + 1e-6 and ratio.min() < 0.7  # the white noise moves past the floor
    np.testing.assert_allclose(b[bands:], a[bands:] * ratio[:, None], rtol=1e-4, atol=1e-6)  # one gain a band


def test_the_model_file_says_which_features_it_was_trained_on(tmp_path):
    d = json.loads(onset_model.MODEL_PATH.read_text())
    assert onset_model.OnsetModel.from_json(d).noise_scaled == ("noise_scaled" in d)
    d["noise_scaled"] = True
    m = onset_model.OnsetModel.from_json(d)
    assert m.noise_scaled and m.to_json()["noise_scaled"] is True
    y = np.random.default_rng(0).standard_normal(22050).astype(np.float32) * 0.5
    np.testing.assert_array_equal(m.features(y), onset_model.base_features(y, noise_scaled=True))
