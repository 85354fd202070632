"""Model shapes held in the project, since audiocraft's YAML defaults are not installed.

A `DarcConfig` is everything needed to rebuild the model without weights: it is written into
every checkpoint, and `lm_omegaconf` / `codec_omegaconf` turn it into the OmegaConf configs that
audiocraft's own builders take.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

from darc_bridge.errors import CheckpointError, InputError

# audiocraft's MusicGen LM settings (config/model/lm/musicgen_lm.yaml), minus the shape.
# custom attention without xformers' memory-efficient kernel: it streams multi-step chunks exactly.
TRANSFORMER_DEFAULTS: dict[str, Any] = {
    "hidden_scale": 4,
    "dropout": 0.0,
    "emb_lr": None,
    "activation": "gelu",
    "norm_first": True,
    "bias_ff": False,
    "bias_attn": False,
    "bias_proj": False,
    "past_context": None,
    "causal": True,
    "custom": True,
    "memory_efficient": False,
    "attention_as_float32": False,
    "layer_scale": None,
    "positional_embedding": "sin",
    "xpos": False,
    "checkpointing": "none",
    "weight_init": "gaussian",
    "depthwise_init": "current",
    "zero_bias_init": True,
    "norm": "layer_norm",
    "cross_attention": False,
}

# EnCodec 32 kHz (audiocraft's config/model/encodec/encodec_large_nq4_s640), 50 frames per second.
CODEC_SMALL: dict[str, Any] = {
    "sample_rate": 32000,
    "channels": 1,
    "causal": False,
    "renormalize": False,
    "n_filters": 64,
    "dimension": 128,
    "n_residual_layers": 1,
    "ratios": [8, 5, 4, 4],
    "lstm": 2,
    "n_q": 4,
    "bins": 2048,
}
CODEC_TINY: dict[str, Any] = {**CODEC_SMALL, "n_filters": 4, "dimension": 16, "lstm": 0}
# EnCodec's shape at a quarter of its width (2.6M parameters): 16 filters at the full rate are what
# keeps hi-hats (the 4 of CODEC_TINY lose everything above about 5 kHz). 768 codes per codebook:
# enough for drums, and they keep the mini LM's fp16 weights under 16 MiB (the most a GPU run
# may return per file; 1024 codes would make it 16.03 MiB).
CODEC_MINI: dict[str, Any] = {**CODEC_SMALL, "n_filters": 16, "dimension": 64, "lstm": 1, "bins": 768}

# Every preset generates windows no longer than it is trained on: training crops are at most
# `window_s` (train/loop.py takes the crop from the config), and 10 s is STAGE's training length
# (MusicGen-small itself was trained on 1,500 pattern steps = 30 s, but DARC's prefix doubles the
# sequence: 10 s of mix + 10 s of drums).
WINDOW_S = 10.0


def default_layers(num_layers: int, every: int) -> list[int]:
    """MusiConGen's adaptive rule: every `every`-th layer, never the first, within the first 3/4."""
    return [i for i in range(num_layers) if i % every == 0 and 0 < i < 0.75 * num_layers]


@dataclass
class DarcConfig:
    """Shape and conditioning of one DARC model (saved in checkpoints)."""

    preset: str
    dim: int
    num_layers: int
    num_heads: int
    n_q: int = 4
    card: int = 2048
    cross_attention: bool = False  # MusicGen's (idle) text cross-attention, kept for weight compatibility
    transformer: dict[str, Any] = field(default_factory=lambda: dict(TRANSFORMER_DEFAULTS))
    codec: dict[str, Any] = field(default_factory=lambda: dict(CODEC_SMALL))
    window_s: float = WINDOW_S  # longest drum window generated in one sequence = longest training crop
    overlap_s: float = 5.0  # drums carried into the next window as its continuation prompt
    rhythm_classes: int = 3
    in_attention_every: int = 4
    in_attention_layers: list[int] | None = None  # None: default_layers(num_layers, in_attention_every)
    rhythm_at_input: bool = True
    beat_conditioning: bool = False
    jump_every: int = 4
    jump_mode: str = "layer"  # "layer" (whole layer) or "self_attn" (self-attention only)
    cfg_coef: float = 3.0
    top_k: int = 250

    def __post_init__(self) -> None:
        if self.dim % self.num_heads:
            raise CheckpointError(f"model dim {self.dim} is not divisible by {self.num_heads} heads")
        if self.jump_mode not in ("layer", "self_attn"):
            raise CheckpointError(f"jump_mode must be 'layer' or 'self_attn', got {self.jump_mode!r}")
        bad = [i for i in self.injection_layers if not 0 <= i < self.num_layers]
        if bad:
            raise CheckpointError(f"in-attention layers {bad} are outside 0..{self.num_layers - 1}")

    @property
    def injection_layers(self) -> list[int]:
        if self.in_attention_layers is not None:
            return sorted(set(int(i) for i in self.in_attention_layers))
        return default_layers(self.num_layers, self.in_attention_every)

    @property
    def sample_rate(self) -> int:
        return int(self.codec["sample_rate"])

    @property
    def frame_rate(self) -> float:
        ratios = self.codec["seanet"]["ratios"] if "compression_model" in self.codec else self.codec["ratios"]
        hop = 1
        for r in ratios:
            hop *= int(r)
        return self.sample_rate / hop

    @property
    def pad_token(self) -> int:
        return self.card

    @property
    def delimiter_token(self) -> int:
        return self.card + 1

    def to_dict(self) -> dict[str, Any]:
        return copy.deepcopy(asdict(self))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> DarcConfig:
        unknown = set(d) - set(cls.__dataclass_fields__)
        if unknown:
            raise CheckpointError(f"model config has unknown fields {sorted(unknown)} (made by a newer version?)")
        return cls(**copy.deepcopy(d))


