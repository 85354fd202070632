"""Shared pytest fixtures."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from server_support import Daemon, make_daemon  # noqa: E402


@pytest.fixture
def server_daemon_factory(tmp_path: Path) -> Iterator[Callable[..., Daemon]]:
    """Start daemons (real subprocesses on free loopback ports); all are killed at teardown.

    make(engine="kit"|"fake", delay=..., queue_size=..., extra_args=[...], env={...}, start=True).
    """
    started: list[Daemon] = []

    def make(start: bool = True, token: str | None = None, **kwargs) -> Daemon:
        d = make_daemon(tmp_path / f"daemon{len(started)}", **kwargs)
        started.append(d)
        return d.start(token=token) if start else d

    yield make
    for d in started:
        d.stop()


@pytest.fixture(scope="session")
def server_kit_daemon(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Daemon]:
    """One `darc-bridge serve --engine kit` daemon shared by a test session (its warm-up is slow).

    Explicit out_dir must lie under `daemon.extra["allowed"]`; use `server_out_dir` for a fresh one.
    """
    root = tmp_path_factory.mktemp("kit-daemon")
    allowed = root / "allowed"
    allowed.mkdir()
    d = make_daemon(root, engine="kit", queue_size=32, extra_args=["--allow-dir", str(allowed)])
    d.extra["allowed"] = allowed
    d.start()
    yield d
    d.stop()


@pytest.fixture
def server_out_dir(server_kit_daemon: Daemon, request: pytest.FixtureRequest) -> Path:
    """A fresh, empty output folder inside the shared kit daemon's allowed folder."""
    folder = server_kit_daemon.extra["allowed"] / request.node.name[:60].replace("[", "_").replace("]", "_")
    folder.mkdir()
    return folder


@pytest.fixture(scope="module")
def torch_one_thread():
    """Tiny models run several times faster on one thread than two on a shared 2-core machine."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
