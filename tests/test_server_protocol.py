"""Unit tests of the daemon's parts that need no socket: protocol checks, journal, files, progress."""

from __future__ import annotations

import os
import threading

import pytest

from darc_bridge.errors import InputError, OutputError
from darc_bridge.progress import OverallProgress
from darc_bridge.server import protocol as P
from darc_bridge.server.files import FilePolicy
from darc_bridge.server.journal import JobRecord, Journal
from darc_bridge.server.security import ConfigError, SecurityPolicy
from darc_bridge.server.worker import QueueFull, Task, Worker


def test_generate_request_is_parsed_with_options_in_any_order():
    req = P.parse_request("/darc/generate", ["abc-1", 9100, "/m.wav", "", "seed", 7, "temperature", 0.5,
                                             "midi", 0, "top_k", 10.0])
    assert (req.kind, req.job_id, req.reply_port) == ("generate", "abc-1", 9100)
    assert req.fields == {"mix": "/m.wav", "prompt": ""}
    assert req.options == {"seed": 7, "temperature": 0.5, "midi": 0, "top_k": 10}
    assert isinstance(req.options["top_k"], int) and isinstance(req.options["temperature"], float)


@pytest.mark.parametrize(
    "address,args,code,fragment",
    [
        ("/darc/generate", ["j", 9000, "/m.wav"], "bad_request", "too few"),
        ("/darc/generate", ["j", 9000, "/m.wav", "", "temperature"], "bad_request", "pairs"),
        ("/darc/generate", ["j", 9000, "/m.wav", "", "temperature", 9.0], "bad_request", "between 0 and 5"),
        ("/darc/generate", ["j", 9000, "/m.wav", "", "temperature", "hot"], "bad_request", "number"),
        ("/darc/generate", ["j", 9000, "/m.wav", "", "seed", 1.5], "bad_request", "whole number"),
        ("/darc/generate", ["j", 9000, "/m.wav", "", "colour", 1], "bad_request", "unknown option"),
        ("/darc/generate", ["j", 9000, "/m.wav", "", "name", "../x"], "bad_request", "name"),
        ("/darc/generate", ["j", 9000, "/m.wav", "", "start", 2.0, "end", 1.0], "bad_request", "after start"),
        ("/darc/generate", ["bad id!", 9000, "/m.wav", ""], "bad_request", "job id"),
        ("/darc/generate", ["j", 70000, "/m.wav", ""], "bad_request", "reply port"),
        ("/darc/generate", ["j", 9000, "", ""], "bad_request", "mix path is empty"),
        ("/darc/generate", ["j", 9000, "x" * 5000, ""], "bad_request", "too long"),
        ("/darc/ping", [], "bad_request", "too few"),
        ("/darc/ping", [9000, 1], "bad_request", "takes only i reply_port"),
        ("/darc/status", ["j", "port"], "bad_request", "reply port"),
        ("/darc/record", ["j", 9000, 0.01], "bad_request", "seconds"),
        ("/darc/set", [9000, "out_dir", "/tmp"], "bad_request", "unknown option"),
        ("/darc/explode", [9000], "unknown_address", "unknown address"),
        ("/other/ping", [9000], "unknown_address", "/darc/"),
        ("/darc/generate", ["j", 9000, "/m.wav", "", "temperature", float("nan")], "bad_request", "number"),
    ],
)
def test_bad_requests_are_refused_with_a_code_and_a_named_problem(address, args, code, fragment):
    with pytest.raises(P.ProtocolError) as info:
        P.parse_request(address, args)
    assert info.value.code == code
    assert fragment in info.value.message


def test_token_pair_is_split_off_and_set_accepts_its_special_values():
    req = P.parse_request("/darc/ping", [9000, "token", "s3cret-token"])
    assert req.token == "s3cret-token" and req.reply_port == 9000
    req = P.parse_request("/darc/set", [9000, "seed", -1, "sample_rate", 0, "quantize", 1])
    assert req.options == {"seed": -1, "sample_rate": 0, "quantize": 1.0}
    with pytest.raises(P.ProtocolError):
        P.parse_request("/darc/generate", ["j", 9000, "/m.wav", "", "seed", -1])


def test_replies_are_short_and_typed():
    dgram = P.build("/darc/error", "j", "bad_request", "x" * 10_000)
    assert len(dgram) < 1200
    from pythonosc.osc_message import OscMessage

    msg = OscMessage(P.build("/darc/pong", "0.1.0", "kit", "cpu", True, 3, 1))
    assert msg.params == ["0.1.0", "kit", "cpu", 1, 3, 1]


