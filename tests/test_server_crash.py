"""Crash: `kill -9` with jobs queued and running, restart, and nothing is lost or half-written."""

from __future__ import annotations

import os
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
    """Queued jobs run after the restart; the one the daemon died during ends in an error naming it
    (it may be what killed the daemon: issue 13, fix 2) and its own temporary files are removed,
    while a stranger's file beside them is left alone (fix 3)."""
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
    assert before["crash-0"].state == "running" and before["crash-0"].tag
    assert all(before[j].state == "queued" for j in ids[1:])
    # what a kill in the middle of writing leaves behind: a temporary file holding the attempt's tag
    ours = d.output_dir / f".drums-crash-0.wav.{before['crash-0'].tag}.part"
    ours.write_bytes(b"half a stem")
    stranger = d.output_dir / ".drums-crash-0.wav.0123456789abcdef.part"  # another daemon's, same name
    stranger.write_bytes(b"not ours")
    d.start()
    states = _final_states(d, ids)
    assert sorted(states) == ids  # none lost
    assert (states["crash-0"]["state"], states["crash-0"]["error_code"]) == ("error", "interrupted")
    assert "stopped unexpectedly" in states["crash-0"]["error_message"]
    assert all(states[j]["state"] == "done" for j in ids[1:]), states
    stems = sorted(Path(states[j]["stem_path"]).name for j in ids[1:])
    assert stems == sorted(f"drums-{j}.wav" for j in ids[1:])
    assert sorted(p.name for p in d.output_dir.iterdir()) == sorted([*stems, stranger.name])
    for j in ids[1:]:
        assert sf.info(states[j]["stem_path"]).duration == pytest.approx(1.0, abs=1e-3)
    journal = Journal(d.state_dir / "jobs.sqlite3")
    assert journal.get("crash-0").attempts == 1 and journal.get("crash-4").attempts == 1


def _identity(path: Path) -> dict:
    st = path.stat()
    return {"dev": st.st_dev, "ino": st.st_ino, "size": st.st_size}


def test_restart_adopts_only_its_own_files_and_never_fails_to_start(server_daemon_factory, tmp_path):
    """Recovery adopts a job killed after its files were linked (removing the temporary name a kill
    between link and unlink left), never deletes or adopts a stranger's file at a job's name
    (fixes 3, 4, 7), and a garbage file there does not stop the daemon from starting."""
    d = server_daemon_factory(engine="fake", start=False)
    mix = str(write_mix(tmp_path / "mix.wav", seconds=0.5))
    request = {"mix": mix, "prompt": "", "options": {"midi": 0, "temperature": 1.0, "rhythm_strength": 1.0,
                                                     "quantize": 0.0, "seed": 1}}
    # 1. killed between link and unlink: final name and temporary name are one inode, recorded
    written = write_mix(d.output_dir / "drums-finished.wav", seconds=0.5)
    tmp = d.output_dir / ".drums-finished.wav.aaaaaaaaaaaaaaaa.part"
    os.link(written, tmp)
    files = [{"role": "stem", "path": str(written), "tmp": str(tmp), **_identity(written)}]
    # 2. daemon A killed mid-render; daemon B then wrote a finished stem under the same name
    foreign = write_mix(d.output_dir / "drums-foreign.wav", seconds=0.5, seed=3)
    # 3. a garbage file at the name of a killed job (sf.info raises on it)
    garbage = d.output_dir / "drums-garbage.wav"
    garbage.write_bytes(b"RIFF\x00\x00garbage")
    journal = Journal(d.state_dir / "jobs.sqlite3")
    journal.add(JobRecord("finished", "generate", "running", request, "127.0.0.1", 9, stem_path=str(written),
                          attempts=1, tag="aaaaaaaaaaaaaaaa", files=files))
    journal.add(JobRecord("foreign", "generate", "running", request, "127.0.0.1", 9, stem_path=str(foreign),
                          attempts=1, tag="bbbbbbbbbbbbbbbb"))
    journal.add(JobRecord("garbage", "generate", "running", request, "127.0.0.1", 9, stem_path=str(garbage),
                          attempts=1, tag="cccccccccccccccc"))
    journal.add(JobRecord("crashy", "generate", "queued", request, "127.0.0.1", 9, attempts=3))
    journal.add(JobRecord("rec", "record", "running", {"seconds": 1.0, "options": {}}, "127.0.0.1", 9,
                          attempts=1))
    journal.close()
    d.start()
    with d.client() as c:
        got = {j: c.status(j) for j in ("finished", "foreign", "garbage", "crashy", "rec")}
    assert got["finished"]["state"] == "done" and got["finished"]["stem_path"] == str(written)
    for j in ("foreign", "garbage", "rec"):
        assert (got[j]["state"], got[j]["error_code"]) == ("error", "interrupted"), got[j]
        assert got[j]["stem_path"] == ""  # a stranger's file is never taken as the job's stem
    assert (got["crashy"]["state"], got["crashy"]["error_code"]) == ("error", "interrupted")
    assert "3 times" in got["crashy"]["error_message"]
    assert sorted(p.name for p in d.output_dir.iterdir()) == ["drums-finished.wav", "drums-foreign.wav",
                                                               "drums-garbage.wav"]
    assert sf.read(str(foreign))[0].shape[0] > 0  # B's stem is intact


def test_kill_9_again_and_again_loses_nothing_and_leaves_nothing():
    """The soak benchmark's run, small: clients at once, SIGKILL at whatever moment the jobs are at
    (the write phase included), restart on the same journal: every job ends exactly once."""
    from darc_bridge.bench.server import soak

    result = soak(jobs=40, clients=4, kill_every=9, mix_s=0.3, time_limit_s=240)
    assert result["kills"] >= 2
    assert result["lost"] == 0 and result["duplicates"] == 0 and result["leftover_temp"] == 0, result
    assert result["other_errors"] == 0, result
    assert result["done"] + result["interrupted"] == 40
