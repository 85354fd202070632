"""Tiny kits of every format, written by the tests themselves: WAV folders, Hydrogen, SFZ and SF2.

Each sample is a decaying sine at its own frequency, so a test can tell from a rendered hit which
sample (which piece, which velocity layer, which round-robin take) played.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 22050


def tone(freq: float, seconds: float = 0.3, sr: int = SR, decay_s: float | None = 0.08, amp: float = 0.8) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    env = np.exp(-t / decay_s) if decay_s else np.ones_like(t)
    return (amp * env * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def write_tone(path: Path, freq: float, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, tone(freq, **kw), SR)
    return path


def dominant_freq(x: np.ndarray, sr: int) -> float:
    mono = x.mean(axis=0) if x.ndim == 2 else x
    spec = np.abs(np.fft.rfft(mono * np.hanning(len(mono))))
    return float(np.fft.rfftfreq(len(mono), 1 / sr)[int(np.argmax(spec))])


# ------------------------------------------------------------------ Hydrogen

def hydrogen_kit(folder: Path, name: str = "Tiny H2") -> Path:
    """Kick: two velocity layers (200 Hz soft, 400 Hz hard); Snare: two takes of one range (round-robin,
    1000 / 1300 Hz) in the newer <instrumentComponent> layout; Hat: the oldest layout (<filename>)."""
    write_tone(folder / "kick_soft.wav", 200)
    write_tone(folder / "kick_hard.wav", 400)
    write_tone(folder / "snare_a.wav", 1000)
    write_tone(folder / "snare_b.wav", 1300)
    write_tone(folder / "hat.wav", 5000)
    (folder / "drumkit.xml").write_text(f"""<?xml version="1.0" encoding="UTF-8"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit">
 <name>{name}</name>
 <instrumentList>
  <instrument><id>0</id><name>Kick</name><volume>1</volume>
   <layer><filename>kick_soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer>
   <layer><filename>kick_hard.wav</filename><min>0.5</min><max>1</max><gain>1</gain></layer>
  </instrument>
  <instrument><id>1</id><name>Snare</name>
   <instrumentComponent><component_id>0</component_id>
    <layer><filename>snare_a.wav</filename><min>0</min><max>1</max><gain>1</gain></layer>
    <layer><filename>snare_b.wav</filename><min>0</min><max>1</max><gain>1</gain></layer>
   </instrumentComponent>
  </instrument>
  <instrument><id>2</id><name>Closed HH</name><filename>hat.wav</filename></instrument>
  <instrument><id>3</id><name>Cowbell</name><filename>hat.wav</filename></instrument>
 </instrumentList>
</drumkit_info>
""")
    return folder / "drumkit.xml"


# ------------------------------------------------------------------ SFZ

def sfz_kit(folder: Path, name: str = "tiny") -> Path:
    """The same kit as SFZ: default_path, <group> defaults, a note-name key, comments, round-robin."""
    s = folder / "samples"
    write_tone(s / "kick soft.wav", 200)
    write_tone(s / "kick hard.wav", 400)
    write_tone(s / "snare_a.wav", 1000)
    write_tone(s / "snare_b.wav", 1300)
    write_tone(s / "hat.wav", 5000)
    path = folder / f"{name}.sfz"
    path.write_text("""// a tiny drum kit
