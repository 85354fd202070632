"""One worker thread over a bounded queue: the GPU (or the audio device) is one resource.

Jobs run one at a time in arrival order. Each has a cancel token; progress from the
engine's stages is mapped onto one whole-job fraction (darc_bridge.progress). With `batch` > 1,
the jobs waiting when one starts (up to `batch`) start with it, each on its own thread: the DARC
engine decodes overlapping calls as rows of one batch (see `_run_batch`).
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
                 before_first: Callable[[], None] | None = None, batch: int = 1) -> None:
        self.name = name
        self.batch = max(1, int(batch))
        self.others: list[Task] = []  # tasks started together with `current` (batch > 1)
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
            if any(t.job_id == job_id for t in self._running()):
                return 0
            for i, t in enumerate(self._queue):
                if t.job_id == job_id:
                    return i + 1
        return None

    def find(self, job_id: str) -> Task | None:
        with self._cond:
            running = next((t for t in self._running() if t.job_id == job_id), None)
            return running or next((t for t in self._queue if t.job_id == job_id), None)

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
            return len(self._queue) + len(self._running())

    def stop(self, timeout: float = 30.0) -> Task | None:
        """Stop after the running task: cancel it and wait. Returns the task that was interrupted."""
        with self._cond:
            self._stopping = True
            running = self.current
            for t in self._running():
                t.cancel.cancel()
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
                self._run_batch(task)
            finally:
                with self._cond:
                    self.current = None
                    self.others = []

    def _running(self) -> list[Task]:
        return ([self.current] if self.current is not None else []) + self.others

    def _run_one(self, task: Task) -> None:
        try:
            self._run(task)
        except Exception:  # `run` reports its own errors; this only keeps the worker alive
            log.exception("%s worker: unexpected failure in job %s", self.name, task.job_id)

    def _run_batch(self, first: Task) -> None:
        """Run `first` and, with `batch` > 1, the tasks queued right now (up to `batch` in all)
        at the same time, each on its own thread; return when all are done. The DARC engine
        merges the token generation of such overlapping calls into one batch, while each job
        keeps its own journal entry, progress, cancel and seed."""
        with self._cond:
            while len(self.others) + 1 < self.batch and self._queue:
                task = self._queue.popleft()
                task.started = time.monotonic()
                self.others.append(task)
            others = list(self.others)
        threads = [threading.Thread(target=self._run_one, args=(t,), name=f"darc-{self.name}-{t.job_id}",
                                    daemon=True) for t in others]
        for t in threads:
            t.start()
        self._run_one(first)
        for t in threads:
            t.join()
