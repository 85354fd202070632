"""Command-line options shared by the commands that generate (generate, eval, client)."""

from __future__ import annotations

import argparse

from darc_bridge.engines import ENGINE_NAMES, GenerationParams
from darc_bridge.errors import InputError


def add_generation_options(p: argparse.ArgumentParser) -> None:
    """The knobs of GenerationParams, with the same names everywhere."""
    d = GenerationParams()
    p.add_argument("--temperature", type=float, default=d.temperature,
                   help="sampling temperature; kit engine: humanisation amount, 0 = deterministic (default %(default)s)")
    p.add_argument("--rhythm-strength", type=float, default=d.rhythm_strength,
                   help="0 ignores the prompt, 1 follows it, >1 pushes adherence (model) (default %(default)s)")
    p.add_argument("--quantize", type=float, default=d.quantize,
                   help="0..1: how far hits snap toward the mix's beat grid (default %(default)s)")
    p.add_argument("--seed", type=int, default=None, help="same seed + same input = same stem")
    p.add_argument("--sample-rate", type=int, default=None, help="stem sample rate (default: the mix's)")


def add_engine_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--engine", choices=ENGINE_NAMES, default="kit",
                   help="kit: built-in drum kit (no weights needed); darc: the DARC model (needs --checkpoint)")
    p.add_argument("--checkpoint", default=None, help="DARC checkpoint directory (engine darc; default: the shipped models/darc-mini)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda (engine darc)")
    p.add_argument("--kit", "--kit-dir", dest="kit", default=None, metavar="NAME|PATH",
                   help="kit engine: a kit name from `darc-bridge kits`, or a path to a folder of WAVs, a Hydrogen "
                        "drumkit.xml (or its folder), an .sfz or an .sf2 file (default: built-in kit)")
    p.add_argument("--top-k", type=int, default=None, help="darc: top-k sampling, 0 = off (default: the checkpoint's)")
    p.add_argument("--top-p", type=float, default=None, help="darc: nucleus sampling, 0 = off")
    p.add_argument("--cfg-coef", type=float, default=None, help="darc: classifier-free guidance coefficient (default: the checkpoint's)")


def params_from_args(args: argparse.Namespace) -> GenerationParams:
    extra = {k: getattr(args, k) for k in ("top_k", "top_p", "cfg_coef") if getattr(args, k, None) is not None}
    return GenerationParams(
        temperature=args.temperature,
        rhythm_strength=args.rhythm_strength,
        seed=args.seed,
        quantize=args.quantize,
        output_sample_rate=args.sample_rate,
        extra=extra,
    ).validate()


def check_engine_options(args: argparse.Namespace) -> None:
    """Refuse an option of the other engine: it would be silently ignored."""
    if args.engine == "darc" and getattr(args, "kit", None):
        raise InputError("--kit picks the kit engine's drum kit; the darc engine makes its own drum sound "
                         "(drop --kit, or use --engine kit)")
    if args.engine == "kit" and getattr(args, "checkpoint", None):
        raise InputError("--checkpoint is a DARC model; it needs --engine darc")


def engine_from_args(args: argparse.Namespace):
    """Build the engine the options ask for (errors name the missing piece)."""
    from darc_bridge.engines import create_engine

    check_engine_options(args)
    if args.engine == "darc":
        from darc_bridge.model.shipped import default_checkpoint

        return create_engine("darc", checkpoint=args.checkpoint or default_checkpoint(), device=args.device)
    return create_engine("kit", kit=args.kit)
