"""Mixes -> stems through any Separator, written so find_songs reads them; resumable."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from darc_bridge.data.separate import DemucsSeparator, separate_folder
from darc_bridge.data.stems import find_songs, load_song
from darc_bridge.errors import CheckpointError, InputError

SR = 8000


class BandSplitSeparator:
    """A real (if crude) separator: everything under 150 Hz is 'drums', the rest 'other'."""

    sample_rate = SR

    def __init__(self) -> None:
        self.calls = 0

    def separate(self, samples: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        self.calls += 1
        spec = np.fft.rfft(samples, axis=-1)
        freqs = np.fft.rfftfreq(samples.shape[-1], 1.0 / sample_rate)
        low = np.fft.irfft(spec * (freqs < 150), n=samples.shape[-1], axis=-1)
        return {"drums": low.astype(np.float32), "other": (samples - low).astype(np.float32)}


def make_mixes(folder, n=2):
    t = np.arange(SR) / SR
    for i in range(n):
        (folder / "sub").mkdir(parents=True, exist_ok=True)
        x = 0.3 * np.sin(2 * np.pi * 60 * t) + 0.3 * np.sin(2 * np.pi * (600 + 100 * i) * t)
        sf.write(str(folder / ("sub" if i else ".") / f"mix{i}.wav"), x.astype(np.float32), SR)


def test_separated_songs_are_readable_training_songs(tmp_path):
    make_mixes(tmp_path / "mixes")
    sep = BandSplitSeparator()
    done = separate_folder(tmp_path / "mixes", tmp_path / "stems", sep)
    assert sorted(d.name for d in done) == ["mix0", "mix1"] and sep.calls == 2
    songs = find_songs(tmp_path / "stems")
    stems = load_song(songs[0])
    spectrum = np.abs(np.fft.rfft(stems.drums))
    assert np.argmax(spectrum) == 60  # 1 s of audio: bin index = Hz
    assert np.argmax(np.abs(np.fft.rfft(stems.drumless))) == 600


def test_finished_songs_are_skipped_on_rerun(tmp_path):
    make_mixes(tmp_path / "mixes")
    separate_folder(tmp_path / "mixes", tmp_path / "stems", BandSplitSeparator())
    again = BandSplitSeparator()
    separate_folder(tmp_path / "mixes", tmp_path / "stems", again)
    assert again.calls == 0


def test_separator_without_drums_is_refused(tmp_path):
    make_mixes(tmp_path / "mixes", 1)

    class Bad(BandSplitSeparator):
        def separate(self, samples, sample_rate):
            return {"other": samples}

    with pytest.raises(InputError, match="need drums"):
        separate_folder(tmp_path / "mixes", tmp_path / "stems", Bad())
    assert not (tmp_path / "stems" / "mix0" / "drums.wav").exists()


def test_demucs_missing_or_offline_is_a_clear_error(tmp_path):
    make_mixes(tmp_path / "mixes", 1)
    with pytest.raises(CheckpointError, match="[Dd]emucs"):
        separate_folder(tmp_path / "mixes", tmp_path / "stems", DemucsSeparator(repo=str(tmp_path / "nowhere")))
