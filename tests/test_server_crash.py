"""Crash: `kill -9` with jobs queued and running, restart, and nothing is lost or half-written."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import soundfile as sf
from server_support import wait_for, write_mix

from darc_bridge.server.journal import JobRecord, Journal

pytestmark = pytest.mark.slow


def _final_states(d, ids: list[str], timeout: float = 60.0) -> dict[str, dict]:
    states: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    with d.client(timeout=1.0, retries=3) as c:
        while len(states) < len(ids) and time.monotonic() < deadline:
            for job_id in ids:
                if job_id not in states:
                    s = c.status(job_id)
                    if s["state"] in ("done", "error", "cancelled"):
                        states[job_id] = s
            time.sleep(0.1)
    return states


def test_kill_9_with_jobs_queued_and_running_then_restart(server_daemon_factory, tmp_path):
    d = server_daemon_factory(engine="fake", delay=1.0)
    mix = str(write_mix(tmp_path / "mix.wav", seconds=1.0))
    ids = [f"crash-{i}" for i in range(5)]
    with d.client() as c:
        for job_id in ids:
            c.generate(job_id, mix, "", {"midi": 0, "seed": 7})
        assert wait_for(lambda: c.status("crash-0")["fraction"] > 0.4, timeout=15)
    d.kill9()
    journal = Journal(d.state_dir / "jobs.sqlite3")
    before = {r.job_id: r for r in journal.all()}
    journal.close()
    assert before["crash-0"].state == "running" and before["crash-0"].stem_path
    assert all(before[j].state == "queued" for j in ids[1:])
    # what a kill in the middle of writing leaves behind: a temporary file beside the reserved name
    reserved = Path(before["crash-0"].stem_path)
    (reserved.parent / f".{reserved.name}.xyz123.part.wav").write_bytes(b"half a stem")
    d.start()
    states = _final_states(d, ids)
    assert sorted(states) == ids  # none lost
    assert all(s["state"] == "done" for s in states.values()), states
    stems = sorted(Path(s["stem_path"]).name for s in states.values())
    assert stems == sorted(f"drums-{j}.wav" for j in ids)
    assert sorted(p.name for p in d.output_dir.iterdir()) == stems  # no partial or stray files
    for s in states.values():
        assert sf.info(s["stem_path"]).duration == pytest.approx(1.0, abs=1e-3)
    journal = Journal(d.state_dir / "jobs.sqlite3")
    assert journal.get("crash-0").attempts == 2 and journal.get("crash-4").attempts == 1


def test_restart_finishes_what_was_written_and_gives_up_what_cannot_resume(server_daemon_factory, tmp_path):
    d = server_daemon_factory(engine="fake", start=False)
    mix = str(write_mix(tmp_path / "mix.wav", seconds=0.5))
    written = write_mix(d.output_dir / "drums-finished.wav", seconds=0.5)  # renamed just before the crash
    journal = Journal(d.state_dir / "jobs.sqlite3")
    request = {"mix": mix, "prompt": "", "options": {"midi": 0, "temperature": 1.0, "rhythm_strength": 1.0,
                                                     "quantize": 0.0, "seed": 1}}
    journal.add(JobRecord("finished", "generate", "running", request, "127.0.0.1", 9, stem_path=str(written),
                          attempts=1))
    journal.add(JobRecord("crashy", "generate", "running", request, "127.0.0.1", 9, attempts=3))
    journal.add(JobRecord("rec", "record", "running", {"seconds": 1.0, "options": {}}, "127.0.0.1", 9,
                          attempts=1))
    journal.close()
    d.start()
    with d.client() as c:
        finished, crashy, rec = c.status("finished"), c.status("crashy"), c.status("rec")
    assert finished["state"] == "done" and finished["stem_path"] == str(written)
    assert (crashy["state"], crashy["error_code"]) == ("error", "interrupted")
    assert "3 times" in crashy["error_message"]
    assert (rec["state"], rec["error_code"]) == ("error", "interrupted")
    assert sorted(p.name for p in d.output_dir.iterdir()) == ["drums-finished.wav"]
