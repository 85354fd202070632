"""A compact pack of recorded drum one-shots: Hydrogen kits read once, carried anywhere.

Training data must come from recorded kits, but Debian's hydrogen-drumkits (220 MB of samples) is
not on a bare GPU machine, and only a small working tree travels there. So the kits are read once
(darc_bridge.kits), trimmed, resampled to the codec's rate, folded to mono and stored as int16 in
one .npz with their split (darc_bridge.kits.splits): a few MiB that the recipe writes here and
carries there (docs/training.md). Training reads only `tune` kits; `held_out` kits build the eval
gate's cases and nothing else.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from darc_bridge.audio.io import atomic_write
from darc_bridge.errors import InputError
from darc_bridge.kits import find_drumkits, read_drumkit
from darc_bridge.kits.hydrogen import HydrogenKit
from darc_bridge.kits.splits import HYDROGEN_KITS, split_of_kit

log = logging.getLogger(__name__)

PACK_FORMAT = "darc-bridge-sample-pack"
PACK_VERSION = 1
REQUIRED_PIECES = ("kick", "snare", "hat")  # a kit without these cannot play a groove
# Cymbals ring; everything else is over within half a second. Longer tails are faded out: they cost
# pack size and the groove masks them anyway.
SHORT_S, LONG_S = 0.5, 1.2
LONG_PIECES = ("open_hat", "crash", "ride")
MAX_INSTRUMENTS = 2  # per piece (two hats, two snares: enough variety for a drummer's kit)
MAX_LAYERS = 3  # velocity layers kept per instrument (soft, medium, hard)


@dataclass
class Shot:
    audio: np.ndarray  # (n,) float32 mono at the pack's rate
    velocity: float  # the middle of the layer's velocity range, 0..1


@dataclass
class PackKit:
    name: str
    split: str
    pieces: dict[str, list[list[Shot]]] = field(default_factory=dict)  # piece -> instruments -> layers

    def shot(self, piece: str, instrument: int, velocity: float) -> np.ndarray:
        """The layer of one instrument that plays `velocity` (the nearest layer's middle)."""
        layers = self.pieces[piece][instrument % len(self.pieces[piece])]
        return min(layers, key=lambda s: abs(s.velocity - velocity)).audio


@dataclass
class SamplePack:
    sample_rate: int
    kits: list[PackKit]

    def split(self, split: str) -> list[PackKit]:
        return [k for k in self.kits if k.split == split]

    def kit(self, name: str) -> PackKit:
        for k in self.kits:
            if k.name == name:
                return k
        raise InputError(f"kit {name!r} is not in the sample pack; it holds {', '.join(k.name for k in self.kits)}")


def _trim(x: np.ndarray, sample_rate: int, seconds: float) -> np.ndarray:
    n = int(seconds * sample_rate)
    if x.size <= n:
        return x
    x = x[:n].copy()
    fade = n // 4
    x[-fade:] *= np.linspace(1.0, 0.0, fade, dtype=np.float32)
    return x


def _load_shot(path: Path, sample_rate: int, seconds: float) -> np.ndarray:
    import librosa

    audio, sr = sf.read(str(path), dtype="float32", always_2d=True)
    mono = audio.mean(axis=1)
    mono = _trim(mono, sr, seconds * 1.0)
    if sr != sample_rate:
        mono = librosa.resample(mono, orig_sr=sr, target_sr=sample_rate, res_type="soxr_hq")
    return np.asarray(mono, dtype=np.float32)


def build_pack(sample_rate: int = 32000, drumkits: list[Path] | None = None,
               splits: tuple[str, ...] = ("tune", "held_out")) -> SamplePack:
    """Read the split's Hydrogen kits (Debian's by default) into a pack; kits outside the split table,
    or without kick, snare and hat, are left out."""
    kits = []
    for xml in drumkits if drumkits is not None else find_drumkits():
        try:
            hk = read_drumkit(xml)
        except InputError as exc:
            log.warning("skipping %s: %s", xml, exc)
            continue
        split = split_of_kit(hk.name)
        if split not in splits:
            continue
        by_piece = hk.by_piece()
        if not all(p in by_piece for p in REQUIRED_PIECES):
            log.info("skipping kit %s: no %s", hk.name, "/".join(p for p in REQUIRED_PIECES if p not in by_piece))
            continue
        kits.append(pack_kit(hk, split, sample_rate))
    if not kits:
        raise InputError("no usable Hydrogen drumkit found (install Debian's hydrogen-drumkits, or pass --pack FILE "
                         "with a sample pack built where it is installed)")
    return SamplePack(sample_rate, kits)


def pack_kit(hk: HydrogenKit, split: str, sample_rate: int) -> PackKit:
    """One Hydrogen kit (kits.read_drumkit) as a pack kit: up to MAX_INSTRUMENTS per piece, up to
    MAX_LAYERS velocity layers each, every shot cut to its piece's length; unreadable or silent
    samples are left out (with a warning)."""
    by_piece = hk.by_piece()
    kit = PackKit(hk.name, split)
    for piece, instruments in by_piece.items():
        seconds = LONG_S if piece in LONG_PIECES else SHORT_S
        for inst in instruments[:MAX_INSTRUMENTS]:
            chosen = inst.layers if len(inst.layers) <= MAX_LAYERS else [
                inst.layers[int(i)] for i in np.linspace(0, len(inst.layers) - 1, MAX_LAYERS).round()]
            shots = []
            for layer in chosen:
                try:
                    audio = _load_shot(layer.path, sample_rate, seconds) * layer.gain
                except (RuntimeError, sf.LibsndfileError) as exc:
                    log.warning("skipping sample %s: %s", layer.path, exc)
                    continue
                if audio.size and np.max(np.abs(audio)) > 1e-4:
                    shots.append(Shot(audio, 0.5 * (layer.min_velocity + layer.max_velocity)))
            if shots:
                peak = max(float(np.max(np.abs(s.audio))) for s in shots)
                for s in shots:  # the loudest layer peaks at 1; softer layers keep their level
                    s.audio = (s.audio / peak).astype(np.float32)
                kit.pieces.setdefault(piece, []).append(shots)
    return kit


def save_pack(pack: SamplePack, path: str | Path) -> Path:
    """One .npz: int16 arrays named k/piece/instrument/layer and a JSON index."""
    arrays: dict[str, np.ndarray] = {}
    index = {"format": PACK_FORMAT, "version": PACK_VERSION, "sample_rate": pack.sample_rate, "kits": []}
    for ki, kit in enumerate(pack.kits):
        entry = {"name": kit.name, "split": kit.split, "pieces": {}}
        for piece, instruments in kit.pieces.items():
            entry["pieces"][piece] = []
            for ii, layers in enumerate(instruments):
                vels = []
                for li, shot in enumerate(layers):
                    arrays[f"{ki}/{piece}/{ii}/{li}"] = np.round(np.clip(shot.audio, -1, 1) * 32767).astype(np.int16)
                    vels.append(shot.velocity)
                entry["pieces"][piece].append(vels)
        index["kits"].append(entry)
    arrays["index"] = np.frombuffer(json.dumps(index).encode(), dtype=np.uint8)
    out = Path(path)

    def write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez_compressed(fh, **arrays)

    atomic_write(out, write, suffix=".npz")
    return out


def load_pack(path: str | Path) -> SamplePack:
    p = Path(path)
    if not p.is_file():
        raise InputError(f"sample pack not found: {p}")
    try:
        data = np.load(p)
        index = json.loads(bytes(data["index"]).decode())
    except (OSError, ValueError, KeyError) as exc:
        raise InputError(f"{p} is not a sample pack ({exc})") from exc
    if index.get("format") != PACK_FORMAT or index.get("version") != PACK_VERSION:
        raise InputError(f"{p} is not a version {PACK_VERSION} sample pack")
    kits = []
    for ki, entry in enumerate(index["kits"]):
        kit = PackKit(entry["name"], entry["split"])
        for piece, instruments in entry["pieces"].items():
            kit.pieces[piece] = [[Shot(data[f"{ki}/{piece}/{ii}/{li}"].astype(np.float32) / 32767.0, float(v))
                                  for li, v in enumerate(vels)] for ii, vels in enumerate(instruments)]
        kits.append(kit)
    return SamplePack(int(index["sample_rate"]), kits)


def check_training_kits(kits: list[PackKit]) -> None:
    """Training data may use `tune` kits only: a held-out kit in training makes the gate meaningless."""
    leaked = [k.name for k in kits if k.split != "tune" or k.name in HYDROGEN_KITS["held_out"]]
    if leaked:
        raise InputError(f"held-out kits cannot be trained on: {', '.join(leaked)}")
