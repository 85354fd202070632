"""Regression tests for the defects a loopback attack found (issue 13), one or more per fix.

Most run a real DarcServer in this process (its own threads and UDP socket) with the test sine
engine, so they are quick; each would fail on the code before the fix.
"""

from __future__ import annotations

import errno
import os
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from pythonosc.osc_message import OscMessage
from pythonosc.osc_message_builder import OscMessageBuilder
from server_daemon_helper import SlowSineEngine
from server_support import client_cli, write_mix

from darc_bridge.client import DarcClient
from darc_bridge.engines import GenerationParams, GenerationResult
from darc_bridge.errors import InputError, OutputError
from darc_bridge.outputs import OutputFile, OutputFolder, commit_outputs
from darc_bridge.pipeline import run_job
from darc_bridge.server import protocol as P
from darc_bridge.server.app import DarcServer
from darc_bridge.server.config import ServerConfig
from darc_bridge.server.files import FilePolicy
from darc_bridge.server.jobs import params_from_options
from darc_bridge.server.journal import JobRecord, Journal
from darc_bridge.server.security import ConfigError, SecurityPolicy, read_token

TOKEN = "attack-token-1234"


class NoRhythmEngine(SlowSineEngine):
    """Like the DARC engine without a prompt: a stem, but no rhythm it followed."""

    def generate(self, mix, prompt, params, progress=None, cancel=None) -> GenerationResult:
        out = super().generate(mix, prompt, params, cancel=cancel)
        return GenerationResult(out.stem, out.sample_rate, rhythm=None, info=out.info)


@pytest.fixture
def make_server(tmp_path):
    servers: list[DarcServer] = []

    def make(engine=None, name: str = "d", **config) -> tuple[DarcServer, int]:
        root = tmp_path / name
        cfg = ServerConfig(port=0, output_dir=root / "stems", state_dir=root / "state", warmup=False, **config)
        server = DarcServer(cfg, engine or SlowSineEngine(0.0))
        servers.append(server)
        _, port = server.start()
        deadline = time.monotonic() + 10
        while not server.loaded and time.monotonic() < deadline:
            time.sleep(0.01)
        return server, port

    yield make
    for s in servers:
        if not s.stopped.is_set():
            s.stop()


def osc(address: str, *args) -> bytes:
    b = OscMessageBuilder(address)
    for a in args:
        b.add_arg(a, "i" if isinstance(a, int) else "f" if isinstance(a, float) else "s")
    return b.build().dgram


def listener() -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.bind(("127.0.0.1", 0))
    s.settimeout(0.3)
    return s


def received(sock: socket.socket, wait: float = 0.3) -> list[OscMessage]:
    out = []
    deadline = time.monotonic() + wait
    while time.monotonic() < deadline:
        try:
            data, _ = sock.recvfrom(65535)
        except TimeoutError:
            break
        out.append(OscMessage(data))
    return out


def _cpu_over(seconds: float) -> float:
    t0 = time.process_time()
    time.sleep(seconds)
    return time.process_time() - t0


# --- fix 1: self-reply loop ---------------------------------------------------------------------
def test_a_ping_naming_the_daemons_own_port_or_another_daemon_makes_no_loop(make_server):
    a, port_a = make_server(name="a")
    b, port_b = make_server(name="b")
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.sendto(osc("/darc/ping", port_a), ("127.0.0.1", port_a))  # reply to itself
        s.sendto(osc("/darc/ping", port_b), ("127.0.0.1", port_a))  # two daemons pointed at each other
        s.sendto(osc("/darc/status", "j", port_b), ("127.0.0.1", port_a))
    time.sleep(0.2)
    assert _cpu_over(0.6) < 0.1  # the old daemon answered its own pong forever at ~100% CPU
    with DarcClient("127.0.0.1", port_a, timeout=0.5, retries=0) as c:
        t0 = time.perf_counter()
        c.ping()
        assert time.perf_counter() - t0 < 0.1


def test_replies_are_never_answered():
    for address in ("/darc/pong", "/darc/error", "/darc/done", "/darc/progress", "/darc/params"):
        assert not P.ROUTES[address].answer
        with pytest.raises(P.ProtocolError, match="unknown address"):
            P.parse_request(address, [9000])


# --- fix 2: memory bomb; a job that killed the daemon is not retried ----------------------------
def _wav_header(channels: int, rate: int, bits: int, data_bytes: int) -> bytes:
    import struct

    block = channels * bits // 8
    fmt = struct.pack("<HHIIHH", 1, channels, rate, rate * block, block, bits)
    return (b"RIFF" + struct.pack("<I", 36 + data_bytes) + b"WAVE" + b"fmt " + struct.pack("<I", 16) + fmt
            + b"data" + struct.pack("<I", data_bytes))


