"""Worker batching: the jobs waiting when one starts (up to `batch`) start with it, each on its own
thread, and each stays visible (position 0, find, cancel on stop); batch=1 keeps one at a time."""

from __future__ import annotations

import threading
import time

from darc_bridge.server.worker import Task, Worker


def _run_worker(batch: int, n: int) -> tuple[list[set[str]], dict[str, int | None], Worker]:
    lock = threading.Lock()
    running: set[str] = set()
    seen: list[set[str]] = []
    positions: dict[str, int | None] = {}
    done = threading.Event()
    finished: list[str] = []
    worker: Worker

    def run(task: Task) -> None:
        with lock:
            running.add(task.job_id)
        time.sleep(0.2)  # long enough for the others of its batch to start too
        with lock:
            seen.append(set(running))
            positions[task.job_id] = worker.position(task.job_id)
            assert worker.find(task.job_id) is task
        time.sleep(0.05)
        with lock:
            running.discard(task.job_id)
            finished.append(task.job_id)
            if len(finished) == n:
                done.set()

    worker = Worker("test", run, max_queue=10, batch=batch)
    for i in range(n):
        worker.submit(Task(f"j{i}", None))
    worker.start()
    assert done.wait(30)
    return seen, positions, worker


def test_queued_jobs_start_together_up_to_the_batch_size():
    seen, positions, worker = _run_worker(batch=3, n=4)
    assert max(len(s) for s in seen) == 3  # j0..j2 together, then j3
    assert {"j0", "j1", "j2"} in seen and {"j3"} in seen
    assert all(p == 0 for p in positions.values())  # every running job reports position 0
    worker.stop()


def test_batch_one_runs_jobs_one_at_a_time():
    seen, _, worker = _run_worker(batch=1, n=3)
    assert all(len(s) == 1 for s in seen)
    worker.stop()


def test_stop_cancels_every_running_job_of_the_batch():
    started = threading.Barrier(3, timeout=10)
    tokens = []

    def run(task: Task) -> None:
        tokens.append(task.cancel)
        started.wait()
        while not task.cancel.cancelled:
            time.sleep(0.01)

    worker = Worker("test", run, max_queue=10, batch=2)
    worker.submit(Task("a", None))
    worker.submit(Task("b", None))
    worker.start()
    started.wait()
    assert len(worker) == 2
    worker.stop(timeout=10)
    assert all(t.cancelled for t in tokens)
