"""`darc-bridge train`: fine-tune DARC, build its token cache, train a codec, or run the whole recipe
(docs/training.md)."""

from __future__ import annotations

import argparse
import logging
import os
from pathlib import Path

from darc_bridge.errors import InputError

ACTIONS = ("run", "cache", "codec", "recipe")


def register(sub: argparse._SubParsersAction) -> None:
    from darc_bridge.model.presets import PRESET_NAMES

    p = sub.add_parser(
        "train", help="fine-tune DARC (run), build its token cache (cache), train a codec (codec) or run the "
                      "whole recipe (recipe)",
        description="run: train the LM of --init on a token cache or a stems folder (cached into OUT/cache first); "
                    "a random LM trains in full mode with warm-up and cosine decay, trained or MusicGen weights by "
                    "jump fine-tuning at 1e-5 (override with --mode/--lr/--schedule). Restarting the same command "
                    "resumes from OUT/latest. cache: encode a stems folder into a token cache. codec: train EnCodec "
                    "from scratch on an audio folder and write a checkpoint. recipe: data, codec, cache, STAGE base, "
                    "DARC and the eval gate in one resumable command (make model). Multi-GPU: torchrun "
                    "--nproc_per_node N -m darc_bridge.train ...")
    p.add_argument("action", nargs="?", choices=ACTIONS, default="run", help="what to do (default: run)")
    p.add_argument("--data", default=None, help="run: token cache or stems folder; cache: stems folder; "
                                                "codec: audio folder; recipe: not used")
    p.add_argument("--out", default=None, help="run: run folder; cache: cache folder; codec: checkpoint folder; "
                                               "recipe: work folder (default build/recipe-PRESET-SCALE)")
    p.add_argument("--init", default=None, help="checkpoint to start from (its codec must be trained)")
    p.add_argument("--preset", default=None,
                   help=f"model preset when there is no --init ({', '.join(PRESET_NAMES)}; default tiny, recipe: mini)")
    p.add_argument("--mode", choices=("jump", "full", "stage"), default=None,
                   help="jump: jump fine-tuning + in-attention; full: every weight; stage: every weight, no rhythm "
                        "(default: full for a random LM, jump otherwise)")
    p.add_argument("--steps", type=int, default=None, help="optimizer steps (run: 1000, codec: 2000)")
    p.add_argument("--batch-size", type=int, default=None, help="per process (run: 2, codec: 8)")
    p.add_argument("--grad-accum", type=int, default=4)
    p.add_argument("--lr", type=float, default=None,
                   help="learning rate (run: 5e-4 for a random LM, 1e-5 otherwise; codec: 3e-4)")
    p.add_argument("--warmup-steps", type=int, default=None, help="linear warm-up (random LM: 5%% of the steps)")
    p.add_argument("--schedule", choices=("constant", "cosine"), default=None,
                   help="learning-rate schedule after warm-up (random LM: cosine, otherwise constant)")
    p.add_argument("--rhythm-dropout", type=float, default=0.5, help="share of rows whose rhythm is dropped")
    p.add_argument("--context-dropout", type=float, default=0.1, help="share of rows whose mix is dropped")
    p.add_argument("--cfg-dropout", type=float, default=0.2,
                   help="share of rows with both dropped (the null rows of classifier-free guidance)")
    p.add_argument("--save-every", type=int, default=500)
    p.add_argument("--min-s", type=float, default=5.0, help="shortest training crop, seconds")
    p.add_argument("--max-s", type=float, default=None,
                   help="longest training crop, seconds (default and maximum: the model's window)")
    p.add_argument("--target-s", type=float, default=None,
                   help="segment length when caching, seconds (default: the model's window)")
    p.add_argument("--variants", type=int, default=1, help="augmented copies per segment when caching")
    p.add_argument("--no-context-augment", action="store_true", help="no speed/pitch augmentation when caching")
    p.add_argument("--segment-s", type=float, default=1.0, help="codec: training crop, seconds")
    p.add_argument("--decoder-only", action="store_true",
                   help="codec: train only the decoder of --init (encoder and codebooks frozen: every audio keeps its "
                        "tokens, so the LM of --init stays valid and the output is a usable model)")
    p.add_argument("--adversarial-weight", type=float, default=0.0,
                   help="codec: weight of EnCodec's adversarial (hinge) loss from an MS-STFT discriminator, 0: off "
                        "(works with --decoder-only; measured on the mini decoder in docs/training.md: no steady gain)")
    p.add_argument("--feature-weight", type=float, default=0.0,
                   help="codec: weight of the discriminator's feature-matching loss, 0: off")
    p.add_argument("--balanced", action="store_true",
                   help="codec: weigh the losses by their share of the gradient on the decoded audio "
                        "(audiocraft's Balancer, as EnCodec), not as raw multipliers")
    p.add_argument("--snapshot-every", type=int, default=0,
                   help="codec: also save the model so far every this many steps, in OUT.snapshot")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:N")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--scale", default="full", help="recipe: smoke (CI, minutes on a CPU), cpu or full (one GPU)")
    p.add_argument("--pack", default=None,
                   help="recipe: a sample pack .npz of the kits (default: build it from Debian's hydrogen-drumkits "
                        "into the work folder); carry it to machines without the Debian package")
    p.add_argument("--resume-from", default=None,
                   help="recipe: continue from a finished model (e.g. models/darc-mini): its codec and LM are reused")
    p.add_argument("--budget-min", type=float, default=None,
                   help="recipe: wall-time budget of this run in minutes, split between the training stages as "
                        "the scale's own budget is (default: the scale's); a stage out of time saves and stops, and "
                        "a rerun continues DARC")
    p.add_argument("--base-steps", type=int, default=None,
                   help="recipe: STAGE base steps (default: the scale's); fewer leaves DARC more of a time budget "
                        "(the base is final once DARC starts)")
    p.add_argument("--darc-steps", type=int, default=None,
                   help="recipe: DARC steps in all (default: the scale's); more than a finished run trained continues "
                        "it from its latest checkpoint, on the same cosine schedule stretched to the new length")
    p.add_argument("--decoder-steps", type=int, default=None,
                   help="recipe: decoder-only codec steps in all (default: the scale's); more continues the decoder")
    p.add_argument("--ship", default=None,
                   help="recipe: where a model that passes the gate is written (default models/darc-mini)")
    p.set_defaults(func=run)


