"""EnCodec helpers: build from a config, audio -> tokens, tokens -> audio.

The model works on mono 32 kHz audio at 50 token frames per second; these helpers do the
resampling, channel folding and length bookkeeping so the rest of the code never does.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from darc_bridge.audio import Audio
from darc_bridge.compat import import_audiocraft


def build_codec(codec_cfg: dict[str, Any], n_q: int, device: str = "cpu") -> torch.nn.Module:
    """An EnCodec model (random weights) shaped by `codec_cfg`, using `n_q` codebooks."""
    from darc_bridge.model.presets import codec_omegaconf

    import_audiocraft()
    from audiocraft.models.builders import get_compression_model

    with warnings.catch_warnings():  # audiocraft's SEANet still uses the deprecated weight_norm
        warnings.simplefilter("ignore", FutureWarning)
        model = get_compression_model(codec_omegaconf(codec_cfg, device))
    model.set_num_codebooks(n_q)
    return model.eval()


def hop_length(codec: torch.nn.Module) -> int:
    return int(round(codec.sample_rate / codec.frame_rate))


@torch.no_grad()
def encode_audio(codec: torch.nn.Module, audio: Audio) -> torch.Tensor:
    """Tokens (K, frames) of `audio` folded to the codec's channels and rate; frames = ceil(n / hop)."""
    x = audio.resampled(codec.sample_rate).samples
    if codec.channels == 1:
        x = x.mean(axis=0, keepdims=True)
    elif x.shape[0] == 1:
        x = np.repeat(x, codec.channels, axis=0)
    device = next(codec.parameters()).device
    wav = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)).to(device)[None]
    codes, _ = codec.encode(wav)
    n_frames = -(-wav.shape[-1] // hop_length(codec))
    return codes[0, :, :n_frames].long().cpu()


@torch.no_grad()
def decode_tokens(codec: torch.nn.Module, codes: torch.Tensor) -> np.ndarray:
    """Audio (channels, samples) at the codec's rate from tokens (K, frames)."""
    device = next(codec.parameters()).device
    out = codec.decode(codes[None].to(device), None)
    return out[0].float().cpu().numpy()
