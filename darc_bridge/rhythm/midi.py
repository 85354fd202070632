"""Rhythm onsets <-> General MIDI drum files.

Writing lets a user drop the followed rhythm into any DAW as a drum track; reading lets a MIDI
file stand in for a tapped prompt and gives tests an exact round trip.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import mido

from darc_bridge.audio.io import atomic_write
from darc_bridge.errors import InputError
from darc_bridge.rhythm.features import GM_NOTES, Onset

log = logging.getLogger(__name__)

DRUM_CHANNEL = 9  # "channel 10" in GM numbering
TICKS_PER_BEAT = 480
NOTE_LENGTH_S = 0.05  # drums ignore note-off; a short note keeps piano rolls readable
TEMPO_RANGE = (20.0, 400.0)

# Other GM drum notes a user's file may hold, mapped to our classes (kick, snare, hat, ...).
_NOTE_ALIASES = {35: 0, 37: 1, 39: 1, 40: 1, 44: 2}


def _check_tempo(tempo: float) -> float:
    if not TEMPO_RANGE[0] <= float(tempo) <= TEMPO_RANGE[1]:
        raise InputError(f"MIDI tempo must be between {TEMPO_RANGE[0]:g} and {TEMPO_RANGE[1]:g} BPM, got {tempo}")
    return float(tempo)


def velocity_of(strength: float) -> int:
    """Strength 0..1 -> MIDI velocity 1..127 (0 would be a note-off)."""
    return int(min(127, max(1, round(1 + float(strength) * 126))))


def onsets_to_midi(onsets: list[Onset], tempo: float = 120.0, n_classes: int = 3) -> mido.MidiFile:
    """One GM drum track: class k plays GM_NOTES[k] on channel 10, velocity from strength.

    `n_classes` is how many classes the onsets may use; a larger class is an error, not a guess.
    """
    tempo = _check_tempo(tempo)
    limit = min(max(int(n_classes), 1), len(GM_NOTES))
    events: list[tuple[int, int, mido.Message]] = []  # (tick, order: offs first, message)
    for o in onsets:
        if not 0 <= o.cls < limit:
            raise InputError(f"onset class {o.cls} is outside 0..{limit - 1}: no MIDI drum note for it")
        if o.time < 0:
            raise InputError(f"onset time {o.time:.3f}s is negative")
        note = GM_NOTES[o.cls]
        on = int(round(mido.second2tick(o.time, TICKS_PER_BEAT, mido.bpm2tempo(tempo))))
        off = on + max(1, int(round(mido.second2tick(NOTE_LENGTH_S, TICKS_PER_BEAT, mido.bpm2tempo(tempo)))))
        vel = velocity_of(o.strength)
        events.append((on, 1, mido.Message("note_on", channel=DRUM_CHANNEL, note=note, velocity=vel)))
        events.append((off, 0, mido.Message("note_off", channel=DRUM_CHANNEL, note=note, velocity=0)))
    track = mido.MidiTrack()
    track.append(mido.MetaMessage("track_name", name="darc-bridge rhythm", time=0))
    track.append(mido.MetaMessage("set_tempo", tempo=mido.bpm2tempo(tempo), time=0))
    now = 0
    for tick, _, msg in sorted(events, key=lambda e: (e[0], e[1], e[2].note)):
        track.append(msg.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    midi = mido.MidiFile(type=1, ticks_per_beat=TICKS_PER_BEAT)
    midi.tracks.append(track)
    return midi


def write_midi_atomic(
    path: str | os.PathLike, onsets: list[Onset], tempo: float = 120.0, overwrite: bool = True
) -> Path:
    """Write `onsets` as a GM drum MIDI file; nothing appears at `path` unless it is complete."""
    n_classes = max([o.cls + 1 for o in onsets] + [3])
    midi = onsets_to_midi(onsets, tempo=tempo, n_classes=n_classes)
    return atomic_write(path, lambda tmp: midi.save(tmp), overwrite=overwrite, suffix=".mid")


def read_midi_onsets(path: str | os.PathLike) -> list[Onset]:
    """Drum hits of a MIDI file as onsets (seconds, class from the GM note, strength from velocity).

    Notes with no class (melodic or unusual drum notes) are skipped; tempo changes are honoured.
    """
    p = Path(path)
    if not p.is_file():
        raise InputError(f"MIDI file not found: {p}")
    try:
        midi = mido.MidiFile(str(p))
    except Exception as exc:  # mido raises OSError, EOFError, ValueError, KeyError on bad files
        raise InputError(f"MIDI file is corrupt or not a MIDI file: {p} ({exc})") from exc
    onsets: list[Onset] = []
    skipped = 0
    now = 0.0
    for msg in midi:  # iterating a MidiFile yields merged tracks with times in seconds
        now += msg.time
        if msg.type != "note_on" or msg.velocity == 0:
            continue
        cls = GM_NOTES.index(msg.note) if msg.note in GM_NOTES else _NOTE_ALIASES.get(msg.note)
        if cls is None:
            skipped += 1
            continue
        onsets.append(Onset(round(now, 6), cls, msg.velocity / 127.0))
    if skipped:
        log.info("%s: skipped %d notes that are not kit drums", p.name, skipped)
    return sorted(onsets, key=lambda o: (o.time, o.cls))
