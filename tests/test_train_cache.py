"""The token cache: shards + manifest, resumable, guarded against another codec's tokens."""

from __future__ import annotations

import pytest
import torch

from darc_bridge.data.segments import SegmentSettings
from darc_bridge.data.synth_corpus import write_corpus
from darc_bridge.errors import CheckpointError, InputError
from darc_bridge.model.checkpoint import random_checkpoint
from darc_bridge.train import cache as cache_mod
from darc_bridge.train.cache import CacheSettings, build_cache, read_manifest
from darc_bridge.train.dataset import TokenCache

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]
SEGMENTS = SegmentSettings(target_s=2.0, context_min_s=1.0, context_max_s=2.0)

@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("corpus")
    write_corpus(root, songs=3, duration=4.0, sample_rate=32000)
    return root


@pytest.fixture(scope="module")
def ckpt():
    return random_checkpoint("tiny", seed=0)


@pytest.fixture(scope="module")
def built(corpus, ckpt, tmp_path_factory):
    out = tmp_path_factory.mktemp("cache")
    build_cache(corpus, out, ckpt.codec, ckpt.rhythm_settings, SEGMENTS, CacheSettings(shard_size=3))
    return out


def test_cache_holds_tokens_and_rhythm_of_every_segment(built):
    manifest = read_manifest(built)
    assert manifest["complete"] and [s["segments"] for s in manifest["shards"]] == [4, 2]
    data = TokenCache(built)
    assert len(data) == 6 and data.frame_rate == 50.0
    for i in range(len(data)):
        _, mix, drums, rhythm, beat = data[i]
        assert beat is None and mix.dtype == torch.int16 and rhythm.dtype == torch.float16
        assert mix.shape == drums.shape == (4, 100) and rhythm.shape == (3, 100)
        assert int(drums.min()) >= 0 and int(drums.max()) < 2048
        assert 0.0 <= float(rhythm.min()) and float(rhythm.max()) <= 1.0 and float(rhythm.max()) > 0.5


def test_batches_are_cropped_to_one_random_length(built):
    import numpy as np

    data = TokenCache(built)
    lengths = set()
    for seed in range(6):
        mix, drums, rhythm, beat = data.batch(np.random.default_rng(seed), 3, 50, 100)
        assert beat is None and mix.dtype == drums.dtype == torch.long and rhythm.dtype == torch.float32
        assert mix.shape[:2] == (3, 4) and mix.shape == drums.shape and rhythm.shape[1] == 3
        assert 50 <= mix.shape[-1] <= 100 and rhythm.shape[-1] == mix.shape[-1]
        lengths.add(mix.shape[-1])
    assert len(lengths) > 1


def test_interrupted_build_resumes_with_the_same_result(corpus, ckpt, built, tmp_path, monkeypatch):
    real = cache_mod.encode_segment
    calls = {"n": 0}

    def dies_on_fourth(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real(*args, **kwargs)

    monkeypatch.setattr(cache_mod, "encode_segment", dies_on_fourth)
    with pytest.raises(KeyboardInterrupt):
        build_cache(corpus, tmp_path, ckpt.codec, ckpt.rhythm_settings, SEGMENTS, CacheSettings(shard_size=1))
    half = read_manifest(tmp_path)
    assert not half["complete"] and len(half["songs_done"]) == 1
    with pytest.raises(InputError, match="unfinished"):
        TokenCache(tmp_path)
    calls["n"] = -100
    build_cache(corpus, tmp_path, ckpt.codec, ckpt.rhythm_settings, SEGMENTS, CacheSettings(shard_size=1))
    assert calls["n"] == -100 + 4  # only the two songs not yet on disk were encoded
    resumed, whole = TokenCache(tmp_path), TokenCache(built)
    assert resumed.keys() == whole.keys()
    assert all(torch.equal(resumed[i].drums, whole[i].drums) for i in range(len(whole)))


def test_tokens_of_another_codec_are_refused(corpus, built):
    other = random_checkpoint("tiny", seed=1)
    with pytest.raises(CheckpointError, match="another codec"):
        build_cache(corpus, built, other.codec, other.rhythm_settings, SEGMENTS)


def test_cli_builds_a_cache_with_the_checkpoints_codec(corpus, ckpt, tmp_path, capsys):
    from darc_bridge.model.checkpoint import save_checkpoint
    from darc_bridge.train.__main__ import main as train_main
    from darc_bridge.train.cache import codec_fingerprint

    save_checkpoint(ckpt, tmp_path / "init")
    rc = train_main(["cache", "--data", str(corpus), "--init", str(tmp_path / "init"), "--out", str(tmp_path / "c"),
                     "--target-s", "2", "--min-s", "1", "--max-s", "2", "--no-context-augment"])
    assert rc == 0 and "token cache written" in capsys.readouterr().out
    manifest = read_manifest(tmp_path / "c")
    assert manifest["codec"] == codec_fingerprint(ckpt.codec) and manifest["settings"]["context_augment"] is False
    assert sum(s["segments"] for s in manifest["shards"]) == 6


def _old_in_memory(cache_dir):
    """The loader before streaming: every shard loaded whole into lists of long / float tensors."""
    manifest = read_manifest(cache_dir)
    keys, mix, drums, rhythm = [], [], [], []
    for shard in manifest["shards"]:
        data = torch.load(cache_dir / shard["file"], weights_only=True)
        keys += data["keys"]
        mix += [m.long() for m in data["mix"]]
        drums += [d.long() for d in data["drums"]]
        rhythm += [r.float() for r in data["rhythm"]]
    return keys, mix, drums, rhythm


def _old_batch(old, rng, batch_size, min_frames, max_frames):
    _, mixes, drum_list, rhythms = old
    idx = rng.integers(0, len(drum_list), size=batch_size)
    hi = min(max_frames, min(drum_list[i].shape[-1] for i in idx))
    length = int(rng.integers(min(min_frames, hi), hi + 1))
    out = ([], [], [])
    for i in idx:
        start = int(rng.integers(0, drum_list[i].shape[-1] - length + 1))
        for dst, src in zip(out, (mixes, drum_list, rhythms), strict=True):
            dst.append(src[i][:, start:start + length])
    return tuple(torch.stack(x) for x in out)


def test_streaming_reads_equal_the_old_in_memory_cache(built):
    import numpy as np

    old = _old_in_memory(built)
    data = TokenCache(built, open_shards=1)
    assert data.keys() == old[0]
    for i in range(len(data)):
        s = data[i]
        assert torch.equal(s.mix.long(), old[1][i]) and torch.equal(s.drums.long(), old[2][i])
        assert torch.equal(s.rhythm.float(), old[3][i])
    for seed in range(8):
        new = data.batch(np.random.default_rng(seed), 3, 30, 100)
        ref = _old_batch(old, np.random.default_rng(seed), 3, 30, 100)
        assert all(torch.equal(a, b) for a, b in zip(new[:3], ref, strict=True))
    assert data.reader.peak_open == 1


def test_worker_processes_build_the_same_cache(corpus, ckpt, built, tmp_path):
    build_cache(corpus, tmp_path, ckpt.codec, ckpt.rhythm_settings, SEGMENTS, CacheSettings(shard_size=3, workers=2))
    parallel, whole = TokenCache(tmp_path), TokenCache(built)
    assert parallel.keys() == whole.keys()
    for i in range(len(whole)):
        a, b = parallel[i], whole[i]
        assert torch.equal(a.mix, b.mix) and torch.equal(a.drums, b.drums) and torch.equal(a.rhythm, b.rhythm)
