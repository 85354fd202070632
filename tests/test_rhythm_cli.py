"""`darc-bridge rhythm`: JSON on stdout and nothing else, MIDI and PNG outputs, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import mir_eval
import numpy as np
import pytest
import soundfile as sf

from darc_bridge.audio.prompts import random_pattern, synth_prompt
from darc_bridge.cli.main import main
from darc_bridge.rhythm.midi import read_midi_onsets

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def prompt(tmp_path_factory) -> tuple[Path, list]:
    truth = random_pattern(4.0, 112, seed=31)
    path = tmp_path_factory.mktemp("cli") / "beatbox take.wav"
    sf.write(path, np.stack([synth_prompt(truth, 4.0, 44100, "beatbox", 31)] * 2, axis=1), 44100)
    return path, truth


def test_json_via_subprocess_is_exactly_one_object(prompt):
    path, truth = prompt
    proc = subprocess.run(
        [sys.executable, "-m", "darc_bridge.cli.main", "rhythm", str(path), "--json"],
        capture_output=True, text=True, cwd=REPO, timeout=120, env={**os.environ, "HF_HUB_OFFLINE": "1"},
    )
    assert proc.returncode == 0, proc.stderr
    obj = json.loads(proc.stdout)  # raises if stdout holds anything but one JSON document
    assert proc.stdout.strip().count("\n") == 0
    assert set(obj) == {"onsets", "n_classes", "frame_rate", "duration"}
    assert obj["n_classes"] == 3 and obj["frame_rate"] == 50.0 and obj["duration"] == pytest.approx(4.0)
    assert all(set(o) == {"time", "class", "strength"} for o in obj["onsets"])
    times = np.unique([o["time"] for o in obj["onsets"]])
    ref = np.unique([o.time for o in truth])
    assert mir_eval.onset.f_measure(ref, times, window=0.05)[0] >= 0.9


def test_json_midi_and_plot_together(prompt, tmp_path, capsys):
    path, _ = prompt
    midi, png = tmp_path / "r.mid", tmp_path / "r.png"
    assert main(["rhythm", str(path), "--json", "--midi", str(midi), "--plot", str(png), "--tempo", "96"]) == 0
    out = capsys.readouterr().out
    obj = json.loads(out)
    back = read_midi_onsets(midi)
    assert [o.cls for o in back] == [o["class"] for o in obj["onsets"]]
    assert np.allclose([o.time for o in back], [o["time"] for o in obj["onsets"]], atol=0.002)
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 5000


def test_summary_without_json(prompt, capsys):
    path, _ = prompt
    assert main(["rhythm", str(path), "--classes", "5", "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "onsets" in out and "kick" in out and "clap" not in out and "tom" in out
    with pytest.raises(json.JSONDecodeError):
        json.loads(out)


def test_classes_option_changes_the_lanes(prompt, capsys):
    path, _ = prompt
    assert main(["rhythm", str(path), "--json", "--classes", "1"]) == 0
    obj = json.loads(capsys.readouterr().out)
    assert obj["n_classes"] == 1 and {o["class"] for o in obj["onsets"]} == {0}


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if line.startswith("darc-bridge: error:")]
    assert len(errors) == 1, err
    return errors[0]


def test_missing_prompt_exits_2_naming_the_file(tmp_path, capsys):
    missing = tmp_path / "no such take.wav"
    assert main(["rhythm", str(missing), "--json"]) == 2
    assert str(missing) in _error_line(capsys)


def test_corrupt_and_silent_prompts(tmp_path, capsys):
    corrupt = tmp_path / "corrupt.wav"
    corrupt.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunkjunkjunk")
    assert main(["rhythm", str(corrupt)]) == 2
    assert "corrupt.wav" in _error_line(capsys)
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(22050, dtype=np.float32), 22050)
    assert main(["rhythm", str(silent)]) == 2
    assert "silent" in _error_line(capsys)


def test_outputs_are_checked_before_work(prompt, tmp_path, capsys):
    path, _ = prompt
    assert main(["rhythm", str(path), "--plot", str(tmp_path / "nowhere" / "r.png")]) == 2
    assert "nowhere" in _error_line(capsys)
    assert main(["rhythm", str(path), "--classes", "9"]) == 2
    assert "--classes" in _error_line(capsys)
    assert main(["rhythm", str(path), "--midi", str(tmp_path / "r.mid"), "--tempo", "0"]) == 2
    assert "--tempo" in _error_line(capsys)
    assert not (tmp_path / "r.mid").exists()


def test_an_output_on_the_take_or_on_the_other_output_is_refused(prompt, tmp_path, capsys):
    # `--midi take.wav` replaced the take with a MIDI file; `--plot X --midi X` kept only the plot
    path, _ = prompt
    take = tmp_path / "take.wav"
    take.write_bytes(path.read_bytes())
    before = take.read_bytes()
    assert main(["rhythm", str(take), "--midi", str(take)]) == 2
    assert "the midi output" in (line := _error_line(capsys)) and "is the prompt file" in line
    assert main(["rhythm", str(take), "--plot", str(take)]) == 2
    assert "the plot output" in _error_line(capsys)
    both = tmp_path / "r.out"
    assert main(["rhythm", str(take), "--midi", str(both), "--plot", str(both)]) == 2
    assert "is the midi output" in _error_line(capsys)
    assert take.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["take.wav"]


def test_a_prompt_too_short_for_generate_is_refused_the_same_way(tmp_path, capsys):
    # `rhythm` showed onsets for a 0.1 s blip that `generate` refuses: it shows what the engines follow
    blip = tmp_path / "blip.wav"
    sf.write(blip, 0.5 * np.ones(2205, np.float32), 22050)
    assert main(["rhythm", str(blip), "--json"]) == 2
    rhythm_line = _error_line(capsys)
    assert "prompt is too short to hold a rhythm: 0.10s (at least 0.25s needed)" in rhythm_line
    mix = tmp_path / "mix.wav"
    sf.write(mix, 0.1 * np.sin(np.arange(22050 * 2) * 0.05).astype(np.float32), 22050)
    assert main(["generate", "--mix", str(mix), "--prompt", str(blip), "--out", str(tmp_path / "d.wav"),
                 "--quiet"]) == 2
    assert _error_line(capsys) == rhythm_line


def test_max_duration_sets_the_longest_prompt_as_in_generate(prompt, capsys):
    # the "too long" error said to raise the limit, but `rhythm` had no option for it
    path, _ = prompt
    assert main(["rhythm", str(path), "--json", "--max-duration", "2"]) == 2
    assert "prompt is too long" in (line := _error_line(capsys)) and "limit of 2s" in line
    assert main(["rhythm", str(path), "--json", "--max-duration", "nan"]) == 2
    assert "positive number of seconds" in _error_line(capsys)
    assert main(["rhythm", str(path), "--json", "--max-duration", "5"]) == 0
    assert json.loads(capsys.readouterr().out)["duration"] == pytest.approx(4.0)
