"""`darc-bridge generate` end to end with the kit engine, and its refusals of bad input."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from darc_bridge.audio.music import synth_drumless_mix
from darc_bridge.audio.prompts import random_pattern, synth_prompt
from darc_bridge.cli.main import main

SR = 22050


@pytest.fixture(scope="module")
def material(tmp_path_factory):
    folder = tmp_path_factory.mktemp("material")
    mix, _, _ = synth_drumless_mix(6.0, bpm=120, sample_rate=SR, seed=0)
    sf.write(folder / "mix.wav", mix.T, SR)
    prompt = synth_prompt(random_pattern(2.0, 120, seed=1), 2.0, 44100, voice="tap", seed=2)
    sf.write(folder / "prompt.wav", prompt, 44100)
    return folder


def _run(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def test_generate_writes_stem_and_midi(material, tmp_path, capsys):
    out, midi = tmp_path / "drums.wav", tmp_path / "drums.mid"
    code, stdout, _ = _run(capsys, "generate", "--mix", str(material / "mix.wav"), "--prompt",
                           str(material / "prompt.wav"), "--out", str(out), "--midi", str(midi),
                           "--start", "1.0", "--end", "5.5", "--seed", "3", "--json", "--quiet")
    assert code == 0
    result = json.loads(stdout)
    assert result["stem_path"] == str(out) and result["midi_path"] == str(midi)
    data, sr = sf.read(out, always_2d=True)
    assert sr == SR and data.shape[0] == round(4.5 * SR)
    assert sf.info(out).subtype == "FLOAT"
    assert 0.01 < np.max(np.abs(data)) <= 1.0
    assert midi.stat().st_size > 20
    assert sorted(p.name for p in tmp_path.iterdir()) == ["drums.mid", "drums.wav"]


def test_console_script_progress_on_stderr(material, tmp_path):
    out = tmp_path / "drums.wav"
    proc = subprocess.run([sys.executable, "-m", "darc_bridge.cli.main", "generate", "--mix",
                           str(material / "mix.wav"), "--prompt", str(material / "prompt.wav"),
                           "--out", str(out)], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "100%" in proc.stderr
    assert "drum stem:" in proc.stdout and out.exists()


def _assert_refused(capsys, tmp_path, *args: str, match: str) -> None:
    out = tmp_path / "drums.wav"
    code, _, err = _run(capsys, "generate", *args, "--out", str(out), "--quiet")
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert line.startswith("darc-bridge: error:") and match in line, err
    assert not out.exists()
    assert not any(p.name.startswith(".drums") for p in tmp_path.iterdir())


def test_missing_mix(capsys, tmp_path, material):
    _assert_refused(capsys, tmp_path, "--mix", str(tmp_path / "nope.wav"), "--prompt",
                    str(material / "prompt.wav"), match="mix file not found")


def test_corrupt_prompt(capsys, tmp_path, material):
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"RIFF" + bytes(100))
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), "--prompt", str(bad),
                    match="prompt file is not readable audio")


def test_silent_prompt(capsys, tmp_path, material):
    silent = tmp_path / "silent.wav"
    sf.write(silent, np.zeros(SR * 2, np.float32), SR)
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), "--prompt", str(silent),
                    match="prompt is silent")


def test_prompt_too_short(capsys, tmp_path, material):
    blip = tmp_path / "blip.wav"
    sf.write(blip, 0.5 * np.ones(int(SR * 0.1), np.float32), SR)
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), "--prompt", str(blip),
                    match="too short")


def test_absurd_region(capsys, tmp_path, material):
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), "--start", "2", "--end", "2",
                    match="not after")
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), "--max-duration", "3",
                    match="too long")


def test_unsupported_format(capsys, tmp_path, material):
    fake = tmp_path / "song.m4a"
    fake.write_bytes(b"\x00\x00\x00\x20ftypM4A " + bytes(200))
    _assert_refused(capsys, tmp_path, "--mix", str(fake), match="unsupported format")


def test_output_folder_missing(capsys, tmp_path, material):
    code, _, err = _run(capsys, "generate", "--mix", str(material / "mix.wav"), "--out",
                        str(tmp_path / "no" / "drums.wav"), "--quiet")
    assert code == 2 and "output folder does not exist" in err


def test_bad_parameter(capsys, tmp_path, material):
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), "--rhythm-strength", "9",
                    match="rhythm_strength")


def test_output_that_is_an_input_is_refused_and_the_input_kept(capsys, tmp_path, material):
    # `--out song.wav --mix song.wav` replaced the mix with the stem; a hard link is the same file
    mix = tmp_path / "song.wav"
    mix.write_bytes((material / "mix.wav").read_bytes())
    (tmp_path / "alias.wav").hardlink_to(mix)
    before = mix.read_bytes()
    for out in (mix, tmp_path / "alias.wav", tmp_path / "sub" / ".." / "song.wav"):
        (tmp_path / "sub").mkdir(exist_ok=True)
        code, _, err = _run(capsys, "generate", "--mix", str(mix), "--out", str(out), "--quiet")
        assert code == 2 and "is the mix file" in err.strip().splitlines()[-1], err
    code, _, err = _run(capsys, "generate", "--mix", str(material / "mix.wav"), "--prompt", str(mix),
                        "--out", str(tmp_path / "drums.wav"), "--midi", str(mix), "--quiet")
    assert code == 2 and "the midi output" in err and "is the prompt file" in err, err
    assert mix.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["alias.wav", "song.wav", "sub"]


@pytest.mark.parametrize("extra, match", [
    (("--midi", "{out}"), "the midi output"),
    (("--stems", "split", "--midi", "{stem}.kick.wav"), "the kick output"),
], ids=["midi-is-stem", "piece-is-midi"])
def test_two_outputs_at_one_path_are_refused_before_the_job(capsys, tmp_path, material, monkeypatch, extra, match):
    # the clash used to surface only after the whole job ran, as "cannot write ...: File exists"
    out = tmp_path / "drums.wav"
    args = [a.format(out=out, stem=tmp_path / "drums") for a in extra]
    monkeypatch.setattr("darc_bridge.pipeline.load_inputs", lambda *a, **k: pytest.fail("the job ran"))
    code, _, err = _run(capsys, "generate", "--mix", str(material / "mix.wav"), "--out", str(out), *args, "--quiet")
    assert code == 2 and match in err.strip().splitlines()[-1], err
    assert list(tmp_path.iterdir()) == []


def test_empty_output_path_is_an_error_not_a_traceback(capsys, tmp_path, material):
    code, _, err = _run(capsys, "generate", "--mix", str(material / "mix.wav"), "--out", "", "--quiet")
    assert code == 2 and err.strip() == "darc-bridge: error: no output path given"


def test_midi_without_prompt_is_refused_before_an_engine_that_needs_one_runs(tmp_path, material):
    # DARC without a prompt follows no rhythm: the MIDI request failed only after the whole generation
    from darc_bridge.engines import GenerationParams
    from darc_bridge.engines.darc import DarcEngine
    from darc_bridge.errors import InputError
    from darc_bridge.pipeline import run_job

    engine = DarcEngine.__new__(DarcEngine)  # never loaded: generate must not be reached
    engine.generate = lambda *a, **k: pytest.fail("the engine ran")
    with pytest.raises(InputError, match="no rhythm to write as MIDI"):
        run_job(engine, material / "mix.wav", None, tmp_path / "d.wav", GenerationParams(),
                midi_path=tmp_path / "d.mid")
    assert list(tmp_path.iterdir()) == []


def test_bad_input_is_reported_before_the_engine_loads(capsys, tmp_path, material, monkeypatch):
    # the CLI loaded the engine first: a typo in --mix waited ~7 s (kit) or ~15 s (DARC) for its error
    monkeypatch.setattr("darc_bridge.engines.kit.KitEngine.load", lambda self: pytest.fail("the engine loaded"))
    _assert_refused(capsys, tmp_path, "--mix", str(tmp_path / "typo.wav"), match="mix file not found")
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), "--end", "99", match="past the end")


def test_an_option_of_the_other_engine_is_refused_not_ignored(capsys, tmp_path, material):
    # `--kit` with the darc engine (or `--checkpoint` with the kit engine) was silently ignored
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), "--engine", "darc", "--kit", "builtin",
                    match="--kit picks the kit engine's drum kit")
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), "--checkpoint", str(tmp_path),
                    match="--checkpoint is a DARC model; it needs --engine darc")


@pytest.mark.parametrize("value", ["nan", "inf", "-inf"])
def test_a_parameter_that_is_not_finite_says_so(capsys, tmp_path, material, value):
    # read "temperature must be a number, got the number nan"
    _assert_refused(capsys, tmp_path, "--mix", str(material / "mix.wav"), f"--temperature={value}",
                    match=f"temperature must be a finite number, got {value}")
