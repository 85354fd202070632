"""OSC protocol v1 (docs/protocol.md): request parsing with type and range checks, and reply builders.

Everything a client sends passes through `parse_request` before the daemon acts on it, so a bad
message becomes one `ProtocolError` (an error reply) and never an exception inside the server.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder

PROTOCOL_VERSION = 1
PREFIX = "/darc/"
MAX_STRING = 4096  # longer strings are refused: paths and names never need more
MAX_REPLY_TEXT = 1000  # replies stay far below the ~4 KB some hosts accept over UDP
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. -]{0,119}$")
STAGES = ("queued", "load", "rhythm", "beats", "encode", "generate", "render", "decode", "write", "record")
STATES = ("queued", "running", "done", "error", "cancelled", "unknown")


class ProtocolError(Exception):
    """A request the daemon refuses; becomes `/darc/error job_id code message`."""

    def __init__(self, code: str, message: str, job_id: str = "") -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.job_id = job_id


@dataclass(frozen=True)
class Option:
    """One key/value option: its OSC type ('f', 'i', 's'), allowed range and default."""

    kind: str
    lo: float | None = None
    hi: float | None = None
    default: Any = None


GENERATE_OPTIONS: dict[str, Option] = {
    "temperature": Option("f", 0.0, 5.0, 1.0),
    "rhythm_strength": Option("f", 0.0, 4.0, 1.0),
    "quantize": Option("f", 0.0, 1.0, 0.0),
    "seed": Option("i", 0, 2**31 - 1, None),
    "start": Option("f", 0.0, 86400.0, None),
    "end": Option("f", 0.0, 86400.0, None),
    "out_dir": Option("s", default=None),
    "midi": Option("i", 0, 1, 1),
    "name": Option("s", default=None),
    "sample_rate": Option("i", 8000, 192000, None),
    "top_k": Option("i", 0, 2048, 250),
    "top_p": Option("f", 0.0, 1.0, 0.0),
    "cfg_coef": Option("f", 0.0, 10.0, 3.0),
    "stems": Option("s", default="mix"),  # issue 14: "mix" | "split" (checked in server/kits.py)
    "kit": Option("s", default=None),  # issue 14: a kit name or an absolute path (server/kits.py)
}

RECORD_OPTIONS: dict[str, Option] = {
    "count_in": Option("i", 0, 16, 0),
    "bpm": Option("f", 30.0, 300.0, 120.0),
    "device": Option("s", default=None),
    "sample_rate": Option("i", 8000, 192000, 44100),
    "out_dir": Option("s", default=None),
    "name": Option("s", default=None),
}
RECORD_SECONDS = (0.25, 600.0)

# Defaults a client may change with /darc/set (the device knobs). seed -1 and sample_rate 0
# stand for "random" and "the mix's rate", since OSC has no portable null.
SETTABLE = ("temperature", "rhythm_strength", "quantize", "seed", "midi", "sample_rate", "top_k", "top_p", "cfg_coef")
SET_SPECIAL = {"seed": -1, "sample_rate": 0}
ENGINE_EXTRA = ("top_k", "top_p", "cfg_coef")


@dataclass
class Request:
    """A checked request: its kind (the address without /darc/), fixed fields and options."""

    kind: str
    reply_port: int
    job_id: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    token: str | None = None


def _is_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool)


def check_value(key: str, spec: Option, v: Any, job_id: str = "", special: Any = None) -> Any:
    """Check one option value against its spec; numbers may come as int or float (Max sends ints)."""
    if special is not None and _is_number(v) and v == special:
        return int(special)
    if spec.kind == "s":
        if not isinstance(v, str):
            raise ProtocolError("bad_request", f"{key} must be a string, got {_type_name(v)}", job_id)
        if len(v) > MAX_STRING:
            raise ProtocolError("bad_request", f"{key} is too long ({len(v)} characters)", job_id)
        return v
    if not _is_number(v) or not math.isfinite(v):
        raise ProtocolError("bad_request", f"{key} must be a number, got {_type_name(v)}", job_id)
    if spec.kind == "i":
        if float(v) != int(v):
            raise ProtocolError("bad_request", f"{key} must be a whole number, got {v!r}", job_id)
        v = int(v)
    else:
        v = float(v)
    if spec.lo is not None and spec.hi is not None and not spec.lo <= v <= spec.hi:
        raise ProtocolError("bad_request", f"{key} must be between {spec.lo:g} and {spec.hi:g}, got {v:g}", job_id)
    return v


def _type_name(v: Any) -> str:
    if isinstance(v, str):
        return "a string"
    if isinstance(v, bool):
        return "a boolean"
    if _is_number(v):
        return f"the number {v!r}"
    if isinstance(v, bytes):
        return "a blob"
    return type(v).__name__


def parse_options(
    pairs: list[Any], table: dict[str, Option], job_id: str = "", allow_special: bool = False
) -> dict[str, Any]:
    """Read key/value pairs (any order) against an option table; unknown keys are refused."""
    if len(pairs) % 2:
        raise ProtocolError("bad_request", "options must come as key/value pairs (odd number of arguments)", job_id)
    out: dict[str, Any] = {}
    for i in range(0, len(pairs), 2):
        key, value = pairs[i], pairs[i + 1]
        if not isinstance(key, str):
            raise ProtocolError("bad_request", f"option name must be a string, got {_type_name(key)}", job_id)
        if key not in table:
            shown = key if len(key) <= 40 else key[:40] + "..."
            raise ProtocolError(
                "bad_request", f"unknown option {shown!r}; known: {', '.join(sorted(table))}", job_id
            )
        special = SET_SPECIAL.get(key) if allow_special else None
        out[key] = check_value(key, table[key], value, job_id, special)
    if "start" in out and "end" in out and out["end"] <= out["start"]:
        raise ProtocolError("bad_request", f"end ({out['end']:g}s) must be after start ({out['start']:g}s)", job_id)
    for key in ("name",):
        if key in out and not NAME_RE.match(out[key]):
            raise ProtocolError(
                "bad_request",
                f"{key} must be 1-120 characters of letters, digits, space, '.', '_' or '-', "
                f"not starting with '.', '-' or a space",
                job_id,
            )
    return out


def split_token(args: list[Any]) -> tuple[list[Any], str | None]:
    """Remove a trailing "token", SECRET pair (network mode); return the rest and the token."""
    if len(args) >= 2 and args[-2] == "token" and isinstance(args[-1], str):
        return list(args[:-2]), args[-1]
    return list(args), None


def _port(v: Any, job_id: str = "") -> int:
    if not _is_number(v) or isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        raise ProtocolError("bad_request", f"reply port must be an integer, got {_type_name(v)}", job_id)
    if not 1 <= int(v) <= 65535:
        raise ProtocolError("bad_request", f"reply port must be between 1 and 65535, got {int(v)}", job_id)
    return int(v)


def _job_id(v: Any) -> str:
    if not isinstance(v, str) or not JOB_ID_RE.match(v):
        shown = repr(v)[:70]
        raise ProtocolError("bad_request", f"job id must be 1-64 characters of A-Z a-z 0-9 - _, got {shown}")
    return v


def _string(v: Any, what: str, job_id: str) -> str:
    if not isinstance(v, str):
        raise ProtocolError("bad_request", f"{what} must be a string, got {_type_name(v)}", job_id)
    if len(v) > MAX_STRING:
        raise ProtocolError("bad_request", f"{what} is too long ({len(v)} characters)", job_id)
    return v


def _need(args: list[Any], n: int, usage: str, job_id: str = "") -> None:
    if len(args) < n:
        raise ProtocolError("bad_request", f"too few arguments; expected {usage}", job_id)


def guess_reply_port(address: str, args: list[Any]) -> int | None:
    """Best-effort reply port of a request that failed to parse (so its error still reaches it).

    Known addresses have it at a fixed place; for an unknown address, the first of the first two
    arguments that is a valid port."""
    if address in ("/darc/ping", "/darc/get", "/darc/set", "/darc/kits"):  # issue 14: /darc/kits
        places = [0]
    elif address in ("/darc/generate", "/darc/status", "/darc/cancel", "/darc/record"):
        places = [1]
    else:
        places = [0, 1]
    for i in places:
        if len(args) > i and _is_number(args[i]):
            try:
                return _port(args[i])
            except ProtocolError:
                continue
    return None


def parse_request(address: str, raw_args: list[Any]) -> Request:
    """Check a request's address, argument count, types and ranges; raise ProtocolError if wrong."""
    args, token = split_token(list(raw_args))
    if not address.startswith(PREFIX):
        raise ProtocolError("unknown_address", f"unknown address {address[:80]!r}: requests start with {PREFIX}")
    kind = address[len(PREFIX):]
    if kind in ("ping", "get", "kits"):  # issue 14: /darc/kits i reply_port
        _need(args, 1, "i reply_port")
        if len(args) > 1:
            raise ProtocolError("bad_request", f"/darc/{kind} takes only the reply port (got {len(args)} arguments)")
        return Request(kind, _port(args[0]), token=token)
    if kind == "set":
        _need(args, 1, "i reply_port, then key/value pairs")
        port = _port(args[0])
        table = {k: GENERATE_OPTIONS[k] for k in SETTABLE}
        return Request(kind, port, options=parse_options(args[1:], table, allow_special=True), token=token)
    if kind in ("status", "cancel"):
        _need(args, 2, "s job_id, i reply_port")
        job_id = _job_id(args[0])
        port = _port(args[1], job_id)
        if len(args) > 2:
            raise ProtocolError("bad_request", f"/darc/{kind} takes a job id and a reply port only", job_id)
        return Request(kind, port, job_id=job_id, token=token)
    if kind == "generate":
        _need(args, 4, "s job_id, i reply_port, s mix_path, s prompt_path, then key/value pairs")
        job_id = _job_id(args[0])
        port = _port(args[1], job_id)
        mix = _string(args[2], "mix path", job_id)
        prompt = _string(args[3], "prompt path", job_id)
        if not mix:
            raise ProtocolError("bad_request", "mix path is empty", job_id)
        options = parse_options(args[4:], GENERATE_OPTIONS, job_id)
        return Request(kind, port, job_id, {"mix": mix, "prompt": prompt}, options, token)
    if kind == "record":
        _need(args, 3, "s job_id, i reply_port, f seconds, then key/value pairs")
        job_id = _job_id(args[0])
        port = _port(args[1], job_id)
        seconds = check_value("seconds", Option("f", *RECORD_SECONDS), args[2], job_id)
        options = parse_options(args[3:], RECORD_OPTIONS, job_id)
        return Request(kind, port, job_id, {"seconds": seconds}, options, token)
    raise ProtocolError("unknown_address", f"unknown address {address[:80]!r}; see docs/protocol.md")


def clip_text(text: str) -> str:
    """Keep reply strings short enough for any OSC host."""
    return text if len(text) <= MAX_REPLY_TEXT else text[: MAX_REPLY_TEXT - 3] + "..."


def build(address: str, *args: Any) -> bytes:
    """Build one OSC message with explicit types (bool -> i, so Max never sees T/F)."""
    b = OscMessageBuilder(address)
    for a in args:
        if isinstance(a, bool):
            b.add_arg(int(a), "i")
        elif isinstance(a, int):
            b.add_arg(a, "i")
        elif isinstance(a, float):
            b.add_arg(a, "f")
        else:
            b.add_arg(clip_text(str(a)), "s")
    return b.build().dgram
