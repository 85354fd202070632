"""`darc-bridge generate`: one drum stem for a region of a mix, following a rhythm prompt."""

from __future__ import annotations

import argparse
import json
import sys

from tqdm import tqdm

from darc_bridge.audio import AudioLimits
from darc_bridge.cli.options import (
    add_engine_options,
    add_generation_options,
    engine_from_args,
    params_from_args,
)
from darc_bridge.pipeline import run_job
from darc_bridge.progress import OverallProgress


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="make a drum stem for a mix region that follows a rhythm prompt",
                       description="Make a drum stem for a region of a drumless mix, following a rhythm prompt "
                                   "(beatbox, tapping, a loop). A short prompt is looped over the region; a "
                                   "longer one is cut at the region's end.")
    p.add_argument("--mix", required=True, help="the drumless mix (WAV, FLAC, OGG, MP3)")
    p.add_argument("--prompt", default=None, help="the rhythm prompt recording (omit: play a groove on the beat grid)")
    p.add_argument("--out", required=True, help="output drum stem (32-bit float WAV)")
    p.add_argument("--midi", default=None, help="also write the rhythm that was played as a General MIDI file")
    p.add_argument("--stems", choices=("mix", "split"), default="mix",
                   help="split: also write one stem per kit piece that plays beside --out X.wav (X.kick.wav, "
                        "X.snare.wav, X.hats.wav, X.toms.wav, X.cymbals.wav); kit engine (default %(default)s)")
    p.add_argument("--start", type=float, default=None, help="region start in the mix, seconds")
    p.add_argument("--end", type=float, default=None, help="region end in the mix, seconds")
    p.add_argument("--max-duration", type=float, default=AudioLimits.max_duration_s,
                   help="refuse regions longer than this (seconds)")
    add_generation_options(p)
    add_engine_options(p)
    p.add_argument("--json", action="store_true", help="print the result as one JSON object")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar, warnings only")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    params = params_from_args(args)
    engine = engine_from_args(args)
    overall = OverallProgress()
    bar = tqdm(total=100, desc="load", unit="%", file=sys.stderr, disable=args.quiet, mininterval=0.2,
               bar_format="drums {percentage:3.0f}%|{bar}| {desc}")

    def progress(stage: str, fraction: float) -> None:
        value = overall.update(stage, fraction)
        bar.set_description_str(stage, refresh=False)
        bar.update(round(value * 100) - bar.n)

    try:
        outputs = run_job(
            engine, args.mix, args.prompt, args.out, params,
            midi_path=args.midi, start=args.start, end=args.end,
            limits=AudioLimits(max_duration_s=args.max_duration), progress=progress, stems=args.stems,
        )
    finally:
        bar.close()
    result = {
        "stem_path": str(outputs.stem_path),
        "midi_path": str(outputs.midi_path) if outputs.midi_path else "",
        "duration": round(outputs.duration, 4),
        "sample_rate": outputs.sample_rate,
        "stems": {piece: str(path) for piece, path in outputs.pieces.items()},
        **{k: v for k, v in outputs.info.items() if isinstance(v, int | float | str)},
    }
    if args.json:
        print(json.dumps(result))
    elif not args.quiet:
        print(f"drum stem: {outputs.stem_path} ({outputs.duration:.2f}s, {outputs.sample_rate} Hz)")
        if outputs.midi_path:
            print(f"rhythm MIDI: {outputs.midi_path}")
        for piece, path in outputs.pieces.items():
            print(f"{piece} stem: {path}")
    return 0
