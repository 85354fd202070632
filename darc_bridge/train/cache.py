"""The preprocessing cache: codec tokens and rhythm features computed once, stored in shards.

    CACHE/manifest.json    format, codec fingerprint, settings, shards, songs done
    CACHE/shard_00000.pt   {"keys": [...], "mix": [int16 (K, T)], "drums": [int16 (K, T)],
                            "rhythm": [float16 (C, T)]}

Epochs read tokens from here and never re-encode audio. Songs are processed in order and a shard
is written (temporary name, then rename) once it holds `shard_size` segments; the manifest,
rewritten after each shard, lists the songs whose segments are all on disk, so an interrupted
build resumes with the first song not listed. The codec's fingerprint guards against training
on tokens of another codec.
"""

from __future__ import annotations

import hashlib
import json
import logging
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from darc_bridge.audio.io import Audio, atomic_write
from darc_bridge.data.augment import AugmentSettings, augment_context, training_rhythm
from darc_bridge.data.segments import Segment, SegmentSettings, cut_segments
from darc_bridge.data.stems import SongSource, find_songs, load_song
from darc_bridge.errors import CheckpointError, InputError, OutputError
from darc_bridge.rhythm.features import Onset, RhythmSettings

log = logging.getLogger(__name__)

FORMAT = "darc-bridge-token-cache"
VERSION = 1
MANIFEST = "manifest.json"


@dataclass(frozen=True)
class CacheSettings:
    shard_size: int = 256  # segments per shard
    variants: int = 1  # augmented copies of each segment (each draws its own timbre, speed, pitch)
    context_augment: bool = True  # STAGE's speed / pitch augmentation (p=0.5 each)
    seed: int = 0


