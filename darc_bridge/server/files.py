"""Where the daemon may read and write: allowed folders, safe names, never over an existing file.

Clients only send paths, so every path is checked here before a job is accepted: output folders
must exist, be writable and lie inside an allowed folder (after resolving symlinks and `..`).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from darc_bridge.audio.io import check_output_folder
from darc_bridge.errors import InputError, OutputError

log = logging.getLogger(__name__)


@dataclass
class FilePolicy:
    """The daemon's folders: the default output folder and, optionally, the only folders allowed.

    With `allowed` empty, any existing writable folder may be an explicit out_dir (a local
    daemon serves its own user); with a list, outputs must lie inside one of them or the output dir.
    """

    output_dir: Path
    allowed: list[Path] = field(default_factory=list)
    max_file_bytes: int = 2 * 1024**3

    def __post_init__(self) -> None:
        self.output_dir = Path(self.output_dir).expanduser().resolve()
        self.allowed = [Path(p).expanduser().resolve() for p in self.allowed]

    @property
    def restricted(self) -> bool:
        return bool(self.allowed)

    def roots(self) -> list[Path]:
        return [self.output_dir, *self.allowed]

    def output_folder(self, out_dir: str | None) -> Path:
        """The folder a job writes to: its out_dir (checked) or the daemon's output folder."""
        if not out_dir:
            folder = self.output_dir
        else:
            if "\x00" in out_dir:
                raise OutputError("out_dir holds a NUL character")
            given = Path(out_dir).expanduser()
            if not given.is_absolute():
                raise OutputError(f"out_dir must be an absolute path, got {out_dir!r}")
            folder = given.resolve()
            if self.restricted and not any(folder == r or folder.is_relative_to(r) for r in self.roots()):
                raise OutputError(
                    f"out_dir {str(folder)!r} is outside the allowed folders ({', '.join(map(str, self.roots()))})"
                )
        return check_output_folder(folder)

    def check_input(self, path: str, role: str) -> Path:
        """Cheap checks at accept time (the full audio check runs in the job): absolute, a readable file."""
        if "\x00" in path:
            raise InputError(f"{role} path holds a NUL character")
        p = Path(path).expanduser()
        if not p.is_absolute():
            raise InputError(f"{role} path must be absolute (the daemon has its own working folder): {path!r}")
        if not p.is_file():
            raise InputError(f"{role} file not found: {p}")
        if not os.access(p, os.R_OK):
            raise InputError(f"{role} file is not readable: {p}")
        if p.stat().st_size > self.max_file_bytes:
            raise InputError(f"{role} file is too large: {p}")
        return p


def reserve_outputs(folder: Path, name: str, with_midi: bool) -> tuple[Path, Path | None]:
    """Pick `<name>.wav` (and `.mid`) that do not exist yet, adding -2, -3... if taken."""
    for n in range(1, 10000):
        base = name if n == 1 else f"{name}-{n}"
        stem = folder / f"{base}.wav"
        midi = folder / f"{base}.mid" if with_midi else None
        if not stem.exists() and (midi is None or not midi.exists()):
            return stem, midi
    raise OutputError(f"no free file name for {name!r} in {folder}")


def remove_leftovers(paths: list[Path]) -> None:
    """Remove a crashed job's own outputs (complete files of an incomplete set, and temp files)."""
    for p in paths:
        for tmp in p.parent.glob(f".{p.name}.*.part*"):
            log.info("removing temporary file left by a crash: %s", tmp)
            tmp.unlink(missing_ok=True)
        if p.exists():
            log.info("removing output of an unfinished job (it will be made again): %s", p)
            p.unlink()
