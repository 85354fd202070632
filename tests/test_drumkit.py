"""The built-in synthesised kit, user kit folders and the hit renderer."""

from __future__ import annotations

import logging
from pathlib import Path

import librosa
import numpy as np
import pytest
import soundfile as sf

from darc_bridge.audio.music import synth_drum_stem
from darc_bridge.engines.drumkit import (
    PIECES,
    builtin_kit,
    hit_gain,
    load_kit_folder,
    piece_for_filename,
    render_onsets,
)
from darc_bridge.errors import InputError
from darc_bridge.rhythm.features import Onset

CEILING = 10 ** (-1 / 20)


def _centroid(x: np.ndarray, sr: int) -> float:
    return float(np.mean(librosa.feature.spectral_centroid(y=x.mean(axis=0), sr=sr)))


@pytest.mark.parametrize("sr", [8000, 22050, 44100, 48000])
def test_builtin_kit_has_every_piece_at_any_rate(sr: int) -> None:
    kit = builtin_kit(sr)
    assert kit.sample_rate == sr
    assert kit.pieces() == list(PIECES)
    for piece in PIECES:
        (shot,) = kit.sounds[piece]
        assert shot.dtype == np.float32 and shot.ndim == 2 and shot.shape[0] == 2
        assert np.all(np.isfinite(shot))
        assert 0.3 < np.max(np.abs(shot)) <= 1.0, piece
        assert 0.05 * sr < shot.shape[1] < 2.0 * sr, piece


def test_builtin_kit_is_cached_per_rate() -> None:
    assert builtin_kit(44100) is builtin_kit(44100)
    assert builtin_kit(44100) is not builtin_kit(48000)


def test_builtin_pieces_go_from_low_to_high() -> None:
    kit = builtin_kit(44100)
    c = {p: _centroid(kit.sounds[p][0], 44100) for p in ("kick", "snare", "hat")}
    assert c["kick"] < c["snare"] < c["hat"]
    assert c["kick"] < 500 and c["hat"] > 5000


def test_open_hat_rings_longer_than_closed_hat() -> None:
    kit = builtin_kit(44100)

    def ring(x: np.ndarray) -> int:
        env = np.abs(x).max(axis=0)
        return int(np.nonzero(env > 0.05 * env.max())[0][-1])

    assert ring(kit.sounds["open_hat"][0]) > 3 * ring(kit.sounds["hat"][0])


@pytest.mark.parametrize(
    ("name", "piece"),
    [
        ("kick1.wav", "kick"), ("BD_hard.wav", "kick"), ("Snare 2.wav", "snare"), ("sd.flac", "snare"),
        ("hh.wav", "hat"), ("hat_closed.wav", "hat"), ("closed.wav", "hat"), ("open.wav", "open_hat"),
        ("OH_1.wav", "open_hat"), ("hihat_open.wav", "open_hat"), ("tom_low.wav", "tom"),
        ("crash.wav", "crash"), ("ride_bell.wav", "ride"), ("clap.wav", "clap"), ("vocals.wav", None),
    ],
)
def test_sample_names_map_to_pieces(name: str, piece: str | None) -> None:
    assert piece_for_filename(name) == piece


def _write_shot(path: Path, freq: float, sr: int, seconds: float = 0.1, channels: int = 1, level: float = 0.8) -> None:
    t = np.arange(int(seconds * sr)) / sr
    x = (level * np.sin(2 * np.pi * freq * t) * np.exp(-t / 0.03)).astype(np.float32)
    sf.write(str(path), np.stack([x] * channels, axis=1) if channels > 1 else x, sr)


