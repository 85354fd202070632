"""A job's output files appear together or not at all, never over another file, only where asked.

Why: a musician must never lose a take, find half a set of files, or have a file that is not the
program's own touched. So the write phase of a job is one commit over all its outputs (stem, MIDI,
later per-piece stems):

1. every file is written complete and fsynced under a temporary name holding the job's unique
   tag (`.NAME.TAG.part`), through a descriptor of its folder (openat-style: replacing the folder
   or a parent by a symbolic link during the job cannot move a file elsewhere);
2. each file's identity (device, inode, size) is reported (`on_planned`), so crash recovery can
   prove which files it wrote;
3. the folder is re-checked, then every file is linked to its final name, never over an existing
   file (a taken name moves the whole set to NAME-2, NAME-3...; with `overwrite` it is replaced);
4. the temporary names are removed.

Any failure before the end removes what this commit made (verified by inode) and nothing else.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from darc_bridge.errors import OutputError

MAX_NUMBER = 10000  # NAME-2 ... NAME-9999, then the folder is called full

_OSERRORS = {
    errno.ENOSPC: "no space left on the disk",
    errno.EDQUOT: "the disk quota is exceeded",
    errno.EROFS: "the file system is read-only",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EFBIG: "the file is too large for this file system",
    errno.ENAMETOOLONG: "the file name is too long",
    errno.ELOOP: "a symbolic link is in the way",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.ENOENT: "the folder no longer exists",
    errno.EXDEV: "the folder moved to another file system",
}


def explain_oserror(exc: OSError, what: str) -> OutputError:
    """An OSError while writing as a one-line OutputError naming the cause."""
    reason = _OSERRORS.get(exc.errno or 0, exc.strerror or str(exc))
    return OutputError(f"cannot write {what}: {reason}")


class OutputFolder:
    """An open output folder: writes are relative to its descriptor, not to its path."""

    def __init__(self, path: Path, fd: int, no_links: bool) -> None:
        self.path = path
        self.fd = fd
        self.no_links = no_links
        st = os.fstat(fd)
        self.identity = (st.st_dev, st.st_ino)

    @classmethod
    def open(cls, path: str | os.PathLike, *, no_links: bool = False) -> OutputFolder:
        """Open `path` as a folder. With `no_links`, every component is opened with O_NOFOLLOW from
        the root, so a symbolic link anywhere on the way (swapped in after the path was checked) is
        refused rather than followed."""
        p = Path(path)
        try:
            return cls(p, _walk(p) if no_links else os.open(p, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC),
                       no_links)
        except OSError as exc:
            if exc.errno in (errno.ELOOP, errno.ENOTDIR) and no_links:
                raise OutputError(f"output folder {p} changed: a part of it is now a symbolic link or not a "
                                  f"folder (links are never followed out of the allowed folders)") from exc
            raise explain_oserror(exc, f"into the output folder {p}") from exc

    def check_unchanged(self) -> None:
        """Re-check at rename time that the folder is still the one opened, at the same path."""
        if not self.no_links:
            return
        try:
            fd = _walk(self.path)
        except OSError as exc:
            raise OutputError(f"output folder {self.path} changed during the job (a part of it is now a "
                              f"symbolic link, or it was moved); nothing was written") from exc
        try:
            st = os.fstat(fd)
        finally:
            os.close(fd)
        if (st.st_dev, st.st_ino) != self.identity:
            raise OutputError(f"output folder {self.path} was replaced during the job; nothing was written")

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> OutputFolder:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()


def _walk(path: Path) -> int:
    """Open an absolute folder path component by component, never following a link."""
    if not path.is_absolute():
        raise OutputError(f"output folder must be an absolute path: {path}")
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    fd = os.open("/", flags)
    try:
        for part in path.parts[1:]:
            nxt = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


@dataclass
class OutputFile:
    """One output of a job: `base` + `suffix` in `folder` (base numbered together with the others)."""

    role: str  # "stem", "midi", a piece name...
    folder: OutputFolder
    base: str
    suffix: str  # ".wav", ".mid", ".kick.wav"
    write: Callable[[BinaryIO], None]

    def name(self, n: int) -> str:
        return f"{self.base}{self.suffix}" if n == 1 else f"{self.base}-{n}{self.suffix}"

    def temp_name(self, tag: str) -> str:
        return f".{self.base}{self.suffix}.{tag}.part"


Planned = Callable[[list[dict[str, Any]]], None]


def temp_names(base: str, tag: str, folder: Path) -> list[Path]:
    """The temporary files a commit with this tag may have left in `folder` (for crash recovery)."""
    return sorted(folder.glob(f".{_glob_escape(base)}*.{tag}.part"))


def _glob_escape(s: str) -> str:
    return "".join(f"[{c}]" if c in "*?[" else c for c in s)


def commit_outputs(files: list[OutputFile], tag: str, *, overwrite: bool = False, numbered: bool = False,
                   on_planned: Planned | None = None) -> dict[str, Path]:
    """Write `files` together (see the module docstring); returns role -> final path.

    `numbered`: a taken name moves the whole set to the next free NAME-n; otherwise a taken name
    is an OutputError (unless `overwrite`, which replaces it)."""
    temps: list[tuple[OutputFile, str]] = []
    linked: list[tuple[OutputFile, str, tuple[int, int]]] = []
    try:
        identities = []
        for f in files:
            tmp = f.temp_name(tag)
            temps.append((f, tmp))
            identities.append(_write_temp(f, tmp))
        n = _first_free(files) if numbered else 1
        while True:
            plan = [{"role": f.role, "path": str(f.folder.path / f.name(n)), "tmp": str(f.folder.path / tmp),
                     "dev": st[0], "ino": st[1], "size": st[2]} for (f, tmp), st in zip(temps, identities, strict=True)]
            if on_planned is not None:
                on_planned(plan)
            for f in {id(f.folder): f.folder for f in files}.values():
                f.check_unchanged()
            clash = _link_all(temps, identities, n, overwrite, linked)
            if clash is None:
                break
            if not numbered:
                raise OutputError(f"output file already exists: {clash}")
            _unlink_ours(linked)
            linked.clear()
            n = _next_number(n, files)
        for f, tmp in temps:
            _unlink_quietly(f.folder, tmp)
        return {f.role: f.folder.path / f.name(n) for f in files}
    except BaseException:
        _unlink_ours(linked)
        for f, tmp in temps:
            _unlink_quietly(f.folder, tmp)
        raise


def _write_temp(f: OutputFile, tmp: str) -> tuple[int, int, int]:
    flags = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        fd = os.open(tmp, flags, 0o666, dir_fd=f.folder.fd)  # the user's umask applies (not owner-only)
    except OSError as exc:
        raise explain_oserror(exc, f"{f.name(1)} in {f.folder.path}") from exc
    try:
        with os.fdopen(fd, "w+b") as fh:
            f.write(fh)
            fh.flush()
            os.fsync(fh.fileno())
            st = os.fstat(fh.fileno())
    except OSError as exc:
        raise explain_oserror(exc, f"{f.name(1)} in {f.folder.path}") from exc
    except RuntimeError as exc:  # soundfile reports a failed write (disk full...) as a RuntimeError
        raise OutputError(f"cannot write {f.name(1)} in {f.folder.path}: {exc}") from exc
    return st.st_dev, st.st_ino, st.st_size


def _link_all(temps: list[tuple[OutputFile, str]], identities: list[tuple[int, int, int]], n: int,
              overwrite: bool, linked: list) -> str | None:
    """Link every temp to its final name; the first name that is taken (or None if all went in)."""
    for (f, tmp), ident in zip(temps, identities, strict=True):
        final = f.name(n)
        try:
            if overwrite:
                os.replace(tmp, final, src_dir_fd=f.folder.fd, dst_dir_fd=f.folder.fd)
            else:
                os.link(tmp, final, src_dir_fd=f.folder.fd, dst_dir_fd=f.folder.fd, follow_symlinks=False)
        except FileExistsError:
            return str(f.folder.path / final)
        except OSError as exc:
            raise explain_oserror(exc, f"{final} in {f.folder.path}") from exc
        linked.append((f, final, ident[:2]))
    return None


def _first_free(files: list[OutputFile]) -> int:
    n = 1
    while any(_exists(f.folder, f.name(n)) for f in files):
        n = _next_number(n, files)
    return n


def _next_number(n: int, files: list[OutputFile]) -> int:
    if n + 1 >= MAX_NUMBER:
        raise OutputError(f"no free file name for {files[0].base!r} in {files[0].folder.path}")
    return n + 1


def _exists(folder: OutputFolder, name: str) -> bool:
    try:
        os.stat(name, dir_fd=folder.fd, follow_symlinks=False)
        return True
    except FileNotFoundError:
        return False
    except OSError as exc:
        raise explain_oserror(exc, f"{name} in {folder.path}") from exc


def _unlink_ours(linked: list[tuple[OutputFile, str, tuple[int, int]]]) -> None:
    """Remove final names this commit linked, only while they still are our inode."""
    for f, name, ident in linked:
        try:
            st = os.stat(name, dir_fd=f.folder.fd, follow_symlinks=False)
            if (st.st_dev, st.st_ino) == ident and stat.S_ISREG(st.st_mode):
                os.unlink(name, dir_fd=f.folder.fd)
        except OSError:
            pass


def _unlink_quietly(folder: OutputFolder, name: str) -> None:
    try:
        os.unlink(name, dir_fd=folder.fd)
    except OSError:
        pass


def is_same_file(path: str | os.PathLike, dev: int, ino: int, size: int) -> bool:
    """True if `path` is (still) the regular file a commit wrote: same device, inode and size."""
    try:
        st = os.lstat(path)
    except OSError:
        return False
    return stat.S_ISREG(st.st_mode) and (st.st_dev, st.st_ino, st.st_size) == (dev, ino, size)