def codec_fingerprint(codec: torch.nn.Module) -> str:
    """sha256 over the codec's weights: tokens from another codec must never be mixed in."""
    h = hashlib.sha256()
    for name, t in sorted(codec.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def is_cache(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


def read_manifest(cache_dir: str | Path) -> dict[str, Any]:
    path = Path(cache_dir) / MANIFEST
    if not path.is_file():
        raise InputError(f"not a token cache (no {MANIFEST}): {cache_dir}")
    try:
        manifest = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise InputError(f"token cache manifest is corrupt: {path} ({exc})") from exc
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        raise InputError(f"{path} is not a version {VERSION} token cache")
    return manifest


def _write_manifest(cache: Path, manifest: dict[str, Any]) -> None:
    text = json.dumps(manifest, indent=1)
    atomic_write(cache / MANIFEST, lambda tmp: Path(tmp).write_text(text), suffix=".json")


def song_onsets(source: SongSource) -> list[Onset] | None:
    """Known drum onsets of a synthetic corpus song (onsets.json beside the stems), else None."""
    path = source.folder / "onsets.json"
    if not path.is_file():
        return None
    from darc_bridge.data.synth_corpus import load_onsets

    return load_onsets(path)


def fit_frames(rows: np.ndarray, n: int) -> np.ndarray:
    """(C, n): features trimmed or zero-padded to the token frames."""
    out = np.zeros((rows.shape[0], n), dtype=np.float32)
    m = min(n, rows.shape[1])
    out[:, :m] = rows[:, :m]
    return out


def encode_segment(
    seg: Segment,
    codec: torch.nn.Module,
    rng: np.random.Generator,
    onsets: list[Onset] | None,
    rhythm: RhythmSettings,
    augment: AugmentSettings | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(mix codes, drum codes, rhythm (C, T)) of one segment, augmented with `rng`."""
    from darc_bridge.model.codec import encode_audio

    context, drums = seg.context, seg.drums
    if onsets is not None:
        onsets = [Onset(o.time - seg.start, o.cls, o.strength) for o in onsets
                  if seg.start <= o.time < seg.start + drums.size / seg.sample_rate]
    if augment is not None:
        context, drums, onsets, _ = augment_context(context, drums, seg.sample_rate, rng, augment, onsets)
    context = np.pad(context, (0, max(0, drums.size - context.size)))[: drums.size]  # sped up: silence after
    drum_codes = encode_audio(codec, Audio(drums[None], seg.sample_rate))
    mix_codes = encode_audio(codec, Audio(context[None], seg.sample_rate))
    n = min(drum_codes.shape[-1], mix_codes.shape[-1])
    drum_codes, mix_codes = drum_codes[:, :n], mix_codes[:, :n]
    feats = training_rhythm(drums, seg.sample_rate, rng, onsets=onsets, settings=augment or AugmentSettings(),
                            rhythm=rhythm)
    return mix_codes, drum_codes, torch.from_numpy(fit_frames(feats.activations, n))


def build_cache(
    stems_dir: str | Path,
    cache_dir: str | Path,
    codec: torch.nn.Module,
    rhythm: RhythmSettings = RhythmSettings(),
    segments: SegmentSettings | None = None,
    settings: CacheSettings = CacheSettings(),
    augment: AugmentSettings | None = None,
) -> dict[str, Any]:
    """Encode every usable segment of every song under `stems_dir`; resumes an interrupted build."""
    segments = segments or SegmentSettings()
    augment = augment or AugmentSettings()
    cache = Path(cache_dir)
    if cache.exists() and not cache.is_dir():
        raise OutputError(f"cache path is not a folder: {cache}")
    cache.mkdir(parents=True, exist_ok=True)
    fingerprint = codec_fingerprint(codec)
    if is_cache(cache):
        manifest = read_manifest(cache)
        if manifest["codec"] != fingerprint:
            raise CheckpointError(f"{cache} holds tokens of another codec ({manifest['codec']}, this one is "
                                  f"{fingerprint}): use a new cache folder")
    else:
        manifest = {"format": FORMAT, "version": VERSION, "codec": fingerprint, "frame_rate": float(codec.frame_rate),
                    "n_q": int(codec.num_codebooks), "rhythm_settings": rhythm.to_dict(),
                    "segments": segments.to_dict(), "settings": asdict(settings), "shards": [], "songs_done": [],
                    "complete": False}
    done = set(manifest["songs_done"])
    buffer: dict[str, list] = {"keys": [], "mix": [], "drums": [], "rhythm": []}
    pending: list[str] = []

    def flush() -> None:
        if not buffer["keys"]:
            return
        name = f"shard_{len(manifest['shards']):05d}.pt"
        payload = {k: list(v) for k, v in buffer.items()}
        atomic_write(cache / name, lambda tmp: torch.save(payload, tmp), suffix=".pt")
        manifest["shards"].append({"file": name, "segments": len(buffer["keys"])})
        manifest["songs_done"].extend(pending)
        _write_manifest(cache, manifest)
        for v in buffer.values():
            v.clear()
        pending.clear()

    for source in find_songs(stems_dir):
        key = str(source.folder)
        if key in done:
            continue
        song = load_song(source, sample_rate=int(codec.sample_rate))
        onsets = song_onsets(source)
        for seg in cut_segments(song, segments):
            for v in range(settings.variants):
                rng = np.random.default_rng([settings.seed, zlib.crc32(key.encode()), seg.index, v])
                aug = augment if settings.context_augment else AugmentSettings(speed_prob=0.0, pitch_prob=0.0)
                mix, drums, feats = encode_segment(seg, codec, rng, onsets, rhythm, aug)
                buffer["keys"].append(f"{seg.key}#{v}")
                buffer["mix"].append(mix.to(torch.int16))
                buffer["drums"].append(drums.to(torch.int16))
                buffer["rhythm"].append(feats.to(torch.float16))
        pending.append(key)
        log.info("cached %s", source.name)
        if len(buffer["keys"]) >= settings.shard_size:
            flush()
    flush()
    manifest["complete"] = True
    _write_manifest(cache, manifest)
    total = sum(s["segments"] for s in manifest["shards"])
    if total == 0:
        raise InputError(f"no usable segments under {stems_dir} (songs too short for {segments.target_s:g}s "
                         "segments, or no drums)")
    log.info("token cache %s: %d segments in %d shards", cache, total, len(manifest["shards"]))
    return manifest


class TokenCache:
    """All segments of a cache in memory: lists of (mix, drums, rhythm) tensors."""

    def __init__(self, cache_dir: str | Path) -> None:
        self.path = Path(cache_dir)
        self.manifest = read_manifest(self.path)
        if not self.manifest.get("complete"):
            raise InputError(f"token cache {self.path} is unfinished: run the cache build again to resume it")
        self.keys: list[str] = []
        self.mix: list[torch.Tensor] = []
        self.drums: list[torch.Tensor] = []
        self.rhythm: list[torch.Tensor] = []
        for shard in self.manifest["shards"]:
            data = torch.load(self.path / shard["file"], weights_only=True)
            self.keys += data["keys"]
            self.mix += [m.long() for m in data["mix"]]
            self.drums += [d.long() for d in data["drums"]]
            self.rhythm += [r.float() for r in data["rhythm"]]
        if not self.keys:
            raise InputError(f"token cache {self.path} holds no segments")

    def __len__(self) -> int:
        return len(self.keys)

    @property
    def frame_rate(self) -> float:
        return float(self.manifest["frame_rate"])

    def batch(self, rng: np.random.Generator, batch_size: int, min_frames: int, max_frames: int
              ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A random batch cropped to one random length in [min_frames, max_frames] (see segments.py)."""
        idx = rng.integers(0, len(self), size=batch_size)
        shortest = min(self.drums[i].shape[-1] for i in idx)
        hi = min(max_frames, shortest)
        length = int(rng.integers(min(min_frames, hi), hi + 1))
        mix, drums, rhythm = [], [], []
        for i in idx:
            start = int(rng.integers(0, self.drums[i].shape[-1] - length + 1))
            mix.append(self.mix[i][:, start:start + length])
            drums.append(self.drums[i][:, start:start + length])
            rhythm.append(self.rhythm[i][:, start:start + length])
        return torch.stack(mix), torch.stack(drums), torch.stack(rhythm)
