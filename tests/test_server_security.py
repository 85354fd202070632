"""Network mode: every message needs the shared token; without it nothing changes."""

from __future__ import annotations

import argparse

import pytest
from server_support import write_mix

from darc_bridge.cli import serve as serve_cmd
from darc_bridge.client import ClientError
from darc_bridge.server.app import serve
from darc_bridge.server.journal import Journal
from darc_bridge.server.security import ConfigError

TOKEN = "test-token-1234"


@pytest.mark.slow
def test_messages_without_the_right_token_are_refused(server_daemon_factory, tmp_path):
    d = server_daemon_factory(engine="fake", token=TOKEN, extra_args=["--allow-network", "--token", TOKEN])
    mix = str(write_mix(tmp_path / "mix.wav", seconds=0.5))
    for token in (None, "wrong-token-0000"):
        with d.client(token=token, timeout=1.0, retries=1) as c:
            with pytest.raises(ClientError) as info:
                c.ping()
            assert info.value.code == "unauthorized"
            with pytest.raises(ClientError) as info:
                c.generate("no-token", mix, "", {"midi": 0})
            assert info.value.code == "unauthorized"
            with pytest.raises(ClientError) as info:
                c.set_params(temperature=0.1)
            assert info.value.code == "unauthorized"
            with pytest.raises(ClientError) as info:  # even a malformed request learns nothing but "unauthorized"
                c.request("/darc/bogus", (c.reply_port,), ("/darc/pong",))
            assert info.value.code == "unauthorized"
    with d.client(token=TOKEN) as c:
        assert c.ping()["protocol"] == 1
        assert c.get_params()["temperature"] == pytest.approx(1.0)  # the refused /darc/set changed nothing
        c.generate("with-token", mix, "", {"midi": 0})
        assert c.wait("with-token")["state"] == "done"
    assert [r.job_id for r in Journal(d.state_dir / "jobs.sqlite3").all()] == ["with-token"]
    assert sorted(p.name for p in d.output_dir.iterdir()) == ["drums-with-token.wav"]


def _serve_args(tmp_path, *extra: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    serve_cmd.register(parser.add_subparsers())
    return parser.parse_args(["serve", "--state-dir", str(tmp_path / "s"), "--port", "0", *extra])


def test_listening_beyond_loopback_needs_allow_network_and_a_token(tmp_path):
    with pytest.raises(ConfigError, match="--allow-network"):
        serve(serve_cmd.config_from_args(_serve_args(tmp_path, "--host", "0.0.0.0")), engine=_NoEngine())
    with pytest.raises(ConfigError, match="--token"):
        serve(serve_cmd.config_from_args(_serve_args(tmp_path, "--host", "0.0.0.0", "--allow-network")),
              engine=_NoEngine())
    config = serve_cmd.config_from_args(_serve_args(tmp_path, "--host", "0.0.0.0", "--allow-network",
                                                    "--token", TOKEN))
    assert config.allow_dirs == [config.output_dir]  # remote clients may only write into the output folder


class _NoEngine:
    """Never used: the daemon refuses its settings before touching the engine."""

    name = "none"


class _BrokenEngine:
    """An engine whose checkpoint cannot be loaded."""

    name = "broken"

    def load(self) -> None:
        from darc_bridge.errors import CheckpointError

        raise CheckpointError("checkpoint folder holds no state_dict.bin: /nowhere")

    def describe(self) -> dict:
        return {"engine": self.name, "device": "cpu", "loaded": False}


def test_an_engine_that_cannot_load_stops_the_daemon_with_its_reason(tmp_path):
    from darc_bridge.errors import CheckpointError, InputError

    config = serve_cmd.config_from_args(_serve_args(tmp_path))
    with pytest.raises(CheckpointError, match="state_dict.bin"):
        serve(config, engine=_BrokenEngine())
    assert "the engine could not be loaded" in (tmp_path / "s" / "daemon.log").read_text()
    args = _serve_args(tmp_path, "--engine", "darc", "--checkpoint", str(tmp_path / "no-such-model"))
    with pytest.raises((CheckpointError, InputError), match="no-such-model"):
        serve_cmd.run(args)


def test_a_port_in_use_is_a_clear_error(tmp_path):
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as busy:
        busy.bind(("127.0.0.1", 0))
        port = busy.getsockname()[1]
        config = serve_cmd.config_from_args(_serve_args(tmp_path, "--port", str(port)))
        with pytest.raises(ConfigError, match=f"cannot listen on 127.0.0.1:{port}"):
            serve(config, engine=_BrokenEngine())


def test_two_daemons_cannot_share_a_state_folder(tmp_path):
    from darc_bridge.server.app import DarcServer

    config = serve_cmd.config_from_args(_serve_args(tmp_path))
    first = DarcServer(config, _BrokenEngine())
    try:
        with pytest.raises(ConfigError, match="another daemon is using the state folder"):
            DarcServer(config, _BrokenEngine())
    finally:
        first.stop()
    DarcServer(config, _BrokenEngine()).stop()  # free again once the first one stopped
