"""The client's side of kits and split stems (issue 14): `client kits`, the `--stems`/`--kit` job
options (the piece/path pairs after `/darc/done` are read in client.job_state).

`client kits --json` prints the same objects as `darc-bridge kits --json` so the DAW menus read one
shape. The daemon sends names only; for a daemon on this machine the format and path come from the
local list when it holds the same name (else they are left out).
"""

from __future__ import annotations

import argparse
import json
from typing import Any

from darc_bridge.client.client import DarcClient, _is_loopback


def add_generate_flags(g: argparse.ArgumentParser) -> None:
    g.add_argument("--stems", choices=("mix", "split"), default=None,
                   help="split: also one stem per kit piece (kick, snare, hats, toms, cymbals)")
    g.add_argument("--kit", default=None, metavar="NAME|PATH",
                   help="kit for this job: a name from `client kits`, or an absolute path (default: the daemon's)")


def add_kits_command(sub: argparse._SubParsersAction, parents: list[argparse.ArgumentParser]) -> None:
    k = sub.add_parser("kits", help="the kits the daemon can play (names for --kit)", parents=parents)
    k.add_argument("--json", action="store_true", help='a JSON list of {"name", "format", "path"} objects')


def generate_options(args: argparse.Namespace) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if getattr(args, "stems", None):
        opts["stems"] = args.stems
    if getattr(args, "kit", None):
        opts["kit"] = args.kit
    return opts


def run_kits(client: DarcClient, as_json: bool) -> int:
    names = client.kits()
    if not as_json:
        print("\n".join(names))
        return 0
    local: dict[str, dict[str, str]] = {}
    if _is_loopback(client.server[0]):
        from darc_bridge.kits.library import list_kits

        local = {k.name: k.to_dict() for k in list_kits()}
    print(json.dumps([local.get(n, {"name": n}) for n in names]))
    return 0
