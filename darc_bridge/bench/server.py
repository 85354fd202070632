"""Daemon benchmarks: OSC round-trip latency, the per-job overhead beyond the engine's own time,
and a soak run with kill -9.

Targets on loopback: ping p99 under 5 ms (1,000 pings), overhead under 50 ms per job. The daemon
runs in the benchmark process (its own threads); the client uses its own socket, as a DAW would.

The soak run (`soak`) starts `darc-bridge serve --engine kit` as a subprocess on loopback only,
sends jobs from several clients at once and kills the daemon with SIGKILL every N finished jobs,
restarting it on the same state folder; it reports jobs lost (must be 0), duplicate outputs (0),
leftover temporary files (0), latency and the daemon's memory. It is bounded in jobs and time.
Size: $DARC_BENCH_SOAK_JOBS (default 2,000; kill -9 every tenth of them).
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

from darc_bridge.bench.common import BenchRow, run_isolated
from darc_bridge.engines import (
    CancelToken,
    Engine,
    GenerationParams,
    GenerationResult,
    ProgressCallback,
    no_progress,
)

PINGS = 1000
JOBS = 20
MIX_S = 2.0
SOAK_JOBS = int(os.environ.get("DARC_BENCH_SOAK_JOBS", "2000"))
SOAK_CLIENTS = 8
SOAK_MAX_JOBS = 20000  # the soak never sends more than this, whatever the environment says


class TimedEngine(Engine):
    """Wraps an engine and adds up the time spent inside generate()."""

    def __init__(self, inner: Engine) -> None:
        self.inner = inner
        self.name = inner.name
        self.times: list[float] = []

    def load(self) -> None:
        self.inner.load()

    def describe(self) -> dict:
        return self.inner.describe()

    def generate(self, mix, prompt, params: GenerationParams, progress: ProgressCallback = no_progress,
                 cancel: CancelToken | None = None) -> GenerationResult:
        t0 = time.perf_counter()
        try:
            return self.inner.generate(mix, prompt, params, progress, cancel)
        finally:
            self.times.append(time.perf_counter() - t0)


def _start(folder: Path, engine: Engine):
    from darc_bridge.server.app import DarcServer
    from darc_bridge.server.config import ServerConfig

    config = ServerConfig(port=0, output_dir=folder / "stems", state_dir=folder / "state", queue_size=64)
    server = DarcServer(config, engine)
    host, port = server.start()
    return server, port


def _wait_loaded(server, timeout: float = 300.0) -> None:
    deadline = time.monotonic() + timeout
    while not server.loaded and time.monotonic() < deadline:
        if server.load_error is not None:
            raise server.load_error
        time.sleep(0.05)


def ping_latency() -> dict:
    """1,000 sequential pings on loopback; p50/p99 round trip in milliseconds."""
    from darc_bridge.client import DarcClient
    from darc_bridge.engines import create_engine

    with tempfile.TemporaryDirectory() as tmp:
        server, port = _start(Path(tmp), create_engine("kit"))
        try:
            _wait_loaded(server)
            with DarcClient("127.0.0.1", port, timeout=1.0, retries=2) as client:
                for _ in range(50):  # warm the path
                    client.ping()
                times = []
                for _ in range(PINGS):
                    t0 = time.perf_counter()
                    client.ping()
                    times.append(time.perf_counter() - t0)
        finally:
            server.stop()
    ms = np.array(times) * 1000
    return {"seconds": float(np.sum(times)), "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "max_ms": float(ms.max()), "target_p99_ms": 5.0}


def job_overhead() -> dict:
    """Submit-to-done time of kit jobs on a 2 s mix minus the engine's generate() time."""
    import soundfile as sf

    from darc_bridge.client import DarcClient
    from darc_bridge.engines import create_engine

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        sr = 44100
        t = np.arange(int(MIX_S * sr)) / sr
        mix = folder / "mix.wav"
        sf.write(str(mix), (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
        engine = TimedEngine(create_engine("kit"))
        server, port = _start(folder, engine)
        try:
            _wait_loaded(server)
            engine.times.clear()  # the warm-up is not a job
            totals = []
            with DarcClient("127.0.0.1", port, timeout=10.0, retries=2) as client:
                for i in range(JOBS):
                    t0 = time.perf_counter()
                    client.generate(f"bench-{i}", str(mix), "", {"midi": 0, "seed": i})
                    final = client.wait(f"bench-{i}")
                    totals.append(time.perf_counter() - t0)
                    assert final["state"] == "done", final
        finally:
            server.stop()
    overhead_ms = (np.array(totals) - np.array(engine.times)) * 1000
    return {"seconds": float(np.sum(totals)), "overhead_mean_ms": float(overhead_ms.mean()),
            "overhead_p95_ms": float(np.percentile(overhead_ms, 95)),
            "engine_mean_ms": float(np.mean(engine.times) * 1000), "target_overhead_ms": 50.0}


class _SoakDaemon:
    """`darc-bridge serve --engine kit` on 127.0.0.1 (never another address), restartable."""

    def __init__(self, folder: Path, port: int) -> None:
        self.folder = folder
        self.port = port
        self.proc: subprocess.Popen | None = None
        self.rss: list[tuple[float, float]] = []  # (rss at its first finished job, rss when killed) per run

    def start(self) -> None:
        cmd = [sys.executable, "-m", "darc_bridge.cli.main", "serve", "--engine", "kit", "--host", "127.0.0.1",
               "--port", str(self.port), "--state-dir", str(self.folder / "state"), "--output-dir",
               str(self.folder / "stems"), "--queue-size", "64", "--no-warmup"]
        log = open(self.folder / "daemon-stderr.log", "ab")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env={**os.environ, "OMP_NUM_THREADS": "1"})
        log.close()

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024.0
        except (OSError, AttributeError):
            pass
        return 0.0

    def kill9(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(30)


def soak(jobs: int = SOAK_JOBS, clients: int = SOAK_CLIENTS, kill_every: int | None = None,
         mix_s: float = 0.5, time_limit_s: float = 900.0) -> dict:
    """`jobs` kit jobs from `clients` threads on loopback, the daemon killed with SIGKILL every
    `kill_every` finished jobs (default: a tenth of them) and restarted; see the module docstring."""
    import soundfile as sf

    from darc_bridge.client import ClientError, DarcClient, NoReply

    jobs = max(1, min(int(jobs), SOAK_MAX_JOBS))
    kill_every = kill_every or max(1, jobs // 10)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        (folder / "stems").mkdir()
        sr = 22050
        t = np.arange(int(mix_s * sr)) / sr
        mix = folder / "mix.wav"
        sf.write(str(mix), (0.2 * np.sin(2 * np.pi * 220 * t)).astype(np.float32), sr)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        daemon = _SoakDaemon(folder, port)
        daemon.start()
        deadline = time.monotonic() + time_limit_s
        lock = threading.Lock()
        finals: dict[str, dict] = {}
        latencies: list[float] = []
        next_job = iter(range(jobs))

        def client_loop() -> None:
            with DarcClient("127.0.0.1", port, timeout=1.0, retries=2) as c:
                while time.monotonic() < deadline:
                    with lock:
                        i = next(next_job, None)
                    if i is None:
                        return
                    job_id, t0 = f"soak-{i}", time.perf_counter()
                    while time.monotonic() < deadline:
                        try:
                            state = c.generate(job_id, str(mix), "", {"midi": 0, "seed": i})
                            if state["state"] not in ("done", "error", "cancelled"):
                                state = c.wait(job_id, max_wait=120)
                        except NoReply:
                            continue  # the daemon is being restarted: resend (same job id)
                        except ClientError as exc:
                            if exc.code in ("queue_full", "timeout"):
                                time.sleep(0.1)
                                continue
                            state = {"state": "error", "error_code": exc.code, "stem_path": ""}
                        if state["state"] == "done" and not state.get("stem_path"):
                            continue
                        with lock:
                            finals[job_id] = state
                            if state["state"] == "done":
                                latencies.append(time.perf_counter() - t0)
                        break

        threads = [threading.Thread(target=client_loop, daemon=True) for _ in range(clients)]
        t_start = time.perf_counter()
        for th in threads:
            th.start()
        kills, killed_at, first_rss = 0, 0, 0.0
        while any(th.is_alive() for th in threads) and time.monotonic() < deadline:
            time.sleep(0.05)
            with lock:
                n = len(finals)
            if not first_rss and n >= killed_at + clients:  # this run of the daemon has done real jobs
                first_rss = daemon.rss_mb()
            if n - killed_at >= kill_every and n < jobs:
                daemon.rss.append((first_rss, daemon.rss_mb()))
                daemon.kill9()
                kills += 1
                killed_at, first_rss = n, 0.0
                daemon.start()
        for th in threads:
            th.join(max(0.0, deadline - time.monotonic()))
        seconds = time.perf_counter() - t_start
        daemon.rss.append((first_rss, daemon.rss_mb()))
        daemon.proc.send_signal(signal.SIGTERM)
        daemon.proc.wait(30)
        names = [p.name for p in (folder / "stems").iterdir()]
    done = [f for f in finals.values() if f["state"] == "done"]
    stems = [n for n in names if not n.startswith(".")]
    ms = np.array(latencies or [0.0]) * 1000
    return {
        "seconds": seconds, "jobs": jobs, "clients": clients, "kills": kills,
        "lost": jobs - len(finals), "done": len(done),
        "interrupted": sum(f.get("error_code") == "interrupted" for f in finals.values()),
        "other_errors": sum(f["state"] != "done" and f.get("error_code") != "interrupted" for f in finals.values()),
        "duplicates": len(stems) - len({Path(f["stem_path"]).name for f in done}),
        "leftover_temp": sum(n.startswith(".") for n in names),
        "p50_ms": float(np.percentile(ms, 50)), "p99_ms": float(np.percentile(ms, 99)),
        "rss_start_mb": daemon.rss[0][0], "rss_end_mb": daemon.rss[-1][1],
        "rss_growth_max_mb": max(end - start for start, end in daemon.rss if start),
    }


def cases() -> list[BenchRow]:
    return [
        run_isolated("server", f"osc ping x{PINGS} (loopback)", "darc_bridge.bench.server:ping_latency"),
        run_isolated("server", f"job overhead, kit, {MIX_S:.0f}s mix x{JOBS}", "darc_bridge.bench.server:job_overhead"),
        run_isolated("server", f"soak x{SOAK_JOBS}, {SOAK_CLIENTS} clients, kill -9",
                     "darc_bridge.bench.server:soak", timeout=1200),
    ]
