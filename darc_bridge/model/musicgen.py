"""Start DARC from a MusicGen LM and its EnCodec (`model init --from-musicgen ID_OR_DIR`).

The source is audiocraft's export format: `state_dict.bin` and `compression_state_dict.bin`, each
`{'best_state': ..., 'xp.cfg': <yaml>}`, in a local folder or on the Hugging Face hub. The LM keeps
its exact layout (text conditioner weights are dropped: DARC has none); DARC's delimiter rows and
its rhythm projection are added (the projection zero-initialised, so the adapted model behaves
exactly like MusicGen until it is trained).
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from pathlib import Path
from typing import Any

import torch

from darc_bridge.errors import CheckpointError
from darc_bridge.model.checkpoint import Checkpoint
from darc_bridge.model.codec import build_codec
from darc_bridge.model.lm import DarcLM
from darc_bridge.model.presets import DarcConfig, preset
from darc_bridge.rhythm.features import RhythmSettings

log = logging.getLogger(__name__)

LM_EXPORT = "state_dict.bin"
CODEC_EXPORT = "compression_state_dict.bin"
SHAPE_KEYS = ("dim", "num_heads", "num_layers", "n_q", "card")
CODEC_KEYS = ("compression_model", "sample_rate", "channels", "encodec", "seanet", "rvq")
HUB_HOST = "huggingface.co"


def _offline_env() -> bool:
    return any(os.environ.get(v, "").lower() in ("1", "true", "yes", "on") for v in ("HF_HUB_OFFLINE",
                                                                                     "TRANSFORMERS_OFFLINE"))


def _hub_reachable(timeout: float = 3.0) -> bool:
    """A quick TCP probe (DNS included) bounded by `timeout`, so offline machines fail in seconds."""
    ok: list[bool] = []

    def probe() -> None:
        try:
            socket.create_connection((HUB_HOST, 443), timeout=timeout).close()
            ok.append(True)
        except OSError:
            pass

    t = threading.Thread(target=probe, daemon=True)
    t.start()
    t.join(timeout)
    return bool(ok)


def _fetch(source: str, filename: str) -> Path:
    """Local file of `filename` for a folder or a hub id (hub: cache first, network only if reachable)."""
    folder = Path(source).expanduser()
    if folder.is_dir():
        f = folder / filename
        if not f.is_file():
            raise CheckpointError(f"{folder} is not an audiocraft export: {filename} is missing")
        return f
    if source.startswith((".", "/", "~")) or source.count("/") != 1:
        raise CheckpointError(f"MusicGen source not found: {source} (give a folder with {LM_EXPORT} and "
                              f"{CODEC_EXPORT}, or a hub id such as facebook/musicgen-small)")
    from huggingface_hub import hf_hub_download

    local_only = _offline_env() or not _hub_reachable()
    try:
        return Path(hf_hub_download(repo_id=source, filename=filename, local_files_only=local_only))
    except Exception as exc:  # huggingface_hub raises many kinds (offline, missing repo, HTTP)
        where = "the network is unreachable or HF_HUB_OFFLINE is set" if local_only else str(exc).splitlines()[0]
        raise CheckpointError(
            f"cannot fetch {filename} of {source} from the Hugging Face hub ({where}); download it where you "
            f"have a network, or pass a local folder holding {LM_EXPORT} and {CODEC_EXPORT}"
        ) from exc


def _read_export(path: Path) -> dict[str, Any]:
    try:
        pkg = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise CheckpointError(f"cannot read {path}: not an audiocraft export ({exc})") from exc
    if not isinstance(pkg, dict) or "best_state" not in pkg or "xp.cfg" not in pkg:
        if isinstance(pkg, dict) and "pretrained" in pkg:
            raise CheckpointError(f"{path} only names a pretrained model ({pkg['pretrained']}); "
                                  "an export with its own weights is needed")
        raise CheckpointError(f"{path} is not an audiocraft export (needs 'best_state' and 'xp.cfg')")
    return pkg


def _config_from_export(lm_cfg, codec_cfg: dict[str, Any], preset_name: str) -> DarcConfig:
    from omegaconf import OmegaConf

    tr = OmegaConf.to_container(lm_cfg.transformer_lm, resolve=True)
    missing = [k for k in SHAPE_KEYS if k not in tr]
    if missing:
        raise CheckpointError(f"MusicGen config lacks transformer_lm.{missing[0]}")
    pattern = lm_cfg.get("codebooks_pattern", {}).get("modeling", "delay")
    if pattern != "delay":
        raise CheckpointError(f"MusicGen LM uses the {pattern!r} codebook pattern; DARC needs 'delay'")
    fuser_cross = list(lm_cfg.get("fuser", {}).get("cross", []) or [])
    cross = bool(fuser_cross) or bool(tr.get("cross_attention", False))
    extra = {k: v for k, v in tr.items() if k not in (*SHAPE_KEYS, "cross_attention", "q_modeling")}
    extra.update(custom=True, memory_efficient=False)
    base = preset(preset_name)
    return preset(preset_name, dim=int(tr["dim"]), num_heads=int(tr["num_heads"]),
                  num_layers=int(tr["num_layers"]), n_q=int(tr["n_q"]), card=int(tr["card"]),
                  cross_attention=cross, transformer={**base.transformer, **extra}, codec=codec_cfg)


def adapt_musicgen(source: str, preset_name: str = "small", seed: int = 0,
                   rhythm_settings: RhythmSettings | None = None) -> Checkpoint:
    """A DARC checkpoint (in memory) from a MusicGen export folder or hub id."""
    from omegaconf import OmegaConf

    lm_pkg = _read_export(_fetch(source, LM_EXPORT))
    codec_pkg = _read_export(_fetch(source, CODEC_EXPORT))
    try:
        lm_cfg = OmegaConf.create(lm_pkg["xp.cfg"])
        full_codec = OmegaConf.to_container(OmegaConf.create(codec_pkg["xp.cfg"]), resolve=True)
    except Exception as exc:
        raise CheckpointError(f"MusicGen export config is unreadable: {exc}") from exc
    codec_cfg = {k: full_codec[k] for k in CODEC_KEYS if k in full_codec}
    if codec_cfg.get("compression_model") != "encodec":
        raise CheckpointError("MusicGen export's compression model is not EnCodec")
    codec_cfg.update(device="cpu", dtype="float32")
    settings = rhythm_settings or RhythmSettings()
    config = _config_from_export(lm_cfg, codec_cfg, preset_name)
    config = DarcConfig.from_dict({**config.to_dict(), "rhythm_classes": settings.n_classes})

    torch.manual_seed(seed)
    model = DarcLM(config)
    lm_state = {k: v for k, v in lm_pkg["best_state"].items()
                if not k.startswith(("condition_provider.", "fuser."))}
    result = model.lm.load_state_dict(lm_state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        bad = (result.missing_keys or result.unexpected_keys)[0]
        raise CheckpointError(f"MusicGen LM weights do not fit its own config (first mismatch: {bad})")
    model.conditioner.zero_init()
    with torch.no_grad():  # the delimiter starts near the pretrained embedding statistics
        std = float(model.lm.emb[0].weight.float().std())
        model.delimiter.copy_(torch.randn_like(model.delimiter) * std)
    codec = build_codec(codec_cfg, config.n_q)
    try:
        codec.load_state_dict(codec_pkg["best_state"])
    except RuntimeError as exc:
        raise CheckpointError(f"EnCodec weights do not fit their config: {str(exc).splitlines()[0]}") from exc
    if codec.cardinality != config.card:
        raise CheckpointError(f"EnCodec has {codec.cardinality} codes per codebook, the LM {config.card}")
    log.info("adapted MusicGen %s: %d layers, dim %d, in-attention layers %s", source, config.num_layers,
             config.dim, config.injection_layers)
    return Checkpoint(model.eval(), codec.eval(), settings, source=f"musicgen:{source}")
