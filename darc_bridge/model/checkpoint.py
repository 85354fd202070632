"""DARC checkpoints: a folder with a JSON manifest and two safetensors files.

    darc.json            format name and version, model config, rhythm settings, file hashes
    lm.safetensors       DarcLM state (audiocraft LMModel + delimiter rows + rhythm projections)
    codec.safetensors    EnCodec state

The manifest is written last (each file under a temporary name, then renamed), so a folder
without it is an unfinished checkpoint. Hashes are checked on load: a truncated or altered file
is reported as corrupt instead of loading garbage.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from darc_bridge import __version__
from darc_bridge.audio.io import atomic_write
from darc_bridge.errors import CheckpointError, OutputError
from darc_bridge.model.codec import build_codec
from darc_bridge.model.lm import DarcLM
from darc_bridge.model.presets import DarcConfig, preset
from darc_bridge.rhythm.features import RhythmSettings

log = logging.getLogger(__name__)

FORMAT_NAME = "darc-bridge-checkpoint"
FORMAT_VERSION = 1
MANIFEST = "darc.json"
LM_FILE = "lm.safetensors"
CODEC_FILE = "codec.safetensors"


@dataclass
class Checkpoint:
    """A loaded (or freshly made) model with everything needed to use it."""

    model: DarcLM
    codec: torch.nn.Module
    rhythm_settings: RhythmSettings
    source: str = "random"
    manifest: dict[str, Any] = field(default_factory=dict)
    # Where each half's weights came from ("random", "musicgen:...", "codec-trained:...", "train:...");
    # None: derived from `source` and the loaded manifest (weight_origin). Training refuses a random codec.
    codec_source: str | None = None
    lm_source: str | None = None

    @property
    def config(self) -> DarcConfig:
        return self.model.config


def weight_origin(ckpt: Checkpoint, part: str) -> str:
    """Where the `part` ("codec" or "lm") weights came from: the field, else the manifest, else
    `source` (old checkpoints: "random:..." is random for both; "codec-trained" only trained the codec)."""
    value = getattr(ckpt, f"{part}_source") or ckpt.manifest.get(f"{part}_source")
    if value:
        return str(value)
    src = ckpt.manifest.get("source", ckpt.source) or "unknown"
    if part == "lm" and src.startswith("codec-trained"):
        return "random"
    return "random" if src.startswith("random") else src


def is_random(ckpt: Checkpoint, part: str) -> bool:
    return weight_origin(ckpt, part).startswith("random")


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def _state(module: torch.nn.Module, dtype: torch.dtype | None = None) -> dict[str, torch.Tensor]:
    """CPU copies of the weights; floating tensors cast to `dtype` when given (integer buffers kept)."""
    out = {}
    for k, v in module.state_dict().items():
        v = v.detach().to("cpu")
        if dtype is not None and v.is_floating_point():
            v = v.to(dtype)
        out[k] = v.contiguous().clone()
    return out


def save_checkpoint(ckpt: Checkpoint, out_dir: str | os.PathLike, *, overwrite: bool = False,
                    dtype: torch.dtype | None = None, extra: dict[str, Any] | None = None) -> Path:
    """Write `ckpt` into `out_dir` (created if its parent exists); the manifest goes last.

    `dtype=torch.float16` writes half-precision weights (the shipped model: half the bytes; loading
    casts them back into the float32 model). `extra` adds keys to the manifest (a shipped model's
    recipe command and data seed)."""
    out = Path(out_dir)
    if not out.parent.exists():
        raise OutputError(f"checkpoint parent folder does not exist: {out.parent}")
    if out.exists() and not out.is_dir():
        raise OutputError(f"checkpoint path exists and is not a folder: {out}")
    if (out / MANIFEST).exists() and not overwrite:
        raise OutputError(f"a checkpoint already exists in {out} (pass overwrite to replace it)")
    out.mkdir(exist_ok=True)
    if ckpt.rhythm_settings.n_classes != ckpt.config.rhythm_classes:
        raise CheckpointError(f"rhythm settings have {ckpt.rhythm_settings.n_classes} classes, the model "
                              f"{ckpt.config.rhythm_classes}")
    files = {}
    for name, module in ((LM_FILE, ckpt.model), (CODEC_FILE, ckpt.codec)):
        state = _state(module, dtype)
        atomic_write(out / name, lambda tmp, s=state: save_file(s, tmp), suffix=".safetensors")
        os.chmod(out / name, 0o644)  # temporary files are private; a checkpoint is meant to be shared
        files[name] = {"sha256": _sha256(out / name), "bytes": (out / name).stat().st_size}
    manifest = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "darc_bridge_version": __version__,
        "source": ckpt.source,
        "codec_source": weight_origin(ckpt, "codec"),
        "lm_source": weight_origin(ckpt, "lm"),
        "dtype": str(dtype or torch.float32).replace("torch.", ""),
        "config": ckpt.config.to_dict(),
        "rhythm_settings": ckpt.rhythm_settings.to_dict(),
        "parameters": sum(p.numel() for p in ckpt.model.parameters()),
        "files": files,
        **(extra or {}),
    }
    text = json.dumps(manifest, indent=2)
    atomic_write(out / MANIFEST, lambda tmp: Path(tmp).write_text(text), suffix=".json")
    os.chmod(out / MANIFEST, 0o644)
    log.info("saved checkpoint %s (%s, %.1fM parameters)", out, ckpt.source, manifest["parameters"] / 1e6)
    return out


def read_manifest(path: str | os.PathLike) -> dict[str, Any]:
    """The checked manifest of a checkpoint folder (format, version, config)."""
    p = Path(path)
    if not p.exists():
        raise CheckpointError(f"checkpoint not found: {p}")
    if not p.is_dir():
        raise CheckpointError(f"checkpoint must be a folder holding {MANIFEST}: {p}")
    if not (p / MANIFEST).is_file():
        raise CheckpointError(f"not a DARC checkpoint (no {MANIFEST}; unfinished or wrong folder): {p}")
    try:
        manifest = json.loads((p / MANIFEST).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise CheckpointError(f"checkpoint manifest is corrupt: {p / MANIFEST} ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT_NAME:
        raise CheckpointError(f"{p / MANIFEST} is not a DARC checkpoint manifest")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(f"checkpoint format version {version} is not supported (this version reads "
                              f"{FORMAT_VERSION}): {p}")
    for key in ("config", "rhythm_settings", "files"):
        if not isinstance(manifest.get(key), dict):
            raise CheckpointError(f"checkpoint manifest lacks '{key}': {p / MANIFEST}")
    return manifest


def _load_state(folder: Path, name: str, expected: dict[str, Any]) -> dict[str, torch.Tensor]:
    f = folder / name
    if not f.is_file():
        raise CheckpointError(f"checkpoint file missing: {f}")
    if f.stat().st_size != expected.get("bytes") or _sha256(f) != expected.get("sha256"):
        raise CheckpointError(f"checkpoint file is corrupt (size or checksum differs from the manifest): {f}")
    try:
        return load_file(str(f))
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"checkpoint file is unreadable: {f} ({exc})") from exc


def _load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str, assign: bool = False) -> None:
    try:
        module.load_state_dict(state, strict=True, assign=assign)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else "shape or key mismatch"
        raise CheckpointError(f"{what} weights do not match the config in the manifest: {first}") from exc


def load_checkpoint(path: str | os.PathLike) -> Checkpoint:
    """Rebuild model and codec on the CPU (float32) from a checkpoint folder; the caller moves them."""
    folder = Path(path)
    manifest = read_manifest(folder)
    try:
        config = DarcConfig.from_dict(manifest["config"])
        settings = RhythmSettings.from_dict(manifest["rhythm_settings"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint config is invalid: {exc}") from exc
    if settings.n_classes != config.rhythm_classes:
        raise CheckpointError(f"checkpoint rhythm settings ({settings.n_classes} classes) disagree with its model "
                              f"({config.rhythm_classes} classes)")
    files = manifest["files"]
    for name in (LM_FILE, CODEC_FILE):
        if not isinstance(files.get(name), dict):
            raise CheckpointError(f"checkpoint manifest does not list {name}: {folder}")
    lm_state = _load_state(folder, LM_FILE, files[LM_FILE])
    codec_state = _load_state(folder, CODEC_FILE, files[CODEC_FILE])
    model = _on_meta(lambda: DarcLM(config, device="meta"), lm_state, "model", lambda: DarcLM(config))
    codec = _on_meta(lambda: build_codec(config.codec, config.n_q, device="meta"), codec_state, "codec",
                     lambda: build_codec(config.codec, config.n_q))
    return Checkpoint(model.eval(), codec.eval(), settings, manifest.get("source", "unknown"), manifest)


def _on_meta(build_meta, state: dict[str, torch.Tensor], what: str, build_cpu) -> torch.nn.Module:
    """Build on the meta device (no memory, no random init) and take the loaded tensors as they
    are (`assign=True`): `small` then loads in seconds instead of spending ~17 s on an init that
    the weights overwrite. A module that keeps a tensor outside its state (it would stay on meta)
    is built the ordinary way instead."""
    state = {k: v.float() if v.is_floating_point() else v for k, v in state.items()}  # float32 on the CPU
    with torch.device("meta"):
        module = build_meta()
    _load_into(module, state, what, assign=True)
    if any(t.is_meta for t in (*module.parameters(), *module.buffers())):
        log.debug("%s keeps state outside its state dict: built on the CPU instead", what)
        module = build_cpu()
        _load_into(module, state, what)
    return module


def random_checkpoint(preset_name: str, seed: int = 0, rhythm_settings: RhythmSettings | None = None,
                      **overrides: Any) -> Checkpoint:
    """A random-weight model and codec of a preset (tests, benchmarks, the start of training)."""
    settings = rhythm_settings or RhythmSettings()
    config = preset(preset_name, rhythm_classes=settings.n_classes, **overrides)
    torch.manual_seed(seed)
    model = DarcLM(config).eval()
    codec = build_codec(config.codec, config.n_q)
    return Checkpoint(model, codec, settings, source=f"random:{preset_name}")


def init_checkpoint(preset_name: str, out_dir: str | os.PathLike, *, from_musicgen: str | None = None,
                    seed: int = 0, overwrite: bool = False) -> Checkpoint:
    """`darc-bridge model init`: random weights, or a MusicGen LM and EnCodec adapted to DARC."""
    if from_musicgen:
        from darc_bridge.model.musicgen import adapt_musicgen

        ckpt = adapt_musicgen(from_musicgen, preset_name, seed=seed)
    else:
        ckpt = random_checkpoint(preset_name, seed=seed)
    save_checkpoint(ckpt, out_dir, overwrite=overwrite)
    return ckpt
