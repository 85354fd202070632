"""The synthetic corpus: MUSDB layout, equal-length stems, drums that really sit at the stated onsets."""

from __future__ import annotations

import argparse
import json

import numpy as np
import soundfile as sf

from darc_bridge.cli import data as data_cli
from darc_bridge.data.synth_corpus import load_onsets, synth_song, write_corpus
from darc_bridge.eval.metrics import onset_f1
from darc_bridge.eval.runner import stem_onsets


def run_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    data_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["data", *argv])
    return args.func(args)


def test_corpus_layout_and_ground_truth(tmp_path):
    folders = write_corpus(tmp_path / "c", songs=2, duration=4.0, sample_rate=16000, seed=3)
    assert [f.name for f in folders] == ["song_000", "song_001"]
    for folder in folders:
        lengths = {sf.info(str(folder / f"{s}.wav")).frames for s in ("drums", "bass", "other", "vocals", "mixture")}
        assert lengths == {64000}
        onsets = load_onsets(folder / "onsets.json")
        assert {o.cls for o in onsets} == {0, 1, 2}
        drums, sr = sf.read(str(folder / "drums.wav"))
        times = np.array(sorted({o.time for o in onsets}))
        assert onset_f1(times, stem_onsets(drums, sr)[1])["f1"] > 0.9
        truth = json.loads((folder / "onsets.json").read_text())
        assert 85 <= truth["tempo"] <= 140


def test_songs_differ_by_seed_and_repeat_with_it():
    a, b, c = synth_song(1, 3.0, 16000), synth_song(1, 3.0, 16000), synth_song(2, 3.0, 16000)
    assert np.array_equal(a.stems["bass"], b.stems["bass"]) and a.onsets == b.onsets
    assert a.tempo != c.tempo


def test_write_corpus_resumes_without_rewriting(tmp_path):
    write_corpus(tmp_path, songs=1, duration=2.0, sample_rate=16000)
    first = (tmp_path / "song_000" / "drums.wav").stat().st_mtime_ns
    write_corpus(tmp_path, songs=2, duration=2.0, sample_rate=16000)
    assert (tmp_path / "song_000" / "drums.wav").stat().st_mtime_ns == first
    assert (tmp_path / "song_001" / "onsets.json").exists()


def test_cli_synth_and_bad_kit(tmp_path, capsys):
    assert run_cli("synth", "--out", str(tmp_path / "c"), "--songs", "1", "--duration", "2", "--kit", "electro") == 0
    assert "1 songs" in capsys.readouterr().out
    import pytest

    from darc_bridge.errors import InputError

    with pytest.raises(InputError, match="unknown kit"):
        run_cli("synth", "--out", str(tmp_path / "d"), "--songs", "1", "--kit", "tabla")
