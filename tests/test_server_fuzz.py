"""Fuzz: thousands of malformed packets, then the daemon still answers and still completes a job."""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_bundle_builder import IMMEDIATELY, OscBundleBuilder
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from server_support import write_mix

pytestmark = pytest.mark.slow

ADDRESSES = ["/darc/ping", "/darc/generate", "/darc/cancel", "/darc/status", "/darc/record", "/darc/set",
             "/darc/get"]


def message(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bytes):
            b.add_arg(a, "b")
        elif isinstance(a, bool) or a is None:
            b.add_arg(a)
        elif isinstance(a, int):
            b.add_arg(a, "i" if -2**31 <= a < 2**31 else "h")
        elif isinstance(a, float):
            b.add_arg(a, "d" if abs(a) > 1e38 else "f")
        else:
            b.add_arg(a, "s")
    return b.build().dgram


def random_value(rng: np.random.Generator):
    kind = rng.integers(0, 9)
    return [
        lambda: int(rng.integers(-2**31, 2**31 - 1)),
        lambda: float(rng.normal() * 10.0 ** int(rng.integers(-3, 40))),
        lambda: "".join(chr(int(c)) for c in rng.integers(32, 0x2FF, rng.integers(0, 40))),
        lambda: bytes(rng.integers(0, 256, int(rng.integers(1, 64)), dtype=np.uint8)),
        lambda: True,
        lambda: None,
        lambda: float("nan"),
        lambda: "temperature",
        lambda: 2**40,
    ][kind]()


def fuzz_packets(rng: np.random.Generator, mix: str, outside: Path, allowed: Path) -> list[bytes]:
    packets: list[bytes] = []
    # 1. random bytes, including ones that start like an OSC address
    for _ in range(450):
        raw = bytes(rng.integers(0, 256, int(rng.integers(0, 1500)), dtype=np.uint8))
        packets.append(raw if rng.random() < 0.5 else b"/darc/generate\x00\x00,sis" + raw)
    # 2. known addresses with random arguments of random types
    for _ in range(500):
        address = ADDRESSES[int(rng.integers(len(ADDRESSES)))]
        packets.append(message(address, *[random_value(rng) for _ in range(int(rng.integers(0, 12)))]))
    # 3. missing and extra arguments
    full = ["fz-missing", 9, mix, "", "seed", 1]
    for n in (0, 1, 2, 3, 5):  # 4 would be a complete, valid request
        packets += [message("/darc/generate", *full[:n]), message("/darc/ping"), message("/darc/status", "x")]
    for _ in range(150):
        extra = [random_value(rng) for _ in range(int(rng.integers(1, 6)))]
        address = ADDRESSES[int(rng.integers(len(ADDRESSES)))]
        packets.append(message(address, "fz-extra", 9, mix, "", "midi", 0, *extra))
    # 4. huge strings
    for size in (5_000, 20_000, 60_000):
        for address in ("/darc/generate", "/darc/ping", "/" + "a" * 100):
            packets.append(message(address, "x" * size, 9, "y" * size, ""))
    # 5. unknown addresses
    for i in range(200):
        address = "/darc/" + "".join(chr(int(c)) for c in rng.integers(97, 123, int(rng.integers(1, 20))))
        packets.append(message(address if i % 3 else f"/other{i}", 9))
    # 6. path traversal and folders outside the allowed ones (a valid mix, so only the paths are wrong)
    bad_dirs = [str(outside), str(allowed / ".." / "outside"), "../../", "/", "/etc", "relative", str(allowed) + "/../..",
                str(outside / "sub" / ".." / ".."), "~/", str(allowed / "missing")]
    bad_names = ["../escape", "../../escape", "/abs", "a/b", ".hidden", "", "x" * 500, "..", "-flag"]
    for i in range(300):
        opts = ["midi", 0]
        if i % 2:
            opts += ["out_dir", bad_dirs[i % len(bad_dirs)]]
        else:
            opts += ["name", bad_names[i % len(bad_names)], "out_dir", str(allowed)]
        packets.append(message("/darc/generate", f"fz-path-{i}", 9, mix, "", *opts))
        packets.append(message("/darc/record", f"fz-rec-{i}", 9, 1.0, "out_dir", bad_dirs[i % len(bad_dirs)]))
    for path in ("../../../../etc/passwd", "/etc/passwd", "/dev/zero", "/proc/self/mem", str(outside)):
        packets.append(message("/darc/generate", "fz-input", 9, path, path, "midi", 0, "out_dir", str(allowed)))
    # 7. bundles: nested, empty, and truncated
    for i in range(60):
        bb = OscBundleBuilder(IMMEDIATELY)
        bb.add_content(OscMessageBuilder("/darc/status").build())
        bb.add_content(OscMessageBuilder("/darc/ping").build())
        dgram = bb.build().dgram
        packets.append(dgram if i % 2 else dgram[: int(rng.integers(8, len(dgram)))])
    packets.append(b"#bundle\x00" + b"\xff" * 16)
    # 8. valid messages cut short at every length
    valid = message("/darc/generate", "fz-cut", 9, mix + ".missing", "", "temperature", 0.5)
    packets += [valid[:n] for n in range(1, len(valid))]
    return packets


