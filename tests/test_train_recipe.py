"""The recipe end to end at smoke scale (CI), resumable, shipping in fp16, and the default model lookup."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from darc_bridge.errors import CheckpointError, InputError
from darc_bridge.model.checkpoint import load_checkpoint, random_checkpoint, save_checkpoint
from darc_bridge.train.gate import TARGETS, gate_figures

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def test_mini_preset_is_about_10m_parameters_with_a_1_to_3m_codec_at_32khz():
    ckpt = random_checkpoint("mini", seed=0)
    cfg = ckpt.config
    lm = sum(p.numel() for p in ckpt.model.parameters())
    codec = sum(p.numel() for p in ckpt.codec.parameters())
    assert (cfg.dim, cfg.num_layers, cfg.n_q, cfg.sample_rate, cfg.frame_rate) == (256, 8, 4, 32000, 50.0)
    assert 7e6 < lm < 12e6 and 1e6 < codec < 3e6
    assert cfg.card == ckpt.codec.quantizer.bins and ckpt.codec.num_codebooks == 4
    assert cfg.injection_layers and cfg.window_s == 10.0


def test_fp16_save_halves_the_files_and_loads_back(tmp_path):
    ckpt = random_checkpoint("mini", seed=0)
    save_checkpoint(ckpt, tmp_path / "fp32")
    save_checkpoint(ckpt, tmp_path / "fp16", dtype=torch.float16, extra={"data_seed": 7})
    for name in ("lm.safetensors", "codec.safetensors"):
        small, big = (tmp_path / "fp16" / name).stat().st_size, (tmp_path / "fp32" / name).stat().st_size
        assert small < 0.55 * big
    assert (tmp_path / "fp16" / "lm.safetensors").stat().st_size < 16 * 2**20  # a GPU run returns files <= 16 MiB
    loaded = load_checkpoint(tmp_path / "fp16")
    assert loaded.manifest["dtype"] == "float16" and loaded.manifest["data_seed"] == 7
    before = ckpt.model.state_dict()
    for k, v in loaded.model.state_dict().items():
        if v.is_floating_point():
            assert v.dtype == torch.float32 and torch.equal(v, before[k].half().float())


def test_gate_verdict_needs_every_target():
    row = {"onset_f1": 0.8, "kick_f1": 0.75, "snare_f1": 0.72, "hat_f1": 0.3, "grid_alignment": 0.9, "beat_f": 0.8,
           "cases": 32}
    off = {**row, "onset_f1": 0.55}
    g = gate_figures({"darc": row, "darc-rhythm-off": off})
    assert g["passed"] and g["gap"] == pytest.approx(0.25) and set(g["checks"]) == set(TARGETS)
    g = gate_figures({"darc": row, "darc-rhythm-off": {**off, "onset_f1": 0.65}})
    assert not g["passed"] and g["checks"] == {"onset_f1": True, "kick_f1": True, "snare_f1": True, "gap": False}
    g = gate_figures({"darc": {**row, "snare_f1": float("nan")}, "darc-rhythm-off": off})
    assert not g["checks"]["snare_f1"]


def test_a_gate_verdict_is_for_the_weights_and_the_transcriber_it_measured(tmp_path, monkeypatch):
    from darc_bridge.eval import drum_model
    from darc_bridge.train.gate import gate_weights

    save_checkpoint(random_checkpoint("tiny", seed=0), tmp_path / "a")
    save_checkpoint(random_checkpoint("tiny", seed=1), tmp_path / "b")
    a, b = gate_weights(tmp_path / "a"), gate_weights(tmp_path / "b")
    assert a["lm.safetensors"] != b["lm.safetensors"] and a["transcriber"] == b["transcriber"]
    retrained = tmp_path / "drum_model.npz"
    retrained.write_bytes(drum_model.MODEL_PATH.read_bytes() + b"\0")
    monkeypatch.setattr(drum_model, "MODEL_PATH", retrained)
    assert gate_weights(tmp_path / "a")["transcriber"] != a["transcriber"]  # a retrained transcriber: gate again


def test_engine_without_a_checkpoint_names_make_model(tmp_path, monkeypatch, capsys):
    from darc_bridge.cli.main import main

    monkeypatch.setenv("DARC_BRIDGE_MODEL", str(tmp_path / "absent"))
    from darc_bridge.audio.io import write_wav_atomic

    write_wav_atomic(tmp_path / "mix.wav", np.zeros((1, 16000), np.float32) + 0.01, 16000)
    rc = main(["generate", "--mix", str(tmp_path / "mix.wav"), "--out", str(tmp_path / "out.wav"), "--engine", "darc"])
    err = capsys.readouterr().err
    assert rc == 2 and "make model" in err and str(tmp_path / "absent") in err
    from darc_bridge.cli.serve import engine_options

    class Args:
        engine, checkpoint, device, no_warmup = "darc", None, "cpu", True

    with pytest.raises(CheckpointError, match="make model"):
        engine_options(Args())
    save_checkpoint(random_checkpoint("tiny"), tmp_path / "absent")
    assert engine_options(Args())["checkpoint"] == str(tmp_path / "absent")


@pytest.fixture(scope="module")
def smoke(tmp_path_factory):
    """The smoke recipe on one tuning kit and one held-out kit (a couple of minutes on 2 cores)."""
    from darc_bridge.data.kit_pack import build_pack, save_pack
    from darc_bridge.kits import find_drumkits, read_drumkit
    from darc_bridge.train.recipe import run_recipe

    root = tmp_path_factory.mktemp("recipe")
    kits = {read_drumkit(p).name: p for p in find_drumkits()}
    save_pack(build_pack(32000, [kits["HardElectro1"], kits["VariBreaks"]]), root / "pack.npz")
    t0 = time.perf_counter()
    result = run_recipe(root / "work", "mini", "smoke", seed=3, pack=root / "pack.npz", ship_to=root / "models" / "m",
                        device="cpu")
    return root, result, time.perf_counter() - t0


@pytest.mark.slow
def test_smoke_recipe_runs_every_stage_and_gates_the_model(smoke):
    root, result, _ = smoke
    work = root / "work"
    for stage in ("corpus/song_00000/onsets.json", "codec/darc.json", "cache/manifest.json", "base/latest/darc.json",
                  "darc/latest/darc.json", "gate/gate.json", "gate/gate.md", "gate/eval/report.md",
                  "gate/spectrograms/case_000.png", "recipe.json"):
        assert (work / stage).exists(), stage
    base, darc = load_checkpoint(work / "base" / "latest"), load_checkpoint(work / "darc" / "latest")
    assert base.source.startswith("train:stage") and darc.source.startswith("train:jump")
    assert not darc.manifest["codec_source"].startswith("random")
    g = result.gate
    assert g["cases"] == 2 and set(g["checks"]) == set(TARGETS) and g["reference"]["onset_f1"] > 0.3
    # the codec ceiling: the same reference drums through the model's (smoke-trained, poor) codec
    assert g["codec_reference"] is not None and g["codec_reference"]["onset_f1"] != g["reference"]["onset_f1"]
    assert "reference through the codec" in (work / "gate" / "gate.md").read_text()
    assert not g["passed"] and result.shipped is None and not (root / "models" / "m").exists()  # smoke never ships
    # ... but what it trained is kept beside, in the shipped format, for a later run to resume
    kept = root / "models" / "m-wip"
    assert result.kept == kept and json.loads((kept / "darc.json").read_text())["dtype"] == "float16"
    assert json.loads((kept / "gate.json").read_text())["passed"] is False
    info = json.loads((kept / "recipe.json").read_text())
    assert info["gate_passed"] is False and info["checkpoint"] == str(work / "model")
    assert [r["darc_steps"] for r in info["runs"]] == [4]
    summary = json.loads((work / "recipe.json").read_text())
    assert summary["darc_history"] and summary["seed"] == 3
    # the decoder stage: the codec's decoder trained on alone, and the gated model is the DARC LM with it
    model, codec = load_checkpoint(work / "model"), load_checkpoint(work / "codec")
    assert g["checkpoint"] == str((work / "model").resolve())
    assert json.loads((work / "decoder" / "darc.json").read_text())["decoder_steps"] == 3
    assert model.manifest["codec_source"].endswith("+decoder:3steps")
    m, c = model.codec.state_dict(), codec.codec.state_dict()
    assert all(torch.equal(m[k], c[k]) for k in c if not k.startswith("decoder."))  # same tokens
    assert any(not torch.equal(m[k], c[k]) for k in c if k.startswith("decoder."))
    lm = darc.model.state_dict()
    assert all(torch.equal(t, lm[k]) for k, t in model.model.state_dict().items())
    # the guidance stage: chosen on validation cases of the tune kit, the gate sampled with it
    from darc_bridge.train.guidance import CFG_CANDIDATES

    chosen = json.loads((work / "guidance" / "guidance.json").read_text())["cfg_coef"]
    assert chosen in CFG_CANDIDATES and model.config.cfg_coef == chosen == summary["guidance"]["cfg_coef"]
    assert g["weights"]["sampling"].startswith(f"cfg_coef={chosen:g} ")
    valid_kits = {json.loads(p.read_text())["kit"] for p in (work / "valid-set").glob("case_*/case.json")}
    assert valid_kits == {"HardElectro1"}  # never the gate's held-out kit


@pytest.mark.slow
def test_recipe_resumes_without_redoing_finished_stages(smoke):
    from darc_bridge.train.recipe import run_recipe

    root, first, first_s = smoke
    work = root / "work"
    stamp = (work / "darc" / "latest" / "lm.safetensors").stat().st_mtime_ns
    t0 = time.perf_counter()
    again = run_recipe(work, "mini", "smoke", seed=3, pack=root / "pack.npz", ship_to=root / "models" / "m",
                       device="cpu")
    assert time.perf_counter() - t0 < 0.5 * first_s
    assert (work / "darc" / "latest" / "lm.safetensors").stat().st_mtime_ns == stamp
    assert again.gate == first.gate


@pytest.mark.slow
def test_a_rerun_never_goes_back_to_the_base_once_darc_has_started(smoke):
    import dataclasses

    from darc_bridge.train.loop import latest_step_dir
    from darc_bridge.train.recipe import SCALES, run_recipe

    root, first, _ = smoke
    work = root / "work"
    base_step = latest_step_dir(work / "base").name
    longer_base = dataclasses.replace(SCALES["smoke"], base_steps=SCALES["smoke"].base_steps * 3)
    run_recipe(work, "mini", longer_base, seed=3, pack=root / "pack.npz", ship_to=root / "models" / "m", device="cpu")
    assert latest_step_dir(work / "base").name == base_step  # the base DARC started from is kept


@pytest.mark.slow
def test_more_darc_and_decoder_steps_continue_both_and_the_gate_runs_again(smoke):
    import dataclasses

    from darc_bridge.train.loop import latest_step_dir
    from darc_bridge.train.recipe import SCALES, decoder_steps_done, run_recipe

    root, first, _ = smoke
    work = root / "work"
    steps = SCALES["smoke"].darc_steps
    assert latest_step_dir(work / "darc").name == f"step_{steps:07d}"
    longer = dataclasses.replace(SCALES["smoke"], darc_steps=steps + 2, decoder_steps=5)
    again = run_recipe(work, "mini", longer, seed=3, pack=root / "pack.npz", ship_to=root / "models" / "m",
                       device="cpu")
    assert latest_step_dir(work / "darc").name == f"step_{steps + 2:07d}"  # continued, not restarted
    assert decoder_steps_done(work / "decoder") == 5
    assert load_checkpoint(work / "model").source == load_checkpoint(latest_step_dir(work / "darc")).source
    assert again.gate["weights"] != first.gate["weights"]  # new weights: gated again, not the old verdict


@pytest.mark.slow
def test_a_kept_checkpoint_resumes_in_a_new_work_folder_and_is_no_engines_default(smoke, monkeypatch, tmp_path):
    from darc_bridge.model.shipped import default_checkpoint
    from darc_bridge.train.loop import latest_step_dir
    from darc_bridge.train.recipe import run_recipe

    root, first, _ = smoke
    kept = root / "models" / "m-wip"
    before = load_checkpoint(kept)
    # a fresh machine: build/ is gone, only the committed folder is left
    again = run_recipe(tmp_path / "work", "mini", "smoke", seed=3, pack=root / "pack.npz", resume_from=kept,
                       ship_to=tmp_path / "models" / "m", device="cpu")
    work = tmp_path / "work"
    assert latest_step_dir(work / "base") is None  # the base stage is skipped
    codec = load_checkpoint(work / "codec").codec.state_dict()
    assert all(torch.equal(t, codec[k]) for k, t in before.codec.state_dict().items())  # the same tokens
    darc = load_checkpoint(latest_step_dir(work / "darc"))
    assert any(not torch.equal(t, darc.model.state_dict()[k]) for k, t in before.model.state_dict().items())
    info = json.loads((again.kept / "recipe.json").read_text())
    assert [r["resumed_from"] for r in info["runs"]] == [None, str(kept)]
    monkeypatch.setenv("DARC_BRIDGE_MODEL", str(tmp_path / "models" / "m"))
    with pytest.raises(CheckpointError, match="make model"):
        default_checkpoint()  # a kept checkpoint never becomes the default


@pytest.mark.slow
def test_a_shipped_model_is_fp16_with_its_recipe_and_is_the_default(smoke, monkeypatch, tmp_path):
    from darc_bridge.audio import Audio
    from darc_bridge.engines import GenerationParams
    from darc_bridge.model.shipped import default_checkpoint
    from darc_bridge.train.loop import latest_step_dir
    from darc_bridge.train.recipe import ship

    root, _, _ = smoke
    work = root / "work"
    recipe = {"command": "darc-bridge train recipe --preset mini --scale smoke --seed 3", "preset": "mini",
              "scale": {"name": "smoke"}, "data_seed": 3}
    out = ship(latest_step_dir(work / "darc"), tmp_path / "models" / "darc-mini", work / "gate", recipe)
    manifest = json.loads((out / "darc.json").read_text())
    assert manifest["dtype"] == "float16" and manifest["recipe_command"] == recipe["command"]
    assert manifest["data_seed"] == 3 and (out / "gate.md").is_file() and (out / "recipe.json").is_file()
    monkeypatch.setenv("DARC_BRIDGE_MODEL", str(out))
    assert default_checkpoint() == str(out)
    from darc_bridge.cli.options import engine_from_args

    class Args:
        engine, checkpoint, device, kit_dir = "darc", None, "cpu", None

    engine = engine_from_args(Args())
    engine.load()
    mix = Audio(np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32) * 0.1, 16000)
    result = engine.generate(mix, None, GenerationParams(seed=1))
    assert result.stem.shape == (1, 16000) and np.all(np.isfinite(result.stem))
    assert Path(engine.checkpoint_path) == out


def test_budget_minutes_override_the_scales_budget_and_bad_values_are_input_errors(monkeypatch):
    import argparse

    from darc_bridge.train import recipe

    seen = {}

    def fake_run(work, preset, scale, **kw):
        seen["scale"] = scale
        raise SystemExit(0)

    monkeypatch.setattr(recipe, "run_recipe", fake_run)
    args = argparse.Namespace(preset="mini", scale="cpu", out=None, seed=0, pack=None, resume_from=None, ship=None,
                              device="cpu", budget_min=40.0)
    with pytest.raises(SystemExit):
        recipe.run_recipe_cli(args)
    assert seen["scale"].budget_s == 2400.0 and seen["scale"].name == "cpu"
    assert seen["scale"].codec_steps == recipe.SCALES["cpu"].codec_steps
    args.budget_min = 0.0
    with pytest.raises(InputError, match="budget-min"):
        recipe.run_recipe_cli(args)
    args.budget_min, args.darc_steps, args.decoder_steps = None, 4500, 0
    with pytest.raises(SystemExit):
        recipe.run_recipe_cli(args)
    assert seen["scale"].darc_steps == 4500 and seen["scale"].decoder_steps == 0
    assert seen["scale"].budget_s == recipe.SCALES["cpu"].budget_s
    args.darc_steps = 0
    with pytest.raises(InputError, match="darc-steps"):
        recipe.run_recipe_cli(args)
    args.darc_steps, args.base_steps = None, 600
    with pytest.raises(SystemExit):
        recipe.run_recipe_cli(args)
    assert seen["scale"].base_steps == 600 and seen["scale"].darc_steps == recipe.SCALES["cpu"].darc_steps
    args.base_steps = -1
    with pytest.raises(InputError, match="base-steps"):
        recipe.run_recipe_cli(args)
