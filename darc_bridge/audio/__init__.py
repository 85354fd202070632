"""Audio I/O: validated loading, resampling and atomic writing."""

from darc_bridge.audio.io import (
    Audio,
    AudioLimits,
    load_audio,
    write_wav_atomic,
)

__all__ = ["Audio", "AudioLimits", "load_audio", "write_wav_atomic"]
