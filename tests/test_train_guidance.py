"""The guidance stage: a coefficient chosen on tune-kit validation cases, written as the model's default."""

from __future__ import annotations

import json

import numpy as np
import pytest

from darc_bridge.errors import InputError
from darc_bridge.model.checkpoint import load_checkpoint, random_checkpoint, save_checkpoint
from darc_bridge.train import guidance
from darc_bridge.train.gate import gate_weights

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_the_score_is_the_mean_of_the_gates_rhythm_on_targets_and_undefined_counts_as_zero():
    row = {"onset_f1": 0.9, "kick_f1": 0.6, "snare_f1": 0.3, "hat_f1": 0.0}
    assert guidance.guidance_score(row) == pytest.approx(0.6)  # hat is not scored
    assert guidance.guidance_score({**row, "snare_f1": float("nan")}) == pytest.approx(0.5)
    assert guidance.guidance_score({**row, "snare_f1": None}) == pytest.approx(0.5)


@pytest.fixture
def fake_eval(monkeypatch):
    """run_eval stand-in whose figures depend on the guidance each system asks for."""
    calls = []

    def run_eval(set_dir, out_dir, systems, seed=0):
        calls.append([s.extra["cfg_coef"] for s in systems])
        assert all(s.engine == "darc" and s.rhythm_strength == 1.0 for s in systems)
        peak = {3.0: 0.5, 5.0: 0.7, 7.0: 0.6}
        summary = {s.name: {k: peak.get(s.extra["cfg_coef"], 0.7) for k in ("onset_f1", "kick_f1", "snare_f1",
                                                                             "hat_f1")} for s in systems}
        return {"summary": summary, "cases": {"case_000": {}, "case_001": {}}}

    import darc_bridge.eval.runner as runner

    monkeypatch.setattr(runner, "run_eval", run_eval)
    return calls


def test_the_best_coefficient_wins_ties_go_to_the_weaker_and_a_verdict_is_reused(tmp_path, fake_eval):
    save_checkpoint(random_checkpoint("tiny", seed=0), tmp_path / "m")
    for case in ("case_000", "case_001"):
        (tmp_path / "set" / case).mkdir(parents=True)
        (tmp_path / "set" / case / "mix.wav").write_bytes(b"")  # the stand-in eval never reads it
    g = guidance.choose_guidance(tmp_path / "set", tmp_path / "out", tmp_path / "m")
    assert g["cfg_coef"] == 5.0 and g["scores"]["5"] == pytest.approx(0.7) and g["cases"] == 2
    assert json.loads((tmp_path / "out" / "guidance.json").read_text())["cfg_coef"] == 5.0
    tie = guidance.choose_guidance(tmp_path / "set", tmp_path / "out2", tmp_path / "m", candidates=(9.0, 5.0))
    assert tie["cfg_coef"] == 9.0  # equal scores: the first listed
    guidance.choose_guidance(tmp_path / "set", tmp_path / "out", tmp_path / "m")
    assert len(fake_eval) == 2  # same weights, same candidates: not measured again
    save_checkpoint(random_checkpoint("tiny", seed=1), tmp_path / "m", overwrite=True)
    guidance.choose_guidance(tmp_path / "set", tmp_path / "out", tmp_path / "m")
    assert len(fake_eval) == 3  # new weights: measured again
    (tmp_path / "set" / "case_002").mkdir()
    (tmp_path / "set" / "case_002" / "mix.wav").write_bytes(b"")
    guidance.choose_guidance(tmp_path / "set", tmp_path / "out", tmp_path / "m")
    assert len(fake_eval) == 4  # another validation set: measured again
    with pytest.raises(InputError, match="positive"):
        guidance.choose_guidance(tmp_path / "set", tmp_path / "out", tmp_path / "m", candidates=(0.0, 3.0))


def test_writing_the_guidance_changes_the_default_and_the_gate_key_not_the_weights(tmp_path):
    from darc_bridge.audio import Audio
    from darc_bridge.engines import GenerationParams
    from darc_bridge.engines.darc import DarcEngine

    save_checkpoint(random_checkpoint("tiny", seed=0), tmp_path / "m", extra={"decoder_steps": 7})
    before = gate_weights(tmp_path / "m")
    assert guidance.with_guidance(tmp_path / "m", 5.0)
    assert not guidance.with_guidance(tmp_path / "m", 5.0)  # already so: nothing rewritten
    after = gate_weights(tmp_path / "m")
    assert {k: v for k, v in after.items() if k != "sampling"} == {k: v for k, v in before.items() if k != "sampling"}
    assert after["sampling"] != before["sampling"] and "cfg_coef=5" in after["sampling"]  # gated again
    assert gate_weights(tmp_path / "m", sampling=False) == {k: v for k, v in before.items() if k != "sampling"}
    ckpt = load_checkpoint(tmp_path / "m")
    assert ckpt.config.cfg_coef == 5.0 and ckpt.manifest["decoder_steps"] == 7
    engine = DarcEngine(checkpoint=str(tmp_path / "m"), device="cpu", warmup=False)
    engine.load()
    sr = ckpt.config.sample_rate
    mix = Audio(np.random.default_rng(0).normal(0, 0.1, (1, sr)).astype(np.float32), sr)
    result = engine.generate(mix, None, GenerationParams(seed=0))
    assert result.info["cfg_coef"] == 5.0  # the engine samples with the checkpoint's guidance


def test_the_validation_set_is_built_like_the_gate_set_from_the_tune_kits_only(tmp_path):
    from darc_bridge.data.kit_corpus import write_gate_set
    from darc_bridge.data.kit_pack import build_pack
    from darc_bridge.kits import find_drumkits, read_drumkit

    kits = {read_drumkit(p).name: p for p in find_drumkits()}
    pack = build_pack(32000, [kits["HardElectro1"], kits["VariBreaks"]])
    valid = write_gate_set(tmp_path / "valid", pack, cases=2, duration=2.0, seed=7000, split="tune")
    gate = write_gate_set(tmp_path / "gate", pack, cases=2, duration=2.0, seed=7000)
    assert {json.loads((f / "case.json").read_text())["kit"] for f in valid} == {"HardElectro1"}
    assert {json.loads((f / "case.json").read_text())["kit"] for f in gate} == {"VariBreaks"}
    with pytest.raises(InputError, match="split"):
        write_gate_set(tmp_path / "x", pack, cases=1, split="train")
