"""`make bench`: run every section's cases and print one table.

Each section module defines cases() -> list[BenchRow] (running its work through run_isolated).
"""

from __future__ import annotations

import argparse
import importlib
import logging
import platform
import time

from darc_bridge.bench.common import format_table

SECTIONS = ["kit", "model", "server", "rhythm"]


def main() -> None:
    parser = argparse.ArgumentParser(description="darc-bridge benchmarks")
    parser.add_argument("--only", nargs="*", default=None, help="sections to run (default: all)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for name in SECTIONS:
        if args.only and name not in args.only:
            continue
        rows.extend(importlib.import_module(f"darc_bridge.bench.{name}").cases())
    print(f"darc-bridge benchmarks, {time.strftime('%Y-%m-%d')}, {platform.machine()}, {platform.processor() or ''}")
    print(format_table(rows))


if __name__ == "__main__":
    main()
