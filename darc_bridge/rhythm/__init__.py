"""Rhythm prompts -> timbre-free rhythm features (DARC's NMF step), MIDI and plots."""

from darc_bridge.rhythm.features import FRAME_RATE, GM_NOTES, Onset, RhythmFeatures, RhythmSettings

__all__ = ["FRAME_RATE", "GM_NOTES", "Onset", "RhythmFeatures", "RhythmSettings"]
