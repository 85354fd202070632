"""End to end over real UDP on loopback: submit, progress, done; idempotency, errors, cancel, defaults."""

from __future__ import annotations

import os

import numpy as np
import pytest
import soundfile as sf
from server_support import wait_for, write_mix, write_prompt

from darc_bridge.client import ClientError
from darc_bridge.server.journal import Journal

HAVE_MIDI = os.path.exists(os.path.join(os.path.dirname(__file__), "..", "darc_bridge", "rhythm", "midi.py"))

pytestmark = pytest.mark.slow


def _collect(client, job_id):
    updates = []
    final = client.wait(job_id, on_update=updates.append)
    return final, updates


def test_generate_job_end_to_end_with_progress_and_a_valid_stem(server_kit_daemon, server_out_dir, tmp_path):
    d = server_kit_daemon
    mix = write_mix(tmp_path / "mix.wav", seconds=2.0, sr=22050)
    prompt = write_prompt(tmp_path / "prompt.wav", seconds=1.0)
    with d.client() as c:
        pong = c.ping()
        assert pong["protocol"] == 1 and pong["model_loaded"] == 1 and pong["engine"] == "kit"
        first = c.generate("e2e-1", str(mix), str(prompt),
                           {"seed": 3, "midi": int(HAVE_MIDI), "out_dir": str(server_out_dir)})
        assert first["state"] in ("queued", "running")
        final, updates = _collect(c, "e2e-1")
    assert final["state"] == "done", final
    fractions = [u["fraction"] for u in updates if u["state"] == "running"]
    assert len(fractions) >= 2 and fractions == sorted(fractions) and all(0 <= f <= 1 for f in fractions)
    assert {u["stage"] for u in updates} >= {"load", "write"}
    stem = final["stem_path"]
    assert os.path.dirname(stem) == str(server_out_dir.resolve())
    data, sr = sf.read(stem, always_2d=True)
    assert sr == 22050 == final["sample_rate"]
    assert data.shape[0] == pytest.approx(2.0 * 22050, abs=2)
    assert np.isfinite(data).all() and 0.01 < np.abs(data).max() <= 1.0
    assert final["duration"] == pytest.approx(2.0, abs=1e-3)
    if HAVE_MIDI:
        import mido

        assert mido.MidiFile(final["midi_path"]).length > 0
    assert not [p for p in os.listdir(server_out_dir) if ".part" in p]


def test_a_known_job_id_starts_nothing_new(server_kit_daemon, server_out_dir, tmp_path):
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    with server_kit_daemon.client() as c:
        c.generate("same-id", str(mix), "", {"midi": 0, "out_dir": str(server_out_dir)})
        again = c.generate("same-id", str(mix), "", {"midi": 0, "temperature": 0.1})
        assert again["job_id"] == "same-id" and again["state"] in ("queued", "running", "done")
        final = c.wait("same-id")
        third = c.generate("same-id", str(mix), "", {"midi": 0})
    assert third["state"] == "done" and third["stem_path"] == final["stem_path"]
    assert sorted(os.listdir(server_out_dir)) == ["drums-same-id.wav"]


def test_bad_inputs_and_outputs_get_clear_errors(server_kit_daemon, server_out_dir, tmp_path):
    d = server_kit_daemon
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF not really audio" * 10)
    with d.client() as c:
        with pytest.raises(ClientError) as info:
            c.generate("e1", str(tmp_path / "missing.wav"), "")
        assert info.value.code == "bad_input" and "missing.wav" in info.value.message
        with pytest.raises(ClientError) as info:
            c.generate("e2", str(mix), "", {"out_dir": str(server_out_dir / "nope")})
        assert info.value.code == "bad_output" and "does not exist" in info.value.message
        with pytest.raises(ClientError) as info:
            c.generate("e2b", str(mix), "", {"out_dir": str(tmp_path)})
        assert info.value.code == "bad_output" and "outside the allowed folders" in info.value.message
        with pytest.raises(ClientError) as info:
            c.generate("e3", str(mix), "", {"temperature": 7.0})
        assert info.value.code == "bad_request"
        assert c.status("e1")["state"] == "unknown"  # refused requests are not journalled
        c.generate("e4", str(corrupt), "", {"midi": 0, "out_dir": str(server_out_dir)})
        final = c.wait("e4")
        assert final["state"] == "error" and final["error_code"] == "bad_input"
        assert "corrupt.wav" in final["error_message"]
        status = c.status("e4")
        assert (status["state"], status["error_code"]) == ("error", "bad_input")
    assert os.listdir(server_out_dir) == []


def test_defaults_can_be_read_and_changed(server_daemon_factory):
    d = server_daemon_factory(engine="fake")  # its own daemon: changed defaults must not leak into other tests
    with d.client() as c:
        before = c.get_params()
        assert before["temperature"] == pytest.approx(1.0) and before["seed"] == -1
        after = c.set_params(temperature=0.25, seed=42, midi=0)
        assert after["temperature"] == pytest.approx(0.25) and after["seed"] == 42 and after["midi"] == 0
        with pytest.raises(ClientError):
            c.set_params(temperature=99.0)
        assert c.get_params() == after


def test_cancel_running_and_queued_jobs(server_daemon_factory, tmp_path):
    d = server_daemon_factory(engine="fake", delay=4.0)
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    with d.client(timeout=8.0) as c:
        c.generate("run1", str(mix), "", {"midi": 0})
        c.generate("wait1", str(mix), "", {"midi": 0})
        assert wait_for(lambda: c.status("run1")["state"] == "running", timeout=10)
        queued = c.cancel("wait1")
        assert queued["state"] == "cancelled"
        running = c.cancel("run1")
        assert running["state"] == "cancelled" and running["error_code"] == "cancelled"
    assert os.listdir(d.output_dir) == []
    journal = Journal(d.state_dir / "jobs.sqlite3")
    assert {r.job_id: r.state for r in journal.all()} == {"run1": "cancelled", "wait1": "cancelled"}


def test_sigterm_stops_cleanly_and_the_running_job_resumes_after_restart(server_daemon_factory, tmp_path):
    d = server_daemon_factory(engine="fake", delay=3.0)
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    with d.client() as c:
        c.generate("resume1", str(mix), "", {"midi": 0})
        assert wait_for(lambda: c.status("resume1")["state"] == "running", timeout=10)
    assert d.terminate() == 0
    assert Journal(d.state_dir / "jobs.sqlite3").get("resume1").state == "queued"
    assert "daemon stopped" in (d.state_dir / "daemon.log").read_text()
    d.start()
    with d.client(timeout=0.5, retries=20) as c:
        final = c.wait("resume1")
    assert final["state"] == "done" and os.path.exists(final["stem_path"])


def test_inputs_beyond_the_daemon_limits_are_refused(server_daemon_factory, tmp_path):
    d = server_daemon_factory(engine="fake", extra_args=["--max-duration", "0.5"])
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    with d.client() as c:
        c.generate("too-long", str(mix), "", {"midi": 0})
        final = c.wait("too-long")
        assert (final["state"], final["error_code"]) == ("error", "bad_input")
        assert "too long" in final["error_message"] and "limit" in final["error_message"]
        c.generate("region-ok", str(mix), "", {"midi": 0, "start": 0.25, "end": 0.75})
        ok = c.wait("region-ok")
    assert ok["state"] == "done" and ok["duration"] == pytest.approx(0.5, abs=1e-3)
    assert sorted(os.listdir(d.output_dir)) == ["drums-region-ok.wav"]
