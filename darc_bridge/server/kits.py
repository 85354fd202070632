"""The daemon's side of kits and split stems (issue 14): the `kit` and `stems` job options, the
`/darc/kits` reply and the piece/path pairs that follow `/darc/done`.

Kept apart from the protocol table and the app so the few lines that call it are easy to carry.
A kit is checked when the job is accepted (an unknown name is refused at once, not after the
queue); its samples load when the job runs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from darc_bridge.engines.stems import STEMS_MODES
from darc_bridge.errors import InputError
from darc_bridge.kits.library import list_kits, looks_like_path, resolve_kit
from darc_bridge.server.protocol import ProtocolError


def check_job_options(options: dict[str, Any], engine_name: str, job_id: str = "") -> None:
    """Refuse a bad `stems` value, a relative kit path, an unknown kit, or a kit for an engine that
    plays none (ProtocolError or InputError, both become an error reply)."""
    stems = options.get("stems") or "mix"
    if stems not in STEMS_MODES:
        raise ProtocolError("bad_request", f"stems must be {' or '.join(STEMS_MODES)}, got {str(stems)[:40]!r}", job_id)
    kit = options.get("kit")
    if not kit:
        return
    if engine_name != "kit":
        raise InputError(f"the {engine_name} engine plays no drum kit: leave the kit option out")
    if "\x00" in kit:
        raise InputError("kit holds a NUL character")
    if looks_like_path(kit) and not Path(kit).expanduser().is_absolute():
        raise InputError(f"a kit path must be absolute (the daemon has its own working folder): {kit!r}")
    resolve_kit(kit)


def job_extra(options: dict[str, Any]) -> dict[str, Any]:
    """The engine options a job's kit adds to GenerationParams.extra."""
    return {"kit": options["kit"]} if options.get("kit") else {}


def job_stems(options: dict[str, Any]) -> str:
    return options.get("stems") or "mix"


def kit_names() -> list[str]:
    """The `/darc/kits` reply: `builtin` first, the names `darc-bridge kits` prints."""
    return [k.name for k in list_kits()]


def done_pairs(pieces: dict[str, Path]) -> tuple[str, ...]:
    """The `s piece, s path` pairs after `/darc/done`'s five arguments (none for a mix-only job)."""
    return tuple(x for piece, path in pieces.items() for x in (piece, str(path)))
