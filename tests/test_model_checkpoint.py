"""Checkpoints: save/load round trip, corrupt and mismatching folders, `model init` (random and
--from-musicgen from a local audiocraft export or, offline, a hub id), and the small preset."""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import pytest
import torch

from darc_bridge.errors import CheckpointError, OutputError
from darc_bridge.model.checkpoint import (
    LM_FILE,
    MANIFEST,
    init_checkpoint,
    load_checkpoint,
    random_checkpoint,
    read_manifest,
)
from darc_bridge.model.generate import SamplingSettings, generate_drums
from darc_bridge.model.presets import codec_omegaconf, lm_omegaconf, preset


@pytest.fixture(autouse=True)
def offline_one_thread(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def saved(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("ckpt") / "tiny"
    init_checkpoint("tiny", out, seed=3)
    return out


def _model_cli(argv: list[str]) -> int:
    from darc_bridge.cli import model as model_cli

    parser = argparse.ArgumentParser()
    model_cli.register(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    return args.func(args)


def test_manifest_records_config_rhythm_settings_and_version(saved):
    m = read_manifest(saved)
    assert m["format_version"] == 1 and m["config"]["preset"] == "tiny"
    assert m["rhythm_settings"]["n_classes"] == m["config"]["rhythm_classes"] == 3
    assert m["rhythm_settings"]["frame_rate"] == 50.0 and "nmf_max_iter" in m["rhythm_settings"]
    assert set(m["files"]) == {"lm.safetensors", "codec.safetensors"}


def test_save_then_load_gives_identical_outputs(saved):
    a = random_checkpoint("tiny", seed=3)
    b = load_checkpoint(saved)
    for (ka, va), (kb, vb) in zip(a.model.state_dict().items(), b.model.state_dict().items(), strict=True):
        assert ka == kb and torch.equal(va, vb)
    mix = torch.randint(0, 2048, (4, 10), generator=torch.Generator().manual_seed(0))
    rhythm = torch.rand(3, 10, generator=torch.Generator().manual_seed(1))
    settings = SamplingSettings(seed=9, top_k=50)
    ta, _ = generate_drums(a.model, mix, rhythm, settings)
    tb, _ = generate_drums(b.model, mix, rhythm, settings)
    assert torch.equal(ta, tb)
    wav = torch.randn(1, 1, 6400, generator=torch.Generator().manual_seed(2)) * 0.1
    assert torch.equal(a.codec.encode(wav)[0], b.codec.encode(wav)[0])


def _copy(src: Path, dst: Path) -> Path:
    dst.mkdir()
    for f in src.iterdir():
        (dst / f.name).write_bytes(f.read_bytes())
    return dst


def test_corrupt_or_mismatching_checkpoints_are_clear_errors(saved, tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load_checkpoint(tmp_path / "missing")
    with pytest.raises(CheckpointError, match="no darc.json"):
        load_checkpoint(tmp_path)

    truncated = _copy(saved, tmp_path / "truncated")
    data = (truncated / LM_FILE).read_bytes()
    (truncated / LM_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupt"):
        load_checkpoint(truncated)

    garbled = _copy(saved, tmp_path / "garbled")
    (garbled / MANIFEST).write_text("{not json")
    with pytest.raises(CheckpointError, match="manifest is corrupt"):
        load_checkpoint(garbled)

    future = _copy(saved, tmp_path / "future")
    m = json.loads((future / MANIFEST).read_text())
    m["format_version"] = 99
    (future / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="format version 99"):
        load_checkpoint(future)

    reshaped = _copy(saved, tmp_path / "reshaped")
    m = json.loads((reshaped / MANIFEST).read_text())
    m["config"]["dim"] = 32
    (reshaped / MANIFEST).write_text(json.dumps(m))
    with pytest.raises(CheckpointError, match="do not match the config"):
        load_checkpoint(reshaped)


def test_init_refuses_to_overwrite_and_needs_a_parent(saved, tmp_path):
    with pytest.raises(OutputError, match="already exists"):
        init_checkpoint("tiny", saved)
    with pytest.raises(OutputError, match="parent folder does not exist"):
        init_checkpoint("tiny", tmp_path / "no" / "such")


def test_cli_init_writes_a_loadable_checkpoint(tmp_path, capsys):
    assert _model_cli(["model", "init", "--preset", "tiny", "--out", str(tmp_path / "c"), "--seed", "1"]) == 0
    assert "checkpoint written" in capsys.readouterr().out
    assert load_checkpoint(tmp_path / "c").config.preset == "tiny"
    assert _model_cli(["model", "info", str(tmp_path / "c")]) == 0
    assert json.loads(capsys.readouterr().out)["config"]["dim"] == 64


def test_from_musicgen_hub_id_offline_fails_fast(tmp_path):
    t0 = time.perf_counter()
    with pytest.raises(CheckpointError, match="Hugging Face hub") as err:
        _model_cli(["model", "init", "--preset", "small", "--out", str(tmp_path / "m"),
                    "--from-musicgen", "facebook/musicgen-small"])
    assert time.perf_counter() - t0 < 10
    assert "local folder" in str(err.value)
    assert not (tmp_path / "m").exists()
    with pytest.raises(CheckpointError, match="not an audiocraft export"):
        init_checkpoint("tiny", tmp_path / "x", from_musicgen=str(tmp_path))


def _write_musicgen_export(folder: Path) -> tuple[torch.nn.Module, dict]:
    """A tiny random MusicGen-shaped LM (text conditioner + cross-attention) and EnCodec, written in
    audiocraft's export format, the way `facebook/musicgen-*` folders hold them."""
    from omegaconf import OmegaConf

    from darc_bridge.compat import import_audiocraft

    import_audiocraft()
    from audiocraft.models.builders import get_compression_model, get_lm_model

    shape = preset("tiny", dim=32, num_layers=4, num_heads=2, cross_attention=True)
    lm_cfg = lm_omegaconf(shape)
    lm_cfg.transformer_lm.custom = False
    lm_cfg.transformer_lm.memory_efficient = True  # as MusicGen ships
    lm_cfg.conditioners = {"description": {"model": "lut", "lut": {"n_bins": 16, "dim": 8, "tokenizer": "noop"}}}
    lm_cfg.fuser.cross = ["description"]
    torch.manual_seed(4)
    lm = get_lm_model(lm_cfg).eval()
    codec_cfg = codec_omegaconf(shape.codec)
    codec = get_compression_model(codec_cfg)
    folder.mkdir()
    torch.save({"best_state": lm.state_dict(), "xp.cfg": OmegaConf.to_yaml(lm_cfg), "version": "1"},
               folder / "state_dict.bin")
    torch.save({"best_state": codec.state_dict(), "xp.cfg": OmegaConf.to_yaml(codec_cfg)},
               folder / "compression_state_dict.bin")
    return lm, codec.state_dict()


def test_from_musicgen_local_export_adapts_and_keeps_its_behaviour(tmp_path):
    lm, codec_state = _write_musicgen_export(tmp_path / "musicgen")
    ckpt = init_checkpoint("tiny", tmp_path / "adapted", from_musicgen=str(tmp_path / "musicgen"), seed=0)
    loaded = load_checkpoint(tmp_path / "adapted")
    model = loaded.model
    cfg = loaded.config
    assert ckpt.source.startswith("musicgen:") and cfg.dim == 32 and cfg.num_layers == 4 and cfg.cross_attention
    # every MusicGen LM weight carried over unchanged; text-conditioner weights dropped
    own = model.lm.state_dict()
    for name, value in lm.state_dict().items():
        if name.startswith("condition_provider."):
            assert name not in own
        else:
            assert torch.equal(own[name], value), name
    # new: one delimiter row per codebook and the rhythm projection (zero: MusicGen behaviour kept)
    assert model.delimiter.shape == (4, 32) and model.delimiter.abs().sum() > 0
    assert model.conditioner.rhythm_proj.weight.shape == (32, 3)
    assert model.conditioner.rhythm_proj.weight.abs().sum() == 0
    for name, value in codec_state.items():
        assert torch.equal(loaded.codec.state_dict()[name], value), name
    # DarcLM on plain tokens (no delimiter, no rhythm) = the MusicGen LM given an empty description
    seq = torch.randint(0, 2048, (1, 4, 9), generator=torch.Generator().manual_seed(0))
    null_text = {"description": (torch.zeros(1, 1, 32), torch.zeros(1, 1))}
    with torch.no_grad():
        ours = model(seq)
        theirs = lm(seq, conditions=[], condition_tensors=null_text)
    assert torch.allclose(ours, theirs, atol=1e-5)
    # and the adapted model generates
    drums, _ = generate_drums(model, seq[0, :, :6], torch.rand(3, 6), SamplingSettings(seed=0, top_k=20))
    assert drums.shape == (4, 6)


@pytest.mark.slow
def test_small_preset_default_jump_policy_trains_15_to_25_percent():
    from darc_bridge.model.finetune import apply_jump_finetune
    from darc_bridge.model.lm import DarcLM

    model = DarcLM(preset("small"))
    total = sum(p.numel() for p in model.parameters())
    assert 415e6 < total < 425e6  # MusicGen-small shape: 419.6M + DARC's additions
    report = apply_jump_finetune(model)
    assert report.layers == (0, 4, 8, 12, 16, 20) and report.mode == "layer"
    assert 0.15 <= report.fraction <= 0.25, str(report)
    attn = apply_jump_finetune(model, mode="self_attn")
    assert attn.fraction < report.fraction
