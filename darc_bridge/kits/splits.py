"""Which recorded sources may be tuned or trained on, and which are held out for evaluation only.

Figures measured on the sounds a method was tuned on say little about a user's take. Every tuning
choice (extractor settings, learned models, DARC training) may use the `TUNE` sources only; reports
give the `HELD_OUT` figures. Kits that share a maker's samples (the three Millo kits) sit on the same
side, so no held-out kit is a near copy of a tuning kit.
"""

from __future__ import annotations

from typing import Literal

Split = Literal["tune", "held_out"]

# Debian hydrogen-drumkits, by kit name (drumkit.xml <name>); kits with no kick/snare/hat are not used.
HYDROGEN_KITS: dict[Split, tuple[str, ...]] = {
    "tune": ("Millo-Drums_v.1", "Millo_MultiLayered2", "Millo_MultiLayered3", "ColomboAcousticDrumkit",
             "ElectricEmpireKit", "HardElectro1", "rumpf_kit_z01_gm"),
    "held_out": ("Audiophob", "BJA_Pacific", "Forzee Stereo Drumkit", "The Black Pearl 1.0", "VariBreaks"),
}

# General MIDI drum programs of fluid-soundfont-gm's FluidR3_GM (see kits.soundfont.GM_DRUM_PROGRAMS).
GM_PROGRAMS: dict[Split, tuple[str, ...]] = {
    "tune": ("standard", "power", "electronic", "jazz"),
    "held_out": ("room", "tr808", "brush"),
}

# espeak-ng voices for vocal percussion (language voice + variant); speakers differ most by variant.
ESPEAK_VOICES: dict[Split, tuple[str, ...]] = {
    "tune": ("en+m1", "en+f2", "de+m3", "es+f4"),
    "held_out": ("en-us+m5", "fr+f1", "it+m2", "nl+f3", "pt+m4"),
}


# Further sources for the drum transcriber's model alone (eval/drum_model.py), beside the tables
# above. A table apart because split_of_kit reads HYDROGEN_KITS for DARC's training pack
# (data/kit_pack.build_pack) and the rhythm benchmark's takes (eval/takes.py), which must not change
# with the transcriber's material. Checked against every held-out source by the waveform
# correlation of the same notes (docs/evaluation.md, "Drum transcription"): a near copy is held out.
# Debian hydrogen-data's kits: GMRockKit is The Black Pearl 1.0's samples (correlation 1.00 on
# kick, snare and hat), a held-out gate kit, so it is held out too (never trained on; the gate's
# own set stays HYDROGEN_KITS["held_out"]); TR808EmulationKit is nobody's copy (at most 0.77).
TRANSCRIBER_HYDROGEN_KITS: dict[Split, tuple[str, ...]] = {
    "tune": ("TR808EmulationKit",),
    "held_out": ("GMRockKit",),
}

# General MIDI drum programs of SoundFonts other than FluidR3_GM, by file name. timgm6mb-soundfont's
# TimGM6mb has samples of its own (at most 0.75 against FluidR3's and the held-out kits'); its
# `jazz` is its `standard` again and `room` its `standard` with another snare, so both are left
# out. musescore-general-soundfont's MuseScore_General(_Lite).sf3 is not used: its drum programs
# are FluidR3_GM's samples (correlation 0.97-1.00 with the same FluidR3 program), so its room,
# tr808 and brush are held-out material and the rest add nothing.
SOUNDFONT_PROGRAMS: dict[str, dict[Split, tuple[str, ...]]] = {
    "TimGM6mb.sf2": {"tune": ("standard", "power", "electronic", "tr808", "brush"), "held_out": ()},
}


def split_of_kit(name: str) -> Split | None:
    """The split a Hydrogen kit or GM program belongs to (None: not used for tuning or evaluation)."""
    for table in (HYDROGEN_KITS, GM_PROGRAMS):
        for split, names in table.items():
            if name in names:
                return split
    return None

# Rooms a take is played in (their sizes live with the benchmark, darc_bridge.eval.takes.ROOM_SHAPES):
# tuning never hears the held-out rooms' reverberation.
ROOMS: dict[Split, tuple[str, ...]] = {
    "tune": ("booth", "bedroom", "kitchen", "hall"),
    "held_out": ("studio", "living_room", "garage", "stairwell"),
}
