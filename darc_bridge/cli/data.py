"""`darc-bridge data ...`: build training data and evaluation sets."""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("data", help="build training data: synthetic corpus, separation, segments, eval sets",
                       description="Prepare data for training and evaluation (see docs/training.md).")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    s = dsub.add_parser("synth", help="write a synthetic multi-stem corpus (MUSDB layout, known drum onsets)")
    s.add_argument("--out", required=True, help="corpus folder (song_000/, song_001/, ...)")
    s.add_argument("--songs", type=int, default=10, help="number of songs")
    s.add_argument("--duration", type=float, default=30.0, help="seconds per song")
    s.add_argument("--sample-rate", type=int, default=32000)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--kit", default="builtin", help="drum sounds: builtin (the kit engine's), acoustic or electro")
    s.set_defaults(func=run_synth)

    e = dsub.add_parser("evalset", help="write a synthetic evaluation set (mix, prompt, reference drums per case)")
    e.add_argument("--out", required=True, help="eval set folder (case_000/, ...)")
    e.add_argument("--cases", type=int, default=8)
    e.add_argument("--duration", type=float, default=8.0, help="seconds per case")
    e.add_argument("--sample-rate", type=int, default=32000)
    e.add_argument("--seed", type=int, default=1000)
    e.set_defaults(func=run_evalset)

    sep = dsub.add_parser("separate", help="split full mixes into stems with Demucs (MUSDB layout)")
    sep.add_argument("--mixes", required=True, help="a folder of full mixes (searched recursively) or one file")
    sep.add_argument("--out", required=True, help="stems folder: <mix name>/{drums,bass,other,vocals}.wav")
    sep.add_argument("--model", default="htdemucs", help="Demucs model name")
    sep.add_argument("--repo", default=None, help="local folder holding Demucs weights (offline use)")
    sep.add_argument("--device", default="cpu")
    sep.set_defaults(func=run_separate)

    pk = dsub.add_parser("pack", help="pack Hydrogen drumkits' one-shots (tune and held-out kits) into one .npz",
                         description="Read Debian's hydrogen-drumkits (and ~/.hydrogen kits) of the split table in "
                                     "darc_bridge/kits/splits.py into a compact sample pack for `train recipe "
                                     "--pack`, to carry to a machine without the Debian package (a GPU box).")
    pk.add_argument("--out", required=True, help="the .npz to write")
    pk.add_argument("--sample-rate", type=int, default=32000)
    pk.set_defaults(func=run_pack)

    sc = dsub.add_parser("scan", help="list the songs found in a stems folder and how many segments each gives")
    sc.add_argument("--stems", required=True, help="folder of songs (MUSDB18, MoisesDB or generic layout)")
    sc.add_argument("--target", type=float, default=10.0, help="segment length, seconds")
    sc.set_defaults(func=run_scan)


def run_synth(args: argparse.Namespace) -> int:
    from darc_bridge.data.synth_corpus import write_corpus
    from darc_bridge.data.voices import FAMILIES
    from darc_bridge.errors import InputError

    if args.kit != "builtin" and args.kit not in FAMILIES:
        raise InputError(f"unknown kit {args.kit!r}; choose builtin, {', '.join(FAMILIES)}")
    folders = write_corpus(args.out, args.songs, args.duration, args.sample_rate, args.seed, args.kit)
    print(f"{len(folders)} songs in {args.out}")
    return 0


def run_pack(args: argparse.Namespace) -> int:
    from pathlib import Path

    from darc_bridge.data.kit_pack import build_pack, save_pack

    pack = build_pack(args.sample_rate)
    out = save_pack(pack, args.out)
    kits = ", ".join(f"{k.name} ({k.split})" for k in pack.kits)
    print(f"{len(pack.kits)} kits in {out} ({Path(out).stat().st_size / 2**20:.1f} MiB): {kits}")
    return 0


def run_evalset(args: argparse.Namespace) -> int:
    from darc_bridge.data.evalset import write_evalset

    folders = write_evalset(args.out, args.cases, args.duration, args.sample_rate, args.seed)
    print(f"{len(folders)} eval cases in {args.out}")
    return 0


def run_separate(args: argparse.Namespace) -> int:
    from darc_bridge.data.separate import DemucsSeparator, separate_folder

    folders = separate_folder(args.mixes, args.out, DemucsSeparator(args.model, args.device, args.repo))
    print(f"{len(folders)} songs separated into {args.out}")
    return 0


def run_scan(args: argparse.Namespace) -> int:
    from darc_bridge.data.segments import SegmentSettings, cut_segments
    from darc_bridge.data.stems import find_songs, load_song

    settings = SegmentSettings(target_s=args.target, context_min_s=min(5.0, args.target / 2),
                               context_max_s=args.target)
    for song in find_songs(args.stems):
        n = sum(1 for _ in cut_segments(load_song(song), settings))
        print(json.dumps({"song": song.name, "layout": song.layout, "folder": str(song.folder), "segments": n}))
    return 0
