"""DarcEngine on a tiny random checkpoint: the Engine contract (length, rate, channels, no
clipping, rhythm for MIDI, info), progress, cancellation, long regions, errors, and the CLI."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from darc_bridge.audio import Audio
from darc_bridge.engines import CancelToken, GenerationParams, create_engine
from darc_bridge.errors import Cancelled, CheckpointError, InputError
from darc_bridge.model.checkpoint import init_checkpoint

SR = 44100


@pytest.fixture(autouse=True)
def offline(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("darc") / "tiny"
    init_checkpoint("tiny", out, seed=0)
    return out


@pytest.fixture(scope="module")
def engine(checkpoint):
    e = create_engine("darc", checkpoint=str(checkpoint), device="cpu")
    e.load()
    return e


def _mix(seconds: float, channels: int = 2, sr: int = SR) -> Audio:
    t = np.arange(int(round(seconds * sr))) / sr
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + 0.5 * np.sin(2 * np.pi * 2 * t))
    return Audio(np.repeat(tone[None], channels, axis=0).astype(np.float32), sr)


def _prompt(seconds: float = 1.0, sr: int = 22050) -> Audio:
    rng = np.random.default_rng(0)
    y = np.zeros(int(seconds * sr), dtype=np.float32)
    for i, start in enumerate(np.arange(0, seconds - 0.1, 0.25)):
        s = int(start * sr)
        n = 1500
        burst = rng.standard_normal(n) if i % 2 else np.sin(2 * np.pi * 60 * np.arange(n) / sr)
        y[s:s + n] += (0.6 * burst * np.exp(-np.arange(n) / 250)).astype(np.float32)
    return Audio(y[None], sr)


def test_engine_makes_a_stem_exactly_as_long_as_the_region(engine):
    mix = _mix(1.3)
    stages: list[tuple[str, float]] = []
    result = engine.generate(mix, _prompt(), GenerationParams(seed=5), progress=lambda s, f: stages.append((s, f)))
    assert result.stem.dtype == np.float32
    assert result.stem.shape == mix.samples.shape
    assert result.sample_rate == SR
    assert np.isfinite(result.stem).all() and np.abs(result.stem).max() <= 1.0
    assert np.abs(result.stem).max() > 0  # random weights still make sound
    assert result.rhythm is not None and result.rhythm.n_classes == 3
    assert result.rhythm.duration == pytest.approx(1.3)
    assert result.info["seed"] == 5 and result.info["device"] == "cpu" and result.info["steps"] > 0
    names = [s for s, _ in stages]
    assert names.index("rhythm") < names.index("encode") < names.index("generate") < names.index("decode")
    gen = [f for s, f in stages if s == "generate"]
    assert gen == sorted(gen) and gen[-1] == pytest.approx(1.0)
    assert engine.describe()["loaded"] and engine.describe()["preset"] == "tiny"


def test_same_seed_same_stem_and_output_rate(engine):
    mix = _mix(0.8, channels=1, sr=48000)
    params = GenerationParams(seed=3, output_sample_rate=22050, extra={"top_k": 20})
    a = engine.generate(mix, None, params)
    b = engine.generate(mix, None, params)
    c = engine.generate(mix, None, GenerationParams(seed=4, output_sample_rate=22050, extra={"top_k": 20}))
    assert a.stem.shape == (1, int(round(0.8 * 22050))) and a.sample_rate == 22050
    assert np.array_equal(a.stem, b.stem)
    assert not np.array_equal(a.stem, c.stem)
    assert a.rhythm is None  # no prompt: nothing to follow


def test_long_region_in_windows_has_the_right_length_and_no_gaps(engine):
    mix = _mix(3.0)
    result = engine.generate(mix, _prompt(), GenerationParams(seed=1, extra={"window_s": 1.0, "overlap_s": 0.2}))
    assert result.info["windows"] >= 3
    assert result.stem.shape == mix.samples.shape
    # no silent hole anywhere (a gap between windows would decode to a dead stretch)
    blocks = result.stem[0, : SR * 3 // 2205 * 2205].reshape(-1, 2205)
    assert (blocks.std(axis=1) > 1e-5).all()


def test_cancel_between_steps(engine):
    token = CancelToken()
    seen: list[float] = []

    def progress(stage: str, fraction: float) -> None:
        if stage == "generate":
            seen.append(fraction)
            if fraction > 0.2:
                token.cancel()

    with pytest.raises(Cancelled):
        engine.generate(_mix(1.0), None, GenerationParams(seed=1), progress=progress, cancel=token)
    assert 0.2 < seen[-1] < 0.5  # stopped within a step or two, not at the end


def test_bad_options_and_checkpoints_are_clear_errors(engine, tmp_path):
    with pytest.raises(InputError, match="top_p"):
        engine.generate(_mix(0.5), None, GenerationParams(extra={"top_p": 2.0}))
    with pytest.raises(InputError, match="overlap_s"):
        engine.generate(_mix(0.5), None, GenerationParams(extra={"window_s": 2.0, "overlap_s": 3.0}))
    with pytest.raises(InputError, match="longer than this model's window"):
        engine.generate(_mix(0.5), None, GenerationParams(extra={"window_s": 100.0}))
    with pytest.raises(CheckpointError, match="not found"):
        create_engine("darc", checkpoint=str(tmp_path / "nope"), device="cpu").load()
    if not torch.cuda.is_available():
        with pytest.raises(InputError, match="no CUDA"):
            create_engine("darc", checkpoint=str(tmp_path), device="cuda").load()


def test_stem_is_never_clipped(engine, monkeypatch):
    import darc_bridge.model.codec as codec

    monkeypatch.setattr(codec, "decode_tokens", lambda c, codes: np.full((1, codes.shape[-1] * 640), 3.0, np.float32))
    result = engine.generate(_mix(0.5), None, GenerationParams(seed=1))
    assert np.abs(result.stem).max() <= 0.99 + 1e-6


def test_cli_generate_with_the_darc_engine(checkpoint, tmp_path):
    from darc_bridge.audio import write_wav_atomic
    from darc_bridge.cli.main import main

    mix = _mix(1.5)
    write_wav_atomic(tmp_path / "mix.wav", mix.samples, SR)
    prompt = _prompt()
    write_wav_atomic(tmp_path / "prompt.wav", prompt.samples, prompt.sample_rate)
    out = tmp_path / "drums.wav"
    rc = main(["generate", "--engine", "darc", "--checkpoint", str(checkpoint), "--device", "cpu",
               "--mix", str(tmp_path / "mix.wav"), "--prompt", str(tmp_path / "prompt.wav"),
               "--out", str(out), "--seed", "2", "--top-k", "30", "-q"])
    assert rc == 0
    data, sr = sf.read(out, always_2d=True)
    assert sr == SR and data.shape == (mix.samples.shape[1], 2)


def test_the_midi_of_a_full_length_prompt_has_the_songs_tempo(engine, tmp_path):
    # the grid was estimated only for a looped prompt or quantize: a prompt as long as the region
    # got a MIDI file at 120 BPM, which a DAW importing it by beats places wrong
    import mido

    from darc_bridge.audio import write_wav_atomic
    from darc_bridge.pipeline import run_job

    sr = 22050
    t = np.arange(4 * sr) / sr
    clicks = np.zeros_like(t)
    for beat in np.arange(0, 4, 0.6):  # 100 BPM
        i = int(beat * sr)
        clicks[i:i + 400] = np.sin(2 * np.pi * 80 * t[:400]) * np.exp(-np.arange(400) / 80)
    mix = Audio((0.5 * clicks + 0.05 * np.sin(2 * np.pi * 220 * t))[None].astype(np.float32), sr)
    write_wav_atomic(tmp_path / "mix.wav", mix.samples, sr)
    prompt = _prompt(4.0)
    write_wav_atomic(tmp_path / "prompt.wav", prompt.samples, prompt.sample_rate)
    result = engine.generate(mix, prompt, GenerationParams(seed=1))
    assert result.beat_grid is not None
    run_job(engine, tmp_path / "mix.wav", tmp_path / "prompt.wav", tmp_path / "d.wav", GenerationParams(seed=1),
            midi_path=tmp_path / "d.mid")
    tempo = next(m.tempo for m in mido.MidiFile(tmp_path / "d.mid").tracks[0] if m.type == "set_tempo")
    assert mido.tempo2bpm(tempo) == pytest.approx(result.beat_grid.tempo)
    assert abs(mido.tempo2bpm(tempo) - 120.0) > 5


def test_beat_conditioned_checkpoint_reports_its_beat_grid(tmp_path):
    from darc_bridge.model.checkpoint import random_checkpoint, save_checkpoint

    save_checkpoint(random_checkpoint("tiny", beat_conditioning=True), tmp_path / "beat")
    engine = create_engine("darc", checkpoint=str(tmp_path / "beat"), device="cpu", warmup=False)
    result = engine.generate(_mix(2.0), None, GenerationParams(seed=0))
    assert result.beat_grid is not None and result.beat_grid.duration == pytest.approx(2.0)
    assert result.stem.shape == (2, 2 * SR)


def test_quantize_snaps_the_followed_rhythm_to_the_mix_grid(engine):
    """`quantize` is a knob of every engine: the model is conditioned on the tightened rhythm."""
    mix, prompt = _mix(3.0), _prompt(1.0)
    loose = engine.generate(mix, prompt, GenerationParams(seed=2, quantize=0.0))
    tight = engine.generate(mix, prompt, GenerationParams(seed=2, quantize=1.0))
    grid = tight.beat_grid.subdivisions(per_beat=4)
    distance = [np.min(np.abs(grid - t)) for t in tight.rhythm.onset_times()]
    assert len(distance) == len(loose.rhythm.onsets) > 0
    assert max(distance) < 1e-6
    assert not np.allclose(tight.rhythm.activations, loose.rhythm.activations)


def test_generate_batch_gives_each_job_its_own_result(engine):
    """Several jobs decoded as rows of one batch: each gets the stem it gets alone (its own seed),
    its own progress; a cancelled job and a job with bad options fail alone."""
    from darc_bridge.engines.darc import BatchJob

    mixes = [_mix(1.0), _mix(1.0, channels=1), _mix(1.0), _mix(0.6), _mix(1.0)]
    params = [GenerationParams(seed=1), GenerationParams(seed=2, extra={"top_k": 20}),
              GenerationParams(seed=3, rhythm_strength=1.5), GenerationParams(seed=4),
              GenerationParams(extra={"top_p": 2.0})]
    prompts = [_prompt(), None, _prompt(), None, None]
    stages: dict[int, list[tuple[str, float]]] = {i: [] for i in range(6)}
    token = CancelToken()

    def progress_of(i: int):
        return lambda s, f: stages[i].append((s, f))

    def cancelling(stage: str, fraction: float) -> None:
        if stage == "generate":
            token.cancel()

    jobs = [BatchJob(m, p, q, progress_of(i)) for i, (m, p, q) in enumerate(zip(mixes, prompts, params, strict=True))]
    jobs.append(BatchJob(_mix(1.0), None, GenerationParams(seed=6), cancelling, token))
    results = engine.generate_batch(jobs)
    for i in range(4):
        alone = engine.generate(mixes[i], prompts[i], params[i])
        assert np.array_equal(results[i].stem, alone.stem), f"job {i}"
        assert results[i].info["seed"] == params[i].seed
        gen = [f for s, f in stages[i] if s == "generate"]
        assert gen and gen == sorted(gen) and gen[-1] == pytest.approx(1.0)
    assert isinstance(results[4], InputError) and "top_p" in str(results[4])
    assert isinstance(results[5], Cancelled)


def test_concurrent_jobs_are_decoded_as_one_batch(engine):
    """Two threads generating at once (no engine-wide lock) are merged into one batch and get the
    stems they get one after the other."""
    import threading

    params = [GenerationParams(seed=7), GenerationParams(seed=8)]
    alone = [engine.generate(_mix(0.8), _prompt(), p).stem for p in params]
    out: dict[int, np.ndarray] = {}
    inside = threading.Barrier(2, timeout=60)

    def run(i: int) -> None:
        def progress(stage: str, fraction: float) -> None:
            if stage == "encode" and fraction == 0.0:
                inside.wait()  # both jobs are inside generate() at the same time

        out[i] = engine.generate(_mix(0.8), _prompt(), params[i], progress=progress).stem

    before = list(engine._coalescer.batches)
    threads = [threading.Thread(target=run, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert all(np.array_equal(out[i], alone[i]) for i in range(2))
    # the two overlapping calls were decoded as rows of one batch
    assert engine._coalescer.batches[len(before):] == [2]


def test_coalescer_never_waits_alone_and_survives_failed_preparations():
    import threading

    from darc_bridge.engines.darc import _Coalescer

    c = _Coalescer(lambda jobs: [j * 10 for j in jobs], gather_s=600.0)
    with c.preparing():
        assert c.decode(1) == 10  # alone: runs at once despite the long gather time
    with pytest.raises(ValueError), c.preparing():
        raise ValueError("bad input")  # a failed preparation is no longer awaited
    with c.preparing():
        assert c.decode(2) == 20
    # three calls that overlap: one batch, each its own result
    gate = threading.Barrier(3, timeout=30)
    got: dict[int, int] = {}

    def call(i: int) -> None:
        with c.preparing():
            gate.wait()
            got[i] = c.decode(i)

    threads = [threading.Thread(target=call, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert got == {0: 0, 1: 10, 2: 20}
    assert c.batches == [1, 1, 3]
    failing = _Coalescer(lambda jobs: 1 / 0)
    with failing.preparing():
        assert isinstance(failing.decode(1), ZeroDivisionError)
