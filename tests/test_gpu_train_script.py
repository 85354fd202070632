"""scripts/gpu_train_model.sh (issue 10's GPU run): what can be checked without a GPU, cheaply.

The script is copied into an empty folder so that it finds no .gpu_site/ and no models/ there (the
code comes from PYTHONPATH): each check stops before the recipe trains anything. The full dry run (`--cpu`, smoke scale) is
the recipe itself and is covered by tests/test_train_recipe.py; docs/training.md says how it was run.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_train_model.sh"
MAX_FILES = 8  # what the device tool returns from $OUT


def _run(tmp_path: Path, *args: str, pack: bool = True) -> tuple[subprocess.CompletedProcess, Path]:
    repo = tmp_path / "repo"
    (repo / "scripts").mkdir(parents=True, exist_ok=True)
    for script in (SCRIPT, ROOT / "scripts" / "gpu_site_path.sh"):  # the script sources the second
        shutil.copy2(script, repo / "scripts" / script.name)
    out = tmp_path / "out"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "RESUME", "BUDGET_MIN")}
    env.update(OUT=str(out), PYTHON=sys.executable, CUDA_VISIBLE_DEVICES="", PYTHONPATH=str(ROOT),
               WORK=str(tmp_path / "work"), PACK=str(tmp_path / "pack.npz"))
    if pack:
        (tmp_path / "pack.npz").write_bytes(b"not read before the checks")
    r = subprocess.run(["bash", str(repo / "scripts" / SCRIPT.name), *args], env=env, capture_output=True,
                       text=True, timeout=120)
    return r, out


@pytest.mark.parametrize("name", ["gpu_train_model.sh", "gpu_site.sh", "gpu_decode_check.sh"])
def test_scripts_parse(name: str) -> None:
    r = subprocess.run(["bash", "-n", str(ROOT / "scripts" / name)], capture_output=True, text=True)
    assert r.returncode == 0, r.stderr


def test_refuses_to_run_without_cuda(tmp_path: Path) -> None:
    r, out = _run(tmp_path)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "cuda expected" in r.stdout
    assert "cuda expected" in (out / "summary.txt").read_text()
    assert not (tmp_path / "work").exists() and not (tmp_path / "work.log").exists()  # nothing was run


def test_cpu_dry_mode_runs_the_smoke_recipe_on_the_cpu(tmp_path: Path) -> None:
    # past the cuda check, the recipe starts at smoke scale on the CPU; the placeholder pack is then
    # refused by the recipe itself, whose input-error status the script passes on
    r, out = _run(tmp_path, "--cpu")
    assert r.returncode == 2, r.stdout + r.stderr
    summary = (out / "summary.txt").read_text()
    assert "mode=cpu scale=smoke" in summary
    assert "--scale smoke" in summary and "--device cpu" in summary and "--resume-from" not in summary
    assert "not a sample pack" in (out / "recipe.log").read_text()
    assert "no checkpoint to bring back" in summary


def test_missing_pack_is_refused_with_the_fix(tmp_path: Path) -> None:
    r, _ = _run(tmp_path, pack=False)
    assert r.returncode == 2
    assert "data pack" in r.stdout


def test_bad_argument_is_refused(tmp_path: Path) -> None:
    r, _ = _run(tmp_path, "--gpu")
    assert r.returncode == 2
    assert "usage" in r.stderr


def test_names_at_most_eight_output_files() -> None:
    text = SCRIPT.read_text()
    model_files = set(re.search(r'^MODEL_FILES="([^"]+)"', text, re.M).group(1).split())
    assert {"lm.safetensors", "codec.safetensors", "darc.json", "gate.json", "gate.md", "recipe.json"} <= model_files
    named = set(re.findall(r"\$OUT/([A-Za-z0-9_.-]+)", text))
    assert named, "the script names the files it writes under $OUT"
    assert len(model_files | named) <= MAX_FILES, sorted(model_files | named)
    # nothing is written into a folder below $OUT, and every name is one the tool returns
    assert not re.search(r"\$OUT/[A-Za-z0-9_.-]+/", text)
    assert all(re.fullmatch(r"[A-Za-z0-9_.-]+", n) for n in model_files | named)