def test_progress_map_is_monotonic_and_spans_stages():
    pm = OverallProgress()
    assert pm.update("load", 1.0) == pytest.approx(0.05)
    assert pm.update("render", 0.5) == pytest.approx(0.575)
    assert pm.update("load", 0.0) == pytest.approx(0.575)  # never goes back
    assert pm.update("mystery", 0.9) == pytest.approx(0.575)
    assert pm.update("write", 1.0) == pytest.approx(1.0)


def test_journal_keeps_jobs_across_connections_and_ignores_duplicates(tmp_path):
    j = Journal(tmp_path / "jobs.sqlite3")
    rec = JobRecord("a", "generate", "queued", {"mix": "/m.wav"}, "127.0.0.1", 9000)
    assert j.add(rec)
    assert not j.add(JobRecord("a", "generate", "queued", {"mix": "/other.wav"}, "127.0.0.1", 1))
    j.add(JobRecord("b", "generate", "queued", {}, "127.0.0.1", 9000))
    j.update("a", state="done", stem_path="/s.wav")
    j.close()
    j2 = Journal(tmp_path / "jobs.sqlite3")
    assert j2.get("a").state == "done" and j2.get("a").request == {"mix": "/m.wav"}
    assert [r.job_id for r in j2.unfinished()] == ["b"]
    assert j2.get("zzz") is None
    mode = j2._db.execute("PRAGMA journal_mode").fetchone()[0]
    assert mode == "wal"


def test_file_policy_refuses_outside_folders_and_traversal(tmp_path):
    out = tmp_path / "out"
    allowed = tmp_path / "allowed"
    outside = tmp_path / "outside"
    for d in (out, allowed, outside, allowed / "sub"):
        d.mkdir()
    policy = FilePolicy(out, [allowed])
    assert policy.output_folder(None) == out.resolve()
    assert policy.output_folder(str(allowed / "sub")) == (allowed / "sub").resolve()
    for bad in (str(outside), str(allowed / ".." / "outside"), "relative/dir", str(tmp_path / "missing")):
        with pytest.raises(OutputError):
            policy.output_folder(bad)
    os.symlink(outside, allowed / "link")
    with pytest.raises(OutputError, match="outside the allowed"):
        policy.output_folder(str(allowed / "link"))
    with pytest.raises(InputError, match="absolute"):
        policy.check_input("mix.wav", "mix")
    with pytest.raises(InputError, match="not found"):
        policy.check_input(str(tmp_path / "none.wav"), "mix")


def test_security_policy_defaults_to_loopback_and_checks_tokens():
    local = SecurityPolicy()
    local.check("127.0.0.1", None)
    with pytest.raises(P.ProtocolError, match="loopback"):
        local.check("192.168.1.5", None)
    with pytest.raises(ConfigError, match="allow-network"):
        SecurityPolicy(host="0.0.0.0")
    with pytest.raises(ConfigError, match="token"):
        SecurityPolicy(host="0.0.0.0", allow_network=True)
    net = SecurityPolicy(host="0.0.0.0", allow_network=True, token="correct-horse", allow_clients=["10.0.0.0/8"])
    net.check("10.1.2.3", "correct-horse")
    for ip, token in (("10.1.2.3", None), ("10.1.2.3", "wrong-token"), ("192.168.1.5", "correct-horse")):
        with pytest.raises(P.ProtocolError) as info:
            net.check(ip, token)
        assert info.value.code == "unauthorized"


def test_worker_runs_jobs_in_order_and_bounds_its_queue():
    gate = threading.Event()
    ran: list[str] = []

    def run(task: Task) -> None:
        gate.wait(5)
        ran.append(task.job_id)

    w = Worker("t", run, max_queue=2)
    w.start()
    w.submit(Task("a", None))
    assert _eventually(lambda: w.current is not None)
    w.submit(Task("b", None))
    w.submit(Task("c", None))
    with pytest.raises(QueueFull):
        w.submit(Task("d", None))
    assert w.position("a") == 0 and w.position("c") == 2
    assert w.remove_queued("b") is not None
    gate.set()
    assert _eventually(lambda: ran == ["a", "c"])
    w.stop()


def _eventually(pred, timeout: float = 5.0) -> bool:
    import time

    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if pred():
            return True
        time.sleep(0.01)
    return False
