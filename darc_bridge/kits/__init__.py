"""Recorded drum samples that musicians (and Debian) already have on disk.

One place reads them for every user: the kit engine plays them, the training data and the rhythm
benchmark build prompts and drums from them. Formats: Hydrogen drumkits (`drumkit.xml` with velocity
layers) and General MIDI SoundFonts rendered through FluidSynth. Sounds are named by the kit engine's
pieces (`kick`, `snare`, `hat`, `open_hat`, `tom`, `crash`, `ride`, `clap`).
"""

from darc_bridge.kits.hydrogen import HydrogenKit, Instrument, Layer, find_drumkits, read_drumkit
from darc_bridge.kits.pieces import GM_NOTE_PIECES, PIECE_GM_NOTES, piece_for_label
from darc_bridge.kits.soundfont import FluidSynthMissing, find_soundfonts, render_gm_notes

__all__ = [
    "GM_NOTE_PIECES",
    "PIECE_GM_NOTES",
    "FluidSynthMissing",
    "HydrogenKit",
    "Instrument",
    "Layer",
    "find_drumkits",
    "find_soundfonts",
    "piece_for_label",
    "read_drumkit",
    "render_gm_notes",
]
