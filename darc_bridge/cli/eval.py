"""`darc-bridge eval`: generate for every case of an eval set and write a report with baselines."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="measure rhythm adherence and fit on an eval set (markdown + JSON + plots)",
                       description="Run the engine (and its baselines: the kit, rhythm off) on every case of "
                                   "an eval set folder and write REPORT_DIR/report.md, report.json, plots/ and "
                                   "stems/. Eval set format: docs/evaluation.md.")
    p.add_argument("--set", required=True, dest="set_dir", help="eval set folder (make one: darc-bridge data evalset)")
    p.add_argument("--out", required=True, help="report folder")
    p.add_argument("--engine", choices=("kit", "darc"), default="kit")
    p.add_argument("--checkpoint", default=None, help="DARC checkpoint folder (adds darc and darc-rhythm-off rows)")
    p.add_argument("--kit-dir", default=None, help="a folder of drum samples for the kit engine")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from darc_bridge.eval.report import SUMMARY_KEYS
    from darc_bridge.eval.runner import default_systems, run_eval

    systems = default_systems(args.checkpoint, args.engine, args.kit_dir)
    report = run_eval(args.set_dir, args.out, systems, seed=args.seed)
    print(f"{'system':<18}" + "".join(f"{k:>15}" for k in SUMMARY_KEYS))
    for name, s in report["summary"].items():
        cells = "".join(f"{s[k]:>15.3f}" if s[k] is not None else f"{'-':>15}" for k in SUMMARY_KEYS)
        print(f"{name:<18}{cells}")
    print(f"report: {args.out}/report.md")
    return 0
