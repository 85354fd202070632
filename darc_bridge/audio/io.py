"""Load audio with clear errors, and write WAV files atomically (temporary name, then rename).

Every entry point (CLI, daemon, training) reads audio through `load_audio`, so bad input is
refused the same way everywhere and never reaches an engine.
"""

from __future__ import annotations

import errno
import logging
import math
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from darc_bridge.errors import InputError, OutputError

log = logging.getLogger(__name__)

SILENCE_DBFS = -70.0
# How much shorter than its header says a file may decode before it counts as truncated: an MP3
# without a length tag has its length estimated from its size, about one 1152-sample frame off.
TRUNCATION_SLACK_S = 0.05


@dataclass(frozen=True)
class AudioLimits:
    """Bounds on what we accept; the defaults suit song regions and rhythm prompts."""

    max_duration_s: float = 600.0
    min_duration_s: float = 0.05
    max_file_bytes: int = 2 * 1024**3
    # Decoded float32 size of a region (channels x frames x 4): a small header can claim 1,024
    # channels, which decodes to ~10x the file. 1 GiB holds 600 s of stereo at 192 kHz.
    max_decoded_bytes: int = 1024**3

    def __post_init__(self) -> None:
        # a NaN limit would compare False with every length and so silently allow any region
        if not (math.isfinite(self.max_duration_s) and self.max_duration_s > 0):
            raise InputError(f"the longest region allowed must be a positive number of seconds, "
                             f"got {self.max_duration_s}")


@dataclass
class Audio:
    """Float32 samples shaped (channels, frames) with their sample rate."""

    samples: np.ndarray
    sample_rate: int

    @property
    def duration(self) -> float:
        return self.samples.shape[-1] / float(self.sample_rate)

    @property
    def channels(self) -> int:
        return self.samples.shape[0]

    def mono(self) -> np.ndarray:
        """Mean over channels: shape (frames,)."""
        return self.samples.mean(axis=0)

    def resampled(self, sample_rate: int) -> Audio:
        if sample_rate == self.sample_rate:
            return self
        import librosa

        out = librosa.resample(self.samples, orig_sr=self.sample_rate, target_sr=sample_rate, res_type="soxr_hq")
        return Audio(np.ascontiguousarray(out, dtype=np.float32), sample_rate)

    def region(self, start: float | None, end: float | None) -> Audio:
        """Cut [start, end) in seconds; None means the file's start or end."""
        s = 0 if start is None else int(round(start * self.sample_rate))
        e = self.samples.shape[-1] if end is None else int(round(end * self.sample_rate))
        return Audio(self.samples[:, s:e], self.sample_rate)

    def peak_dbfs(self) -> float:
        peak = float(np.max(np.abs(self.samples))) if self.samples.size else 0.0
        return -np.inf if peak <= 0 else 20.0 * np.log10(peak)


def seconds(v: float) -> str:
    """A time for a message: to the millisecond without trailing zeros (2s, 1.5s, 0.004s), and
    short however large (`--start 1e308` reads 1e+308s, not 309 digits)."""
    r = round(v, 3)
    return f"{r if r or not v else v:.10g}s"  # a time under 1 ms is not shown as 0s


def _check_region(path: Path, total: float, start: float | None, end: float | None) -> None:
    for name, value in (("start", start), ("end", end)):
        if value is not None and not math.isfinite(value):
            raise InputError(f"{path.name}: region {name} {value} is not a number of seconds")
    if start is not None and start < 0:
        raise InputError(f"{path.name}: region start {seconds(start)} is negative")
    if end is not None and end < 0:
        raise InputError(f"{path.name}: region end {seconds(end)} is negative")
    if start is not None and start >= total:
        raise InputError(f"{path.name}: region start {seconds(start)} is past the end of the file ({seconds(total)})")
    if end is not None and end <= (start or 0.0):
        raise InputError(f"{path.name}: region end {seconds(end)} is not after its start {seconds(start or 0.0)}")
    if end is not None and end > total + 1e-3:
        raise InputError(f"{path.name}: region end {seconds(end)} is past the end of the file ({seconds(total)})")


