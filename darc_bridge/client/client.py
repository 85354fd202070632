"""Talk to the daemon over OSC: requests with retries (same job id), waiting for a job's end.

The client listens on its own free UDP port and names it as the reply port. UDP may lose a
datagram, so every request is resent after `timeout` seconds; job requests are idempotent on the
daemon side (a known job id only returns its status), so resending is always safe.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder
from pythonosc.osc_packet import OscPacket

from darc_bridge.errors import DarcError

log = logging.getLogger(__name__)

TERMINAL = ("done", "error", "cancelled")
STATUS_KEYS = ("job_id", "state", "fraction", "stem_path", "midi_path", "error_code", "error_message")


class ClientError(DarcError):
    """The daemon refused a request or a job failed: carries the daemon's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code
        self.message = message


class NoReply(ClientError):
    def __init__(self, message: str) -> None:
        super().__init__("no_reply", message)


def new_job_id() -> str:
    return uuid.uuid4().hex


@dataclass
class Reply:
    address: str
    args: list[Any]


def _is_loopback(host: str) -> bool:
    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def job_state(reply: Reply) -> dict[str, Any]:
    """A reply about a job as the status-file dict (state, stage, fraction, paths, error)."""
    a = reply.args
    d: dict[str, Any] = {"job_id": a[0] if a else "", "state": "", "stage": "", "fraction": 0.0, "stem_path": "",
                         "midi_path": "", "error_code": "", "error_message": ""}
    if reply.address == "/darc/status":
        d.update(dict(zip(STATUS_KEYS, a, strict=False)))
    elif reply.address == "/darc/accepted":
        d.update(state="queued" if a[1] > 0 else "running", stage="queued", queue_position=a[1])
    elif reply.address == "/darc/progress":
        d.update(state="running", stage=a[1], fraction=float(a[2]))
    elif reply.address == "/darc/done":
        d.update(state="done", stage="write", fraction=1.0, stem_path=a[1], midi_path=a[2], duration=float(a[3]),
                 sample_rate=int(a[4]), stems=piece_stems(a))  # issue 14: trailing piece/path pairs
    elif reply.address == "/darc/recorded":
        d.update(state="done", stage="record", fraction=1.0, stem_path=a[1], duration=float(a[2]),
                 sample_rate=int(a[3]))
    elif reply.address == "/darc/error":
        d.update(state="cancelled" if a[1] == "cancelled" else "error", error_code=a[1], error_message=a[2])
    d["fraction"] = float(d["fraction"])
    return d


def piece_stems(args: list[Any]) -> dict[str, str]:  # issue 14
    """`/darc/done` arguments after the first five: piece/path pairs -> {piece: path}."""
    rest = args[5:]
    return {str(rest[i]): str(rest[i + 1]) for i in range(0, len(rest) - 1, 2)}


