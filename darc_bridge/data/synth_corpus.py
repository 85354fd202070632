"""A synthetic multi-stem corpus in MUSDB18 layout, with the drums' onsets known exactly.

Each song: bass (roots on 8ths), chords (a detuned-saw pad, written as `other.wav`), lead (a sine
melody, written as `vocals.wav`), drums (a groove rendered with the kit engine's built-in kit,
or a family from data/voices.py) and `onsets.json`
holding the drum hits, tempo and beats. Small and deterministic per seed: for demos, tests and
smoke training where no real stems are at hand.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

from darc_bridge.audio.io import atomic_write, write_wav_atomic
from darc_bridge.data.voices import render_onsets
from darc_bridge.errors import OutputError
from darc_bridge.rhythm.features import Onset

log = logging.getLogger(__name__)

MAJOR = (0, 2, 4, 5, 7, 9, 11)
PROGRESSIONS = ((0, 4, 5, 3), (0, 5, 3, 4), (5, 3, 0, 4), (0, 3, 4, 4))  # scale degrees of chord roots


@dataclass
class SynthSong:
    """Stems (name -> mono float32) plus the drums' ground truth."""

    stems: dict[str, np.ndarray]
    onsets: list[Onset]
    tempo: float
    beats: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return next(iter(self.stems.values())).size / self.sample_rate


