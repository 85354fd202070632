"""Procedural kits for domain randomisation (eval/drum_random_kits.py): reproducible, and whatever
their timbres, a kick below a snare below a hat."""

from __future__ import annotations

import numpy as np

from darc_bridge.eval import drum_model, drum_random_kits


def test_random_kits_are_reproducible_and_keep_the_classes_bands():
    """Domain randomisation: a procedural kit has every piece the grooves play, three velocity
    layers (a softer one duller), is fixed by its generator, and however its timbres fall, its kick
    sits below its snare and its snare below its hat (what the classes are, beyond any one kit)."""
    import librosa

    from darc_bridge.data.grooves import PIECE_CLASS

    a, b = drum_random_kits.random_kit(np.random.default_rng(3)), drum_random_kits.random_kit(np.random.default_rng(3))
    assert set(a.pieces) == set(PIECE_CLASS) and a.split == "tune"
    for piece, instruments in a.pieces.items():
        assert np.array_equal(instruments[0][1].audio, b.pieces[piece][0][1].audio), piece
    rng = np.random.default_rng(0)

    def centroid(x):
        return float(np.median(librosa.feature.spectral_centroid(y=x, sr=drum_model.SAMPLE_RATE, n_fft=512)))

    for _ in range(8):
        kit = drum_random_kits.random_kit(rng)
        layers = kit.pieces["snare"][0]
        assert [s.velocity for s in layers] == sorted(s.velocity for s in layers)
        assert centroid(layers[0].audio) < centroid(layers[-1].audio)  # a soft stroke is duller
        kick, snare, hat = (centroid(kit.pieces[p][0][-1].audio) for p in ("kick", "snare", "hat"))
        assert kick < snare < hat, (kick, snare, hat)
        assert all(np.isfinite(s.audio).all() and np.max(np.abs(s.audio)) <= 1.0 + 1e-6
                   for inst in kit.pieces.values() for s in inst[0])
