"""Daemon settings in one place (from the `serve` command line, or built directly by tests/benchmarks)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from darc_bridge.audio import AudioLimits


def default_state_dir() -> Path:
    """XDG state folder: the journal and logs outlive any one DAW session."""
    base = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(base) / "darc-bridge"


@dataclass
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 9001
    output_dir: Path = field(default_factory=lambda: default_state_dir() / "stems")
    state_dir: Path = field(default_factory=default_state_dir)
    queue_size: int = 16
    allow_network: bool = False
    token: str | None = None
    allow_clients: list[str] = field(default_factory=list)
    allow_dirs: list[Path] = field(default_factory=list)
    limits: AudioLimits = field(default_factory=AudioLimits)
    warmup: bool = True
    log_file: Path | None = None  # default: <state_dir>/daemon.log
    max_attempts: int = 3  # a job started this many times (clean stops in between) is given up
    keep_days: float = 30.0  # finished jobs older than this are pruned from the journal at start; 0 = keep all

    @property
    def journal_path(self) -> Path:
        return Path(self.state_dir) / "jobs.sqlite3"
