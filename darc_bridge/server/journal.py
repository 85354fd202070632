"""The job journal: every accepted job and its state in SQLite (WAL), so a crash loses nothing.

A job is written here before it is acknowledged, and each state change is committed before the
client hears of it; after `kill -9` a restart reads back what was queued or running. Before its
files appear, a job records their identities (device, inode, size), so recovery removes or adopts
only files it can prove it wrote. Finished jobs older than a setting are pruned at start.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from darc_bridge.errors import DarcError

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
    tag TEXT NOT NULL DEFAULT '',
    files TEXT NOT NULL DEFAULT '[]',
    created REAL NOT NULL,
    updated REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS jobs_state ON jobs(state);
"""
# Columns added after the first release: (name, declaration) added to older journals at open.
ADDED_COLUMNS = (("tag", "TEXT NOT NULL DEFAULT ''"), ("files", "TEXT NOT NULL DEFAULT '[]'"))

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
    tag: str = ""  # unique to the current attempt: its temporary files hold it (crash recovery)
    files: list[dict[str, Any]] = field(default_factory=list)  # identities of the files it wrote
    created: float = field(default_factory=time.time)
    updated: float = field(default_factory=time.time)


_COLUMNS = (
    "job_id", "kind", "state", "stage", "fraction", "request", "reply_host", "reply_port", "stem_path",
    "midi_path", "duration", "sample_rate", "error_code", "error_message", "attempts", "tag", "files", "created", "updated",
)


class JournalError(DarcError):
    """The journal cannot be read or written (disk full, read-only or corrupt state folder)."""

    code = "journal_error"


class Journal:
    """Thread-safe access to the jobs table (one connection, one lock; writes are tiny).

    A change that cannot be committed (disk full...) raises JournalError, and is still kept in
    memory, so the daemon answers `/darc/status` with what really happened to the job."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        self._unsaved: dict[str, dict[str, Any]] = {}
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(str(self.path), check_same_thread=False, isolation_level=None, timeout=10)
            self._db.execute("PRAGMA journal_mode=WAL")
            # WAL + NORMAL: a committed state survives the process being killed (kill -9, crash); only a
            # power cut may lose the last commits. FULL would fsync every state change (~10 ms each).
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.executescript(SCHEMA)
            have = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            for name, decl in ADDED_COLUMNS:
                if name not in have:
                    self._db.execute(f"ALTER TABLE jobs ADD COLUMN {name} {decl}")
            self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs LIMIT 1").fetchall()
        except (sqlite3.Error, OSError) as exc:
            raise JournalError(f"the job journal {self.path} cannot be opened: {exc} (is the state folder "
                               f"read-only or the file corrupt? move it away to start afresh)") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _error(self, exc: BaseException) -> JournalError:
        return JournalError(f"the job journal {self.path} cannot be written: {exc} (is the disk holding "
                            f"the state folder full or read-only?)")

    def add(self, rec: JobRecord) -> bool:
        """Insert a new job; False (and nothing changed) if the id is already known."""
        values = self._values(rec)
        with self._lock:
            try:
                cur = self._db.execute(
                    f"INSERT OR IGNORE INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                    values,
                )
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            return cur.rowcount == 1

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
            unsaved = dict(self._unsaved.get(job_id, {}))
        if not row:
            return None
        rec = self._record(row)
        for k, v in unsaved.items():
            setattr(rec, k, v)
        return rec

    def update(self, job_id: str, **changes: Any) -> None:
        """Commit a state change (state, stage, paths, error...) for one job; JournalError if it cannot."""
        if not changes:
            return
        changes["updated"] = time.time()
        with self._lock:
            pending = {**self._unsaved.pop(job_id, {}), **changes}
            stored = {k: json.dumps(v) if k in ("request", "files") else v for k, v in pending.items()}
            cols = ", ".join(f"{k} = ?" for k in stored)
            try:
                self._db.execute(f"UPDATE jobs SET {cols} WHERE job_id = ?", (*stored.values(), job_id))
            except sqlite3.Error as exc:
                self._unsaved[job_id] = pending
                raise self._error(exc) from None

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

    def prune(self, older_than_days: float) -> int:
        """Remove finished jobs last changed more than `older_than_days` ago; returns how many."""
        cutoff = time.time() - older_than_days * 86400.0
        with self._lock:
            try:
                cur = self._db.execute(
                    f"DELETE FROM jobs WHERE state IN ({', '.join('?' * len(FINISHED))}) AND updated < ?",
                    (*FINISHED, cutoff),
                )
            except sqlite3.Error as exc:
                raise self._error(exc) from None
            return cur.rowcount

    @staticmethod
    def _values(rec: JobRecord) -> tuple:
        d = {k: getattr(rec, k) for k in _COLUMNS}
        d["request"] = json.dumps(rec.request)
        d["files"] = json.dumps(rec.files)
        return tuple(d[k] for k in _COLUMNS)

    @staticmethod
    def _record(row: tuple) -> JobRecord:
        d = dict(zip(_COLUMNS, row, strict=True))
        d["request"] = json.loads(d["request"])
        d["files"] = json.loads(d["files"] or "[]")
        return JobRecord(**d)
