"""Turn any kit a user names into the kit engine's DrumKit: one-shots per piece, in velocity layers.

The readers in darc_bridge.kits say which file plays which piece at which velocity; here the samples
are read, resampled to the job's rate and faded (`fade_tail`, so cut tails never click). Layers that
share a velocity range are one layer with several samples, which the renderer alternates
(round-robin). Hit strength s and MIDI velocity v map as in the MIDI export: v = 1 + 126 s.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from darc_bridge.engines.drumkit import (
    PIECES,
    TAIL_DBFS,
    DrumKit,
    VelocityLayer,
    _read_one_shot,
    builtin_kit,
    fade_tail,
    load_kit_folder,
)
from darc_bridge.errors import InputError
from darc_bridge.kits.hydrogen import read_drumkit
from darc_bridge.kits.library import KitEntry
from darc_bridge.kits.pieces import PIECE_GM_NOTES
from darc_bridge.kits.sfz import read_sfz
from darc_bridge.kits.soundfont import render_gm_notes

log = logging.getLogger(__name__)

# MIDI velocities a SoundFont kit is rendered at: three layers (soft, medium, hard) are what GM fonts
# usually hold for drums, and each costs one FluidSynth note per piece.
SF2_VELOCITIES = (40, 85, 127)
SILENCE_DB = -90.0  # a rendered one-shot is trimmed after its last sample above this (re its peak)


def strength_of(velocity: float) -> float:
    """MIDI velocity 1..127 -> hit strength 0..1 (the inverse of rhythm.midi.velocity_of)."""
    return float(np.clip((float(velocity) - 1.0) / 126.0, 0.0, 1.0))


def _finish(name: str, sample_rate: int, layers: dict[str, list[VelocityLayer]]) -> DrumKit:
    layers = {p: sorted(ls, key=lambda la: (la.lo, la.hi)) for p, ls in layers.items() if ls}
    if not layers:
        raise InputError(f"kit {name!r} has no sample for any drum piece (kick, snare, hat, ...)")
    sounds = {p: layers[p][-1].samples for p in PIECES if p in layers}
    return DrumKit(name, int(sample_rate), sounds, {p: layers[p] for p in PIECES if p in layers})


def _grouped(items: Iterable[tuple[float, float, np.ndarray | None]]) -> list[VelocityLayer]:
    """(lo, hi, sample) triples -> one layer per distinct range, samples in the given order (None:
    an unusable sample, left out)."""
    out: dict[tuple[float, float], list[np.ndarray]] = {}
    for lo, hi, x in items:
        if x is not None:
            out.setdefault((round(lo, 6), round(hi, 6)), []).append(x)
    return [VelocityLayer(lo, hi, xs) for (lo, hi), xs in out.items()]


class _Reader:
    """Reads each sample file once per kit (layers and pieces may share files); an unusable file
    (unreadable, silent) is left out of its layer with a warning, like a missing one."""

    def __init__(self, kit_name: str, sample_rate: int) -> None:
        self.kit_name = kit_name
        self.sample_rate = int(sample_rate)
        self._cache: dict[Path, np.ndarray | None] = {}

    def __call__(self, path: Path, gain: float) -> np.ndarray | None:
        if path not in self._cache:
            try:
                self._cache[path] = _read_one_shot(path, self.sample_rate)
            except InputError as e:
                log.warning("kit %s: sample left out: %s", self.kit_name, e)
                self._cache[path] = None
        x = self._cache[path]
        return x if x is None or gain == 1.0 else (x * np.float32(gain))


def load_hydrogen(path: str | Path, sample_rate: int) -> DrumKit:
    """A Hydrogen drumkit: per piece its first instrument (the kit's main kick, snare...), each
    instrument layer a velocity range (Hydrogen's min/max are already 0..1)."""
    hk = read_drumkit(path)
    read = _Reader(hk.name, sample_rate)
    layers = {piece: _grouped((la.min_velocity, la.max_velocity, read(la.path, inst[0].gain * la.gain))
                              for la in inst[0].layers)
              for piece, inst in hk.by_piece().items()}
    return _finish(hk.name, sample_rate, layers)


def load_sfz(path: str | Path, sample_rate: int) -> DrumKit:
    """An SFZ kit: per piece the regions of its GM key, grouped by velocity range (lovel..hivel)."""
    kit = read_sfz(path)
    read = _Reader(kit.name, sample_rate)
    layers = {piece: _grouped((strength_of(r.lovel), strength_of(r.hivel), read(r.sample, r.gain)) for r in regions)
              for piece, regions in kit.by_piece().items()}
    return _finish(kit.name, sample_rate, layers)


def _trim(x: np.ndarray) -> np.ndarray:
    """Cut a rendered one-shot to where it sounds: FluidSynth starts a note a block late, and the
    slot runs on in silence after short sounds."""
    loud = np.flatnonzero(np.max(np.abs(x), axis=0) > np.max(np.abs(x)) * 10.0 ** (SILENCE_DB / 20.0))
    return x[:, int(loud[0]): int(loud[-1]) + 1] if loud.size else x


def load_soundfont(path: str | Path, sample_rate: int, program: int = 0) -> DrumKit:
    """A General MIDI SoundFont's drum kit `program`, rendered by FluidSynth at SF2_VELOCITIES.

    FluidSynth's output level is its own gain setting, so the whole kit is scaled by one factor that
    brings its loudest one-shot to full scale (the balance between pieces stays the font's)."""
    pieces = [p for p in PIECES if p in PIECE_GM_NOTES]
    hits = [(PIECE_GM_NOTES[p][0], v) for p in pieces for v in SF2_VELOCITIES]
    shots = render_gm_notes(path, hits, sample_rate=int(sample_rate), program=program)
    peak = max((float(np.max(np.abs(x))) for x in shots), default=0.0)
    if peak < 1e-4:
        raise InputError(f"SoundFont {path} played no drum sound (is it a General MIDI font with a drum kit?)")
    edges = [0.0, *((strength_of(a) + strength_of(b)) / 2 for a, b in zip(SF2_VELOCITIES, SF2_VELOCITIES[1:],
                                                                                strict=False)), 1.0]
    layers: dict[str, list[VelocityLayer]] = {}
    for i, piece in enumerate(pieces):
        own = []
        for k in range(len(SF2_VELOCITIES)):
            x = shots[i * len(SF2_VELOCITIES) + k]
            if float(np.max(np.abs(x))) > peak * 10.0 ** (TAIL_DBFS / 20.0):  # else: a key the font leaves empty
                own.append(VelocityLayer(edges[k], edges[k + 1], [fade_tail(_trim(x) / np.float32(peak),
                                                                            sample_rate)]))
        if own:
            layers[piece] = own
    return _finish(Path(path).stem, sample_rate, layers)


def load_kit(entry: KitEntry, sample_rate: int) -> DrumKit:
    """The DrumKit for a listed or resolved kit (darc_bridge.kits.library.resolve_kit), at `sample_rate`."""
    if entry.format == "builtin":
        return builtin_kit(int(sample_rate))
    if entry.format == "folder":
        return load_kit_folder(entry.path, int(sample_rate))
    if entry.format == "hydrogen":
        return load_hydrogen(entry.path, int(sample_rate))
    if entry.format == "sfz":
        return load_sfz(entry.path, int(sample_rate))
    if entry.format == "sf2":
        return load_soundfont(entry.path, int(sample_rate))
    raise InputError(f"unknown kit format {entry.format!r}")