def attack_packets(tmp: Path, mix: str, allowed: Path, daemon_port: int, reply_port: int) -> list[bytes]:
    """Issue 13's attacks: replies and pings aimed back at the daemon, and paths that are not files.

    Requests name `reply_port` (the test's socket), so every error they cause is seen by the test."""
    packets = []
    for _ in range(50):  # a reply loop with itself, and replies sent to a daemon
        packets += [message("/darc/ping", daemon_port), message("/darc/get", daemon_port),
                    message("/darc/status", "loop", daemon_port), message("/darc/pong", "0", "kit", "cpu", 1, 0, 1),
                    message("/darc/error", "", "unknown_address", "x"),
                    message("/darc/status", "loop", "unknown", 0.0, "", "", "", ""),
                    message("/darc/bogus", daemon_port)]
    fifo = tmp / "fifo.wav"
    os.mkfifo(fifo)
    loop = tmp / "loop.wav"
    os.symlink(loop, loop)
    bomb = tmp / "bomb.wav"
    size = 300 * 1024 * 1024
    with open(bomb, "wb") as fh:  # 1,024 channels at 8 bits: a sparse file decoding to 1.2 GB
        import struct

        fmt = struct.pack("<HHIIHH", 1, 1024, 8000, 8000 * 1024, 1024, 8)
        fh.write(b"RIFF" + struct.pack("<I", 36 + size) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
                 + b"data" + struct.pack("<I", size))
        fh.truncate(size + 44)
    inputs = [str(fifo), str(loop), str(tmp), "/dev/zero", "/proc/self/mem", "/proc/self/status", "~/mix.wav",
              "/" + "n" * 300 + ".wav", str(bomb)]
    for i, path in enumerate(inputs):
        packets.append(message("/darc/generate", f"atk-in-{i}", reply_port, path, "", "midi", 0,
                               "out_dir", str(allowed)))
        packets.append(message("/darc/generate", f"atk-prompt-{i}", reply_port, mix, path, "out_dir", str(allowed)))
    for i, out_dir in enumerate([str(loop), str(fifo), "~/stems", "/" + "d" * 3000, "/proc/self", "/dev"]):
        packets.append(message("/darc/generate", f"atk-out-{i}", reply_port, mix, "", "out_dir", out_dir))
    packets.append(message("/darc/generate", "atk-seed", reply_port, mix, "", "seed", 2**31))
    return packets


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_issue_13_attacks_get_clear_errors_and_no_loop(server_kit_daemon, server_out_dir, tmp_path):
    d = server_kit_daemon
    mix = str(write_mix(tmp_path / "mix.wav", seconds=1.0))
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        s.settimeout(0.5)
        packets = attack_packets(tmp_path, mix, server_out_dir, d.port, s.getsockname()[1])
        for p in packets:
            s.sendto(p, ("127.0.0.1", d.port))
        replies = []
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                replies.append(OscMessage(s.recvfrom(65535)[0]))
            except TimeoutError:
                break
    errors = {m.params[0]: (m.params[1], m.params[2]) for m in replies if m.address == "/darc/error"}
    assert not [e for e in errors.values() if e[0] == "internal"], errors
    for job_id, fragment in (("atk-in-0", "FIFO"), ("atk-in-1", "symbolic link loop"), ("atk-in-2", "a folder"),
                             ("atk-in-3", "character device"), ("atk-in-4", "/proc"), ("atk-in-6", "'~'"),
                             ("atk-in-7", "too long"), ("atk-out-0", "symbolic link loop"), ("atk-out-2", "'~'"),
                             ("atk-seed", "got 2147483648")):
        assert fragment in errors[job_id][1], (job_id, errors.get(job_id))
    with d.client(timeout=2.0, retries=3) as c:  # the bomb was accepted (a valid header), then refused
        assert c.wait("atk-in-8", max_wait=30)["error_code"] == "bad_input"
        before = _cpu_seconds(d.proc.pid)
        time.sleep(1.0)
        assert _cpu_seconds(d.proc.pid) - before < 0.2  # idle: no reply loop with itself
        assert c.ping()["model_loaded"] == 1
    assert os.listdir(server_out_dir) == []
    assert "unexpected failure" not in d.stderr()


def _files_under(folder: Path) -> set[str]:
    return {str(p) for p in folder.rglob("*")}


def test_fuzzed_packets_do_not_hurt_the_daemon(server_kit_daemon, server_out_dir, tmp_path):
    d = server_kit_daemon
    rng = np.random.default_rng(1234)
    mix = write_mix(tmp_path / "mix.wav", seconds=1.0)
    outside = tmp_path / "outside"
    outside.mkdir()
    before_tmp = _files_under(tmp_path)
    before_default = _files_under(d.output_dir)
    packets = fuzz_packets(rng, str(mix), outside, server_out_dir)
    assert len(packets) >= 2000
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s, d.client(timeout=2.0, retries=5) as c:
        s.bind(("127.0.0.1", 0))
        for i, p in enumerate(packets):
            if len(p) <= 65000:
                s.sendto(p, ("127.0.0.1", d.port))
            if i % 250 == 249:  # a round trip now and then: the daemon keeps up and stays alive throughout
                assert c.ping()["protocol"] == 1
    with d.client(timeout=2.0, retries=5) as c:
        assert c.ping()["model_loaded"] == 1
        c.generate("after-fuzz", str(mix), "", {"midi": 0, "out_dir": str(server_out_dir)})
        final = c.wait("after-fuzz")
    assert final["state"] == "done" and os.path.isfile(final["stem_path"])
    assert _files_under(tmp_path) == before_tmp  # nothing written beside the mix or in "outside"
    assert _files_under(d.output_dir) == before_default
    assert sorted(os.listdir(server_out_dir)) == ["drums-after-fuzz.wav"]
    assert not (tmp_path.parent / "escape.wav").exists()
    assert "unexpected failure" not in d.stderr()
