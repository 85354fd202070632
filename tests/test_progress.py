"""Whole-job progress never goes back and spans 0..1 whatever stages an engine reports."""

import pytest

from darc_bridge.progress import OverallProgress


def test_monotone_and_complete():
    p = OverallProgress()
    values = [p.update(s, f) for s, f in [("load", 0), ("load", 1), ("rhythm", 0.5), ("beats", 1.0),
                                          ("render", 0.5), ("rhythm", 0.0), ("write", 1.0)]]
    assert values == sorted(values)
    assert values[0] == 0.0 and values[-1] == 1.0
    assert p.stage == "write"


def test_unknown_stage_keeps_value_and_input_is_clamped():
    p = OverallProgress()
    mid = p.update("generate", 0.5)
    assert 0.3 < mid < 0.85
    assert p.update("sampling", 1.0) == mid and p.stage == "generate"
    assert p.update("generate", 7.0) == pytest.approx(0.85)
    assert p.update("decode", float("nan")) == pytest.approx(0.85)