def test_kit_folder_loads_resamples_and_groups(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    _write_shot(tmp_path / "kick1.wav", 60, 16000, 0.2)
    _write_shot(tmp_path / "kick2.wav", 80, 16000, 0.2)
    _write_shot(tmp_path / "snare.wav", 300, 48000, 0.1, channels=2)
    _write_shot(tmp_path / "hh.wav", 6000, 44100, 0.05)
    _write_shot(tmp_path / "vocal_take.wav", 440, 44100)
    (tmp_path / "readme.txt").write_text("not audio")
    with caplog.at_level(logging.WARNING):
        kit = load_kit_folder(tmp_path, 22050)
    assert "vocal_take.wav" in caplog.text
    assert kit.pieces() == ["kick", "snare", "hat"]
    assert len(kit.sounds["kick"]) == 2
    for shots in kit.sounds.values():
        for s in shots:
            assert s.dtype == np.float32 and s.shape[0] == 2
    assert abs(kit.sounds["kick"][0].shape[1] - int(0.2 * 22050)) <= 2  # 16 kHz -> 22.05 kHz
    assert abs(kit.sounds["snare"][0].shape[1] - int(0.1 * 22050)) <= 2  # 48 kHz -> 22.05 kHz


def test_missing_piece_borrows_a_similar_one(tmp_path: Path) -> None:
    _write_shot(tmp_path / "hat.wav", 5000, 22050)
    _write_shot(tmp_path / "kick.wav", 60, 22050)
    kit = load_kit_folder(tmp_path, 22050)
    assert kit.sound_for(3) is kit.sounds["hat"]  # open hat -> closed hat
    assert kit.sound_for(4) is kit.sounds["kick"]  # tom -> kick
    assert kit.sound_for(1) is builtin_kit(22050).sounds["snare"]  # nothing similar: built-in snare


def test_round_robin_alternates_samples(tmp_path: Path) -> None:
    _write_shot(tmp_path / "kick_a.wav", 60, 22050, 0.2)
    _write_shot(tmp_path / "kick_b.wav", 60, 22050, 0.2, level=0.2)
    kit = load_kit_folder(tmp_path, 22050)
    stem = render_onsets([Onset(0.0, 0, 1.0), Onset(0.5, 0, 1.0), Onset(1.0, 0, 1.0)], 22050 * 2, 22050, kit)
    peaks = [np.max(np.abs(stem[:, int(t * 22050): int((t + 0.2) * 22050)])) for t in (0.0, 0.5, 1.0)]
    assert peaks[0] > 2 * peaks[1] and peaks[2] > 2 * peaks[1]


def test_random_choice_with_rng_is_seeded(tmp_path: Path) -> None:
    for i, level in enumerate((0.9, 0.5, 0.2)):
        _write_shot(tmp_path / f"snare{i}.wav", 300, 22050, 0.1, level=level)
    kit = load_kit_folder(tmp_path, 22050)
    hits = [Onset(0.2 * k, 1, 1.0) for k in range(20)]
    a = render_onsets(hits, 22050 * 5, 22050, kit, np.random.default_rng(4))
    b = render_onsets(hits, 22050 * 5, 22050, kit, np.random.default_rng(4))
    c = render_onsets(hits, 22050 * 5, 22050, kit, np.random.default_rng(5))
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_missing_kit_folder_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="kit folder not found"):
        load_kit_folder(tmp_path / "nope", 44100)


def test_kit_path_that_is_a_file_is_refused(tmp_path: Path) -> None:
    f = tmp_path / "kick.wav"
    _write_shot(f, 60, 22050)
    with pytest.raises(InputError, match="not a folder"):
        load_kit_folder(f, 44100)


def test_kit_folder_without_usable_samples_is_refused(tmp_path: Path) -> None:
    (tmp_path / "kick.wav").write_bytes(b"RIFF nonsense, not a wav")
    _write_shot(tmp_path / "snare.wav", 300, 22050, level=0.0)
    _write_shot(tmp_path / "guitar.wav", 300, 22050)
    with pytest.raises(InputError, match="no usable drum samples") as err:
        load_kit_folder(tmp_path, 44100)
    assert "kick.wav" in str(err.value) and "guitar.wav" in str(err.value)


def test_empty_kit_folder_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no usable drum samples"):
        load_kit_folder(tmp_path, 44100)


def test_render_places_hits_at_their_sample() -> None:
    sr = 22050
    stem = render_onsets([Onset(0.5, 0, 1.0), Onset(1.25, 2, 1.0)], sr * 2, sr, builtin_kit(sr))
    assert stem.shape == (2, sr * 2) and stem.dtype == np.float32
    nz = np.nonzero(np.abs(stem).max(axis=0) > 1e-6)[0]
    assert int(0.5 * sr) <= nz[0] <= int(0.5 * sr) + 2  # the attack ramp starts from zero
    assert np.all(np.abs(stem[:, : int(0.5 * sr)]) == 0)
    hat_part = stem[:, int(1.25 * sr) - 1: int(1.25 * sr) + 2000]
    assert np.max(np.abs(hat_part[:, 1:])) > 0.01


def test_render_never_clips_with_many_loud_hits() -> None:
    sr = 22050
    hits = [Onset(0.002 * k, k % 8, 1.0) for k in range(500)]
    stem = render_onsets(hits, sr * 2, sr, builtin_kit(sr))
    assert np.max(np.abs(stem)) <= CEILING + 1e-6
    assert np.max(np.abs(stem)) > 0.5 * CEILING


def test_velocity_follows_strength() -> None:
    assert hit_gain(0.0) == pytest.approx(0.25) and hit_gain(1.0) == pytest.approx(1.0)
    sr = 22050
    soft = render_onsets([Onset(0.1, 1, 0.2)], sr, sr, builtin_kit(sr))
    loud = render_onsets([Onset(0.1, 1, 0.9)], sr, sr, builtin_kit(sr))
    assert np.max(np.abs(loud)) > 2 * np.max(np.abs(soft))


def test_hits_outside_the_stem_are_ignored() -> None:
    sr = 22050
    stem = render_onsets([Onset(-0.5, 0, 1.0), Onset(3.0, 0, 1.0)], sr, sr, builtin_kit(sr))
    assert np.all(stem == 0)


def test_synth_drum_stem_has_the_requested_length() -> None:
    stem = synth_drum_stem([Onset(0.0, 0, 1.0), Onset(0.25, 1, 0.8)], 1.3, 16000)
    assert stem.shape == (2, round(1.3 * 16000))
    assert np.max(np.abs(stem)) > 0.1
