"""Recorded-sample readers: Hydrogen drumkits, SoundFont rendering through FluidSynth, piece labels."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from darc_bridge.errors import InputError
from darc_bridge.kits import (
    GM_NOTE_PIECES,
    FluidSynthMissing,
    find_drumkits,
    find_soundfonts,
    piece_for_label,
    read_drumkit,
    render_gm_notes,
)
from darc_bridge.kits import soundfont as soundfont_mod


@pytest.mark.parametrize(
    ("label", "piece"),
    [
        ("Kick", "kick"), ("BassDrum", "kick"), ("c3 - bass drum 1", "kick"), ("Pearl Side Stick", "snare"),
        ("Snare Rimshot (Pearl Free Floating Maple 14x3.5)", "snare"), ("Closed HH", "hat"),
        ("Sabian Hat Semi-Open", "open_hat"), ("Hi Hat Opened", "open_hat"), ("Open HH", "open_hat"),
        ("VariBreaks Hat 1 Op", "open_hat"), ("Pedal HH", "hat"), ("Tom Low (Tama Superstar 16\")", "tom"),
        ("tomhi2", "tom"), ("crash16inch", "crash"), ("Zildjian Splash", "crash"), ("Paiste Ride", "ride"),
        ("Hand Clap", "clap"), ("Cowbell", None), ("Djembe1 Bass", None), ("Drum 1", None), ("17", None),
    ],
)
def test_piece_for_label(label, piece):
    assert piece_for_label(label) == piece


def test_gm_note_map_covers_the_midi_export_notes():
    assert GM_NOTE_PIECES[36] == "kick" and GM_NOTE_PIECES[38] == "snare" and GM_NOTE_PIECES[42] == "hat"
    assert GM_NOTE_PIECES[46] == "open_hat" and GM_NOTE_PIECES[49] == "crash"


def _wav(path, freq, sr=22050):
    t = np.arange(int(0.1 * sr)) / sr
    sf.write(path, (0.5 * np.sin(2 * np.pi * freq * t) * np.exp(-t * 30)).astype(np.float32), sr)


def test_read_drumkit_both_layouts_and_missing_samples(tmp_path):
    for name in ("k_soft.wav", "k_hard.wav", "sn.wav", "hh.wav"):
        _wav(tmp_path / name, 100)
    (tmp_path / "drumkit.xml").write_text(
        """<?xml version="1.0"?>
<drumkit_info xmlns="http://www.hydrogen-music.org/drumkit"><name>Tiny</name><instrumentList>
 <instrument><id>0</id><name>Kick</name><gain>0.5</gain>
  <layer><filename>k_hard.wav</filename><min>0.5</min><max>1</max><gain>1</gain></layer>
  <layer><filename>k_soft.wav</filename><min>0</min><max>0.5</max><gain>1</gain></layer></instrument>
 <instrument><id>1</id><name>Snare</name><filename>sn.wav</filename></instrument>
 <instrument><id>2</id><name>Closed HH</name><instrumentComponent>
  <layer><filename>hh.wav</filename><min>0</min><max>1</max></layer></instrumentComponent></instrument>
 <instrument><id>3</id><name>Tom</name><filename>missing.wav</filename></instrument>
 <instrument><id>4</id><name>Cowbell</name><filename>hh.wav</filename></instrument>
</instrumentList></drumkit_info>""")
    kit = read_drumkit(tmp_path)  # the folder works as well as the xml
    assert kit.name == "Tiny"
    pieces = kit.by_piece()
    assert set(pieces) == {"kick", "snare", "hat"}  # the tom's sample is missing, the cowbell is no kit piece
    kick = pieces["kick"][0]
    assert [la.path.name for la in kick.layers] == ["k_soft.wav", "k_hard.wav"]  # sorted by velocity
    assert kick.layers[1].min_velocity == 0.5 and kick.gain == 0.5


def test_read_drumkit_errors_name_the_problem(tmp_path):
    with pytest.raises(InputError, match="not found"):
        read_drumkit(tmp_path / "nope")
    (tmp_path / "drumkit.xml").write_text("<drumkit_info><name>x")
    with pytest.raises(InputError, match="not valid XML"):
        read_drumkit(tmp_path)
    (tmp_path / "drumkit.xml").write_text("<song/>")
    with pytest.raises(InputError, match="not a Hydrogen drumkit"):
        read_drumkit(tmp_path)
    (tmp_path / "drumkit.xml").write_text(
        "<drumkit_info><instrumentList><instrument><name>Kick</name><filename>x.wav</filename>"
        "</instrument></instrumentList></drumkit_info>")
    with pytest.raises(InputError, match="no sample"):
        read_drumkit(tmp_path)


def test_missing_fluidsynth_is_a_clear_error(tmp_path, monkeypatch):
    font = tmp_path / "x.sf2"
    font.write_bytes(b"RIFF")
    monkeypatch.setattr(soundfont_mod.shutil, "which", lambda name: None)
    with pytest.raises(FluidSynthMissing, match="apt install fluidsynth"):
        render_gm_notes(font, [(36, 100)])


@pytest.mark.slow
def test_debian_kits_are_read_and_rendered():
    """Debian's hydrogen-drumkits and fluid-soundfont-gm (installed by .ci/run) give real recorded drums."""
    kits = [read_drumkit(p) for p in find_drumkits()]
    assert sum(1 for k in kits if {"kick", "snare", "hat"} <= set(k.by_piece())) >= 8
    fonts = find_soundfonts()
    assert fonts, "fluid-soundfont-gm is not installed (.ci/run installs it)"
    kick, hat, silent = render_gm_notes(fonts[0], [(36, 110), (42, 110), (20, 100)], sample_rate=22050)
    assert kick.shape == hat.shape == (2, int(2.5 * 22050))
    assert np.abs(kick).max() > 0.05 and np.abs(hat).max() > 0.02
    assert np.abs(silent).max() < 1e-3  # note 20 is no GM drum: the slots do not bleed into each other

    def centroid(x):
        mag = np.abs(np.fft.rfft(x[0, :4096]))
        return float((mag * np.arange(mag.size)).sum() / mag.sum())

    assert centroid(hat) > 4 * centroid(kick)
