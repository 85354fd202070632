"""The DARC model on audiocraft: mix-prefix LM with rhythm in-attention, sampling, checkpoints.

Heavy imports (torch, audiocraft) happen on first use of these names, not on `import darc_bridge.model`.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "DarcConfig": "darc_bridge.model.presets",
    "PRESET_NAMES": "darc_bridge.model.presets",
    "preset": "darc_bridge.model.presets",
    "DarcLM": "darc_bridge.model.lm",
    "TrainableReport": "darc_bridge.model.finetune",
    "apply_jump_finetune": "darc_bridge.model.finetune",
    "Guidance": "darc_bridge.model.sampling",
    "sample_tokens": "darc_bridge.model.sampling",
    "SamplingSettings": "darc_bridge.model.generate",
    "generate_drums": "darc_bridge.model.generate",
    "generate_drums_batch": "darc_bridge.model.generate",
    "DrumJob": "darc_bridge.model.generate",
    "Decoder": "darc_bridge.model.decode",
    "CudaGraphSteps": "darc_bridge.model.decode",
    "plan_windows": "darc_bridge.model.generate",
    "Checkpoint": "darc_bridge.model.checkpoint",
    "init_checkpoint": "darc_bridge.model.checkpoint",
    "load_checkpoint": "darc_bridge.model.checkpoint",
    "random_checkpoint": "darc_bridge.model.checkpoint",
    "save_checkpoint": "darc_bridge.model.checkpoint",
    "adapt_musicgen": "darc_bridge.model.musicgen",
    "build_codec": "darc_bridge.model.codec",
    "decode_tokens": "darc_bridge.model.codec",
    "encode_audio": "darc_bridge.model.codec",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'darc_bridge.model' has no attribute {name!r}")
