"""The rhythm benchmark's stress entry (python -m darc_bridge.bench.rhythm --stress)."""

from __future__ import annotations

import pytest

from darc_bridge.bench.rhythm import main
from darc_bridge.eval.stress import CONDITIONS


def test_stress_refuses_the_tune_split():
    with pytest.raises(SystemExit):
        main(["--stress", "--split", "tune", "--n", "1"])


@pytest.mark.slow
def test_stress_table_runs_and_its_figures_are_sane(capsys):
    main(["--stress", "--n", "1"])
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        cells = [c.strip() for c in line.strip("|").split("|")]
        if cells[0] in CONDITIONS:
            rows[cells[0]] = cells[1:]
    assert list(rows) == list(CONDITIONS)
    figures = {c: [float("nan") if v == "-" else float(v) for v in r[1:]] for c, r in rows.items()}
    onset, librosa_f1, cls, _ = figures["control"]
    assert onset >= 0.95 and cls >= 0.6 and librosa_f1 >= 0.9  # a clean held-out kit take
    for cond, (ours, base, _, _) in figures.items():
        assert 0.5 < ours <= 1.0 and 0.0 <= base <= 1.0, cond  # nothing collapsed, nothing out of range
    assert rows["one sound"][3] == "-" and rows["one sound"][4] == "-"  # one sound has no classes to score
    assert figures["phone 8k"][1] > 0.8  # the baseline hears the 8 kHz take at 22.05 kHz, as the extractor does


def test_stress_scores_tune_takes_for_decisions():
    from darc_bridge.bench.rhythm import evaluate_stress

    scores = evaluate_stress(9, 1, ("control",), split="tune")["control"]
    assert len(scores) == 1 and scores[0].case.split == "tune" and scores[0].case.tier == "clean"
    assert 0.5 < scores[0].onset_f1 <= 1.0
