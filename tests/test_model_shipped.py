"""The committed model (models/darc-mini): what `--engine darc` loads with no --checkpoint. It is
fp16, carries its gate report and recipe, and on fresh held-out cases (another seed than the
gate's) it still follows the prompt: an end-to-end check of the shipped weights, not of a toy."""

from __future__ import annotations

import json

import pytest

from darc_bridge.model.shipped import MODELS_DIR, SHIPPED_NAME

SHIPPED = MODELS_DIR / SHIPPED_NAME


def test_the_shipped_model_is_fp16_gated_and_the_default(monkeypatch):
    from darc_bridge.model.shipped import ENV_VAR, default_checkpoint
    from darc_bridge.train.gate import TARGETS

    monkeypatch.delenv(ENV_VAR, raising=False)
    assert default_checkpoint() == str(SHIPPED)
    manifest = json.loads((SHIPPED / "darc.json").read_text())
    assert manifest["dtype"] == "float16" and manifest["recipe_command"].startswith("darc-bridge train recipe")
    assert "data_seed" in manifest
    gate = json.loads((SHIPPED / "gate.json").read_text())
    assert gate["passed"] and gate["cases"] == 32
    assert all(gate[name] >= target for name, target in TARGETS.items())
    for name in ("lm.safetensors", "codec.safetensors"):
        assert (SHIPPED / name).stat().st_size < 16 * 2**20  # what one GPU run may return per file


@pytest.mark.slow
def test_the_shipped_model_follows_the_prompt_on_fresh_held_out_cases(tmp_path, torch_one_thread):
    from darc_bridge.data.kit_corpus import write_gate_set
    from darc_bridge.data.kit_pack import build_pack
    from darc_bridge.train.gate import run_gate

    pack = build_pack(32000)
    write_gate_set(tmp_path / "set", pack, cases=4, duration=4.0, seed=9100)  # not the gate's seed (5000)
    g = run_gate(tmp_path / "set", tmp_path / "gate", str(SHIPPED), seed=0)
    assert g["cases"] == 4
    assert g["onset_f1"] >= 0.7 and g["kick_f1"] >= 0.6 and g["snare_f1"] >= 0.6  # measured 0.86, 0.94, 0.96
    assert g["gap"] >= 0.2  # the rhythm, not the mix alone, places the hits (measured 0.34)
