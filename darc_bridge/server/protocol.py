"""OSC protocol v1 (docs/protocol.md): one route table, request parsing with type and range checks,
and reply builders.

Each address's argument layout and reply policy is one row of `ROUTES`; `parse_request` reads only
that table, so adding an address is one row (and one handler in the server). Everything a client
sends passes through `parse_request` before the daemon acts on it, so a bad message becomes one
`ProtocolError` (an error reply) and never an exception inside the server. Option ranges and
defaults come from the engines' one table (darc_bridge.engines.options).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pythonosc.osc_message_builder import OscMessageBuilder

from darc_bridge.engines.options import (
    GENERATION_OPTIONS,
    MODEL_OPTIONS,
    OptionSpec,
    describe_value,
    is_number,
)
from darc_bridge.errors import InputError

PROTOCOL_VERSION = 1
PREFIX = "/darc/"
MAX_STRING = 4096  # longer strings are refused: paths and names never need more
MAX_REPLY_TEXT = 1000  # one reply string; replies stay far below the ~4 KB some hosts accept over UDP
MAX_REPLY_BYTES = 8192  # all immediate replies to one request together: room for one status at its longest
JOB_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_. -]{0,119}$")
STAGES = ("queued", "load", "rhythm", "beats", "encode", "generate", "render", "decode", "write", "record")
STATES = ("queued", "running", "done", "error", "cancelled", "unknown")

Option = OptionSpec  # the protocol's options are the engines' table plus the job options below


class ProtocolError(Exception):
    """A request the daemon refuses; becomes `/darc/error job_id code message` (at `reply_port` if known)."""

    def __init__(self, code: str, message: str, job_id: str = "", reply_port: int | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.job_id = job_id
        self.reply_port = reply_port


# Options of the job itself (not of the engine); defaults None = the daemon's choice.
JOB_OPTIONS: dict[str, OptionSpec] = {
    "start": OptionSpec("f", 0.0, 86400.0, None),
    "end": OptionSpec("f", 0.0, 86400.0, None),
    "out_dir": OptionSpec("s", default=None),
    "midi": OptionSpec("i", 0, 1, 1),
    "name": OptionSpec("s", default=None),
    "stems": OptionSpec("s", default="mix"),  # issue 14: "mix" | "split" (checked in server/kits.py)
    "kit": OptionSpec("s", default=None),  # issue 14: a kit name or an absolute path (server/kits.py)
}
GENERATE_OPTIONS: dict[str, OptionSpec] = {**GENERATION_OPTIONS, **MODEL_OPTIONS, **JOB_OPTIONS}

RECORD_OPTIONS: dict[str, OptionSpec] = {
    "count_in": OptionSpec("i", 0, 16, 0),
    "bpm": OptionSpec("f", 30.0, 300.0, 120.0),
    "device": OptionSpec("s", default=None),
    "sample_rate": OptionSpec("i", 8000, 192000, 44100),
    "out_dir": OptionSpec("s", default=None),
    "name": OptionSpec("s", default=None),
}
RECORD_SECONDS = OptionSpec("f", 0.25, 600.0)

# Defaults a client may change with /darc/set (the device knobs). OSC has no portable null, so a
# default of None ("random", "the mix's rate", "the model's value") travels as this stand-in.
SETTABLE = ("temperature", "rhythm_strength", "quantize", "seed", "midi", "sample_rate", "top_k", "top_p", "cfg_coef")
SET_SPECIAL = {"seed": -1, "sample_rate": 0, "top_k": -1, "top_p": -1, "cfg_coef": -1}
ENGINE_EXTRA = tuple(MODEL_OPTIONS)


def default_settings() -> dict[str, Any]:
    """The daemon's defaults at start: the tables' own (None = random / the mix's / the model's)."""
    return {k: GENERATE_OPTIONS[k].default for k in SETTABLE}


@dataclass
class Request:
    """A checked request: its kind (the address without /darc/), fixed fields and options."""

    kind: str
    reply_port: int
    job_id: str = ""
    fields: dict[str, Any] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)
    token: str | None = None


# --- argument checkers (value, job_id) -> value ------------------------------------------------
def _port(v: Any, job_id: str = "") -> int:
    if not is_number(v) or isinstance(v, float) and (not math.isfinite(v) or v != int(v)):
        raise ProtocolError("bad_request", f"reply port must be an integer, got {describe_value(v)}", job_id)
    if not 1 <= int(v) <= 65535:
        raise ProtocolError("bad_request", f"reply port must be between 1 and 65535, got {int(v)}", job_id)
    return int(v)


def _job_id(v: Any, job_id: str = "") -> str:
    if not isinstance(v, str) or not JOB_ID_RE.match(v):
        raise ProtocolError("bad_request", f"job id must be 1-64 characters of A-Z a-z 0-9 - _, got {repr(v)[:70]}")
    return v


def _string(what: str, required: bool = False) -> Callable[[Any, str], str]:
    def check(v: Any, job_id: str = "") -> str:
        if not isinstance(v, str):
            raise ProtocolError("bad_request", f"{what} must be a string, got {describe_value(v)}", job_id)
        if len(v) > MAX_STRING:
            raise ProtocolError("bad_request", f"{what} is too long ({len(v)} characters)", job_id)
        if required and not v:
            raise ProtocolError("bad_request", f"{what} is empty", job_id)
        return v

    return check


def _seconds(v: Any, job_id: str = "") -> float:
    return check_value("seconds", RECORD_SECONDS, v, job_id)


@dataclass(frozen=True)
class Route:
    """One address: its fixed arguments (name, checker) in order, then key/value options (or none).

    `answer` False marks a reply address: a daemon never answers a reply (no ping-pong loops
    between daemons, or with itself). `settable` options accept SET_SPECIAL stand-ins."""

    kind: str
    fields: tuple[tuple[str, Callable[[Any, str], Any]], ...] = ()
    options: Mapping[str, OptionSpec] | None = None
    settable: bool = False
    answer: bool = True

    @property
    def address(self) -> str:
        return PREFIX + self.kind

    @property
    def port_index(self) -> int:
        return [name for name, _ in self.fields].index("reply_port")

    def usage(self) -> str:
        parts = [f"{'i' if name == 'reply_port' else 'f' if name == 'seconds' else 's'} {name}" for name, _ in
                 self.fields]
        if self.options is not None:
            parts.append("then key/value pairs")
        return ", ".join(parts)


_JOB = (("job_id", _job_id), ("reply_port", _port))
ROUTES: dict[str, Route] = {r.address: r for r in (
    Route("ping", (("reply_port", _port),)),
    Route("get", (("reply_port", _port),)),
    Route("kits", (("reply_port", _port),)),  # issue 14: -> /darc/kits s name, s name...
    Route("set", (("reply_port", _port),), {k: GENERATE_OPTIONS[k] for k in SETTABLE}, settable=True),
    Route("status", _JOB),
    Route("cancel", _JOB),
    Route("generate", (*_JOB, ("mix", _string("mix path", required=True)), ("prompt", _string("prompt path"))),
          GENERATE_OPTIONS),
    Route("record", (*_JOB, ("seconds", _seconds)), RECORD_OPTIONS),
    # replies (daemon -> client): never answered
    *(Route(kind, answer=False) for kind in ("pong", "accepted", "progress", "done", "recorded", "error",
                                             "params")),
)}
# /darc/status is both a request and a reply; a reply's second argument is a state, never a port,
# so a reply sent back at a daemon fails to parse and its error (a reply) is never answered.


def check_value(key: str, spec: OptionSpec, v: Any, job_id: str = "", special: Any = None) -> Any:
    """Check one option value against its spec; numbers may come as int or float (Max sends ints)."""
    if special is not None and is_number(v) and v == special:
        return special
    if spec.kind == "s" and isinstance(v, str) and len(v) > MAX_STRING:
        raise ProtocolError("bad_request", f"{key} is too long ({len(v)} characters)", job_id)
    try:
        return spec.check(key, v)
    except InputError as exc:
        raise ProtocolError("bad_request", str(exc), job_id) from None


def parse_options(
    pairs: list[Any], table: Mapping[str, OptionSpec], job_id: str = "", allow_special: bool = False
) -> dict[str, Any]:
    """Read key/value pairs (any order) against an option table; unknown keys are refused."""
    if len(pairs) % 2:
        raise ProtocolError("bad_request", "options must come as key/value pairs (odd number of arguments)", job_id)
    out: dict[str, Any] = {}
    for i in range(0, len(pairs), 2):
        key, value = pairs[i], pairs[i + 1]
        if not isinstance(key, str):
            raise ProtocolError("bad_request", f"option name must be a string, got {describe_value(key)}", job_id)
        if key not in table:
            shown = key if len(key) <= 40 else key[:40] + "..."
            raise ProtocolError(
                "bad_request", f"unknown option {shown!r}; known: {', '.join(sorted(table))}", job_id
            )
        special = SET_SPECIAL.get(key) if allow_special else None
        out[key] = check_value(key, table[key], value, job_id, special)
    if "start" in out and "end" in out and out["end"] <= out["start"]:
        raise ProtocolError("bad_request", f"end ({out['end']:g}s) must be after start ({out['start']:g}s)", job_id)
    if "name" in out and not NAME_RE.match(out["name"]):
        raise ProtocolError(
            "bad_request",
            "name must be 1-120 characters of ASCII letters, digits, space, '.', '_' or '-', "
            "not starting with '.', '-' or a space",
            job_id,
        )
    return out


def split_token(args: list[Any]) -> tuple[list[Any], str | None]:
    """Remove a trailing "token", SECRET pair (network mode); return the rest and the token."""
    if len(args) >= 2 and args[-2] == "token" and isinstance(args[-1], str):
        return list(args[:-2]), args[-1]
    return list(args), None


def guess_reply_port(args: list[Any]) -> int | None:
    """For an unknown address: the first of its first two arguments that is a valid port."""
    for v in args[:2]:
        if is_number(v):
            try:
                return _port(v)
            except ProtocolError:
                continue
    return None


def parse_request(address: str, raw_args: list[Any]) -> Request:
    """Check a request against its route: address, argument count, types and ranges.

    The reply port is read first, so every later error can still be sent to it (ProtocolError
    carries it). Raises ProtocolError for anything wrong."""
    args, token = split_token(list(raw_args))
    route = ROUTES.get(address)
    if route is None or not route.answer:
        hint = f"requests start with {PREFIX}" if not address.startswith(PREFIX) else "see docs/protocol.md"
        raise ProtocolError("unknown_address", f"unknown address {address[:80]!r}: {hint}",
                            reply_port=guess_reply_port(args))
    port: int | None = None
    job_id = ""
    try:
        if len(args) > route.port_index:
            port = _port(args[route.port_index], "")
        if len(args) < len(route.fields):
            raise ProtocolError("bad_request", f"too few arguments; expected {route.usage()}")
        if route.options is None and len(args) > len(route.fields):
            raise ProtocolError("bad_request", f"{address} takes only {route.usage()} (got {len(args)} arguments)")
        values: dict[str, Any] = {}
        for (name, check), v in zip(route.fields, args, strict=False):
            values[name] = check(v, job_id)
            if name == "job_id":
                job_id = values[name]
        options = {}
        if route.options is not None:
            options = parse_options(args[len(route.fields):], route.options, job_id, allow_special=route.settable)
    except ProtocolError as exc:
        exc.job_id = exc.job_id or job_id
        exc.reply_port = port
        raise
    reply_port = values.pop("reply_port")
    job_id = values.pop("job_id", "")
    return Request(route.kind, reply_port, job_id, values, options, token)


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
