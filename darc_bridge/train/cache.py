"""The preprocessing cache: codec tokens and rhythm features computed once, stored in shards.

    CACHE/manifest.json    format, codec fingerprint, settings, beat (bool), shards, songs done
    CACHE/shard_00000.pt   {"keys": [...], "mix": [int16 (K, T)], "drums": [int16 (K, T)],
                            "rhythm": [float16 (C, T)], "beat": [float16 (2, T)] (only with beat)}

Epochs read tokens from here (train/dataset.py streams the shards) and never re-encode audio.
With `beat=True` each segment also stores the beat/downbeat frame features of its context mix,
for models with beat conditioning; a manifest without the "beat" key (older caches) has none. Songs are processed in order and a shard
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
    # processes that augment and extract rhythm (CPU work, about 1 s per 10 s segment); the main process
    # encodes with the codec (on the GPU when there is one) and writes shards in song order, so the
    # cache is the same for any count
    workers: int = 1


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


def beat_features(context: np.ndarray, sample_rate: int, frame_rate: float, n: int) -> np.ndarray:
    """(2, n) beat/downbeat rows of the context mix, made as the darc engine makes them at inference:
    the beat grid of the whole mix, triangles at the model frame rate, cut or zero-padded to the
    mix's token frames."""
    from darc_bridge.beat.tracking import estimate_beat_grid

    grid = estimate_beat_grid(Audio(context[None], sample_rate))
    return fit_frames(grid.to_frame_features(frame_rate, n), n)


@dataclass
class Prepared:
    """A segment after augmentation and rhythm extraction, before the codec: CPU work only."""

    context: np.ndarray
    drums: np.ndarray
    sample_rate: int
    rhythm: np.ndarray  # (C, n) at the codec frame rate, n = the segment's token frames
    beat: np.ndarray | None  # (2, n)


def prepare_segment(
    seg: Segment,
    rng: np.random.Generator,
    onsets: list[Onset] | None,
    rhythm: RhythmSettings,
    augment: AugmentSettings | None,
    frame_rate: float,
    hop: int,
    beat: bool = False,
) -> Prepared:
    """Augment one segment with `rng` and compute its rhythm (and beat) features at `frame_rate`."""
    context, drums = seg.context, seg.drums
    if onsets is not None:
        onsets = [Onset(o.time - seg.start, o.cls, o.strength) for o in onsets
                  if seg.start <= o.time < seg.start + drums.size / seg.sample_rate]
    if augment is not None:
        context, drums, onsets, _ = augment_context(context, drums, seg.sample_rate, rng, augment, onsets)
    context = np.pad(context, (0, max(0, drums.size - context.size)))[: drums.size]  # sped up: silence after
    n = -(-drums.size // hop)  # the codec's frames for this many samples (model/codec.encode_audio)
    feats = training_rhythm(drums, seg.sample_rate, rng, onsets=onsets, settings=augment or AugmentSettings(),
                            rhythm=rhythm)
    beats = beat_features(context, seg.sample_rate, frame_rate, n) if beat else None
    return Prepared(context, drums, seg.sample_rate, fit_frames(feats.activations, n), beats)


def encode_prepared(p: Prepared, codec: torch.nn.Module) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor,
                                                                  torch.Tensor | None]:
    from darc_bridge.model.codec import encode_audio

    drum_codes = encode_audio(codec, Audio(p.drums[None], p.sample_rate))
    mix_codes = encode_audio(codec, Audio(p.context[None], p.sample_rate))
    n = min(drum_codes.shape[-1], mix_codes.shape[-1], p.rhythm.shape[-1])
    beats = torch.from_numpy(p.beat[:, :n]) if p.beat is not None else None
    return mix_codes[:, :n], drum_codes[:, :n], torch.from_numpy(p.rhythm[:, :n]), beats


