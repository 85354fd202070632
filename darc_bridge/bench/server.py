"""Daemon benchmarks: OSC round-trip latency and the per-job overhead beyond the engine's own time.

Targets on loopback: ping p99 under 5 ms (1,000 pings), overhead under 50 ms per job. The daemon
runs in the benchmark process (its own threads); the client uses its own socket, as a DAW would.
"""

from __future__ import annotations

import tempfile
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


def cases() -> list[BenchRow]:
    return [
        run_isolated("server", f"osc ping x{PINGS} (loopback)", "darc_bridge.bench.server:ping_latency"),
        run_isolated("server", f"job overhead, kit, {MIX_S:.0f}s mix x{JOBS}", "darc_bridge.bench.server:job_overhead"),
    ]
