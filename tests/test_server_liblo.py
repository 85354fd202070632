"""An independent client (liblo's oscsend/oscdump, Debian liblo-tools) talks to the daemon."""

from __future__ import annotations

import shutil
import subprocess
import time

import pytest
import soundfile as sf
from server_support import free_udp_port, write_mix

pytestmark = pytest.mark.slow


@pytest.fixture
def oscdump():
    """Start `oscdump -L PORT`; yields (port, read_until) where read_until(text, timeout) returns lines so far."""
    if shutil.which("oscdump") is None or shutil.which("oscsend") is None:
        pytest.fail("liblo-tools (oscsend, oscdump) must be installed: apt-get install liblo-tools")
    port = free_udp_port()
    proc = subprocess.Popen(["oscdump", "-L", str(port)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True, bufsize=1)
    lines: list[str] = []
    import threading

    reader = threading.Thread(target=lambda: lines.extend(iter(proc.stdout.readline, "")), daemon=True)
    reader.start()

    def read_until(text: str, timeout: float = 20.0) -> list[str]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if any(text in line for line in lines):
                return list(lines)
            time.sleep(0.05)
        raise AssertionError(f"oscdump never showed {text!r}; got {lines}")

    time.sleep(0.3)  # let oscdump bind its port
    yield port, read_until
    proc.kill()
    proc.wait(5)


def oscsend(port: int, address: str, types: str, *values) -> None:
    subprocess.run(["oscsend", "127.0.0.1", str(port), address, types, *map(str, values)], check=True, timeout=10)


def test_oscsend_ping_gets_a_pong_in_oscdump(server_kit_daemon, oscdump):
    d = server_kit_daemon
    reply_port, read_until = oscdump
    oscsend(d.port, "/darc/ping", "i", reply_port)
    lines = read_until("/darc/pong")
    pong = next(line for line in lines if "/darc/pong" in line)
    assert "sssiii" in pong and '"0.1.0"' in pong
    oscsend(d.port, "/darc/nowhere", "i", reply_port)
    lines = read_until("unknown_address")
    assert any("/darc/error" in line and "unknown_address" in line for line in lines)


def test_oscsend_generate_runs_a_job_reported_in_oscdump(server_kit_daemon, server_out_dir, oscdump, tmp_path):
    d = server_kit_daemon
    reply_port, read_until = oscdump
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    # Numbers arrive as ints where Max would send ints (seed, midi) and floats elsewhere.
    oscsend(d.port, "/darc/generate", "sisssisisfss", "liblo-1", reply_port, str(mix), "", "midi", 0, "seed", 11,
            "temperature", 0.5, "out_dir", str(server_out_dir))
    lines = read_until("/darc/done")
    assert any("/darc/accepted" in line and '"liblo-1"' in line for line in lines)
    assert any("/darc/progress" in line for line in lines)
    done = next(line for line in lines if "/darc/done" in line)
    stem = server_out_dir / "drums-liblo-1.wav"
    assert str(stem.resolve()) in done
    info = sf.info(str(stem))
    assert info.duration == pytest.approx(1.0, abs=1e-3)