def load_audio(
    path: str | os.PathLike,
    *,
    role: str = "audio",
    start: float | None = None,
    end: float | None = None,
    limits: AudioLimits = AudioLimits(),
    allow_silent: bool = False,
) -> Audio:
    """Read an audio file (or a region of it) as float32 (channels, frames).

    `role` names the file in errors ("mix", "prompt") so the user knows which input is wrong.
    Raises InputError for a missing, unreadable, corrupt, empty, silent or too long file.
    """
    if not str(path):
        raise InputError(f"{role}: no file given")
    p = Path(path)
    size = check_input_file(p, role)
    if size == 0:
        raise InputError(f"{role} file is empty: {p}")
    if size > limits.max_file_bytes:
        raise InputError(f"{role} file is too large ({size / 1e9:.1f} GB > {limits.max_file_bytes / 1e9:.1f} GB): {p}")
    try:
        info = sf.info(str(p))
    except Exception as exc:  # soundfile raises LibsndfileError / RuntimeError / TypeError
        raise InputError(
            f"{role} file is not readable audio (corrupt or unsupported format; use WAV, FLAC, OGG or MP3): {p}"
        ) from exc
    if info.frames <= 0 or info.samplerate <= 0:
        raise InputError(f"{role} file holds no audio: {p}")
    total = info.frames / info.samplerate
    _check_region(p, total, start, end)
    s = 0.0 if start is None else start
    e = total if end is None else min(end, total)
    if e - s > limits.max_duration_s:
        raise InputError(
            f"{role} is too long: {seconds(e - s)} exceeds the limit of {seconds(limits.max_duration_s)} "
            f"(select a shorter region or raise the limit)"
        )
    if e - s < limits.min_duration_s:
        raise InputError(f"{role} is too short: {seconds(e - s)} (at least {seconds(limits.min_duration_s)} needed)")
    first, stop = int(round(s * info.samplerate)), int(round(e * info.samplerate))
    decoded = (stop - first) * info.channels * 4
    if decoded > limits.max_decoded_bytes:
        raise InputError(
            f"{role} would decode to {decoded / 1e6:.0f} MB ({info.channels} channels x {stop - first} frames), "
            f"more than the limit of {limits.max_decoded_bytes / 1e6:.0f} MB: {p}"
        )
    samples = _read_region(p, role, first, stop, info.channels)
    got = samples.shape[1]
    if stop - first - got > TRUNCATION_SLACK_S * info.samplerate:  # a short stem would sit out of place
        where = (f"the audio stops at {seconds((first + got) / info.samplerate)}" if got else
                 f"it holds no audio from {seconds(first / info.samplerate)} on")
        raise InputError(f"{role} file is truncated: its header says {seconds(total)} but {where}: {p}")
    sr = info.samplerate
    audio = Audio(samples, int(sr))
    if not allow_silent and audio.peak_dbfs() < SILENCE_DBFS:
        raise InputError(f"{role} is silent (peak below {SILENCE_DBFS:.0f} dBFS): {p}")
    log.debug("loaded %s %s: %.2fs, %d Hz, %d ch", role, p, audio.duration, sr, audio.channels)
    return audio


