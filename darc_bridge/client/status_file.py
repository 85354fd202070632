"""The client's JSON status file, for hosts without sockets (REAPER's Lua polls it).

Written atomically (temporary name, then rename), so a reader never sees half an object.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from darc_bridge.audio.io import atomic_write

FIELDS = ("job_id", "state", "stage", "fraction", "stem_path", "midi_path", "error_code", "error_message",
          "stems")  # issue 14: {"kick": path, ...}, {} when mix only


class StatusFile:
    """Keeps one JSON object up to date; skips writes that would change nothing but the time."""

    def __init__(self, path: str | Path | None) -> None:
        self.path = Path(path) if path else None
        self.state: dict[str, Any] = {k: "" for k in FIELDS}
        self.state["fraction"] = 0.0
        self.state["stems"] = {}  # issue 14
        self._last_written: dict[str, Any] | None = None

    def update(self, **changes: Any) -> None:
        for k, v in changes.items():
            if k in FIELDS or k in ("duration", "sample_rate", "queue_position"):
                self.state[k] = v
        if self.path is None:
            return
        snapshot = dict(self.state)
        if snapshot == self._last_written:
            return
        self._last_written = snapshot
        text = json.dumps({**snapshot, "updated": time.time()})

        def _write(tmp: str) -> None:
            Path(tmp).write_text(text + "\n", encoding="utf-8")

        atomic_write(self.path, _write, overwrite=True, suffix=".json")
