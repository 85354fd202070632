"""Which kit piece a recorded sound is, from its label or its General MIDI note.

Kits name their instruments freely ("Pearl Kick", "Sabian Hat Semi-Open", "c#4 - crash"), so a label is
matched by words, most specific first: an open hat before a hat, a rim shot before a tom. Sounds that are
no drum-kit piece (cowbell, conga, shaker) get None and are left out.
"""

from __future__ import annotations

import re

# (piece, words): the first piece whose word starts a word of the label wins. Order matters: open hats
# before plain hats, "bass drum" before "drum", "rim"/"stick" are snare strokes.
_LABEL_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("open_hat", ("open", "op", "ohh")),  # only hats are "open" in a kit (other open strokes are not kit)
    ("hat", ("closed hh", "hh", "hat", "hihat", "hi-hat", "chh", "pedal hh")),
    ("kick", ("kick", "bass drum", "bassdrum", "bd")),
    ("clap", ("clap", "hand clap")),
    ("snare", ("snare", "rim", "stick", "sd")),
    ("tom", ("tom", "floor")),
    ("crash", ("crash", "splash", "china", "cymbal")),
    ("ride", ("ride", "bell")),
)
_NOT_KIT = ("cowbell", "conga", "bongo", "djembe", "shaker", "maraca", "tambourine", "clave", "whistle",
            "woodblock", "zap", "fx", "cajon", "snap", "glass", "agogo", "cabasa", "guiro", "timbale",
            "sangban", "dununba", "kenkeni", "triangle")


def piece_for_label(label: str) -> str | None:
    """The kit piece a sound's label names, or None when it names none (or a non-kit percussion)."""
    text = " " + re.sub(r"[_\s]+", " ", label.lower()).strip() + " "
    if any(re.search(r"[\s(]" + re.escape(w), text) for w in _NOT_KIT):
        return None
    for piece, words in _LABEL_WORDS:
        # Short abbreviations ("bd", "hh") must end a word; longer words may run on ("tomhi2", "snare1").
        if any(re.search(r"[\s(\d-]" + re.escape(w) + (r"(?![a-z])" if len(w) <= 2 else ""), text) for w in words):
            return piece
    return None


# General MIDI percussion key map (channel 10), by piece.
PIECE_GM_NOTES: dict[str, tuple[int, ...]] = {
    "kick": (36, 35),
    "snare": (38, 40, 37),
    "hat": (42, 44),
    "open_hat": (46,),
    "tom": (45, 47, 43, 48, 41, 50),
    "crash": (49, 57, 52, 55),
    "ride": (51, 59, 53),
    "clap": (39,),
}
GM_NOTE_PIECES: dict[int, str] = {n: p for p, notes in PIECE_GM_NOTES.items() for n in notes}
