"""/darc/record for real: PortAudio records from an ALSA file-backed capture device with a known signal.

The daemon subprocess gets HOME pointing at a folder whose .asoundrc makes the default PCM an
`asym` device: playback to `null`, capture from a `file` PCM reading a raw S16_LE file we wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from darc_bridge.client import ClientError

pytestmark = pytest.mark.slow

SR = 44100
FREQ = 440.0
AMP = 0.5


def alsa_home(folder: Path) -> Path:
    """A HOME whose ~/.asoundrc records `FREQ` Hz at `AMP` from a raw file (and plays into nothing)."""
    folder.mkdir(parents=True, exist_ok=True)
    raw = folder / "capture.raw"
    t = np.arange(SR * 20) / SR
    (AMP * np.sin(2 * np.pi * FREQ * t) * 32767).astype("<i2").tofile(raw)
    (folder / ".asoundrc").write_text(f"""
pcm.!default {{
    type asym
    playback.pcm "darc_null_out"
    capture.pcm "darc_capture"
}}
pcm.darc_null_out {{ type null }}
pcm.darc_capture {{
    type plug
    slave {{ pcm "darc_file_in" format S16_LE rate {SR} channels 1 }}
}}
pcm.darc_file_in {{
    type file
    slave.pcm "darc_null_in"
    file "/dev/null"
    infile "{raw}"
    format "raw"
}}
pcm.darc_null_in {{ type null }}
""")
    return folder


def dominant_frequency(x: np.ndarray, sr: int) -> float:
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return float(np.fft.rfftfreq(len(x), 1 / sr)[np.argmax(spectrum)])


@pytest.mark.parametrize("count_in", [0, 2])
def test_record_returns_a_wav_holding_the_captured_signal(server_daemon_factory, tmp_path, count_in):
    home = alsa_home(tmp_path / "home")
    d = server_daemon_factory(engine="fake", env={"HOME": str(home)})
    options = {"count_in": count_in, "bpm": 240.0, "sample_rate": SR}
    with d.client(timeout=3.0) as c:
        first = c.record(f"rec-{count_in}", 1.0, options)
        assert first["state"] in ("queued", "running")
        updates: list[dict] = []
        final = c.wait(f"rec-{count_in}", on_update=updates.append)
    assert final["state"] == "done", final
    assert any(u["stage"] == "record" for u in updates)
    path = Path(final["stem_path"])
    assert path.parent == d.output_dir.resolve() and path.name == f"prompt-rec-{count_in}.wav"
    x, sr = sf.read(str(path))
    assert sr == SR and len(x) == SR  # exactly the requested second; the count-in is cut off
    assert dominant_frequency(x, sr) == pytest.approx(FREQ, abs=3)
    rms = float(np.sqrt(np.mean(x**2)))
    assert rms == pytest.approx(AMP / np.sqrt(2), rel=0.1)
    assert windowed_sine_match(x, sr) > 0.9


def windowed_sine_match(x: np.ndarray, sr: int, window: int = 110) -> float:
    """Share of 2.5 ms windows that are our sine (correlation > 0.98 at the best phase).

    Windows, not the whole take: ALSA's file PCM follows the null device's clock, so the file
    position may jump between periods (a phase jump), though every period holds the signal."""
    n_lags = int(round(sr / FREQ)) + 1
    ref = AMP * np.sin(2 * np.pi * FREQ * np.arange(window + n_lags) / sr)
    starts = range(0, len(x) - window, window * 4)
    good = sum(max(np.corrcoef(x[s:s + window], ref[k:k + window])[0, 1] for k in range(n_lags)) > 0.98
               for s in starts)
    return good / len(starts)


def test_record_from_a_missing_device_is_a_clear_error(server_daemon_factory, tmp_path):
    home = alsa_home(tmp_path / "home")
    d = server_daemon_factory(engine="fake", env={"HOME": str(home)})
    with d.client(timeout=3.0) as c:
        c.record("rec-bad", 0.5, {"device": "no-such-device"})
        final = c.wait("rec-bad")
        assert (final["state"], final["error_code"]) == ("error", "bad_input")
        assert "no-such-device" in final["error_message"]
        with pytest.raises(ClientError) as info:
            c.record("rec-long", 100000.0)
        assert info.value.code == "bad_request"