def _small() -> DarcConfig:
    return DarcConfig("small", dim=1024, num_layers=24, num_heads=16, cross_attention=True,
                      codec=dict(CODEC_SMALL), window_s=WINDOW_S, overlap_s=3.0)


def _mini() -> DarcConfig:
    return DarcConfig("mini", dim=256, num_layers=8, num_heads=4, card=int(CODEC_MINI["bins"]), codec=dict(CODEC_MINI),
                      window_s=WINDOW_S, overlap_s=3.0, in_attention_every=2, jump_every=2, top_k=100)


def _tiny() -> DarcConfig:
    return DarcConfig("tiny", dim=64, num_layers=6, num_heads=4, codec=dict(CODEC_TINY), window_s=WINDOW_S,
                      overlap_s=2.0, in_attention_every=2, jump_every=2, top_k=50)


# The one registry of presets: names, help texts and the CLI's choices all come from here.
PRESETS: dict[str, tuple[Callable[[], DarcConfig], str]] = {
    "tiny": (_tiny, "1.3M-parameter LM, 0.1M codec: tests and CPU demos (its codec loses hi-hats)"),
    "mini": (_mini, "7.9M-parameter LM (dim 256, 8 layers), 2.6M codec at 32 kHz: the shipped model"),
    "small": (_small, "MusicGen-small shape (420M LM, EnCodec 32 kHz): the paper's size"),
}
PRESET_NAMES: tuple[str, ...] = tuple(PRESETS)


def preset(name: str, **overrides: Any) -> DarcConfig:
    """The config of a named preset (PRESETS), with fields overridden; an unknown name is an InputError."""
    if name not in PRESETS:
        raise InputError(f"unknown model preset {name!r}; valid presets: {', '.join(PRESET_NAMES)}")
    d = PRESETS[name][0]().to_dict()
    d.update(overrides)
    return DarcConfig.from_dict(d)


def lm_omegaconf(config: DarcConfig, device: str = "cpu"):
    """The config audiocraft's get_lm_model wants: delay pattern, no conditioners, no fusers.

    DARC conditions through the token prefix and in-attention, so the condition provider is empty
    (no T5 or spaCy download ever happens).
    """
    from omegaconf import OmegaConf

    tr = {**TRANSFORMER_DEFAULTS, **config.transformer}
    tr.update(dim=config.dim, num_heads=config.num_heads, num_layers=config.num_layers, n_q=config.n_q,
              card=config.card, cross_attention=config.cross_attention)
    return OmegaConf.create({
        "lm_model": "transformer_lm",
        "device": device,
        "dtype": "float32",
        "dataset": {"segment_duration": config.window_s},
        "transformer_lm": tr,
        "codebooks_pattern": {"modeling": "delay",
                              "delay": {"delays": list(range(config.n_q)), "flatten_first": 0, "empty_initial": 0}},
        "conditioners": {},
        "fuser": {"sum": [], "cross": [], "prepend": [], "input_interpolate": [],
                  "cross_attention_pos_emb": False, "cross_attention_pos_emb_scale": 1.0},
        "attribute_dropout": {},
        "classifier_free_guidance": {"training_dropout": 0.0, "inference_coef": config.cfg_coef},
    })


def codec_omegaconf(codec: dict[str, Any], device: str = "cpu"):
    """EnCodec config for get_compression_model from the short codec dict of a preset.

    A dict that already holds the full audiocraft layout (`compression_model` key, e.g. copied
    from a MusicGen export) is passed through with only the device replaced.
    """
    from omegaconf import OmegaConf

    if "compression_model" in codec:
        cfg = OmegaConf.create(copy.deepcopy(codec))
        cfg.device = device
        return cfg
    c = codec
    return OmegaConf.create({
        "compression_model": "encodec",
        "device": device,
        "dtype": "float32",
        "sample_rate": c["sample_rate"],
        "channels": c["channels"],
        "encodec": {"autoencoder": "seanet", "quantizer": "rvq", "sample_rate": c["sample_rate"],
                    "channels": c["channels"], "causal": c["causal"], "renormalize": c["renormalize"]},
        "seanet": {"dimension": c["dimension"], "channels": c["channels"], "causal": c["causal"],
                   "n_filters": c["n_filters"], "n_residual_layers": c["n_residual_layers"],
                   "ratios": list(c["ratios"]), "activation": "ELU", "activation_params": {"alpha": 1.0},
                   "norm": "weight_norm", "norm_params": {}, "kernel_size": 7, "residual_kernel_size": 3,
                   "last_kernel_size": 7, "dilation_base": 2, "pad_mode": "constant", "true_skip": True,
                   "compress": 2, "lstm": c["lstm"], "disable_norm_outer_blocks": 0,
                   "encoder": {}, "decoder": {"trim_right_ratio": 1.0, "final_activation": None,
                                              "final_activation_params": None}},
        "rvq": {"n_q": c["n_q"], "q_dropout": False, "bins": c["bins"], "decay": 0.99, "kmeans_init": False,
                "kmeans_iters": 50, "threshold_ema_dead_code": 2, "orthogonal_reg_weight": 0.0,
                "orthogonal_reg_active_codes_only": False},
    })
