"""The job journal: every accepted job and its state in SQLite (WAL), so a crash loses nothing.

A job is written here before it is acknowledged, and each state change is committed before the
client hears of it; after `kill -9` a restart reads back what was queued or running.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id TEXT UNIQUE NOT NULL,
    kind TEXT NOT NULL,
    state TEXT NOT NULL,
    stage TEXT NOT NULL DEFAULT 'queued',
    fraction REAL NOT NULL DEFAULT 0,
    request TEXT NOT NULL,
    reply_host TEXT NOT NULL,
    reply_port INTEGER NOT NULL,
    stem_path TEXT NOT NULL DEFAULT '',
    midi_path TEXT NOT NULL DEFAULT '',
    duration REAL NOT NULL DEFAULT 0,
    sample_rate INTEGER NOT NULL DEFAULT 0,
    error_code TEXT NOT NULL DEFAULT '',
    error_message TEXT NOT NULL DEFAULT '',
    attempts INTEGER NOT NULL DEFAULT 0,
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
"""

UNFINISHED = ("queued", "running")
FINISHED = ("done", "error", "cancelled")


@dataclass
class JobRecord:
    """One journalled job (generate or record) as stored."""

    job_id: str
    kind: str
    state: str
    request: dict[str, Any]
    reply_host: str
    reply_port: int
    stage: str = "queued"
    fraction: float = 0.0
    stem_path: str = ""
    midi_path: str = ""
    duration: float = 0.0
    sample_rate: int = 0
    error_code: str = ""
    error_message: str = ""
    attempts: int = 0
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)


_COLUMNS = (
    "job_id", "kind", "state", "stage", "fraction", "request", "reply_host", "reply_port", "stem_path",
    "midi_path", "duration", "sample_rate", "error_code", "error_message", "attempts", "created", "updated",
)


class Journal:
    """Thread-safe access to the jobs table (one connection, one lock; writes are tiny)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
        self._db.execute("PRAGMA journal_mode=WAL")
        # WAL + NORMAL: a committed state survives the process being killed (kill -9, crash); only a
        # power cut may lose the last commits. FULL would fsync every state change (~10 ms each).
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def add(self, rec: JobRecord) -> bool:
        """Insert a new job; False (and nothing changed) if the id is already known."""
        values = self._values(rec)
        with self._lock:
            cur = self._db.execute(
                f"INSERT OR IGNORE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                values,
            )
            return cur.rowcount == 1

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        return self._record(row) if row else None

    def update(self, job_id: str, **changes: Any) -> None:
        """Commit a state change (state, stage, paths, error...) for one job."""
        if not changes:
            return
        changes["updated"] = time.time()
        if "request" in changes:
            changes["request"] = json.dumps(changes["request"])
        cols = ", ".join(f"{k} = ?" for k in changes)
        with self._lock:
            self._db.execute(f"UPDATE jobs SET {cols} WHERE job_id = ?", (*changes.values(), job_id))

    def unfinished(self) -> list[JobRecord]:
        """Jobs that were queued or running when the daemon last stopped, oldest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE state IN ('queued', 'running') ORDER BY seq"
            ).fetchall()
        return [self._record(r) for r in rows]

    def all(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs ORDER BY seq").fetchall()
        return [self._record(r) for r in rows]

    @staticmethod
    def _values(rec: JobRecord) -> tuple:
        d = {k: getattr(rec, k) for k in _COLUMNS}
        d["request"] = json.dumps(rec.request)
        return tuple(d[k] for k in _COLUMNS)

    @staticmethod
    def _record(row: tuple) -> JobRecord:
        d = dict(zip(_COLUMNS, row, strict=True))
        d["request"] = json.loads(d["request"])
        return JobRecord(**d)
