"""The kits a user can name: the built-in kit, the user's kit folder, Hydrogen's kits and SoundFonts.

`darc-bridge kits`, the daemon's `/darc/kits` reply and the DAW kit menus all show this one list, and
`--kit NAME` (or the OSC option `kit`) resolves a name through it, so a name picked from a menu is
always one the engine can play. A path works too: a folder of WAVs, a Hydrogen `drumkit.xml` (or its
folder), an `.sfz` or an `.sf2` file. Only names and formats are read here; samples load in the engine.
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

from darc_bridge.errors import InputError
from darc_bridge.kits.hydrogen import DRUMKIT_DIRS, read_drumkit
from darc_bridge.kits.soundfont import SOUNDFONT_DIRS, find_soundfonts

log = logging.getLogger(__name__)

KitFormat = Literal["builtin", "folder", "hydrogen", "sfz", "sf2"]
FORMATS: tuple[KitFormat, ...] = ("builtin", "folder", "hydrogen", "sfz", "sf2")
BUILTIN = "builtin"
USER_KITS_ENV = "DARC_BRIDGE_KITS"
SAMPLE_SUFFIXES = (".wav", ".flac", ".aif", ".aiff", ".ogg")


@dataclass(frozen=True)
class KitEntry:
    """A kit by name: its format and where it is (`path` is "" for the built-in kit)."""

    name: str
    format: KitFormat
    path: str = ""

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


def user_kit_dir() -> Path:
    """The user's kit folder: $DARC_BRIDGE_KITS, else ~/.local/share/darc-bridge/kits."""
    env = os.environ.get(USER_KITS_ENV)
    return Path(env).expanduser() if env else Path("~/.local/share/darc-bridge/kits").expanduser()


def _hydrogen_name(xml_path: Path) -> str:
    """The kit's own name (`<name>` of drumkit.xml), else its folder's name."""
    try:
        root = ET.parse(xml_path).getroot()
        for child in root:
            if child.tag.rsplit("}", 1)[-1] == "name" and (child.text or "").strip():
                return (child.text or "").strip()
    except (ET.ParseError, OSError):
        pass
    return xml_path.parent.name


def kit_at_path(path: str | os.PathLike) -> KitEntry:
    """What kit a path holds, from its name and contents; InputError if it is none of the formats."""
    p = Path(path).expanduser()
    if not p.exists():
        raise InputError(f"kit not found: {p}")
    if p.is_dir():
        if (p / "drumkit.xml").is_file():
            return KitEntry(_hydrogen_name(p / "drumkit.xml"), "hydrogen", str(p / "drumkit.xml"))
        sfz = sorted(p.glob("*.sfz"))
        has_samples = any(f.suffix.lower() in SAMPLE_SUFFIXES for f in p.iterdir() if f.is_file())
        if len(sfz) == 1 and not has_samples:
            return KitEntry(p.name, "sfz", str(sfz[0]))
        return KitEntry(p.name, "folder", str(p))
    suffix = p.suffix.lower()
    if p.name.lower() == "drumkit.xml" or suffix == ".xml":
        return KitEntry(_hydrogen_name(p), "hydrogen", str(p))
    if suffix == ".sfz":
        return KitEntry(p.stem, "sfz", str(p))
    if suffix == ".sf2":
        return KitEntry(p.stem, "sf2", str(p))
    raise InputError(f"not a drum kit: {p} (expected a folder of samples, a Hydrogen drumkit.xml, "
                     f"an .sfz or an .sf2 file)")


def _user_kits(folder: Path) -> list[KitEntry]:
    if not folder.is_dir():
        return []
    out = []
    for p in sorted(folder.iterdir(), key=lambda q: q.name.lower()):
        if p.name.startswith("."):
            continue
        if p.is_dir() or p.suffix.lower() in (".sfz", ".sf2") or p.name.lower() == "drumkit.xml":
            try:
                out.append(kit_at_path(p))
            except InputError as e:
                log.debug("user kit folder: %s", e)
    return out


def _plays_drums(xml_path: Path) -> bool:
    """A Hydrogen kit of hand percussion only (djembes, shakers) plays no kit piece: menus leave it out."""
    try:
        return bool(read_drumkit(xml_path).by_piece())
    except InputError as exc:
        log.info("Hydrogen kit left out of the list: %s", exc)
        return False


def list_kits(
    user_dir: Path | None = None,
    hydrogen_dirs: tuple[Path, ...] = DRUMKIT_DIRS,
    soundfont_dirs: tuple[Path, ...] = SOUNDFONT_DIRS,
) -> list[KitEntry]:
    """`builtin` first, then the user's kits, Hydrogen's kits and the SoundFonts found. A name already
    taken by an earlier kit is left out of the list (that kit stays reachable by its path)."""
    entries = [KitEntry(BUILTIN, "builtin")]
    entries += _user_kits(user_dir if user_dir is not None else user_kit_dir())
    for d in hydrogen_dirs:
        if d.is_dir():
            entries += [KitEntry(_hydrogen_name(x), "hydrogen", str(x)) for x in sorted(d.glob("*/drumkit.xml"))
                        if _plays_drums(x)]
    entries += [KitEntry(p.stem, "sf2", str(p)) for p in find_soundfonts(soundfont_dirs)]
    seen: set[str] = set()
    out = []
    for e in entries:
        if e.name in seen:
            log.debug("kit name %r is taken already: %s is left out of the list", e.name, e.path)
            continue
        seen.add(e.name)
        out.append(e)
    return out


def looks_like_path(spec: str) -> bool:
    return "/" in spec or os.sep in spec or spec.startswith("~") or spec.lower().endswith((".sfz", ".sf2", ".xml"))


def resolve_kit(spec: str | os.PathLike | None, kits: list[KitEntry] | None = None) -> KitEntry:
    """A kit name (as listed) or a path -> its entry. None or "" is the built-in kit. A bare name that is
    no listed kit but an existing folder or file (relative path) is taken as a path."""
    if spec is None or str(spec) == "" or str(spec) == BUILTIN:
        return KitEntry(BUILTIN, "builtin")
    text = os.fspath(spec)
    if looks_like_path(text):
        return kit_at_path(text)
    kits = list_kits() if kits is None else kits
    for e in kits:
        if e.name == text:
            return e
    folded = [e for e in kits if e.name.lower() == text.lower()]
    if len(folded) == 1:
        return folded[0]
    if Path(text).exists():
        return kit_at_path(text)
    names = ", ".join(e.name for e in kits[:12]) + (", ..." if len(kits) > 12 else "")
    raise InputError(f"unknown kit {text!r}: not a kit name (`darc-bridge kits` lists them: {names}) "
                     f"and no such file or folder")