def _need(args: argparse.Namespace, *names: str) -> None:
    missing = [f"--{n.replace('_', '-')}" for n in names if getattr(args, n) is None]
    if missing:
        raise InputError(f"train {args.action} needs {' and '.join(missing)}")


def _init_checkpoint(args: argparse.Namespace, out: Path) -> str:
    """The checkpoint to start from: --init, or a random one of --preset saved once under OUT/init
    (training then refuses it for its random codec, with a message naming `train codec`)."""
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
    target = args.target_s or ckpt.config.window_s
    max_s = min(args.max_s or target, target)
    segments = SegmentSettings(target_s=target, context_min_s=min(args.min_s, max_s), context_max_s=max_s)
    build_cache(stems, cache, ckpt.codec, ckpt.rhythm_settings, segments,
                CacheSettings(variants=args.variants, context_augment=not args.no_context_augment, seed=args.seed),
                beat=ckpt.config.beat_conditioning)


def run(args: argparse.Namespace) -> int:
    logging.getLogger("audiocraft").setLevel(logging.WARNING)  # it logs every new sequence length
    if args.preset is None:
        args.preset = "mini" if args.action == "recipe" else "tiny"
    if args.action == "recipe":
        from darc_bridge.train.recipe import run_recipe_cli

        return run_recipe_cli(args)
    _need(args, "data", "out")
    out = Path(args.out)
    if args.action == "codec":
        from darc_bridge.train.codec import CodecTrainSettings, train_codec

        s = CodecTrainSettings(steps=args.steps or 2000, batch_size=args.batch_size or 8, segment_s=args.segment_s,
                               lr=args.lr or 3e-4, seed=args.seed, device=args.device,
                               decoder_only=args.decoder_only, snapshot_every=args.snapshot_every,
                               adversarial_weight=args.adversarial_weight, feature_weight=args.feature_weight,
                               balanced=args.balanced)
        result = train_codec(args.data, out, s, init=args.init, preset=args.preset)
        print(f"codec trained: loss {result['losses'][0]:.3f} -> {result['losses'][-1]:.3f}; checkpoint {out}")
        return 0
    from darc_bridge.train.cache import is_cache

    if args.action == "cache":
        _build_cache(args, args.data, out, _init_checkpoint(args, out.parent / f"{out.name}-init"))
        print(f"token cache written to {out}")
        return 0
    from darc_bridge.model.checkpoint import load_checkpoint
    from darc_bridge.train.loop import latest_step_dir, refuse_random_codec, settings_for, train

    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and (not is_cache(args.data) or not args.init):
        raise InputError("under torchrun, pass a token cache as --data and a checkpoint as --init (build them first "
                         "in one process: darc-bridge train cache --data STEMS --init CKPT --out CACHE)")
    start = _init_checkpoint(args, out)
    start_ckpt = load_checkpoint(start)
    refuse_random_codec(start_ckpt)  # before a cache is built with it
    settings = settings_for(start_ckpt, args.steps or 1000, mode=args.mode, lr=args.lr,
                            warmup_steps=args.warmup_steps, schedule=args.schedule, batch_size=args.batch_size or 2,
                            grad_accum=args.grad_accum, min_s=args.min_s, max_s=args.max_s,
                            rhythm_dropout=args.rhythm_dropout, context_dropout=args.context_dropout,
                            cfg_dropout=args.cfg_dropout, save_every=args.save_every, seed=args.seed,
                            device=args.device)
    cache = args.data
    if not is_cache(cache):
        cache = str(out / "cache")
        _build_cache(args, args.data, Path(cache), start)  # resumes a half-built cache
    init = None if latest_step_dir(out) else start
    result = train(cache, out, init, settings, preset=args.preset)
    if result["rank"] != 0:
        return 0
    if result["losses"]:
        print(f"trained steps {result['start_step']}..{result['step']} ({settings.mode}, lr {settings.lr:g}, "
              f"{100 * result['rhythm_share']:.0f}% of rows with rhythm): loss {result['losses'][0]:.3f} -> "
              f"{result['losses'][-1]:.3f}; checkpoint {result['latest']}")
    else:
        print(f"nothing to do: already at step {result['step']}; checkpoint {result['latest']}")
    return 0
