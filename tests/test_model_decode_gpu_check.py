"""The prepared GPU check (scripts/gpu_decode_check.sh) and the model bench it runs: it refuses
to run without cuda when it expects it, the bench keeps each row as it finishes, the GPU
targets come first on cuda, and the comparison reports the median of interleaved pairs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from darc_bridge.bench import model as bench_model
from darc_bridge.bench.common import BenchRow

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.skipif(torch.cuda.is_available(), reason="the no-GPU path: on a GPU machine the script runs for real")
def test_the_gpu_check_fails_loudly_without_cuda(tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = subprocess.run([str(ROOT / "scripts" / "gpu_decode_check.sh")], capture_output=True, text=True,
                          env={**os.environ, "OUT": str(out), "PYTHON": sys.executable}, timeout=120)
    assert proc.returncode == 3
    summary = (out / "summary.txt").read_text()
    assert "cuda expected but torch sees no GPU" in summary
    assert "available False" in (out / "machine.txt").read_text()
    assert not (out / "bench_model.txt").exists() and not (out / "decode_tests.log").exists()


def test_the_model_bench_refuses_to_run_without_cuda_when_told_to_expect_it(monkeypatch, capsys) -> None:
    monkeypatch.setattr(bench_model, "bench_device", lambda: "cpu")
    assert bench_model.main(["--expect-cuda"]) == 3
    assert "sees no GPU" in capsys.readouterr().out


def test_the_model_bench_saves_each_row_as_it_finishes(tmp_path: Path, monkeypatch) -> None:
    out = tmp_path / "bench_model.txt"
    seen: list[str] = []

    def run(spec) -> BenchRow:
        seen.append(out.read_text())  # what a time limit striking now would leave
        return BenchRow("model", spec.label, 0.5, 10.0, {"error": "boom"} if "batch" in spec.label else {"x": 1})

    monkeypatch.setattr(bench_model.CaseSpec, "run", run)
    monkeypatch.setattr(bench_model, "bench_device", lambda: "cpu")
    assert bench_model.main(["--quick", "--out", str(out)]) == 1  # one case failed
    labels = [s.label for s in bench_model.case_specs("cpu", quick=True)]
    assert len(seen) == len(labels) == 4
    for i, text in enumerate(seen):  # before case i: the header and the i rows already measured
        assert text.startswith("darc-bridge model benchmarks")
        assert all(label in text for label in labels[:i]) and labels[i] not in text
    final = out.read_text()
    assert all(label in final for label in labels) and "error=boom" in final
    assert not list(tmp_path.glob("*.tmp"))


def test_on_cuda_the_gpu_targets_come_first() -> None:
    specs = bench_model.case_specs("cuda")
    assert [s.target for s in specs[:3]] == ["steps_case", "compare_case", "engine_small_case"]
    assert specs[1].args[0] == "small"
    assert len({s.label for s in specs}) == len(specs) == 9
    assert all("(cuda)" in s.label for s in specs)
    cpu = bench_model.case_specs("cpu")
    assert not any(s.target in ("steps_case", "engine_small_case") for s in cpu)
    assert [s.args[-1] for s in cpu if s.target == "compare_case"] == [7, 3]  # interleaved pairs


@pytest.mark.slow
def test_compare_reports_the_median_of_interleaved_pairs() -> None:
    threads = torch.get_num_threads()
    try:
        r = bench_model.compare_case("tiny", 0.2, "cpu", repeats=3)
    finally:
        torch.set_num_threads(threads)
    assert r["repeats"] == 3
    assert 0 < r["ratio_min"] <= r["ratio"] <= r["ratio_max"]
    assert r["cpu_ratio"] > 0
    assert r["ours_frames"] == r["audiocraft_frames"] == 10
    assert r["ours_rows"] == r["audiocraft_rows"] == 2