<control> default_path=samples/
<global> volume=0
<group> key=36 /* kick: two velocity layers */
<region> sample=kick soft.wav lovel=1 hivel=63
<region> sample=kick hard.wav lovel=64 hivel=127
<group> lokey=38 hikey=38 seq_length=2
<region> sample=snare_b.wav seq_position=2
<region> sample=snare_a.wav seq_position=1
<group> key=f#2
<region> sample=hat.wav
<region> sample=hat.wav trigger=release
""")
    return path


# ------------------------------------------------------------------ SoundFont 2

def _chunk(cid: bytes, data: bytes) -> bytes:
    pad = b"\0" if len(data) % 2 else b""
    return cid + struct.pack("<I", len(data)) + data + pad


def _list(kind: bytes, *chunks: bytes) -> bytes:
    return _chunk(b"LIST", kind + b"".join(chunks))


def _name(text: str) -> bytes:
    return text.encode()[:19].ljust(20, b"\0")


def sf2_kit(path: Path, zones: list[tuple[int, int, int, int, np.ndarray]], sr: int = SR) -> Path:
    """A one-preset General MIDI drum SoundFont (bank 128, preset 0). Each zone is
    (lokey, hikey, lovel, hivel, mono samples in -1..1); key tracking off, a long release so a hit
    rings as long as its sample."""
    pcm = b""
    shdr = b""
    offset = 0
    for i, (_, _, _, _, x) in enumerate(zones):
        data = np.clip(np.round(x * 32767), -32768, 32767).astype("<i2")
        pcm += data.tobytes() + b"\0\0" * 46
        start, end = offset, offset + len(data)
        shdr += _name(f"s{i}") + struct.pack("<IIIIIBbHH", start, end, start, end, sr, 60, 0, 0, 1)
        offset = end + 46
    shdr += _name("EOS") + struct.pack("<IIIIIBbHH", 0, 0, 0, 0, 0, 0, 0, 0, 0)
    igen = b""
    ibag = b""
    n_gen = 0
    for i, (lokey, hikey, lovel, hivel, _) in enumerate(zones):
        ibag += struct.pack("<HH", n_gen, 0)
        gens = [struct.pack("<HBB", 43, lokey, hikey), struct.pack("<HBB", 44, lovel, hivel),
                struct.pack("<Hh", 56, 0),  # scaleTuning 0: every key plays the sample at its pitch
                struct.pack("<Hh", 38, 2400),  # releaseVolEnv: 4 s
                struct.pack("<Hh", 54, 0),  # no loop
                struct.pack("<HH", 53, i)]  # sampleID last
        igen += b"".join(gens)
        n_gen += len(gens)
    ibag += struct.pack("<HH", n_gen, 0)
    igen += struct.pack("<HH", 0, 0)
    inst = _name("Tiny Drums") + struct.pack("<H", 0) + _name("EOI") + struct.pack("<H", len(zones))
    phdr = (_name("Standard") + struct.pack("<HHHIII", 0, 128, 0, 0, 0, 0)
            + _name("EOP") + struct.pack("<HHHIII", 0, 0, 1, 0, 0, 0))
    pbag = struct.pack("<HH", 0, 0) + struct.pack("<HH", 1, 0)
    pgen = struct.pack("<HH", 41, 0) + struct.pack("<HH", 0, 0)
    mod_end = b"\0" * 10
    body = b"sfbk" + _list(b"INFO", _chunk(b"ifil", struct.pack("<HH", 2, 1)), _chunk(b"isng", b"EMU8000\0"),
                           _chunk(b"INAM", b"Tiny\0\0")) \
        + _list(b"sdta", _chunk(b"smpl", pcm)) \
        + _list(b"pdta", _chunk(b"phdr", phdr), _chunk(b"pbag", pbag), _chunk(b"pmod", mod_end),
                _chunk(b"pgen", pgen), _chunk(b"inst", inst), _chunk(b"ibag", ibag), _chunk(b"imod", mod_end),
                _chunk(b"igen", igen), _chunk(b"shdr", shdr))
    path.write_bytes(b"RIFF" + struct.pack("<I", len(body)) + body)
    return path


def tiny_sf2(path: Path) -> Path:
    """Kick 36: 200 Hz below velocity 64, 400 Hz above; snare 38: 1000 Hz; crash 49: a 3 s sine that
    still rings when FluidSynth's 2.5 s slot ends (its tail must be faded)."""
    return sf2_kit(path, [
        (36, 36, 0, 63, tone(200)), (36, 36, 64, 127, tone(400)), (38, 38, 0, 127, tone(1000)),
        (49, 49, 0, 127, tone(3000, seconds=3.0, decay_s=None, amp=0.5)),
    ])
