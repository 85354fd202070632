"""`python -m darc_bridge.train ...` = `darc-bridge train ...`: a light entry point for torchrun,
which starts one such process per GPU."""

from __future__ import annotations

import argparse
import logging
import sys

from darc_bridge.cli import train as train_cli
from darc_bridge.errors import DarcError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m darc_bridge.train")
    train_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["train", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    try:
        return int(args.func(args) or 0)
    except DarcError as exc:
        print(f"darc-bridge train: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
