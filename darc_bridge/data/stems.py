"""Find songs with stems on disk and turn each into (drumless mix, drums).

Three layouts are recognised, so users can point training at what they already have:
- MUSDB18-HQ: `song/{drums,bass,other,vocals}.wav` (a `mixture.wav` beside them is ignored);
- MoisesDB: `song/<stem>/<any>.wav` nested stem folders, one of them named `drums`;
- generic: a song folder holding one audio file whose name contains "drum" plus other stems,
  or only a full mix (named mix/mixture) in which case drumless = mix - drums.
The drumless mix is the sum of the non-drum stems. Everything is downmixed to mono, since the
model and its codec are mono.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from darc_bridge.audio.io import AudioLimits, load_audio
from darc_bridge.errors import InputError

log = logging.getLogger(__name__)

AUDIO_EXTS = (".wav", ".flac", ".ogg", ".mp3", ".aif", ".aiff")
MUSDB_STEMS = ("bass", "other", "vocals")
MIX_NAMES = ("mixture", "mix", "master", "full")
LONG_SONG = AudioLimits(max_duration_s=3600.0)


@dataclass
class SongSource:
    """Where one song's files are; nothing is read yet."""

    name: str
    folder: Path
    layout: str  # "musdb", "moisesdb", "generic"
    drum_files: list[Path]
    other_files: list[Path] = field(default_factory=list)
    mix_file: Path | None = None  # used only when there are no other stems


@dataclass
class SongStems:
    """A song as training needs it: mono float32 drumless mix and drums at one sample rate."""

    name: str
    drumless: np.ndarray
    drums: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.drums.size / self.sample_rate


def _audio_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in AUDIO_EXTS
                  and not p.name.startswith("."))


def _match_musdb(folder: Path, files: list[Path]) -> SongSource | None:
    by_stem = {p.stem.lower(): p for p in files}
    if "drums" in by_stem and any(s in by_stem for s in MUSDB_STEMS):
        others = [by_stem[s] for s in MUSDB_STEMS if s in by_stem]
        return SongSource(folder.name, folder, "musdb", [by_stem["drums"]], others)
    return None


def _match_moisesdb(folder: Path) -> SongSource | None:
    subdirs = {d.name.lower(): d for d in folder.iterdir() if d.is_dir()}
    if "drums" not in subdirs:
        return None
    drums = _audio_files(subdirs["drums"])
    others = [f for name, d in sorted(subdirs.items()) if name != "drums" for f in _audio_files(d)]
    if not drums or not others:
        return None
    return SongSource(folder.name, folder, "moisesdb", drums, others)


def _match_generic(folder: Path, files: list[Path]) -> SongSource | None:
    drums = [p for p in files if "drum" in p.stem.lower()]
    if len(drums) != 1:
        return None
    rest = [p for p in files if p not in drums]
    mixes = [p for p in rest if p.stem.lower() in MIX_NAMES]
    stems = [p for p in rest if p not in mixes]
    if stems:
        return SongSource(folder.name, folder, "generic", drums, stems)
    if len(mixes) == 1:
        return SongSource(folder.name, folder, "generic", drums, [], mixes[0])
    return None


def match_song(folder: Path) -> SongSource | None:
    """The layout of one folder, or None if it is not a song folder."""
    files = _audio_files(folder)
    return _match_musdb(folder, files) or _match_moisesdb(folder) or _match_generic(folder, files)


def find_songs(root: str | Path) -> list[SongSource]:
    """All song folders under `root` (root itself may be one); song folders are not searched further."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"stems folder not found: {root}")
    found: list[SongSource] = []
    stack = [root]
    while stack:
        folder = stack.pop()
        song = match_song(folder)
        if song is not None:
            found.append(song)
            continue
        stack.extend(sorted((d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")), reverse=True))
    if not found:
        raise InputError(
            f"no songs with stems found under {root}: expected song folders with drums.wav plus "
            "bass/other/vocals (MUSDB18), a drums/ stem folder (MoisesDB), or a *drum* file plus other stems"
        )
    found.sort(key=lambda s: str(s.folder))
    log.info("found %d songs under %s", len(found), root)
    return found


def _sum_mono(paths: list[Path], sample_rate: int | None, role: str) -> tuple[np.ndarray, int]:
    parts: list[np.ndarray] = []
    sr = sample_rate
    for p in paths:
        audio = load_audio(p, role=role, limits=LONG_SONG, allow_silent=True)
        sr = sr or audio.sample_rate
        parts.append(audio.resampled(sr).mono())
    n = max(x.size for x in parts)
    total = np.zeros(n, dtype=np.float32)
    for x in parts:
        total[: x.size] += x
    return total, int(sr)


def load_song(source: SongSource, sample_rate: int | None = None) -> SongStems:
    """Read and sum a song's stems; `sample_rate` None keeps the drums' rate."""
    drums, sr = _sum_mono(source.drum_files, sample_rate, f"{source.name} drums")
    if source.other_files:
        drumless, _ = _sum_mono(source.other_files, sr, f"{source.name} stem")
    elif source.mix_file is not None:
        mix, _ = _sum_mono([source.mix_file], sr, f"{source.name} mix")
        n = min(mix.size, drums.size)
        drumless = mix[:n] - drums[:n]
    else:
        raise InputError(f"{source.name}: no non-drum stems and no mix to subtract the drums from")
    n = min(drumless.size, drums.size)
    if abs(drumless.size - drums.size) > sr // 10:
        log.warning("%s: stems differ in length (%d vs %d samples); cut to the shorter",
                    source.name, drumless.size, drums.size)
    return SongStems(source.name, drumless[:n], drums[:n], sr)
