"""Build `max_for_live/DARC Drums.amxd` from the patcher JSON kept in git.

The device file is a few tagged chunks around the patcher JSON (../shared/REFERENCE.md §6), so it
can be rebuilt byte for byte from the text source: `make m4l` writes it, `--check` fails when the
committed device no longer matches its source (run in the tests, so they cannot drift apart).
"""

from __future__ import annotations

import argparse
import json
import logging
import struct
import sys
from pathlib import Path

from darc_bridge.audio.io import atomic_write
from darc_bridge.errors import InputError

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parents[2] / "max_for_live"
SOURCE = ROOT / "darc_drums.maxpat"
DEVICE = ROOT / "DARC Drums.amxd"

DEVICE_TYPES = {"audio_effect": b"aaaa", "midi_effect": b"mmmm", "instrument": b"iiii"}
META = b"\x00\x00\x00\x00"


def chunk(tag: bytes, payload: bytes) -> bytes:
    """One chunk: 4-character tag, little-endian 32-bit length, payload."""
    if len(tag) != 4:
        raise ValueError(f"chunk tag must be 4 bytes, got {tag!r}")
    return tag + struct.pack("<I", len(payload)) + payload


def check_wiring(patcher: dict, source: Path) -> None:
    """Refuse a patcher whose lines name missing boxes or inlets/outlets that do not exist."""
    boxes = {b["box"]["id"]: b["box"] for b in patcher.get("boxes", [])}
    if not boxes:
        raise InputError(f"{source}: the patcher holds no boxes")
    for entry in patcher.get("lines", []):
        line = entry["patchline"]
        (src, outlet), (dst, inlet) = line["source"], line["destination"]
        if src not in boxes or dst not in boxes:
            raise InputError(f"{source}: a patch line joins a missing box ({src} -> {dst})")
        if not 0 <= outlet < boxes[src].get("numoutlets", 0):
            raise InputError(f"{source}: {src} has no outlet {outlet}")
        if not 0 <= inlet < boxes[dst].get("numinlets", 0):
            raise InputError(f"{source}: {dst} has no inlet {inlet}")


def load_patcher(source: Path = SOURCE) -> dict:
    """Read and check the patcher JSON source."""
    try:
        data = json.loads(source.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise InputError(f"patcher source not found: {source}") from exc
    except json.JSONDecodeError as exc:
        raise InputError(f"patcher source is not valid JSON: {source}: {exc}") from exc
    if not isinstance(data, dict) or "patcher" not in data:
        raise InputError(f"{source}: no top-level 'patcher' object")
    check_wiring(data["patcher"], source)
    return data


def build_device(patcher: dict, device_type: str = "audio_effect") -> bytes:
    """The .amxd bytes for a patcher: deterministic (same source, same bytes)."""
    text = json.dumps(patcher, indent=1, ensure_ascii=False, sort_keys=False) + "\n"
    payload = text.encode("utf-8") + b"\x00"
    return chunk(b"ampf", DEVICE_TYPES[device_type]) + chunk(b"meta", META) + chunk(b"ptch", payload)


def read_device(data: bytes) -> dict[str, bytes]:
    """Split .amxd bytes into their chunks (tag -> payload); for checks and tests."""
    chunks: dict[str, bytes] = {}
    pos = 0
    while pos < len(data):
        if pos + 8 > len(data):
            raise InputError("truncated .amxd chunk header")
        tag = data[pos : pos + 4].decode("ascii", "replace")
        (size,) = struct.unpack("<I", data[pos + 4 : pos + 8])
        if pos + 8 + size > len(data):
            raise InputError(f"truncated .amxd chunk {tag!r}")
        chunks[tag] = data[pos + 8 : pos + 8 + size]
        pos += 8 + size
    return chunks


def write_device(source: Path = SOURCE, device: Path = DEVICE) -> Path:
    data = build_device(load_patcher(source))

    def _write(tmp: str) -> None:
        Path(tmp).write_bytes(data)

    return atomic_write(device, _write)


def check_device(source: Path = SOURCE, device: Path = DEVICE) -> bool:
    """True when the committed device is exactly what the source builds."""
    expected = build_device(load_patcher(source))
    return device.is_file() and device.read_bytes() == expected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m darc_bridge.daw.build_m4l", description=__doc__.splitlines()[0])
    parser.add_argument("--source", type=Path, default=SOURCE, help="patcher JSON (.maxpat)")
    parser.add_argument("--device", type=Path, default=DEVICE, help=".amxd file to write or check")
    parser.add_argument("--check", action="store_true", help="exit 1 if the device does not match its source")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    try:
        if args.check:
            if check_device(args.source, args.device):
                log.info("%s matches %s", args.device, args.source)
                return 0
            log.error("%s is out of date: run `make m4l` and commit it", args.device)
            return 1
        path = write_device(args.source, args.device)
        log.info("wrote %s", path)
        return 0
    except InputError as exc:
        log.error("darc-bridge: error: %s", exc)
        return 2


if __name__ == "__main__":
    sys.exit(main())