def test_a_wav_claiming_1024_channels_is_refused_before_decoding(make_server, tmp_path):
    bomb = tmp_path / "bomb.wav"
    size = 300 * 1024 * 1024  # sparse: decodes to 1.2 GB of float32, 4x the file
    with open(bomb, "wb") as fh:
        fh.write(_wav_header(1024, 8000, 8, size))
        fh.truncate(size + 44)
    server, port = make_server()
    with DarcClient("127.0.0.1", port, timeout=2.0, retries=1) as c:
        c.generate("bomb", str(bomb), "", {"midi": 0})
        final = c.wait("bomb", max_wait=20)
        assert (final["state"], final["error_code"]) == ("error", "bad_input")
        assert "1024 channels" in final["error_message"] and "decode" in final["error_message"]
        assert c.ping()["protocol"] == 1


def test_only_the_region_is_decoded(tmp_path):
    import tracemalloc

    import soundfile as sf

    from darc_bridge.audio import AudioLimits, load_audio

    path = tmp_path / "long.wav"
    sr = 8000
    sf.write(str(path), np.random.default_rng(0).uniform(-0.5, 0.5, (sr * 60, 2)).astype(np.float32), sr)
    tracemalloc.start()
    audio = load_audio(path, start=10.0, end=11.0, limits=AudioLimits())
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert audio.samples.shape == (2, sr)
    assert peak < 8 * 2 * sr * 4  # a few copies of one second, never the whole minute


# --- fix 5: a journal that cannot be written ends the job --------------------------------------
def test_a_journal_write_failure_ends_the_job_with_an_error(make_server, tmp_path):
    server, port = make_server(engine=SlowSineEngine(0.6))
    mix = write_mix(tmp_path / "mix.wav", seconds=0.5)
    with DarcClient("127.0.0.1", port, timeout=1.0, retries=1) as c:
        c.generate("stuck", str(mix), "", {"midi": 0})
        time.sleep(0.3)
        server.journal._db.execute("PRAGMA query_only=ON")  # every write now fails, as on a full disk
        final = c.wait("stuck", max_wait=10)
        assert (final["state"], final["error_code"]) == ("error", "journal_error")
        assert "journal" in final["error_message"] and "cannot be written" in final["error_message"]
        assert c.status("stuck")["state"] == "error"  # not "running" for good
    server.journal._db.execute("PRAGMA query_only=OFF")


