"""Song folders in MUSDB18, MoisesDB and generic layouts become (drumless mix, drums)."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from darc_bridge.data.stems import find_songs, load_song
from darc_bridge.errors import InputError

SR = 8000


def tone(freq: float, seconds: float = 1.0, amp: float = 0.2) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * SR)) / SR)).astype(np.float32)


def write(path, x, sr=SR):
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(str(path), x, sr)


def test_musdb_layout_sums_the_non_drum_stems_and_ignores_the_mixture(tmp_path):
    song = tmp_path / "root" / "Artist - Song"
    parts = {"bass": tone(55), "other": tone(440), "vocals": tone(880), "drums": tone(100)}
    for name, x in parts.items():
        write(song / f"{name}.wav", x)
    write(song / "mixture.wav", sum(parts.values()) * 3)  # would break the sum if used
    [src] = find_songs(tmp_path / "root")
    assert src.layout == "musdb"
    stems = load_song(src)
    np.testing.assert_allclose(stems.drumless, parts["bass"] + parts["other"] + parts["vocals"], atol=1e-4)
    np.testing.assert_allclose(stems.drums, parts["drums"], atol=1e-4)


def test_moisesdb_nested_stem_folders_and_stereo_downmix(tmp_path):
    song = tmp_path / "provider" / "track-uuid"
    write(song / "drums" / "kick.wav", tone(60))
    write(song / "drums" / "snare.wav", tone(200))
    write(song / "guitar" / "gtr1.wav", np.stack([tone(330), tone(330) * 0], axis=1))  # stereo, left only
    write(song / "bass" / "b.wav", tone(50))
    [src] = find_songs(tmp_path)
    assert src.layout == "moisesdb" and len(src.drum_files) == 2
    stems = load_song(src)
    np.testing.assert_allclose(stems.drums, tone(60) + tone(200), atol=1e-4)
    np.testing.assert_allclose(stems.drumless, tone(330) / 2 + tone(50), atol=1e-4)


def test_generic_mix_minus_drums_and_resampling(tmp_path):
    song = tmp_path / "session"
    write(song / "Drum Bus.wav", tone(100))
    write(song / "mix.wav", tone(100) + tone(500))
    stems = load_song(find_songs(tmp_path)[0])
    np.testing.assert_allclose(stems.drumless, tone(500), atol=1e-4)
    keys = 0.1 * np.sin(2 * np.pi * 500 * np.arange(16000) / 16000)
    write(song / "keys.wav", keys.astype(np.float32), sr=16000)  # another rate: resampled to the drums' rate
    stems = load_song(find_songs(tmp_path)[0], sample_rate=SR)
    assert stems.sample_rate == SR and stems.drumless.size == SR


def test_many_songs_found_in_order_and_nothing_found_is_an_error(tmp_path):
    for name in ("b", "a"):
        write(tmp_path / "set" / name / "drums.wav", tone(100))
        write(tmp_path / "set" / name / "bass.wav", tone(50))
    assert [s.name for s in find_songs(tmp_path / "set")] == ["a", "b"]
    write(tmp_path / "empty" / "notes.wav", tone(100))
    with pytest.raises(InputError, match="no songs with stems"):
        find_songs(tmp_path / "empty")
    with pytest.raises(InputError, match="not found"):
        find_songs(tmp_path / "missing")


def test_corrupt_stem_names_the_file(tmp_path):
    write(tmp_path / "s" / "drums.wav", tone(100))
    (tmp_path / "s" / "bass.wav").write_bytes(b"RIFF....not audio")
    with pytest.raises(InputError, match="bass.wav"):
        load_song(find_songs(tmp_path)[0])
