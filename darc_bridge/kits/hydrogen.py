"""Hydrogen drumkits: `drumkit.xml` plus its samples, with velocity layers per instrument.

Debian's `hydrogen-drumkits` ships real multi-velocity acoustic and electronic kits, and musicians keep
their own in `~/.hydrogen/data/drumkits`. Both the old layout (a `<filename>` or `<layer>`s directly in
an `<instrument>`) and the newer one (`<instrumentComponent>` holding `<layer>`s) are read.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from pathlib import Path

from darc_bridge.errors import InputError
from darc_bridge.kits.pieces import piece_for_label

DRUMKIT_DIRS = (Path("/usr/share/hydrogen/data/drumkits"), Path("~/.hydrogen/data/drumkits").expanduser())


@dataclass(frozen=True)
class Layer:
    """One sample of an instrument, played for velocities in [min_velocity, max_velocity] (0..1)."""

    path: Path
    min_velocity: float = 0.0
    max_velocity: float = 1.0
    gain: float = 1.0


@dataclass
class Instrument:
    name: str
    piece: str | None  # the kit piece its name says, None for non-kit percussion
    layers: list[Layer] = field(default_factory=list)
    gain: float = 1.0


@dataclass
class HydrogenKit:
    name: str
    path: Path  # the drumkit.xml
    instruments: list[Instrument] = field(default_factory=list)

    def by_piece(self) -> dict[str, list[Instrument]]:
        """Instruments grouped by kit piece (instruments without a piece, or without samples, left out)."""
        out: dict[str, list[Instrument]] = {}
        for inst in self.instruments:
            if inst.piece and inst.layers:
                out.setdefault(inst.piece, []).append(inst)
        return out


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _child(el: ET.Element, name: str) -> ET.Element | None:
    return next((c for c in el if _local(c.tag) == name), None)


def _text(el: ET.Element, name: str, default: str = "") -> str:
    c = _child(el, name)
    return (c.text or "").strip() if c is not None and c.text is not None else default


def _float(el: ET.Element, name: str, default: float) -> float:
    try:
        return float(_text(el, name, str(default)))
    except ValueError:
        return default


def read_drumkit(path: str | Path) -> HydrogenKit:
    """Read a Hydrogen kit from its `drumkit.xml` (or the folder holding it). Samples that are missing on
    disk are left out; a kit with no sample at all is an InputError."""
    p = Path(path).expanduser()
    xml_path = p / "drumkit.xml" if p.is_dir() else p
    if not xml_path.is_file():
        raise InputError(f"Hydrogen drumkit not found: {xml_path}")
    try:
        root = ET.parse(xml_path).getroot()
    except ET.ParseError as e:
        raise InputError(f"Hydrogen drumkit {xml_path} is not valid XML: {e}") from None
    if _local(root.tag) != "drumkit_info":
        raise InputError(f"{xml_path} is not a Hydrogen drumkit (root element <{_local(root.tag)}>)")
    folder = xml_path.parent
    kit = HydrogenKit(name=_text(root, "name", folder.name) or folder.name, path=xml_path)
    inst_list = _child(root, "instrumentList")
    for inst_el in inst_list if inst_list is not None else []:
        if _local(inst_el.tag) != "instrument":
            continue
        name = _text(inst_el, "name")
        inst = Instrument(name=name, piece=piece_for_label(name), gain=_float(inst_el, "gain", 1.0)
                          * _float(inst_el, "volume", 1.0))
        layer_els = [c for c in inst_el if _local(c.tag) == "layer"]
        for comp in (c for c in inst_el if _local(c.tag) == "instrumentComponent"):
            layer_els += [c for c in comp if _local(c.tag) == "layer"]
        for el in layer_els:
            f = _text(el, "filename")
            if f and (folder / f).is_file():
                inst.layers.append(Layer(folder / f, _float(el, "min", 0.0), _float(el, "max", 1.0),
                                         _float(el, "gain", 1.0)))
        f = _text(inst_el, "filename")  # the oldest layout: one sample, no layers
        if f and not inst.layers and (folder / f).is_file():
            inst.layers.append(Layer(folder / f))
        inst.layers.sort(key=lambda la: (la.min_velocity, la.max_velocity))
        kit.instruments.append(inst)
    if not any(i.layers for i in kit.instruments):
        raise InputError(f"Hydrogen drumkit {xml_path} names no sample that exists on disk")
    return kit


def find_drumkits(dirs: tuple[Path, ...] = DRUMKIT_DIRS) -> list[Path]:
    """The `drumkit.xml` files in Hydrogen's kit folders, sorted by kit folder name."""
    found = []
    for d in dirs:
        if d.is_dir():
            found += [x for x in sorted(d.glob("*/drumkit.xml"))]
    return found
