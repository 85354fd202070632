"""SFZ drum kits: a text file of regions, each a sample played for a key range and a velocity range.

SFZ is the plain-text sampler format most free and commercial drum libraries ship besides their own
player. A region's opcodes come from its `<global>`, `<master>` and `<group>` headers, then its own
line; `default_path` in `<control>` prefixes every sample path. Only what a drum one-shot needs is
read: `sample`, `key`/`lokey`/`hikey`, `lovel`/`hivel`, `volume`, and the round-robin opcodes
`seq_position`/`lorand` (kept only to order samples). Release triggers are left out.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

from darc_bridge.errors import InputError
from darc_bridge.kits.pieces import PIECE_GM_NOTES

log = logging.getLogger(__name__)

_NOTE_OFFSETS = {"c": 0, "d": 2, "e": 4, "f": 5, "g": 7, "a": 9, "b": 11}
_HEADER_OR_OPCODE = re.compile(r"<(\w+)>|([A-Za-z0-9_$]+)=")
_HEADERS = ("control", "global", "master", "group", "region", "curve", "effect", "midi", "sample")


@dataclass(frozen=True)
class Region:
    """One sample for keys lokey..hikey and MIDI velocities lovel..hivel (1..127)."""

    sample: Path
    lokey: int
    hikey: int
    lovel: int = 1
    hivel: int = 127
    gain: float = 1.0  # from `volume` (dB)
    order: float = 0.0  # seq_position or lorand: the round-robin order within one velocity range


@dataclass
class SfzKit:
    name: str
    path: Path
    regions: list[Region] = field(default_factory=list)

    def by_piece(self) -> dict[str, list[Region]]:
        """For each kit piece, the regions of the first of its General MIDI notes that any region plays
        (a kick is note 36 before 35), so one note's layers and round-robins make the piece."""
        out: dict[str, list[Region]] = {}
        for piece, notes in PIECE_GM_NOTES.items():
            for note in notes:
                regions = [r for r in self.regions if r.lokey <= note <= r.hikey]
                if regions:
                    out[piece] = sorted(regions, key=lambda r: (r.lovel, r.hivel, r.order))
                    break
        return out


def note_number(value: str) -> int:
    """An SFZ key: a MIDI number (`36`) or a note name (`c1`, `c#4`, `db4`; c4 is 60)."""
    v = value.strip().lower()
    if re.fullmatch(r"-?\d+", v):
        n = int(v)
    else:
        m = re.fullmatch(r"([a-g])([#b]?)(-?\d+)", v)
        if m is None:
            raise ValueError(f"not a key: {value!r}")
        n = (int(m.group(3)) + 1) * 12 + _NOTE_OFFSETS[m.group(1)] + {"#": 1, "b": -1, "": 0}[m.group(2)]
    if not 0 <= n <= 127:
        raise ValueError(f"key out of range 0..127: {value!r}")
    return n


def _strip_comments(text: str) -> str:
    text = re.sub(r"/\*.*?\*/", " ", text, flags=re.S)
    return re.sub(r"//[^\n]*", " ", text)


def _expand_defines(text: str) -> str:
    """Apply `#define $NAME value` lines (later uses of $NAME are replaced); drop other # directives."""
    defines: dict[str, str] = {}
    lines = []
    for line in text.splitlines():
        m = re.match(r"\s*#define\s+(\$\w+)\s+(\S+)", line)
        if m:
            defines[m.group(1)] = m.group(2)
            continue
        if re.match(r"\s*#include\b", line):
            log.warning("SFZ #include is not supported: %s (its regions are left out)", line.strip())
            continue
        for name in sorted(defines, key=len, reverse=True):
            line = line.replace(name, defines[name])
        lines.append(line)
    return "\n".join(lines)


