"""`darc-bridge train`: fine-tune DARC, build its token cache, or train a codec (docs/training.md)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from darc_bridge.errors import InputError

ACTIONS = ("run", "cache", "codec")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "train", help="fine-tune DARC (run), build its token cache (cache) or train a codec (codec)",
        description="run: jump fine-tuning with adaptive in-attention (default) or a full / STAGE-only fine-tune; "
                    "--data is a token cache or a stems folder (cached into OUT/cache first). Restarting the same "
                    "command resumes from OUT/latest. cache: encode a stems folder into a token cache. codec: "
                    "train EnCodec from scratch on an audio folder and write a checkpoint. Multi-GPU: torchrun "
                    "--nproc_per_node N -m darc_bridge.cli.main train ...")
    p.add_argument("action", nargs="?", choices=ACTIONS, default="run", help="what to do (default: run)")
    p.add_argument("--data", required=True, help="run: token cache or stems folder; cache: stems folder; "
                                                 "codec: audio folder")
    p.add_argument("--out", required=True, help="run: run folder; cache: cache folder; codec: checkpoint folder")
    p.add_argument("--init", default=None, help="checkpoint to start from (omit: random weights of --preset)")
    p.add_argument("--preset", default="tiny", help="model preset when there is no --init: tiny or small")
    p.add_argument("--mode", choices=("jump", "full", "stage"), default="jump",
                   help="jump: jump fine-tuning + in-attention; full: every weight; stage: every weight, no rhythm")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (run: 1000, codec: 2000)")
    p.add_argument("--batch-size", type=int, default=None, help="per process (run: 2, codec: 8)")
    p.add_argument("--grad-accum", type=int, default=4)
    p.add_argument("--lr", type=float, default=None, help="learning rate (run: 1e-5, codec: 3e-4)")
    p.add_argument("--warmup-steps", type=int, default=0)
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--min-s", type=float, default=5.0, help="shortest training crop, seconds")
    p.add_argument("--max-s", type=float, default=10.0, help="longest training crop, seconds")
    p.add_argument("--target-s", type=float, default=10.0, help="segment length when caching, seconds")
    p.add_argument("--variants", type=int, default=1, help="augmented copies per segment when caching")
    p.add_argument("--no-context-augment", action="store_true", help="no speed/pitch augmentation when caching")
    p.add_argument("--segment-s", type=float, default=1.0, help="codec: training crop, seconds")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def _init_checkpoint(args: argparse.Namespace, out: Path) -> str:
    """The checkpoint to start from: --init, or a random one of --preset saved once under OUT/init."""
    if args.init:
        return args.init
    from darc_bridge.model.checkpoint import random_checkpoint, save_checkpoint

    init = out / "init"
    if not (init / "darc.json").exists():
        out.mkdir(parents=True, exist_ok=True)
        save_checkpoint(random_checkpoint(args.preset, seed=args.seed), init, overwrite=True)
    return str(init)


def _build_cache(args: argparse.Namespace, stems: str, cache: Path, init: str) -> None:
    from darc_bridge.data.segments import SegmentSettings
    from darc_bridge.model.checkpoint import load_checkpoint
    from darc_bridge.train.cache import CacheSettings, build_cache

    ckpt = load_checkpoint(init)
    segments = SegmentSettings(target_s=args.target_s, context_min_s=min(args.min_s, args.target_s),
                               context_max_s=min(args.max_s, args.target_s))
    build_cache(stems, cache, ckpt.codec, ckpt.rhythm_settings, segments,
                CacheSettings(variants=args.variants, context_augment=not args.no_context_augment, seed=args.seed),
                beat=ckpt.config.beat_conditioning)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("audiocraft").setLevel(logging.WARNING)  # it logs every new sequence length
    out = Path(args.out)
    if args.action == "codec":
        from darc_bridge.train.codec import CodecTrainSettings, train_codec

        s = CodecTrainSettings(steps=args.steps or 2000, batch_size=args.batch_size or 8, segment_s=args.segment_s,
                               lr=args.lr or 3e-4, seed=args.seed, device=args.device)
        result = train_codec(args.data, out, s, init=args.init, preset=args.preset)
        print(f"codec trained: loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f}; checkpoint {out}")
        return 0
    from darc_bridge.train.cache import is_cache

    if args.action == "cache":
        _build_cache(args, args.data, out, _init_checkpoint(args, out.parent / f"{out.name}-init"))
        print(f"token cache written to {out}")
        return 0
    from darc_bridge.train.loop import TrainSettings, latest_step_dir, train

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and (not is_cache(args.data) or not args.init):
        raise InputError("under torchrun, pass a token cache as --data and a checkpoint as --init (build them first "
                         "in one process: darc-bridge train cache --data STEMS --init CKPT --out CACHE)")
    start = _init_checkpoint(args, out)
    cache = args.data
    if not is_cache(cache):
        cache = str(out / "cache")
        _build_cache(args, args.data, Path(cache), start)  # resumes a half-built cache
    init = None if latest_step_dir(out) else start
    settings = TrainSettings(steps=args.steps or 1000, batch_size=args.batch_size or 2, grad_accum=args.grad_accum,
                             lr=args.lr or 1e-5, warmup_steps=args.warmup_steps, mode=args.mode,
                             min_s=args.min_s, max_s=args.max_s, save_every=args.save_every, seed=args.seed,
                             device=args.device)
    result = train(cache, out, init, settings, preset=args.preset)
    if result["rank"] != 0:
        return 0
    if result["losses"]:
        print(f"trained steps {result['start_step']}..{result['step']}: loss {result['losses'][0]:.3f} -> "
              f"{result['losses'][-1]:.3f}; checkpoint {result['latest']}")
    else:
        print(f"nothing to do: already at step {result['step']}; checkpoint {result['latest']}")
    return 0
