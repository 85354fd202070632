"""Audio loading refuses bad input with a clear message; writing is atomic."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf

from darc_bridge.audio import Audio, AudioLimits, load_audio, write_wav_atomic
from darc_bridge.audio.io import atomic_write
from darc_bridge.errors import InputError, OutputError


def _tone(seconds: float = 1.0, sr: int = 22050, channels: int = 1, amp: float = 0.5) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    x = amp * np.sin(2 * np.pi * 220 * t).astype(np.float32)
    return np.stack([x] * channels, axis=1)


def test_load_region_and_shape(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(2.0, 16000, channels=2), 16000)
    audio = load_audio(path, start=0.5, end=1.5)
    assert audio.samples.shape == (2, 16000)
    assert audio.sample_rate == 16000
    assert audio.samples.dtype == np.float32
    assert abs(audio.duration - 1.0) < 1e-9


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda p: None, "not found"),
        (lambda p: p.write_bytes(b""), "empty"),
        (lambda p: p.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk" * 10), "not readable audio"),
        (lambda p: p.write_text("just some text, not audio " * 20), "not readable audio"),
        (lambda p: sf.write(p, np.zeros((22050, 1), np.float32), 22050), "silent"),
    ],
    ids=["missing", "empty", "corrupt-wav", "text", "silent"],
)
def test_bad_files_name_the_problem(tmp_path, make, message):
    path = tmp_path / "in.wav"
    make(path)
    with pytest.raises(InputError, match=message) as info:
        load_audio(path, role="mix")
    assert "mix" in str(info.value)


def test_too_long_and_too_short(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(3.0), 22050)
    with pytest.raises(InputError, match="too long"):
        load_audio(path, limits=AudioLimits(max_duration_s=2.0))
    with pytest.raises(InputError, match="too short"):
        load_audio(path, start=1.0, end=1.01)


def test_bad_regions(tmp_path):
    path = tmp_path / "a.wav"
    sf.write(path, _tone(1.0), 22050)
    with pytest.raises(InputError, match="negative"):
        load_audio(path, start=-1.0)
    with pytest.raises(InputError, match="past the end"):
        load_audio(path, start=5.0)
    with pytest.raises(InputError, match="not after"):
        load_audio(path, start=0.5, end=0.4)



@pytest.mark.parametrize("region, message", [
    ({"start": float("nan")}, "start nan is not a number"),
    ({"end": float("nan")}, "end nan is not a number"),
    ({"start": 0.2, "end": float("inf")}, "end inf is not a number"),
    ({"end": -2.0}, "end -2s is negative"),
    ({"end": 0.0}, "end 0s is not after its start 0s"),
    ({"start": 1e308}, r"start 1e\+308s is past the end of the file \(1s\)$"),
    ({"start": 0.25, "end": 1.0 + 1 / 3}, r"end 1\.333s is past the end of the file \(1s\)$"),
], ids=["nan-start", "nan-end", "inf-end", "negative-end", "zero-end", "huge-start", "ms-end"])
def test_regions_that_are_not_seconds_name_the_problem(tmp_path, region, message):
    # `--start nan` reached int(round(nan)) (a traceback); `--end -2` read "mix is too short: -2s";
    # `--start 1e308` printed a 309-digit number of seconds
    path = tmp_path / "a.wav"
    sf.write(path, _tone(1.0), 22050)
    with pytest.raises(InputError, match=message):
        load_audio(path, **region)


@pytest.mark.parametrize("limit", [float("nan"), 0.0, -5.0])
def test_a_limit_that_is_not_a_positive_length_is_refused(limit):
    # a NaN --max-duration compared False with every length: any region passed
    with pytest.raises(InputError, match="positive number of seconds"):
        AudioLimits(max_duration_s=limit)


def test_a_file_that_decodes_shorter_than_its_header_is_truncated(tmp_path):
    # a cut-off MP3 keeps its header's length: the region came back 1.9 s of the 6 s asked for, and
    # the stem, that short, landed out of place in the DAW
    full = tmp_path / "song.mp3"
    sf.write(full, _tone(8.0, 44100, channels=2), 44100, format="MP3")
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 3])
    assert abs(load_audio(full, role="mix", start=1.0, end=7.0).duration - 6.0) < 1e-9
    with pytest.raises(InputError, match=r"mix file is truncated: its header says 8s but the audio stops at 2\."):
        load_audio(cut, role="mix", start=1.0, end=7.0)
    with pytest.raises(InputError, match="holds no audio from 5s on"):
        load_audio(cut, role="mix", start=5.0, end=7.0)
    assert load_audio(cut, role="mix", end=2.0).duration == pytest.approx(2.0)

def test_unreadable_file_is_reported(tmp_path, monkeypatch):
    # Root bypasses permission bits, so simulate what os.access reports for another user.
    path = tmp_path / "a.wav"
    sf.write(path, _tone(), 22050)
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(InputError, match="not readable"):
        load_audio(path)


def test_resample_keeps_duration():
    audio = Audio(_tone(1.0, 22050).T.copy(), 22050)
    out = audio.resampled(48000)
    assert out.sample_rate == 48000
    assert abs(out.samples.shape[1] - 48000) <= 1


def test_write_is_atomic_and_float(tmp_path):
    path = tmp_path / "out.wav"
    write_wav_atomic(path, _tone(0.5).T, 22050)
    info = sf.info(path)
    assert info.subtype == "FLOAT" and info.samplerate == 22050
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_failed_write_leaves_nothing(tmp_path):
    path = tmp_path / "out.wav"

    def broken(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            fh.write(b"half a file")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(path, broken)
    assert list(tmp_path.iterdir()) == []


def test_no_overwrite_mode_refuses_existing(tmp_path):
    path = tmp_path / "out.wav"
    path.write_bytes(b"precious")
    with pytest.raises(OutputError, match="already exists"):
        write_wav_atomic(path, _tone(0.1).T, 22050, overwrite=False)
    assert path.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["out.wav"]


def test_output_folder_errors(tmp_path, monkeypatch):
    with pytest.raises(OutputError, match="does not exist"):
        write_wav_atomic(tmp_path / "missing" / "out.wav", _tone(0.1).T, 22050)
    monkeypatch.setattr(os, "access", lambda p, mode: False)
    with pytest.raises(OutputError, match="not writable"):
        write_wav_atomic(tmp_path / "out.wav", _tone(0.1).T, 22050)


def test_refuses_nan(tmp_path):
    bad = _tone(0.1).T.copy()
    bad[0, 10] = np.nan
    with pytest.raises(OutputError, match="NaN"):
        write_wav_atomic(tmp_path / "out.wav", bad, 22050)
    assert list(tmp_path.iterdir()) == []


def test_outputs_get_the_users_umask_not_private_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        path = write_wav_atomic(tmp_path / "out.wav", _tone(0.1).T, 22050)
    finally:
        os.umask(old)
    assert (path.stat().st_mode & 0o777) == 0o644
