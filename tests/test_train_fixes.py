"""Issue 10's fixes: no LM on a random codec, defaults by where the LM comes from, training crops that
match the generation window, dropout settings with the rhythm share logged, one preset registry."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from darc_bridge.errors import CheckpointError, InputError
from darc_bridge.model.checkpoint import is_random, load_checkpoint, random_checkpoint, save_checkpoint
from darc_bridge.model.presets import PRESET_NAMES, PRESETS, preset
from darc_bridge.train.loop import (
    PRETRAINED_LR,
    RANDOM_LM_LR,
    TrainSettings,
    _lr_at,
    condition_masks,
    crop_seconds,
    settings_for,
)

pytestmark = pytest.mark.usefixtures("torch_one_thread")


def _corpus_and_cache(tmp_path, ckpt):
    from darc_bridge.data.segments import SegmentSettings
    from darc_bridge.data.synth_corpus import write_corpus
    from darc_bridge.train.cache import CacheSettings, build_cache

    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    build_cache(tmp_path / "corpus", tmp_path / "cache", ckpt.codec, ckpt.rhythm_settings,
                SegmentSettings(target_s=2.0, context_min_s=1.0, context_max_s=2.0), CacheSettings(context_augment=False))


def test_training_an_lm_on_a_random_codec_is_refused_naming_train_codec(tmp_path):
    from darc_bridge.train.loop import train

    ckpt = random_checkpoint("tiny", seed=0)
    save_checkpoint(ckpt, tmp_path / "init")  # what `model init --preset tiny` writes
    assert is_random(load_checkpoint(tmp_path / "init"), "codec")
    _corpus_and_cache(tmp_path, ckpt)
    with pytest.raises(CheckpointError, match="train codec"):
        train(tmp_path / "cache", tmp_path / "run", str(tmp_path / "init"),
              TrainSettings(steps=1, batch_size=1, grad_accum=1, min_s=1.0, max_s=2.0, device="cpu"))
    assert not (tmp_path / "run" / "latest").exists()


def test_cli_refuses_a_random_codec_before_building_a_cache(tmp_path, capsys):
    from darc_bridge.cli.main import main

    save_checkpoint(random_checkpoint("tiny", seed=0), tmp_path / "init")
    (tmp_path / "stems").mkdir()
    rc = main(["train", "--data", str(tmp_path / "stems"), "--init", str(tmp_path / "init"), "--out", str(tmp_path / "run")])
    assert rc == 2 and "train codec" in capsys.readouterr().err
    assert not (tmp_path / "run" / "cache").exists()


def test_a_trained_codec_is_accepted_and_remembered_through_training(tmp_path):
    ckpt = random_checkpoint("tiny", seed=0)
    ckpt.source = ckpt.codec_source = "codec-trained:10steps"
    ckpt.lm_source = "random"
    save_checkpoint(ckpt, tmp_path / "codec")
    loaded = load_checkpoint(tmp_path / "codec")
    assert not is_random(loaded, "codec") and is_random(loaded, "lm")
    loaded.source = loaded.lm_source = "train:full:step5"  # what the loop does when it saves
    save_checkpoint(loaded, tmp_path / "trained")
    again = load_checkpoint(tmp_path / "trained")
    assert not is_random(again, "codec") and not is_random(again, "lm")
    assert again.manifest["codec_source"] == "codec-trained:10steps"


def test_a_random_lm_trains_in_full_mode_with_warmup_and_cosine_decay():
    ckpt = random_checkpoint("tiny", seed=0)
    s = settings_for(ckpt, 1000)
    assert (s.mode, s.lr, s.schedule) == ("full", RANDOM_LM_LR, "cosine") and s.warmup_steps == 50
    lrs = np.array([_lr_at(step, s) for step in range(1000)])
    assert lrs[0] < lrs[25] < lrs[49] == pytest.approx(s.lr)  # linear warm-up
    assert np.all(np.diff(lrs[50:]) <= 1e-15) and lrs[-1] == pytest.approx(0.1 * s.lr, rel=0.01)  # cosine decay
    assert settings_for(ckpt, 1000, mode="stage", lr=1e-4).lr == 1e-4  # explicit choices win


def test_adapted_musicgen_weights_keep_jump_mode_at_1e_5():
    ckpt = random_checkpoint("tiny", seed=0)
    ckpt.source = "musicgen:facebook/musicgen-small"  # what adapt_musicgen sets
    s = settings_for(ckpt, 1000)
    assert (s.mode, s.lr, s.schedule, s.warmup_steps) == ("jump", PRETRAINED_LR, "constant", 0)
    assert PRETRAINED_LR == 1e-5


@pytest.mark.parametrize("name", PRESET_NAMES)
def test_every_preset_trains_on_the_window_it_generates(name):
    config = preset(name)
    lo, hi = crop_seconds(TrainSettings(), config.window_s)
    assert hi == config.window_s and lo <= hi
    # a window's sequence (mix + delimiter + drums, delay pattern) stays within MusicGen-small's 1,500 training steps
    assert 2 * config.window_s * config.frame_rate + config.n_q + 1 <= 1500
    with pytest.raises(InputError, match="window"):
        crop_seconds(TrainSettings(max_s=config.window_s + 1), config.window_s)


def test_dropouts_are_settings_and_the_rhythm_share_follows_them():
    s = TrainSettings(rhythm_dropout=0.3, context_dropout=0.05, cfg_dropout=0.1)
    assert s.rhythm_share == pytest.approx(0.9 * 0.7) and s.context_share == pytest.approx(0.9 * 0.95)
    rhythm_on, context_on = condition_masks(np.random.default_rng(0), 40000, s)
    assert float(rhythm_on.mean()) == pytest.approx(s.rhythm_share, abs=0.01)
    assert float(context_on.mean()) == pytest.approx(s.context_share, abs=0.01)
    assert TrainSettings(mode="stage").rhythm_share == 0.0
    with pytest.raises(InputError, match="cfg_dropout"):
        TrainSettings(cfg_dropout=1.0)


@pytest.mark.slow
def test_the_rhythm_share_is_logged_when_training_starts(tmp_path, caplog):
    from darc_bridge.train.loop import train

    ckpt = random_checkpoint("tiny", seed=0)
    ckpt.codec_source = "test:untrained codec (loop mechanics only)"
    save_checkpoint(ckpt, tmp_path / "init")
    _corpus_and_cache(tmp_path, ckpt)
    with caplog.at_level(logging.INFO, logger="darc_bridge.train.loop"):
        r = train(tmp_path / "cache", tmp_path / "run", str(tmp_path / "init"),
                  TrainSettings(steps=1, batch_size=1, grad_accum=1, min_s=1.0, max_s=2.0, device="cpu",
                                rhythm_dropout=0.25, cfg_dropout=0.2))
    assert r["rhythm_share"] == pytest.approx(0.6)
    assert any("60 % of rows see the rhythm" in m for m in caplog.messages)


def test_presets_come_from_one_registry_and_a_typo_lists_the_valid_names():
    assert PRESET_NAMES == tuple(PRESETS) and {"tiny", "mini", "small"} <= set(PRESET_NAMES)
    with pytest.raises(InputError) as exc:
        preset("tyni")
    assert all(name in str(exc.value) for name in PRESET_NAMES)
    assert not isinstance(exc.value, CheckpointError)
    with pytest.raises(InputError):
        random_checkpoint("minni")


def test_cli_preset_typo_is_an_input_error(tmp_path, capsys):
    from darc_bridge.cli.main import main

    with pytest.raises(SystemExit) as exc:  # model init: argparse choices from the registry
        main(["model", "init", "--preset", "tyni", "--out", str(tmp_path / "x")])
    assert exc.value.code == 2 and "mini" in capsys.readouterr().err
    (tmp_path / "stems").mkdir()
    rc = main(["train", "--data", str(tmp_path / "stems"), "--out", str(tmp_path / "run"), "--preset", "tyni"])
    err = capsys.readouterr().err
    assert rc == 2 and "valid presets" in err and "bad_checkpoint" not in err
