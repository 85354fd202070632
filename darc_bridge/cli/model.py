"""`darc-bridge model`: make and inspect DARC checkpoints.

    darc-bridge model init --preset NAME --out DIR (names: darc_bridge.model.presets.PRESETS) [--from-musicgen ID_OR_DIR]
    darc-bridge model info DIR
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    from darc_bridge.model.presets import PRESET_NAMES, PRESETS

    p = sub.add_parser("model", help="make and inspect DARC model checkpoints")
    msub = p.add_subparsers(dest="model_command", required=True, metavar="ACTION")

    init = msub.add_parser("init", help="write a loadable checkpoint: random weights or an adapted MusicGen",
                           description="Write a DARC checkpoint folder. Without --from-musicgen the weights are "
                                       "random (for tests, demos and the start of training).")
    init.add_argument("--preset", choices=PRESET_NAMES, default="tiny",
                      help="model shape: " + "; ".join(f"{k}: {v[1]}" for k, v in PRESETS.items())
                           + " (default %(default)s)")
    init.add_argument("--out", required=True, help="checkpoint folder to write (its parent must exist)")
    init.add_argument("--from-musicgen", default=None, metavar="ID_OR_DIR",
                      help="start from a MusicGen LM + EnCodec: a hub id (needs a network, e.g. "
                           "facebook/musicgen-small) or a folder holding state_dict.bin and "
                           "compression_state_dict.bin")
    init.add_argument("--seed", type=int, default=0, help="seed of the random initialisation (default %(default)s)")
    init.add_argument("--overwrite", action="store_true", help="replace a checkpoint already in --out")
    init.set_defaults(func=run_init)

    info = msub.add_parser("info", help="print a checkpoint's manifest (config, rhythm settings, version)")
    info.add_argument("checkpoint", help="checkpoint folder")
    info.set_defaults(func=run_info)


def run_init(args: argparse.Namespace) -> int:
    from darc_bridge.model.checkpoint import init_checkpoint

    ckpt = init_checkpoint(args.preset, args.out, from_musicgen=args.from_musicgen, seed=args.seed,
                           overwrite=args.overwrite)
    n = sum(p.numel() for p in ckpt.model.parameters())
    print(f"checkpoint written: {args.out} ({ckpt.config.preset}, {n / 1e6:.1f}M parameters, {ckpt.source})")
    return 0


def run_info(args: argparse.Namespace) -> int:
    from darc_bridge.model.checkpoint import read_manifest

    manifest = read_manifest(args.checkpoint)
    print(json.dumps({k: v for k, v in manifest.items() if k != "files"}, indent=2))
    return 0