def _midi_hz(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _lowpass(x: np.ndarray, sr: int, hz: float) -> np.ndarray:
    return sosfilt(butter(2, hz / (sr / 2), output="sos"), x)


def _note(freq: float, length: float, sr: int, kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(length * sr)) / sr
    env = np.minimum(t / 0.01, 1.0) * np.exp(-t / max(length, 0.05))
    if kind == "saw":
        detune = (1.0, 1.004, 0.996)
        wave = sum(2 * ((f * freq * t + rng.uniform()) % 1.0) - 1 for f in detune) / 3
    elif kind == "bass":
        wave = np.sin(2 * np.pi * freq * t) + 0.3 * np.sin(4 * np.pi * freq * t)
    else:
        wave = np.sin(2 * np.pi * freq * t) + 0.15 * np.sin(6 * np.pi * freq * t)
    return wave * env


def song_drum_pattern(tempo: float, duration: float, rng: np.random.Generator) -> list[Onset]:
    """A groove locked to the song's bars: kick on 1 and 3 plus pickups, snare on 2 and 4, hats."""
    step = 60.0 / tempo / 4.0
    hats_per_beat = int(rng.choice([2, 4]))
    fill_prob = rng.uniform(0.1, 0.35)
    onsets: list[Onset] = []
    for i in range(int(duration / step)):
        t, pos = round(i * step, 5), i % 16
        if pos in (0, 8) or (pos in (6, 10, 14) and rng.random() < fill_prob):
            onsets.append(Onset(t, 0, float(rng.uniform(0.85, 1.0))))
        if pos in (4, 12) or (pos in (7, 15) and rng.random() < fill_prob / 3):
            onsets.append(Onset(t, 1, float(rng.uniform(0.8, 1.0) if pos in (4, 12) else 0.5)))
        if pos % (4 // hats_per_beat) == 0 and rng.random() < 0.95:
            onsets.append(Onset(t, 2, float(rng.uniform(0.5, 0.8))))
    return onsets


def render_drums(onsets: list[Onset], duration: float, sample_rate: int, kit: str, rng: np.random.Generator) -> np.ndarray:
    """Mono drums: "builtin" is the kit engine's own kit; other names are voices.FAMILIES."""
    if kit == "builtin":
        from darc_bridge.audio.music import synth_drum_stem

        return synth_drum_stem(onsets, duration, sample_rate).mean(axis=0).astype(np.float32)
    return render_onsets(onsets, duration, sample_rate, family=kit, rng=rng) * 0.8


def synth_song(seed: int, duration: float = 30.0, sample_rate: int = 32000, kit: str = "builtin") -> SynthSong:
    """One song: a random key, tempo and progression; every stem the same length."""
    rng = np.random.default_rng(seed)
    tempo = float(rng.uniform(85, 140))
    key = int(rng.integers(40, 52))  # bass register root
    prog = PROGRESSIONS[int(rng.integers(len(PROGRESSIONS)))]
    beat = 60.0 / tempo
    n = int(round(duration * sample_rate))
    bass, chords, lead = (np.zeros(n) for _ in range(3))

    def add(buf: np.ndarray, start_s: float, wave: np.ndarray, gain: float) -> None:
        s = int(start_s * sample_rate)
        if s < n:
            e = min(n, s + wave.size)
            buf[s:e] += gain * wave[: e - s]

    n_bars = int(np.ceil(duration / (4 * beat)))
    for bar in range(n_bars):
        degree = prog[bar % len(prog)]
        root = key + MAJOR[degree]
        bar_t = bar * 4 * beat
        for e in range(8):
            add(bass, bar_t + e * beat / 2, _note(_midi_hz(root), beat / 2 * 0.9, sample_rate, "bass", rng), 0.5)
        for third in (0, 2, 4):
            note = key + 12 + MAJOR[(degree + third) % 7] + 12 * ((degree + third) // 7)
            add(chords, bar_t, _note(_midi_hz(note), 4 * beat, sample_rate, "saw", rng), 0.15)
        for q in range(4):
            if rng.random() < 0.7:
                note = key + 24 + MAJOR[int(rng.integers(7))]
                add(lead, bar_t + q * beat, _note(_midi_hz(note), beat * 0.8, sample_rate, "sine", rng), 0.25)
    chords = _lowpass(chords, sample_rate, 2500.0)
    onsets = song_drum_pattern(tempo, duration, rng)
    drums = render_drums(onsets, duration, sample_rate, kit, rng)
    beats = np.arange(0.0, duration, beat)
    stems = {
        "bass": bass.astype(np.float32),
        "other": chords.astype(np.float32),
        "vocals": lead.astype(np.float32),
        "drums": drums.astype(np.float32),
    }
    return SynthSong(stems, onsets, tempo, beats, sample_rate)


def write_song(song: SynthSong, folder: Path) -> None:
    """MUSDB layout: {drums,bass,other,vocals,mixture}.wav plus onsets.json."""
    folder.mkdir(parents=True, exist_ok=True)
    for name, x in song.stems.items():
        write_wav_atomic(folder / f"{name}.wav", x[None, :], song.sample_rate)
    mixture = sum(song.stems.values())
    peak = float(np.max(np.abs(mixture)))
    write_wav_atomic(folder / "mixture.wav", (mixture / max(peak, 1.0))[None, :], song.sample_rate)
    truth = {
        "tempo": song.tempo,
        "beats": [round(float(b), 5) for b in song.beats],
        "onsets": [o.to_dict() for o in song.onsets],
        "sample_rate": song.sample_rate,
    }
    atomic_write(folder / "onsets.json", lambda tmp: Path(tmp).write_text(json.dumps(truth, indent=1)))


def write_corpus(
    out: str | Path,
    songs: int,
    duration: float = 30.0,
    sample_rate: int = 32000,
    seed: int = 0,
    kit: str = "builtin",
) -> list[Path]:
    """Write `songs` songs as out/song_000/... ; existing complete songs are kept (resumable)."""
    return write_songs(out, songs, lambda i, folder: write_song(
        synth_song(seed * 100003 + i, duration, sample_rate, kit), folder), digits=3)


def write_songs(out: str | Path, songs: int, write_one: Callable[[int, Path], None], digits: int = 5,
                progress: Callable[[float], None] | None = None) -> list[Path]:
    """The resumable corpus loop: song i goes to out/song_<i>/ through `write_one(i, folder)`, which
    writes onsets.json last, so a folder holding it is complete and is kept on a rerun."""
    root = Path(out)
    if root.exists() and not root.is_dir():
        raise OutputError(f"corpus output is not a folder: {root}")
    if songs < 1:
        raise OutputError(f"--songs must be at least 1, got {songs}")
    root.mkdir(parents=True, exist_ok=True)
    folders = []
    for i in range(songs):
        folder = root / f"song_{i:0{digits}d}"
        if not (folder / "onsets.json").exists():
            write_one(i, folder)
            log.info("wrote %s", folder)
        folders.append(folder)
        if progress is not None:
            progress((i + 1) / songs)
    return folders


def load_onsets(path: str | Path) -> list[Onset]:
    """Read the `onsets` list of an onsets.json (corpus songs and eval cases)."""
    data = json.loads(Path(path).read_text())
    return [Onset(float(o["time"]), int(o["class"]), float(o.get("strength", 1.0))) for o in data["onsets"]]