def _read_region(p: Path, role: str, first: int, stop: int, channels: int) -> np.ndarray:
    """Decode frames [first, stop) block by block straight into one (channels, frames) array:
    only the region is read, and memory peaks at the region's size (not twice it)."""
    out = np.empty((channels, stop - first), dtype=np.float32)
    block = max(1, (4 << 20) // (4 * channels))  # ~4 MB per block
    pos = 0
    try:
        with sf.SoundFile(str(p)) as f:
            f.seek(first)
            while pos < out.shape[1]:
                data = f.read(min(block, out.shape[1] - pos), dtype="float32", always_2d=True)
                if len(data) == 0:
                    break
                if not np.all(np.isfinite(data)):
                    raise InputError(f"{role} file holds invalid samples (NaN or infinity): {p}")
                out[:, pos:pos + len(data)] = data.T
                pos += len(data)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(f"{role} file is corrupt or truncated: {p} ({exc})") from exc
    return out[:, :pos]


_KINDS = {stat.S_IFDIR: "a folder", stat.S_IFIFO: "a FIFO (named pipe)", stat.S_IFCHR: "a character device",
          stat.S_IFBLK: "a block device", stat.S_IFSOCK: "a socket", stat.S_IFLNK: "a symbolic link"}
_PSEUDO_FS = ("/proc", "/sys", "/dev")


def check_input_file(p: Path, role: str) -> int:
    """An input path's problem as a one-line InputError (what it is, not "not found"); its size if fine."""
    try:
        st = os.stat(p)
    except OSError as exc:
        reason = {errno.ENOENT: "file not found", errno.ENAMETOOLONG: "path is too long",
                  errno.ELOOP: "path holds a symbolic link loop", errno.EACCES: "file is not readable",
                  errno.ENOTDIR: "path has a part that is not a folder"}.get(exc.errno or 0, exc.strerror)
        raise InputError(f"{role} {reason}: {str(p)[:300]}") from None
    kind = _KINDS.get(stat.S_IFMT(st.st_mode))
    if kind is not None:
        raise InputError(f"{role} path is {kind}, not an audio file: {p}")
    for root in _PSEUDO_FS:
        try:
            if os.stat(root).st_dev == st.st_dev:
                raise InputError(f"{role} path is on the kernel's {root} file system, not an audio file: {p}")
        except FileNotFoundError:
            continue
    if not os.access(p, os.R_OK):
        raise InputError(f"{role} file is not readable: {p}")
    return st.st_size


def check_output_folder(folder: Path) -> Path:
    """Refuse a destination folder that is missing, not a folder, or not writable."""
    if not folder.exists():
        raise OutputError(f"output folder does not exist: {folder}")
    if not folder.is_dir():
        raise OutputError(f"output folder is not a folder: {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise OutputError(f"output folder is not writable: {folder}")
    return folder


def check_output_path(path: str | os.PathLike, *, overwrite: bool = True) -> Path:
    """Refuse early (before any work) an output whose folder is missing or read-only."""
    p = Path(path)
    check_output_folder(p.parent if str(p.parent) else Path("."))
    if p.is_dir():
        raise OutputError(f"output path is a folder, not a file: {p}")
    if not overwrite and p.exists():
        raise OutputError(f"output file already exists: {p}")
    return p


def _same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: the same place once links are resolved, or one inode."""
    if a.resolve() == b.resolve():
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:  # one of them does not exist (yet)
        return False


def refuse_clash(role: str, path: Path, taken: list[tuple[str, Path]]) -> None:
    """Refuse an output that is a file already in use, `taken` as (what it is, path): an input
    (replacing it would destroy the take) or another output (one would overwrite the other)."""
    for what, q in taken:
        if _same_file(path, q):
            raise OutputError(f"the {role} output {path} is {what}; choose another file name")


def atomic_write(path: str | os.PathLike, write, *, overwrite: bool = True, suffix: str = "") -> Path:
    """Call `write(tmp_path)` then move the result onto `path` in one step.

    The temporary file lives in the destination folder (same filesystem, so the rename is
    atomic). With overwrite=False an existing file is never replaced, even in a race.
    """
    p = check_output_path(path, overwrite=overwrite)
    # Not mkstemp: it creates files readable by their owner only; outputs get the user's umask.
    tmp = os.path.join(p.parent or ".", f".{p.name}.{secrets.token_hex(6)}.part{suffix}")
    os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        if overwrite:
            os.replace(tmp, p)
        else:
            try:
                os.link(tmp, p)  # fails if p exists: no clobbering
            except FileExistsError as exc:
                raise OutputError(f"output file already exists: {p}") from exc
            os.unlink(tmp)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return p


def write_wav_atomic(
    path: str | os.PathLike,
    samples: np.ndarray,
    sample_rate: int,
    *,
    overwrite: bool = True,
    subtype: str = "FLOAT",
) -> Path:
    """Write (channels, frames) or (frames,) float audio as a 32-bit float WAV, atomically."""
    data = np.asarray(samples, dtype=np.float32)
    if data.ndim == 2:
        data = data.T
    if not np.all(np.isfinite(data)):
        raise OutputError("refusing to write audio holding NaN or infinity")

    def _write(tmp: str) -> None:
        sf.write(tmp, data, int(sample_rate), subtype=subtype, format="WAV")

    return atomic_write(path, _write, overwrite=overwrite, suffix=".wav")
