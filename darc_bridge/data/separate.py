"""Full mixes -> stems with Demucs, written in MUSDB layout so `stems.find_songs` reads them.

For users who have finished songs but no multitracks (DARC itself trained on FMA with
Demucs-separated drums). `demucs` is imported only when a DemucsSeparator runs; its weights
download on first use where there is a network. Tests inject any object with `separate`.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Protocol

import numpy as np

from darc_bridge.audio.io import load_audio, write_wav_atomic
from darc_bridge.data.stems import AUDIO_EXTS, LONG_SONG
from darc_bridge.errors import CheckpointError, InputError, OutputError

log = logging.getLogger(__name__)


class Separator(Protocol):
    """Splits a mix into named stems; must return a "drums" stem plus at least one other."""

    sample_rate: int

    def separate(self, samples: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        """(channels, frames) at `sample_rate` -> {stem name: (channels, frames)} at self.sample_rate."""
        ...


class DemucsSeparator:
    """Demucs (default htdemucs) through the `demucs` package, loaded on first use."""

    def __init__(self, model: str = "htdemucs", device: str = "cpu", repo: str | None = None) -> None:
        self.model_name = model
        self.device = device
        self.repo = Path(repo) if repo else None
        self._model = None
        self.sample_rate = 44100

    def _load(self):
        if self._model is None:
            try:
                from demucs.pretrained import get_model
            except ImportError as exc:
                raise CheckpointError(
                    "Demucs separation needs the demucs package: pip install 'darc-bridge[separation]'"
                ) from exc
            try:
                self._model = get_model(self.model_name, repo=self.repo)
            except Exception as exc:
                raise CheckpointError(
                    f"could not load Demucs model {self.model_name!r} (it downloads on first use; "
                    f"offline, pass a local repo folder): {exc}"
                ) from exc
            self._model.to(self.device).eval()
            self.sample_rate = int(self._model.samplerate)
        return self._model

    def separate(self, samples: np.ndarray, sample_rate: int) -> dict[str, np.ndarray]:
        model = self._load()  # first: a missing package or model is a CheckpointError
        import librosa
        import torch
        from demucs.apply import apply_model

        x = samples if samples.shape[0] == model.audio_channels else np.repeat(samples[:1], model.audio_channels, 0)
        if sample_rate != self.sample_rate:
            x = librosa.resample(x, orig_sr=sample_rate, target_sr=self.sample_rate)
        wav = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
        with torch.inference_mode():
            out = apply_model(model, wav[None], device=self.device, progress=False)[0]
        return {name: out[i].cpu().numpy() for i, name in enumerate(model.sources)}


def find_mixes(root: str | Path) -> list[Path]:
    """Audio files under `root`, recursively, sorted."""
    root = Path(root)
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise InputError(f"mix folder not found: {root}")
    mixes = sorted(p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTS)
    if not mixes:
        raise InputError(f"no audio files ({', '.join(AUDIO_EXTS)}) under {root}")
    return mixes


def separate_folder(mixes: str | Path, out: str | Path, separator: Separator) -> list[Path]:
    """Separate every mix into out/<mix name>/{drums,...}.wav. Songs already done are skipped,
    so an interrupted run resumes; drums.wav is written last and marks a finished song."""
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise OutputError(f"separation output is not a folder: {out}")
    out.mkdir(parents=True, exist_ok=True)
    done: list[Path] = []
    for path in find_mixes(mixes):
        folder = out / path.stem
        if (folder / "drums.wav").exists():
            done.append(folder)
            continue
        audio = load_audio(path, role="mix", limits=LONG_SONG)
        stems = separator.separate(audio.samples, audio.sample_rate)
        if "drums" not in stems or len(stems) < 2:
            raise InputError(f"separator returned {sorted(stems)} for {path.name}: need drums and another stem")
        folder.mkdir(parents=True, exist_ok=True)
        for name in sorted(stems, key=lambda n: n == "drums"):  # drums last
            write_wav_atomic(folder / f"{name}.wav", stems[name], separator.sample_rate)
        log.info("separated %s -> %s", path.name, folder)
        done.append(folder)
    return done
