"""Overall progress never goes back and spans 0..1 whatever stages an engine reports."""

from darc_bridge.progress import OverallProgress


def test_monotone_and_complete():
    p = OverallProgress()
    values = [p.update(s, f) for s, f in [("load", 0), ("load", 1), ("beats", 0.5), ("rhythm", 1.0),
                                          ("render", 0.5), ("beats", 0.0), ("write", 1.0)]]
    assert values == sorted(values)
    assert values[0] == 0.0
    assert values[-1] == 1.0


def test_unknown_stage_counts_as_generate_and_clamps():
    p = OverallProgress()
    mid = p.update("sampling", 0.5)
    assert 0.1 < mid < 0.9
    assert p.update("sampling", 7.0) <= 1.0
