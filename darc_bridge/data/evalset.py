"""Synthesise an evaluation set (format: darc_bridge/eval/runner.py, docs/evaluation.md).

Each case: a drumless synthetic song region (mix.wav), a beatboxed or tapped prompt playing a
groove at the song's tempo that is deliberately unlike the default rock beat (prompt.wav), the
built-in kit playing that prompt exactly (drums.wav, the reference), and case.json with the
prompt's true onsets and the mix's beats. A system that ignores the prompt scores low onset F1.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np

from darc_bridge.audio.io import atomic_write, write_wav_atomic
from darc_bridge.data.synth_corpus import render_drums, synth_song
from darc_bridge.errors import OutputError
from darc_bridge.rhythm.features import Onset, RhythmFeatures

log = logging.getLogger(__name__)

PROMPT_VOICES = ("beatbox", "tap")


def prompt_pattern(tempo: float, bars: int, rng: np.random.Generator) -> list[Onset]:
    """A groove on 8ths: kicks at random off positions, snare on 2 and 4 or half-time on 3, hats."""
    step = 60.0 / tempo / 2.0  # eighth notes
    half_time = rng.random() < 0.3
    hat_every = int(rng.choice([1, 2]))
    onsets = []
    for i in range(8 * bars):
        t, pos = round(i * step, 5), i % 8
        if pos == 0 or (pos not in (2, 6) and rng.random() < 0.35):
            onsets.append(Onset(t, 0, float(rng.uniform(0.8, 1.0))))
        if (pos == 4) if half_time else (pos in (2, 6)):
            onsets.append(Onset(t, 1, float(rng.uniform(0.8, 1.0))))
        if i % hat_every == 0 and rng.random() < 0.9:
            onsets.append(Onset(t, 2, float(rng.uniform(0.5, 0.8))))
    return onsets


def write_evalset(out: str | Path, cases: int = 8, duration: float = 8.0, sample_rate: int = 32000,
                  seed: int = 1000, prompt_bars: int = 2) -> list[Path]:
    """Write `cases` cases under out/case_000 ...; returns their folders."""
    from darc_bridge.audio.prompts import synth_prompt

    root = Path(out)
    if root.exists() and not root.is_dir():
        raise OutputError(f"eval set output is not a folder: {root}")
    if cases < 1 or duration <= 1.0:
        raise OutputError("need at least 1 case of more than 1 s")
    root.mkdir(parents=True, exist_ok=True)
    folders = []
    for i in range(cases):
        rng = np.random.default_rng([seed, i])
        song = synth_song(seed + i, duration, sample_rate)
        mix = song.stems["bass"] + song.stems["other"] + song.stems["vocals"]
        pattern = prompt_pattern(song.tempo, prompt_bars, rng)
        prompt_s = min(duration, prompt_bars * 4 * 60.0 / song.tempo)
        voice = PROMPT_VOICES[i % len(PROMPT_VOICES)]
        prompt = synth_prompt(pattern, prompt_s, sample_rate, voice=voice, seed=seed + i)
        looped = RhythmFeatures.from_onsets(pattern, prompt_s).fit_to(duration).onsets
        drums = render_drums(looped, duration, sample_rate, "builtin", rng)
        folder = root / f"case_{i:03d}"
        folder.mkdir(exist_ok=True)
        write_wav_atomic(folder / "mix.wav", mix[None, :], sample_rate)
        write_wav_atomic(folder / "prompt.wav", prompt[None, :], sample_rate)
        write_wav_atomic(folder / "drums.wav", drums[None, :], sample_rate)
        truth = {"prompt_onsets": [o.to_dict() for o in pattern], "tempo": song.tempo,
                 "beats": [round(float(b), 5) for b in song.beats], "prompt_voice": voice}
        atomic_write(folder / "case.json", lambda tmp, t=truth: Path(tmp).write_text(json.dumps(t, indent=1)))
        folders.append(folder)
    log.info("wrote %d eval cases to %s", cases, root)
    return folders
