"""Beat conditioning in training: the cache stores the context mix's beat features aligned as the
engine makes them, the loop feeds them so the beat projection learns, and a cache without them is
refused for a model that needs them."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from darc_bridge.audio.io import Audio
from darc_bridge.data.segments import SegmentSettings, cut_segments
from darc_bridge.data.stems import find_songs, load_song
from darc_bridge.data.synth_corpus import write_corpus
from darc_bridge.errors import CheckpointError, OutputError
from darc_bridge.model.checkpoint import load_checkpoint, random_checkpoint, save_checkpoint
from darc_bridge.train.cache import CacheSettings, build_cache, read_manifest
from darc_bridge.train.dataset import TokenCache
from darc_bridge.train.loop import STATE_FILE, TrainSettings, latest_step_dir, prepare_model, train

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]
SEGMENTS = SegmentSettings(target_s=2.0, context_min_s=1.0, context_max_s=2.0)
FAST = dict(batch_size=2, grad_accum=1, lr=3e-3, min_s=1.0, max_s=2.0, device="cpu", log_every=1000)
PLAIN = CacheSettings(context_augment=False)


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("beat")
    write_corpus(root / "corpus", songs=1, duration=4.0, sample_rate=32000)
    ckpt = random_checkpoint("tiny", seed=0, beat_conditioning=True)
    ckpt.codec_source = "test:untrained codec (these tests check loop mechanics, not tokens)"
    save_checkpoint(ckpt, root / "init")
    build_cache(root / "corpus", root / "cache", ckpt.codec, ckpt.rhythm_settings, SEGMENTS, PLAIN, beat=True)
    return root, ckpt


def test_cache_stores_beat_features_aligned_as_the_engine_makes_them(setup):
    from darc_bridge.beat.tracking import estimate_beat_grid

    root, ckpt = setup
    assert read_manifest(root / "cache")["beat"] is True
    data = TokenCache(root / "cache")
    song = load_song(find_songs(root / "corpus")[0], sample_rate=32000)
    segs = list(cut_segments(song, SEGMENTS))
    assert len(data) == len(segs) == 2
    for i, seg in enumerate(segs):
        beat = data[i].beat.float().numpy()
        n = data[i].mix.shape[-1]
        # engine: estimate_beat_grid(mix) -> to_frame_features(cfg.frame_rate, n) on the mix's n token frames
        expected = estimate_beat_grid(Audio(seg.context[None], 32000)).to_frame_features(ckpt.config.frame_rate, n)
        assert beat.shape == (2, n) and np.allclose(beat, expected, atol=1e-3)
        assert beat[0].max() > 0.9  # a 2 s segment holds beats


def test_training_feeds_the_beat_projection(setup, tmp_path):
    root, _ = setup
    result = train(root / "cache", tmp_path / "run", str(root / "init"), TrainSettings(steps=2, save_every=2, **FAST))
    assert result["step"] == 2 and all(np.isfinite(result["losses"]))
    saved = latest_step_dir(tmp_path / "run")
    state = torch.load(saved / STATE_FILE, weights_only=False)
    ckpt = load_checkpoint(saved)
    prepare_model(ckpt, TrainSettings(**FAST))
    params = [p for p in ckpt.model.parameters() if p.requires_grad]
    beat_weight = ckpt.model.conditioner.beat_proj.weight
    slot = next(i for i, p in enumerate(params) if p is beat_weight)
    moment = state["optimizer"]["state"][slot]["exp_avg"]
    assert moment.shape == beat_weight.shape and float(moment.abs().sum()) > 0  # it received gradients


def test_a_cache_without_beat_features_is_refused(setup, tmp_path):
    root, ckpt = setup
    with pytest.raises(OutputError, match="with beat features"):
        build_cache(root / "corpus", root / "cache", ckpt.codec, ckpt.rhythm_settings, SEGMENTS, PLAIN)
    build_cache(root / "corpus", tmp_path / "plain", ckpt.codec, ckpt.rhythm_settings, SEGMENTS, PLAIN)
    assert TokenCache(tmp_path / "plain")[0].beat is None
    with pytest.raises(CheckpointError, match="no beat features"):
        train(tmp_path / "plain", tmp_path / "run", str(root / "init"), TrainSettings(steps=1, **FAST))
