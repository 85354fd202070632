"""The client CLI: exit statuses, JSON output, the status file, and resending with the same job id."""

from __future__ import annotations

import json
import socket
import threading

import pytest
from server_support import client_cli, free_udp_port, write_mix

from darc_bridge.client import DarcClient, NoReply
from darc_bridge.server.journal import Journal

pytestmark = pytest.mark.slow


def test_generate_wait_writes_the_status_file_and_exits_zero(server_kit_daemon, server_out_dir, tmp_path, capsys):
    d = server_kit_daemon
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    status_file = tmp_path / "status.json"
    rc = client_cli(["--port", str(d.port), "generate", "--mix", str(mix), "--no-midi", "--seed", "5",
                     "--job-id", "cli-1", "--out-dir", str(server_out_dir), "--wait", "--status-file", str(status_file)])
    captured = capsys.readouterr()
    out = json.loads(captured.out)
    assert rc == 0
    assert out["state"] == "done" and out["job_id"] == "cli-1" and out["stem_path"].endswith("drums-cli-1.wav")
    assert "%" in captured.err  # the progress bar went to stderr, not into the JSON
    saved = json.loads(status_file.read_text())
    assert saved["state"] == "done" and saved["fraction"] == 1.0 and saved["stem_path"] == out["stem_path"]
    assert saved["updated"] > 0
    assert not list(tmp_path.glob(".status.json.*"))  # written atomically, nothing left behind
    rc = client_cli(["--port", str(d.port), "status", "cli-1"])
    assert rc == 0 and json.loads(capsys.readouterr().out)["state"] == "done"
    rc = client_cli(["--port", str(d.port), "cancel", "cli-1"])  # too late: it stays done
    assert rc == 0 and json.loads(capsys.readouterr().out)["state"] == "done"
    rc = client_cli(["--port", str(d.port), "ping"])
    pong = json.loads(capsys.readouterr().out)
    assert rc == 0 and pong["protocol"] == 1 and pong["engine"] == "kit" and pong["model_loaded"] == 1


def test_a_failed_job_exits_non_zero_with_code_and_message(server_kit_daemon, server_out_dir, tmp_path, capsys):
    d = server_kit_daemon
    silent_name = tmp_path / "broken.wav"
    silent_name.write_bytes(b"\x00" * 100)
    status_file = tmp_path / "status.json"
    rc = client_cli(["--port", str(d.port), "generate", "--mix", str(silent_name), "--no-midi", "--wait",
                     "--out-dir", str(server_out_dir),
                     "--quiet", "--status-file", str(status_file)])
    err = capsys.readouterr().err
    assert rc == 1
    assert "darc-bridge: error: bad_input:" in err and "broken.wav" in err
    saved = json.loads(status_file.read_text())
    assert saved["state"] == "error" and saved["error_code"] == "bad_input"
    rc = client_cli(["--port", str(d.port), "generate", "--mix", str(tmp_path / "absent.wav")])
    assert rc == 1 and "bad_input" in capsys.readouterr().err
    rc = client_cli(["--port", str(d.port), "status", "never-seen"])
    assert rc == 1 and "unknown" in capsys.readouterr().out


def test_no_daemon_gives_exit_three_after_the_retries(tmp_path, capsys):
    port = free_udp_port()
    status_file = tmp_path / "s.json"
    rc = client_cli(["--port", str(port), "--timeout", "0.2", "--retries", "1", "generate", "--mix",
                     str(write_mix(tmp_path / "m.wav", 0.5)), "--status-file", str(status_file)])
    assert rc == 3
    assert "no_reply" in capsys.readouterr().err
    assert json.loads(status_file.read_text())["error_code"] == "no_reply"


class LossyRelay:
    """Forwards datagrams to the daemon but drops the first `drop` of them (a lost UDP packet)."""

    def __init__(self, target: tuple[str, int], drop: int = 1) -> None:
        self.target = target
        self.drop = drop
        self.seen: list[bytes] = []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            self.seen.append(data)
            if len(self.seen) > self.drop:
                self.sock.sendto(data, self.target)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()


def test_a_lost_request_is_resent_with_the_same_job_id_and_runs_once(server_daemon_factory, tmp_path):
    d = server_daemon_factory(engine="fake")  # its own daemon and journal: exactly one job must be recorded
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    relay = LossyRelay(("127.0.0.1", d.port), drop=1)
    try:
        with DarcClient("127.0.0.1", relay.port, timeout=0.5, retries=3) as c:
            first = c.generate("lossy-1", str(mix), "", {"midi": 0})
            assert first["job_id"] == "lossy-1"
            final = c.wait("lossy-1")
    finally:
        relay.close()
    assert final["state"] == "done"
    generates = [p for p in relay.seen if p.startswith(b"/darc/generate")]
    assert len(generates) >= 2 and len(set(generates)) == 1  # the same request, byte for byte
    assert [r.job_id for r in Journal(d.state_dir / "jobs.sqlite3").all()] == ["lossy-1"]
    assert sorted(p.name for p in d.output_dir.iterdir()) == ["drums-lossy-1.wav"]


def test_client_ping_raises_no_reply_quickly_without_a_daemon():
    with DarcClient("127.0.0.1", free_udp_port(), timeout=0.1, retries=1) as c, pytest.raises(NoReply):
        c.ping()


def test_the_installed_command_line_reaches_the_daemon(server_kit_daemon, server_out_dir, tmp_path):
    """`darc-bridge client ...` through the real entry point (darc_bridge.cli.main), as REAPER runs it."""
    import subprocess
    import sys

    from server_support import ROOT, daemon_env

    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    status_file = tmp_path / "status.json"
    cmd = [sys.executable, "-m", "darc_bridge.cli.main", "client", "--port", str(server_kit_daemon.port),
           "generate", "--mix", str(mix), "--no-midi", "--out-dir", str(server_out_dir), "--wait", "--quiet",
           "--status-file", str(status_file)]
    done = subprocess.run(cmd, cwd=ROOT, env=daemon_env(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["state"] == "done"
    assert json.loads(status_file.read_text())["state"] == "done"