def encode_segment(
    seg: Segment,
    codec: torch.nn.Module,
    rng: np.random.Generator,
    onsets: list[Onset] | None,
    rhythm: RhythmSettings,
    augment: AugmentSettings | None,
    beat: bool = False,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """(mix codes, drum codes, rhythm (C, T), beat (2, T) or None) of one segment, augmented with `rng`."""
    from darc_bridge.model.codec import hop_length

    p = prepare_segment(seg, rng, onsets, rhythm, augment, float(codec.frame_rate), hop_length(codec), beat)
    return encode_prepared(p, codec)


def _segment_rng(settings: CacheSettings, key: str, index: int, variant: int) -> np.random.Generator:
    return np.random.default_rng([settings.seed, zlib.crc32(key.encode()), index, variant])


def _prepare_song(job: tuple) -> list[tuple[str, Prepared]]:
    """Worker: every segment and variant of one song, prepared (runs in a separate process)."""
    source, sample_rate, segments, settings, augment, rhythm, frame_rate, hop, beat = job
    key = str(source.folder)
    song = load_song(source, sample_rate=sample_rate)
    onsets = song_onsets(source)
    out = []
    for seg in cut_segments(song, segments):
        for v in range(settings.variants):
            out.append((f"{seg.key}#{v}", prepare_segment(seg, _segment_rng(settings, key, seg.index, v), onsets,
                                                          rhythm, augment, frame_rate, hop, beat)))
    return out


def _worker_init() -> None:
    import os

    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


def build_cache(
    stems_dir: str | Path,
    cache_dir: str | Path,
    codec: torch.nn.Module,
    rhythm: RhythmSettings = RhythmSettings(),
    segments: SegmentSettings | None = None,
    settings: CacheSettings = CacheSettings(),
    augment: AugmentSettings | None = None,
    beat: bool = False,
) -> dict[str, Any]:
    """Encode every usable segment of every song under `stems_dir`; resumes an interrupted build.

    `beat`: also store beat/downbeat features of each context mix (pass the checkpoint's
    `config.beat_conditioning`; training a beat-conditioned model refuses a cache without them).
    """
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
        if bool(manifest.get("beat", False)) != beat:
            raise OutputError(f"{cache} was built {'with' if manifest.get('beat') else 'without'} beat features; "
                              f"this build asks {'with' if beat else 'without'}: use a new cache folder")
    else:
        manifest = {"format": FORMAT, "version": VERSION, "codec": fingerprint, "frame_rate": float(codec.frame_rate),
                    "n_q": int(codec.num_codebooks), "rhythm_settings": rhythm.to_dict(),
                    "segments": segments.to_dict(), "settings": asdict(settings), "beat": beat, "shards": [],
                    "songs_done": [], "complete": False}
    done = set(manifest["songs_done"])
    buffer: dict[str, list] = {"keys": [], "mix": [], "drums": [], "rhythm": [], **({"beat": []} if beat else {})}
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

    aug = augment if settings.context_augment else AugmentSettings(speed_prob=0.0, pitch_prob=0.0)

    def add(key: str, mix: torch.Tensor, drums: torch.Tensor, feats: torch.Tensor, beats) -> None:
        buffer["keys"].append(key)
        buffer["mix"].append(mix.to(torch.int16))
        buffer["drums"].append(drums.to(torch.int16))
        buffer["rhythm"].append(feats.to(torch.float16))
        if beats is not None:
            buffer["beat"].append(beats.to(torch.float16))

    def song_done(source: SongSource) -> None:
        pending.append(str(source.folder))
        log.info("cached %s", source.name)
        if len(buffer["keys"]) >= settings.shard_size:
            flush()

    todo = [src for src in find_songs(stems_dir) if str(src.folder) not in done]
    if settings.workers > 1 and len(todo) > 1:
        import multiprocessing
        from concurrent.futures import ProcessPoolExecutor

        from darc_bridge.model.codec import hop_length

        jobs = [(src, int(codec.sample_rate), segments, settings, aug, rhythm, float(codec.frame_rate),
                 hop_length(codec), beat) for src in todo]
        # spawn: the parent may hold CUDA, which a forked child must never touch
        with ProcessPoolExecutor(settings.workers, mp_context=multiprocessing.get_context("spawn"),
                                 initializer=_worker_init) as pool:
            for source, prepared in zip(todo, pool.map(_prepare_song, jobs), strict=True):
                for key, p in prepared:
                    add(key, *encode_prepared(p, codec))
                song_done(source)
    else:
        for source in todo:
            key = str(source.folder)
            song = load_song(source, sample_rate=int(codec.sample_rate))
            onsets = song_onsets(source)
            for seg in cut_segments(song, segments):
                for v in range(settings.variants):
                    rng = _segment_rng(settings, key, seg.index, v)
                    add(f"{seg.key}#{v}", *encode_segment(seg, codec, rng, onsets, rhythm, aug, beat=beat))
            song_done(source)
    flush()
    manifest["complete"] = True
    _write_manifest(cache, manifest)
    total = sum(s["segments"] for s in manifest["shards"])
    if total == 0:
        raise InputError(f"no usable segments under {stems_dir} (songs too short for {segments.target_s:g}s "
                         "segments, or no drums)")
    log.info("token cache %s: %d segments in %d shards", cache, total, len(manifest["shards"]))
    return manifest

