"""Record a rhythm prompt from an input device (sounddevice), with optional count-in clicks.

Count-in and recording share one duplex stream, so the recording starts exactly on the beat after
the last click; the count-in part is cut off before the WAV is written.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import soundfile as sf

from darc_bridge.audio.io import write_wav_atomic
from darc_bridge.engines import CancelToken, ProgressCallback, no_progress
from darc_bridge.errors import Cancelled, InputError
from darc_bridge.outputs import OutputFile, commit_outputs
from darc_bridge.pipeline import OutputPlan

log = logging.getLogger(__name__)

CLICK_S = 0.03


def click_track(count_in: int, bpm: float, sample_rate: int) -> np.ndarray:
    """`count_in` short clicks, one per beat; the first is accented (higher pitch)."""
    beat = int(round(sample_rate * 60.0 / bpm))
    out = np.zeros(beat * count_in, dtype=np.float32)
    n = int(CLICK_S * sample_rate)
    t = np.arange(n) / sample_rate
    env = np.exp(-t / 0.008).astype(np.float32)
    for i in range(count_in):
        freq = 1500.0 if i == 0 else 1000.0
        out[i * beat: i * beat + n] = 0.5 * env * np.sin(2 * np.pi * freq * t).astype(np.float32)
    return out


def _device(device: str | None) -> int | str | None:
    if device is None or device == "":
        return None
    return int(device) if device.isdigit() else device


def record_prompt(
    out_path: Path | OutputPlan,
    seconds: float,
    *,
    sample_rate: int = 44100,
    count_in: int = 0,
    bpm: float = 120.0,
    device: str | None = None,
    progress: ProgressCallback = no_progress,
    cancel: CancelToken | None = None,
) -> tuple[Path, float]:
    """Record `seconds` of mono audio after `count_in` clicks; write it atomically as WAV (to a
    path, or as the daemon's output plan says: never over an existing file, numbered on a clash)."""
    import sounddevice as sd

    dev = _device(device)
    try:
        sd.check_input_settings(device=dev, channels=1, samplerate=sample_rate, dtype="float32")
    except Exception as exc:  # PortAudioError, ValueError: no such device, unsupported rate...
        raise InputError(f"cannot record from input device {device or 'default'!r}: {exc}") from exc
    clicks = click_track(count_in, bpm, sample_rate) if count_in else np.zeros(0, dtype=np.float32)
    frames = int(round(seconds * sample_rate))
    total = len(clicks) + frames
    chunk = max(256, sample_rate // 20)  # 50 ms: prompt cancel and smooth progress
    progress("record", 0.0)
    recorded: list[np.ndarray] = []
    try:
        # Blocking reads (not callbacks): no block is ever dropped, and cancel is checked per chunk.
        if count_in:
            stream = sd.Stream(samplerate=sample_rate, channels=1, dtype="float32", device=(dev, None))
        else:
            stream = sd.InputStream(samplerate=sample_rate, channels=1, dtype="float32", device=dev)
        with stream:
            done = 0
            while done < total:
                if cancel is not None:
                    cancel.raise_if_cancelled()
                n = min(chunk, total - done)
                if count_in:
                    play = np.zeros((n, 1), dtype=np.float32)
                    click_part = clicks[done: done + n]
                    play[: len(click_part), 0] = click_part
                    stream.write(play)
                data, _overflowed = stream.read(n)
                recorded.append(np.array(data[:, 0], dtype=np.float32))
                done += n
                progress("record", done / total)
    except (InputError, Cancelled):
        raise
    except Exception as exc:
        raise InputError(f"recording failed on input device {device or 'default'!r}: {exc}") from exc
    audio = np.concatenate(recorded)[len(clicks):] if recorded else np.zeros(0, np.float32)
    if not np.all(np.isfinite(audio)):
        raise InputError("the input device returned invalid samples")
    if isinstance(out_path, OutputPlan):
        path = commit_outputs([OutputFile("prompt", out_path.folder, out_path.name, ".wav",
                                          lambda fh: sf.write(fh, audio, sample_rate, subtype="PCM_16", format="WAV"))],
                              out_path.tag, numbered=True, on_planned=out_path.on_planned)["prompt"]
    else:
        path = write_wav_atomic(out_path, audio, sample_rate, overwrite=False, subtype="PCM_16")
    progress("record", 1.0)
    log.info("recorded %.2fs prompt to %s (peak %.3f)", len(audio) / sample_rate, path, float(np.abs(audio).max()))
    return path, len(audio) / sample_rate
