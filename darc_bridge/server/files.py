"""Where the daemon may read and write: allowed folders, safe names, never over an existing file.

Clients only send paths, so every path is checked here before a job is accepted: output folders
must exist, be writable and lie inside an allowed folder (after resolving symlinks and `..`), and
are opened once for the job's writes (darc_bridge.outputs), so they cannot be swapped afterwards.
"""

from __future__ import annotations

import errno
import logging
from dataclasses import dataclass, field
from pathlib import Path

from darc_bridge.audio.io import check_input_file, check_output_folder
from darc_bridge.errors import InputError, OutputError
from darc_bridge.outputs import OutputFolder

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
            given = _absolute(out_dir, "out_dir", OutputError)
            try:
                folder = given.resolve()
            except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop (Python 3.11)
                raise OutputError(f"out_dir cannot be resolved ({_reason(exc)}): {out_dir[:300]}") from None
            if self.restricted and not any(folder == r or folder.is_relative_to(r) for r in self.roots()):
                raise OutputError(
                    f"out_dir {str(folder)!r} is outside the allowed folders ({', '.join(map(str, self.roots()))})"
                )
        try:
            return check_output_folder(folder)
        except OSError as exc:
            raise OutputError(f"out_dir cannot be used ({_reason(exc)}): {str(folder)[:300]}") from None

    def open_folder(self, out_dir: str | None) -> OutputFolder:
        """Check the folder again and open it for the job's writes. With allowed folders, no link
        on the way is followed (a folder swapped for a symlink during the job is refused)."""
        return OutputFolder.open(self.output_folder(out_dir), no_links=self.restricted)

    def check_input(self, path: str, role: str) -> Path:
        """Cheap checks at accept time (the full audio check runs in the job): absolute, a readable file."""
        p = _absolute(path, f"{role} path", InputError)
        size = check_input_file(p, role)
        if size > self.max_file_bytes:
            raise InputError(f"{role} file is too large: {p}")
        return p


def _absolute(path: str, what: str, error: type[Exception]) -> Path:
    """An absolute path as given: no NUL, no `~` (it would be the daemon's home, not the client's)."""
    if "\x00" in path:
        raise error(f"{what} holds a NUL character")
    if path.startswith("~"):
        raise error(f"{what} must be an absolute path; '~' is not expanded by the daemon (it may run as "
                    f"another user): {path[:300]!r}")
    p = Path(path)
    if not p.is_absolute():
        raise error(f"{what} must be absolute (the daemon has its own working folder): {path[:300]!r}")
    return p


def _reason(exc: BaseException) -> str:
    if isinstance(exc, RuntimeError):
        return "a symbolic link loop"
    if isinstance(exc, OSError) and exc.errno == errno.ENAMETOOLONG:
        return "the path is too long"
    if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
        return "a symbolic link loop"
    return getattr(exc, "strerror", None) or str(exc)