class DarcClient:
    """One client socket; use as a context manager so the socket is closed."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9001, token: str | None = None,
                 timeout: float = 5.0, retries: int = 3) -> None:
        self.server = (host, port)
        self.token = token
        self.timeout = timeout
        self.retries = retries
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1" if _is_loopback(host) else "0.0.0.0", 0))
        self.reply_port = self.sock.getsockname()[1]

    def __enter__(self) -> DarcClient:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    # --- transport --------------------------------------------------------------------------
    def send(self, address: str, *args: Any) -> None:
        b = OscMessageBuilder(address)
        for a in (*args, *(("token", self.token) if self.token else ())):
            b.add_arg(a, "i" if isinstance(a, int) and not isinstance(a, bool) else "f" if isinstance(a, float)
                      else "s")
        self.sock.sendto(b.build().dgram, self.server)

    def receive(self, timeout: float) -> Reply | None:
        """The next reply within `timeout` seconds (None if none came)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                return None
            self.sock.settimeout(left)
            try:
                data, _ = self.sock.recvfrom(65535)
            except TimeoutError:
                return None
            except (ConnectionRefusedError, ConnectionResetError):
                # A send that hit a closed port: Linux reports ConnectionRefusedError, Windows
                # ConnectionResetError (WinError 10054). Either way: no reply yet, keep waiting.
                continue
            try:
                msg = OscPacket(data).messages[0].message
            except Exception:
                log.debug("ignoring a datagram that is not OSC")
                continue
            return Reply(msg.address, list(msg.params))

    def request(self, address: str, args: tuple, answers: tuple[str, ...], job_id: str | None = None,
                ignore: tuple[str, ...] = ()) -> Reply:
        """Send, wait for one of `answers` (about `job_id`), resend on silence; raise on error replies
        (except those whose code is in `ignore`: a cancel request also hears the job's own `cancelled`)."""
        for attempt in range(self.retries + 1):
            if attempt:
                log.info("no reply from %s:%d within %.1fs; resending (%d/%d)", *self.server, self.timeout,
                         attempt, self.retries)
            self.send(address, *args)
            deadline = time.monotonic() + self.timeout
            while (reply := self.receive(deadline - time.monotonic())) is not None:
                about = reply.args[0] if reply.args and isinstance(reply.args[0], str) else None
                if reply.address == "/darc/error" and about in (job_id, "", None) and len(reply.args) >= 3:
                    if reply.args[1] in ignore:
                        continue
                    raise ClientError(str(reply.args[1]), str(reply.args[2]))
                if reply.address in answers and (job_id is None or about == job_id):
                    return reply
        raise NoReply(f"no reply from the daemon at {self.server[0]}:{self.server[1]} after "
                      f"{self.retries + 1} tries (is `darc-bridge serve` running?)")

    # --- requests ---------------------------------------------------------------------------
    def ping(self) -> dict[str, Any]:
        r = self.request("/darc/ping", (self.reply_port,), ("/darc/pong",))
        keys = ("version", "engine", "device", "model_loaded", "queue_length", "protocol")
        return dict(zip(keys, r.args, strict=False))

    def kits(self) -> list[str]:  # issue 14: /darc/kits
        return [str(n) for n in self.request("/darc/kits", (self.reply_port,), ("/darc/kits",)).args]

    def get_params(self) -> dict[str, Any]:
        r = self.request("/darc/get", (self.reply_port,), ("/darc/params",))
        return dict(zip(r.args[::2], r.args[1::2], strict=False))

    def set_params(self, **values: Any) -> dict[str, Any]:
        flat = [x for kv in values.items() for x in kv]
        r = self.request("/darc/set", (self.reply_port, *flat), ("/darc/params",))
        return dict(zip(r.args[::2], r.args[1::2], strict=False))

    def status(self, job_id: str) -> dict[str, Any]:
        return job_state(self.request("/darc/status", (job_id, self.reply_port), ("/darc/status",), job_id))

    def cancel(self, job_id: str) -> dict[str, Any]:
        return job_state(self.request("/darc/cancel", (job_id, self.reply_port), ("/darc/status",), job_id,
                                      ignore=("cancelled",)))

    def generate(self, job_id: str, mix: str, prompt: str = "", options: dict[str, Any] | None = None) -> dict:
        flat = [x for kv in (options or {}).items() for x in kv]
        r = self.request("/darc/generate", (job_id, self.reply_port, mix, prompt, *flat),
                         ("/darc/accepted", "/darc/status"), job_id)
        return job_state(r)

    def record(self, job_id: str, seconds: float, options: dict[str, Any] | None = None) -> dict:
        flat = [x for kv in (options or {}).items() for x in kv]
        r = self.request("/darc/record", (job_id, self.reply_port, float(seconds), *flat),
                         ("/darc/accepted", "/darc/status"), job_id)
        return job_state(r)

    def wait(self, job_id: str, on_update: Callable[[dict[str, Any]], None] | None = None,
             max_wait: float | None = None) -> dict[str, Any]:
        """Follow a job to its end; when the daemon is quiet, ask for its status (it may have restarted)."""
        start = time.monotonic()
        silent = 0
        while max_wait is None or time.monotonic() - start < max_wait:
            reply = self.receive(self.timeout)
            if reply is None:
                silent += 1
                if silent > self.retries:
                    raise NoReply(f"the daemon stopped answering about job {job_id}")
                self.send("/darc/status", job_id, self.reply_port)
                continue
            if not reply.args or reply.args[0] != job_id:
                continue
            if reply.address not in ("/darc/progress", "/darc/done", "/darc/recorded", "/darc/error",
                                     "/darc/status", "/darc/accepted"):
                continue
            silent = 0
            state = job_state(reply)
            if on_update is not None:
                on_update(state)
            if state["state"] in TERMINAL and (state["state"] != "done" or state["stem_path"]):
                return state
            if state["state"] == "unknown":
                raise ClientError("unknown_job", f"the daemon does not know job {job_id}")
        raise ClientError("timeout", f"job {job_id} did not finish within {max_wait:.0f}s")
