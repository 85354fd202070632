"""One worker thread over a bounded queue: the GPU (or the audio device) is one resource.

Jobs run strictly one at a time in arrival order. Each has a cancel token; progress from the
engine's stages is mapped onto one whole-job fraction (darc_bridge.progress).
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from darc_bridge.engines import CancelToken
from darc_bridge.progress import OverallProgress

log = logging.getLogger(__name__)

@dataclass
class Task:
    """A job in the worker's hands: what to run, its cancel token and its live progress."""

    job_id: str
    payload: Any
    cancel: CancelToken = field(default_factory=CancelToken)
    progress: OverallProgress = field(default_factory=OverallProgress)
    started: float = 0.0


class QueueFull(Exception):
    """The bounded queue holds as many waiting jobs as allowed."""


class Worker:
    """Runs `run(task)` for each queued task on one thread; `run` must handle its own errors."""

    def __init__(self, name: str, run: Callable[[Task], None], max_queue: int,
                 before_first: Callable[[], None] | None = None) -> None:
        self.name = name
        self._run = run
        self._before_first = before_first
        self.max_queue = max_queue
        self._queue: collections.deque[Task] = collections.deque()
        self._cond = threading.Condition()
        self._stopping = False
        self.current: Task | None = None
        self._thread = threading.Thread(target=self._loop, name=f"darc-{name}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def submit(self, task: Task, force: bool = False) -> int:
        """Queue a task; returns its position (1 = next). `force` ignores the bound (crash recovery)."""
        with self._cond:
            if not force and len(self._queue) >= self.max_queue:
                raise QueueFull(f"the queue is full ({self.max_queue} jobs waiting); try again later")
            self._queue.append(task)
            self._cond.notify()
            return len(self._queue) if self.current is not None or len(self._queue) > 1 else 0

    def position(self, job_id: str) -> int | None:
        """0 = running now, n = n-th in line, None = not here."""
        with self._cond:
            if self.current is not None and self.current.job_id == job_id:
                return 0
            for i, t in enumerate(self._queue):
                if t.job_id == job_id:
                    return i + 1
        return None

    def find(self, job_id: str) -> Task | None:
        with self._cond:
            if self.current is not None and self.current.job_id == job_id:
                return self.current
            return next((t for t in self._queue if t.job_id == job_id), None)

    def remove_queued(self, job_id: str) -> Task | None:
        """Take a waiting task out of the queue (cancel before it started)."""
        with self._cond:
            for t in self._queue:
                if t.job_id == job_id:
                    self._queue.remove(t)
                    return t
        return None

    def __len__(self) -> int:
        with self._cond:
            return len(self._queue) + (1 if self.current is not None else 0)

    def stop(self, timeout: float = 30.0) -> Task | None:
        """Stop after the running task: cancel it and wait. Returns the task that was interrupted."""
        with self._cond:
            self._stopping = True
            running = self.current
            if running is not None:
                running.cancel.cancel()
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(timeout)
        return running

    def _loop(self) -> None:
        if self._before_first is not None:
            self._before_first()
        while True:
            with self._cond:
                while not self._queue and not self._stopping:
                    self._cond.wait()
                if self._stopping:
                    return
                task = self._queue.popleft()
                self.current = task
            task.started = time.monotonic()
            try:
                self._run(task)
            except Exception:  # `run` reports its own errors; this only keeps the worker alive
                log.exception("%s worker: unexpected failure in job %s", self.name, task.job_id)
            finally:
                with self._cond:
                    self.current = None