def test_a_corrupt_journal_is_a_one_line_error_and_exit_2(tmp_path):
    import subprocess
    import sys

    from server_support import ROOT, daemon_env, free_udp_port

    state = tmp_path / "state"
    state.mkdir()
    (state / "jobs.sqlite3").write_bytes(b"this is not a database" * 100)
    done = subprocess.run([sys.executable, "-m", "darc_bridge.cli.main", "serve", "--port", str(free_udp_port()),
                           "--state-dir", str(state), "--no-warmup"], cwd=ROOT, env=daemon_env(),
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert "darc-bridge: error: the job journal" in done.stderr and "cannot be opened" in done.stderr


# --- fix 6: --allow-dir escape by swapping a folder for a symlink ------------------------------
def test_a_folder_swapped_for_a_symlink_during_the_job_gets_nothing_outside(make_server, tmp_path):
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    (allowed / "sub").mkdir(parents=True)
    outside.mkdir()
    server, port = make_server(engine=SlowSineEngine(0.8), allow_dirs=[allowed])
    mix = write_mix(tmp_path / "mix.wav", seconds=0.5)
    with DarcClient("127.0.0.1", port, timeout=1.0, retries=1) as c:
        c.generate("swap", str(mix), "", {"midi": 1, "out_dir": str(allowed / "sub")})
        time.sleep(0.3)
        (allowed / "sub").rename(allowed / "moved")
        os.symlink(outside, allowed / "sub")
        final = c.wait("swap", max_wait=10)
    assert (final["state"], final["error_code"]) == ("error", "bad_output")
    assert list(outside.iterdir()) == [] and list((allowed / "moved").iterdir()) == []


# --- fix 7 and 11: outputs together or not at all -----------------------------------------------
def test_a_job_without_a_rhythm_writes_its_stem_and_no_orphan(make_server, tmp_path):
    server, port = make_server(engine=NoRhythmEngine(0.0))
    mix = write_mix(tmp_path / "mix.wav", seconds=0.5)
    with DarcClient("127.0.0.1", port, timeout=1.0, retries=1) as c:
        c.generate("norhythm", str(mix), "")  # the daemon asks for MIDI by default
        final = c.wait("norhythm", max_wait=10)
    assert final["state"] == "done" and final["midi_path"] == ""
    assert sorted(p.name for p in server.files.output_dir.iterdir()) == ["drums-norhythm.wav"]


def test_the_cli_path_checks_the_midi_before_writing_anything(tmp_path):
    mix = write_mix(tmp_path / "mix.wav", seconds=0.5)
    with pytest.raises(InputError, match="no rhythm to write as MIDI"):
        run_job(NoRhythmEngine(0.0), mix, None, tmp_path / "out.wav", GenerationParams(seed=1),
                midi_path=tmp_path / "out.mid")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mix.wav"]  # no orphan stem, no temp file


def _file(folder: OutputFolder, role: str, suffix: str, payload: bytes = b"x", fail: bool = False) -> OutputFile:
    def write(fh) -> None:
        if fail:
            raise OSError(errno.ENOSPC, "No space left on device")
        fh.write(payload)

    return OutputFile(role, folder, "take", suffix, write)


def test_a_failed_output_removes_the_others_and_a_full_disk_is_named(tmp_path):
    with OutputFolder.open(tmp_path) as folder:
        with pytest.raises(OutputError, match="no space left"):
            commit_outputs([_file(folder, "stem", ".wav"), _file(folder, "midi", ".mid", fail=True)], "t1",
                           numbered=True)
        assert list(tmp_path.iterdir()) == []
        paths = commit_outputs([_file(folder, "stem", ".wav"), _file(folder, "midi", ".mid")], "t2", numbered=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.mid", "take.wav"]  # the retry: no -2 duplicate
    assert paths["stem"] == tmp_path / "take.wav"


def test_two_writers_on_one_name_both_succeed_with_distinct_names(tmp_path):
    def rival(plan) -> None:  # a second writer takes the name between planning and linking (once)
        target = Path(plan[0]["path"])
        if target.name == "take.wav":
            target.write_bytes(b"the other writer's take")

    with OutputFolder.open(tmp_path) as folder:
        paths = commit_outputs([_file(folder, "stem", ".wav", b"ours"), _file(folder, "midi", ".mid")], "t3",
                               numbered=True, on_planned=rival)
    assert paths["stem"].name == "take-2.wav" and paths["midi"].name == "take-2.mid"
    assert (tmp_path / "take.wav").read_bytes() == b"the other writer's take"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take-2.mid", "take-2.wav", "take.wav"]


# --- fix 8: reflection, tokens --------------------------------------------------------------------
def test_an_unauthenticated_sender_gets_one_rate_limited_reply_at_its_source(make_server):
    server, port = make_server(host="127.0.0.1", allow_network=True, token=TOKEN)
    with listener() as sender, listener() as victim:
        for _ in range(20):
            sender.sendto(osc("/darc/ping", victim.getsockname()[1]), ("127.0.0.1", port))
            sender.sendto(b"junk that is not OSC", ("127.0.0.1", port))
        assert received(victim) == []  # never reflected to the port a request names
        replies = received(sender)
    assert len(replies) == 1 and replies[0].params[1] == "unauthorized"
    with DarcClient("127.0.0.1", port, token=TOKEN, timeout=1.0, retries=0) as c:
        assert c.ping()["protocol"] == 1


def test_tokens_come_from_a_file_or_the_environment_and_blank_ones_are_refused(tmp_path):
    for blank in ("        ", " padded-token ", "short"):
        with pytest.raises(ConfigError, match="at least 8"):
            SecurityPolicy(host="0.0.0.0", allow_network=True, token=blank)
    f = tmp_path / "token"
    f.write_text(TOKEN + "\n")
    assert read_token(None, str(f), {}) == TOKEN
    assert read_token(None, None, {"DARC_BRIDGE_TOKEN": TOKEN}) == TOKEN
    assert read_token("given", None, {"DARC_BRIDGE_TOKEN": TOKEN}) == "given"
    with pytest.raises(ConfigError, match="token file"):
        read_token(None, str(tmp_path / "missing"), {})
    import argparse

    from darc_bridge.cli import serve as serve_cmd

    parser = argparse.ArgumentParser()
    serve_cmd.register(parser.add_subparsers())
    args = parser.parse_args(["serve", "--state-dir", str(tmp_path / "s"), "--token-file", str(f)])
    assert serve_cmd.config_from_args(args).token == TOKEN


def test_replies_to_one_request_are_capped_in_bytes(make_server):
    long = "x" * P.MAX_STRING
    assert len(P.build("/darc/status", long, "done", 1.0, long, long, long, long)) <= P.MAX_REPLY_BYTES
    server, _ = make_server()
    with listener() as client:
        budget = [P.MAX_REPLY_BYTES]
        for _ in range(3):  # a request whose replies would add up beyond the cap gets only what fits
            server.send(client.getsockname(), "/darc/status", long, "done", 1.0, long, long, long, long,
                        budget=budget)
        assert len(received(client)) == 1


# --- fix 9: clear errors --------------------------------------------------------------------------
def test_inputs_are_named_as_what_they_are(tmp_path):
    policy = FilePolicy(tmp_path)
    fifo = tmp_path / "pipe.wav"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.wav"
    os.symlink(loop, loop)
    cases = {str(fifo): "FIFO", str(tmp_path): "a folder", "/dev/null": "character device",
             "/proc/self/status": "/proc", str(loop): "symbolic link loop",
             "/" + "n" * 300 + ".wav": "too long", "~/mix.wav": "'~'"}
    for path, fragment in cases.items():
        with pytest.raises(InputError) as info:
            policy.check_input(path, "mix")
        assert fragment in str(info.value), (path, str(info.value))
    for bad, fragment in ((str(loop), "symbolic link loop"), ("~/stems", "'~'"), ("/" + "d" * 5000, "too long")):
        with pytest.raises(OutputError, match=fragment):
            policy.output_folder(bad)


def test_the_seed_range_message_shows_the_whole_number():
    with pytest.raises(P.ProtocolError) as info:
        P.parse_request("/darc/generate", ["j", 9000, "/m.wav", "", "seed", 2**31])
    assert "2147483647" in info.value.message and "got 2147483648" in info.value.message


def test_error_replies_go_to_the_named_reply_port(make_server):
    server, port = make_server()
    with listener() as sender, listener() as reply:
        sender.sendto(osc("/darc/generate", "named", reply.getsockname()[1], "/m.wav", "", "colour", 1),
                      ("127.0.0.1", port))
        sender.sendto(osc("/darc/generate", "named2", reply.getsockname()[1], "relative.wav", ""),
                      ("127.0.0.1", port))
        got = received(reply)
        assert received(sender, 0.1) == []
    assert [(m.params[0], m.params[1]) for m in got] == [("named", "bad_request"), ("named2", "bad_input")]


# --- fix 10: one table; a left-out option is the model's -----------------------------------------
def test_the_daemon_does_not_override_the_models_own_sampling_values(make_server):
    server, _ = make_server()
    options = {k: v for k, v in server.defaults.items() if v is not None}
    assert not {"top_k", "top_p", "cfg_coef"} & set(options)
    assert params_from_options({**options, "seed": 1}).extra == {}  # the engine uses the checkpoint's values
    for key, value in (("top_k", 2049), ("cfg_coef", 10.5)):
        with pytest.raises(P.ProtocolError):
            P.parse_request("/darc/generate", ["j", 9000, "/m.wav", "", key, value])
        with pytest.raises(InputError):
            GenerationParams(extra={key: value}).validate()  # the same range in the engines


# --- fix 12: one route table ------------------------------------------------------------------------
def test_every_request_route_has_exactly_one_handler(make_server):
    server, _ = make_server()
    assert set(server.handlers) == {r.kind for r in P.ROUTES.values() if r.answer}
    assert P.ROUTES["/darc/generate"].port_index == 1 and P.ROUTES["/darc/ping"].port_index == 0


# --- fix 13: client options after the command -------------------------------------------------------
def test_client_options_work_after_the_command(make_server, capsys):
    server, port = make_server()
    assert client_cli(["ping", "--port", str(port), "--timeout", "1"]) == 0
    assert '"protocol": 1' in capsys.readouterr().out
    assert client_cli(["--port", str(port), "ping"]) == 0


# --- journal pruning ------------------------------------------------------------------------------------
def test_finished_jobs_older_than_the_setting_are_pruned_at_start(make_server, tmp_path):
    state = tmp_path / "p" / "state"
    journal = Journal(state / "jobs.sqlite3")
    old = time.time() - 10 * 86400
    journal.add(JobRecord("old-done", "generate", "done", {}, "127.0.0.1", 9, created=old, updated=old))
    journal.add(JobRecord("new-done", "generate", "done", {}, "127.0.0.1", 9))
    journal.close()
    server, port = make_server(name="p", keep_days=7)
    assert server.journal.get("old-done") is None and server.journal.get("new-done") is not None


def test_further_outputs_join_the_same_all_or_none_commit(tmp_path):
    """The commit takes any set of roles: per-piece stems (issue 14) are one more entry each."""
    from darc_bridge.pipeline import write_outputs

    stem = np.zeros((1, 800), np.float32)
    result = GenerationResult(stem, 8000)
    result.pieces = {"kick": stem, "snare": np.full((1, 800), np.nan, np.float32)}  # the snare cannot be written
    with OutputFolder.open(tmp_path) as folder:
        files = {"stem": (folder, "take", ".wav"), "kick": (folder, "take", ".kick.wav")}
        paths = write_outputs(result, files, "t4", numbered=True)
        assert sorted(p.name for p in paths.values()) == ["take.kick.wav", "take.wav"]
        with pytest.raises(OutputError, match="NaN"):
            write_outputs(result, {**files, "snare": (folder, "take", ".snare.wav")}, "t5", numbered=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["take.kick.wav", "take.wav"]  # nothing of the second
