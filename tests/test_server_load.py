"""Load: several clients submitting at once; every job done exactly once; a full queue says so."""

from __future__ import annotations

import threading
import time

import pytest
import soundfile as sf
from server_support import wait_for, write_mix

from darc_bridge.client import ClientError
from darc_bridge.server.journal import Journal

pytestmark = pytest.mark.slow

CLIENTS, JOBS = 4, 5


def _client_run(daemon, index: int, mix: str, out_dir: str, results: dict, errors: list) -> None:
    try:
        with daemon.client(timeout=2.0, retries=5) as c:
            ids = [f"load-{index}-{j}" for j in range(JOBS)]
            for job_id in ids:
                c.generate(job_id, mix, "", {"midi": 0, "out_dir": out_dir, "seed": index * 100 + len(results)})
            pending = set(ids)
            deadline = time.monotonic() + 120
            while pending and time.monotonic() < deadline:
                reply = c.receive(1.0)
                if reply is None:  # quiet: ask about what is still pending (a lost datagram is possible)
                    for job_id in pending:
                        c.send("/darc/status", job_id, c.reply_port)
                    continue
                job_id = reply.args[0] if reply.args else None
                if job_id not in pending:
                    continue
                if reply.address == "/darc/done" or (reply.address == "/darc/status" and reply.args[1] == "done"):
                    results.setdefault(job_id, []).append(reply.args[1] if reply.address == "/darc/done"
                                                          else reply.args[3])
                    pending.discard(job_id)
                elif reply.address == "/darc/error" or (reply.address == "/darc/status"
                                                        and reply.args[1] in ("error", "cancelled")):
                    errors.append((job_id, reply.args))
                    pending.discard(job_id)
            errors.extend(("timeout", j) for j in pending)
    except Exception as exc:  # surfaced by the assertion in the test
        errors.append(("exception", repr(exc)))


def test_four_clients_five_jobs_each_all_done_once(server_kit_daemon, server_out_dir, tmp_path):
    d = server_kit_daemon
    mix = str(write_mix(tmp_path / "mix.wav", seconds=1.0))
    results: dict[str, list[str]] = {}
    errors: list = []
    threads = [threading.Thread(target=_client_run, args=(d, i, mix, str(server_out_dir), results, errors))
               for i in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    assert errors == []
    assert len(results) == CLIENTS * JOBS
    stems = [paths[0] for paths in results.values()]
    assert len(set(stems)) == CLIENTS * JOBS
    files = sorted(p.name for p in server_out_dir.iterdir())
    assert files == sorted(f"drums-load-{i}-{j}.wav" for i in range(CLIENTS) for j in range(JOBS))
    for stem in stems:
        assert sf.info(stem).duration == pytest.approx(1.0, abs=1e-3)
    journal = Journal(d.state_dir / "jobs.sqlite3")
    mine = [r for r in journal.all() if r.job_id.startswith("load-")]
    assert len(mine) == CLIENTS * JOBS
    assert all(r.state == "done" and r.attempts == 1 for r in mine)  # each ran exactly once


def test_a_full_queue_is_refused_clearly(server_daemon_factory, tmp_path):
    d = server_daemon_factory(engine="fake", delay=3.0, queue_size=2)
    mix = str(write_mix(tmp_path / "mix.wav", seconds=0.5))
    with d.client() as c:
        c.generate("q-run", mix, "", {"midi": 0})
        assert wait_for(lambda: c.status("q-run")["state"] == "running", timeout=10)
        c.generate("q-1", mix, "", {"midi": 0})
        c.generate("q-2", mix, "", {"midi": 0})
        with pytest.raises(ClientError) as info:
            c.generate("q-3", mix, "", {"midi": 0})
        assert info.value.code == "queue_full" and "2 jobs waiting" in info.value.message
        assert c.status("q-3")["state"] == "unknown"  # refused: nothing journalled, may be resent later
        assert c.ping()["queue_length"] == 3
        c.cancel("q-1")
        accepted = c.generate("q-3", mix, "", {"midi": 0})  # room again: the same id is now accepted
        assert accepted["state"] == "queued" and accepted["queue_position"] == 2
