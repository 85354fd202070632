"""General MIDI drum kits from SoundFonts (`.sf2`), rendered by FluidSynth.

A SoundFont is samples plus synthesis rules, so the honest way to get its drums as audio is to let a
synthesiser play them: we write a tiny MIDI file with mido and run the `fluidsynth` command-line program
(Debian's `fluidsynth`; FluidR3_GM ships in `fluid-soundfont-gm`). GM drum kits are programs on
channel 10 (0 Standard, 8 Room, 16 Power, 24 Electronic, 25 TR-808, 32 Jazz, 40 Brush, 48 Orchestra).
"""

from __future__ import annotations

import shutil
import subprocess
import tempfile
from pathlib import Path

import mido
import numpy as np
import soundfile as sf

from darc_bridge.errors import InputError

SOUNDFONT_DIRS = (Path("/usr/share/sounds/sf2"), Path("~/.local/share/soundfonts").expanduser())
GM_DRUM_PROGRAMS = {"standard": 0, "room": 8, "power": 16, "electronic": 24, "tr808": 25, "jazz": 32,
                    "brush": 40, "orchestra": 48}
NOTE_SLOT_S = 2.5  # one slot per note: kick, snare and hats decay within it; callers fade long cymbal tails
RENDER_TIMEOUT_S = 120


class FluidSynthMissing(InputError):
    """The fluidsynth program is not installed."""


def find_soundfonts(dirs: tuple[Path, ...] = SOUNDFONT_DIRS) -> list[Path]:
    found: list[Path] = []
    for d in dirs:
        if d.is_dir():
            found += sorted(p for p in d.glob("*.sf2") if p.is_file() and not p.is_symlink())
    return found


def render_gm_notes(
    soundfont: str | Path,
    hits: list[tuple[int, int]],
    sample_rate: int = 44100,
    program: int = 0,
    slot_s: float = NOTE_SLOT_S,
) -> list[np.ndarray]:
    """Render each (GM note, velocity 1..127) as a one-shot of `slot_s` seconds: a list of (2, n) float32.

    All hits are rendered in one FluidSynth run (loading a font takes longer than playing it)."""
    sf2 = Path(soundfont).expanduser()
    if not sf2.is_file():
        raise InputError(f"SoundFont not found: {sf2}")
    exe = shutil.which("fluidsynth")
    if exe is None:
        raise FluidSynthMissing(
            "rendering a SoundFont needs FluidSynth: install it (Debian/Ubuntu: apt install fluidsynth; "
            "macOS: brew install fluid-synth)")
    ticks_per_beat, tempo = 480, 500000  # 120 BPM: one beat = 0.5 s
    slot_ticks = int(round(slot_s / 0.5 * ticks_per_beat))
    mid = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    mid.tracks.append(track)
    track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=0))
    track.append(mido.Message("program_change", channel=9, program=int(program), time=0))
    for i, (note, vel) in enumerate(hits):
        if i:  # all sound off at the slot's end: a long cymbal must not ring on into the next slot
            track.append(mido.Message("control_change", channel=9, control=120, value=0, time=slot_ticks - 1))
        track.append(mido.Message("note_on", channel=9, note=int(note), velocity=int(np.clip(vel, 1, 127)),
                                  time=0))
        track.append(mido.Message("note_off", channel=9, note=int(note), velocity=0, time=1))
    track.append(mido.MetaMessage("end_of_track", time=slot_ticks))
    with tempfile.TemporaryDirectory(prefix="darc-sf2-") as tmp:
        mid_path, wav_path = Path(tmp) / "hits.mid", Path(tmp) / "hits.wav"
        mid.save(mid_path)
        cmd = [exe, "-ni", "-q", "-g", "1.0", "-R", "0", "-C", "0", "-r", str(int(sample_rate)),
               "-F", str(wav_path), str(sf2), str(mid_path)]
        try:
            run = subprocess.run(cmd, capture_output=True, text=True, timeout=RENDER_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise InputError(f"FluidSynth did not finish rendering {sf2} within {RENDER_TIMEOUT_S}s") from None
        if run.returncode != 0 or not wav_path.is_file():
            raise InputError(f"FluidSynth could not render {sf2}: {(run.stderr or run.stdout).strip()[-300:]}")
        audio, sr = sf.read(wav_path, dtype="float32", always_2d=True)
    audio = audio.T
    slot = int(round(slot_s * sr))
    out = []
    for i in range(len(hits)):
        x = audio[:, i * slot:(i + 1) * slot]
        if x.shape[1] < slot:
            x = np.pad(x, ((0, 0), (0, slot - x.shape[1])))
        out.append(np.ascontiguousarray(x, dtype=np.float32))
    return out
