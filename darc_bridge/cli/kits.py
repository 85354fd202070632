"""`darc-bridge kits`: the kits `--kit NAME` accepts, one per line (or as JSON for the DAW menus).

The same list answers the daemon's `/darc/kits`, so a kit menu in Live or REAPER never offers a
name the engine cannot resolve.
"""

from __future__ import annotations

import argparse
import json

from darc_bridge.kits.library import list_kits, user_kit_dir


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("kits", help="list the drum kits --kit can name",
                       description="List the drum kits found: builtin, your kit folder "
                                   f"({user_kit_dir()}, or $DARC_BRIDGE_KITS), Hydrogen's kit folders and "
                                   "the SoundFonts installed. Pass a name (or any kit path) to --kit.")
    p.add_argument("--json", action="store_true",
                   help='print a JSON list of {"name", "format", "path"} objects')
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kits = list_kits()
    if args.json:
        print(json.dumps([k.to_dict() for k in kits]))
        return 0
    width = max(len(k.name) for k in kits)
    for k in kits:
        print(f"{k.name:<{width}}  {k.format:<8}  {k.path}".rstrip())
    return 0
