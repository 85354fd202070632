"""Helpers for the daemon tests: start a real daemon subprocess on a free loopback port.

The daemon runs either the product command (`darc-bridge serve --engine kit ...`) or, for tests
that need slow or controllable jobs, `tests/server_daemon_helper.py`, which calls
`darc_bridge.server.app.serve(engine=...)` with a test engine (nothing test-only in the product).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile as sf

from darc_bridge.client import DarcClient, NoReply

ROOT = Path(__file__).resolve().parent.parent
HELPER = Path(__file__).resolve().parent / "server_daemon_helper.py"


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def write_mix(path: Path, seconds: float = 1.5, sr: int = 22050, seed: int = 0) -> Path:
    """A short drumless 'mix': a chord with a little noise (not silent, not drums)."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sr)) / sr
    x = sum(0.15 * np.sin(2 * np.pi * f * t) for f in (220.0, 277.2, 329.6)) + 0.01 * rng.standard_normal(t.size)
    sf.write(str(path), np.stack([x, x], axis=1).astype(np.float32), sr)
    return path


def write_prompt(path: Path, seconds: float = 1.0, sr: int = 22050, bpm: float = 120.0) -> Path:
    """A tapped rhythm: short noise bursts on every beat."""
    rng = np.random.default_rng(1)
    x = np.zeros(int(seconds * sr), dtype=np.float32)
    step = int(sr * 60 / bpm / 2)
    burst = (rng.standard_normal(600) * np.exp(-np.arange(600) / 120)).astype(np.float32) * 0.5
    for s in range(0, x.size - 600, step):
        x[s:s + 600] += burst
    sf.write(str(path), x, sr)
    return path


@dataclass
class Daemon:
    """A running daemon subprocess and its folders."""

    port: int
    state_dir: Path
    output_dir: Path
    args: list[str]
    env: dict[str, str]
    proc: subprocess.Popen | None = None
    log_path: Path | None = None
    extra: dict = field(default_factory=dict)

    def client(self, timeout: float = 2.0, retries: int = 2, token: str | None = None) -> DarcClient:
        return DarcClient("127.0.0.1", self.port, token=token, timeout=timeout, retries=retries)

    def start(self, wait_loaded: bool = True, token: str | None = None) -> Daemon:
        self.log_path = self.state_dir / f"stderr-{int(time.time() * 1000)}.log"
        self.state_dir.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(self.args, cwd=str(ROOT), env=self.env, stdout=log, stderr=log)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"daemon exited with {self.proc.returncode}:\n{self.stderr()}")
            try:
                with self.client(timeout=0.3, retries=0, token=token) as c:
                    pong = c.ping()
                if pong["model_loaded"] or not wait_loaded:
                    return self
            except NoReply:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"daemon did not become ready:\n{self.stderr()}")

    def stderr(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""

    def kill9(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(10)

    def terminate(self, timeout: float = 20) -> int:
        assert self.proc is not None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)


def daemon_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(ROOT) + os.pathsep + env.get("PYTHONPATH", "")
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra or {})
    return env


def make_daemon(tmp: Path, *, engine: str = "kit", delay: float = 0.0, queue_size: int = 16,
                extra_args: list[str] | None = None, env: dict[str, str] | None = None) -> Daemon:
    """A daemon (not started): engine "kit" runs the product CLI, "fake" the test helper with `delay`."""
    port = free_udp_port()
    state, out = tmp / "state", tmp / "stems"
    out.mkdir(parents=True, exist_ok=True)
    common = ["--port", str(port), "--state-dir", str(state), "--output-dir", str(out),
              "--queue-size", str(queue_size), *(extra_args or [])]
    if engine == "kit":
        args = [sys.executable, "-m", "darc_bridge.cli.main", "serve", "--engine", "kit", *common]  # darc-bridge serve
    else:
        args = [sys.executable, str(HELPER), "--delay", str(delay), *common]
    return Daemon(port, state, out, args, daemon_env(env))


def kit_available() -> bool:
    return (ROOT / "darc_bridge" / "engines" / "kit.py").exists()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


def client_cli(argv: list[str]) -> int:
    """Run `darc-bridge client ARGV` in this process (the client subcommand's own parser and code)."""
    import argparse

    from darc_bridge.cli import client as client_cmd

    parser = argparse.ArgumentParser(prog="darc-bridge")
    client_cmd.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(["client", *argv])
    return int(args.func(args) or 0)