def _sections(text: str) -> list[tuple[str, dict[str, str]]]:
    """The headers in order, each with its opcodes. A `sample` value runs to the next opcode or header
    (file names hold spaces); any other value is its first word."""
    out: list[tuple[str, dict[str, str]]] = []
    matches = list(_HEADER_OR_OPCODE.finditer(text))
    for i, m in enumerate(matches):
        if m.group(1) is not None:
            out.append((m.group(1).lower(), {}))
            continue
        if not out:
            continue  # opcodes before any header mean nothing
        end = matches[i + 1].start() if i + 1 < len(matches) else len(text)
        raw = text[m.end():end].strip()
        key = m.group(2).lower()
        out[-1][1][key] = raw if key == "sample" else (raw.split()[0] if raw.split() else "")
    return out


def read_sfz(path: str | Path) -> SfzKit:
    """Read an `.sfz` file. Regions whose sample is missing on disk are skipped with a warning; a file
    with no playable region is an InputError naming the problem."""
    p = Path(path).expanduser()
    if not p.is_file():
        raise InputError(f"SFZ file not found: {p}")
    try:
        text = p.read_text(encoding="utf-8", errors="replace")
    except OSError as e:
        raise InputError(f"SFZ file is not readable: {p} ({e})") from None
    sections = _sections(_expand_defines(_strip_comments(text)))
    if not any(h == "region" for h, _ in sections):
        raise InputError(f"{p} holds no <region>: not an SFZ instrument")
    kit = SfzKit(name=p.stem, path=p)
    control: dict[str, str] = {}
    inherited = {"global": {}, "master": {}, "group": {}}  # type: dict[str, dict[str, str]]
    missing = 0
    for header, ops in sections:
        if header == "control":
            control = ops
            inherited = {"global": {}, "master": {}, "group": {}}
        elif header == "global":
            inherited = {"global": ops, "master": {}, "group": {}}
        elif header == "master":
            inherited["master"], inherited["group"] = ops, {}
        elif header == "group":
            inherited["group"] = ops
        elif header == "region":
            o = {**inherited["global"], **inherited["master"], **inherited["group"], **ops}
            region = _region(o, p, control.get("default_path", ""))
            if region is None:
                continue
            if not region.sample.is_file():
                missing += 1
                log.warning("SFZ %s: sample not found, region skipped: %s", p.name, region.sample)
                continue
            kit.regions.append(region)
    if not kit.regions:
        detail = f" ({missing} regions name samples that do not exist)" if missing else ""
        raise InputError(f"SFZ file {p} has no playable region{detail}")
    if not kit.by_piece():
        raise InputError(f"SFZ file {p} maps no region to a General MIDI drum key (kick 36, snare 38, hat 42...)")
    return kit


def _region(o: dict[str, str], sfz_path: Path, default_path: str) -> Region | None:
    if o.get("trigger", "attack").lower() != "attack" or not o.get("sample"):
        return None
    sample = o["sample"].replace("\\", "/")
    if sample.startswith("*"):  # built-in generators (*sine, *noise): no drum sound
        return None
    folder = sfz_path.parent
    path = Path(sample) if Path(sample).is_absolute() else folder / (default_path.replace("\\", "/") + sample)
    try:
        if "key" in o:
            lokey = hikey = note_number(o["key"])
        else:
            lokey = note_number(o.get("lokey", "0"))
            hikey = note_number(o.get("hikey", "127"))
        lovel = int(float(o.get("lovel", "1")))
        hivel = int(float(o.get("hivel", "127")))
        volume = float(o.get("volume", "0"))
        order = float(o.get("seq_position", o.get("lorand", "0")))
    except ValueError as e:
        raise InputError(f"SFZ file {sfz_path}: bad region opcode ({e})") from None
    if not (0 <= lokey <= hikey <= 127 and 0 <= lovel <= hivel <= 127):
        raise InputError(f"SFZ file {sfz_path}: region for {sample} has an empty key or velocity range")
    return Region(path, lokey, hikey, max(lovel, 1), hivel, 10.0 ** (volume / 20.0), order)

