"""`darc-bridge` command line: one subcommand module per part, each with register(subparsers)."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from darc_bridge import __version__
from darc_bridge.errors import DarcError

# Subcommand modules under darc_bridge.cli; each defines register(subparsers) and sets args.func.
COMMANDS = [
    "generate",
    "kits",
    "rhythm",
    "serve",
    "client",
    "data",
    "eval",
    "train",
    "model",
]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="darc-bridge",
        description="Drum accompaniment that fits your song and follows your rhythm.",
    )
    parser.add_argument("--version", action="version", version=f"darc-bridge {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(f"darc_bridge.cli.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else (logging.WARNING if getattr(args, "quiet", False) else logging.INFO),
        format="%(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    try:
        return int(args.func(args) or 0)
    except DarcError as exc:
        print(f"darc-bridge: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("darc-bridge: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
