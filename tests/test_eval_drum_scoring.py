"""Scoring the drum transcriber's model (eval/drum_scoring.py): the snare diagnostics name the
superpositions, and the cross-validation refuses options that do not apply before rendering anything."""

from __future__ import annotations

import pytest

from darc_bridge.errors import InputError
from darc_bridge.eval import drum_model, drum_scoring


def test_snare_errors_name_the_superpositions():
    """The diagnostic the CV and the held-out report print: a snare found on a kick+hat moment is a
    false snare on kick+hat; a snare missed where a hat sounds is one missed under a hat."""
    from darc_bridge.rhythm.features import Onset

    truth = [Onset(0.5, 0, 0.9), Onset(0.5, 2, 0.6), Onset(1.0, 1, 0.9), Onset(1.0, 2, 0.6),
             Onset(1.5, 1, 0.9), Onset(2.0, 0, 0.9)]
    found = [Onset(0.51, 1, 1.0), Onset(1.49, 1, 1.0), Onset(2.0, 1, 1.0)]
    c = drum_scoring.snare_errors(truth, found)
    assert c == {"tp": 1, "fp": 2, "fn": 1, "fp_on_kick_hat": 1, "kick_hat": 1, "fn_under_hat": 1, "snare_hat": 1}
    assert drum_scoring.snare_summary(c) == [1 / 3, 0.5, 1.0, 1.0]


def test_decisions_are_the_combo_heads_only():
    with pytest.raises(InputError, match="combo head"):  # before any rendering
        drum_scoring.cross_validate(drum_model.Recipe(), decisions=("argmax",))
