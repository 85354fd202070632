"""Timbre-agnostic rhythm augmentation, and cheap context augmentation (speed, pitch).

The model must follow *when* and *which class* a prompt plays, whatever makes the sound. So the
rhythm a training example is conditioned on is not taken from its own drums: the drums' onsets
are re-rendered with another timbre (noise bursts, clicks, voice-like hits, table taps, a kit),
with gain, noise and small timing jitter, and only then go through the same NMF extractor as
inference.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import librosa
import numpy as np

from darc_bridge.data.voices import render_onsets
from darc_bridge.rhythm.features import Onset, RhythmFeatures, RhythmSettings

log = logging.getLogger(__name__)

VOICE_FAMILIES = ("noise", "click", "voice", "electro")  # darc_bridge.data.voices
PROMPT_VOICES = ("beatbox", "tap")  # darc_bridge.audio.prompts.synth_prompt


@dataclass(frozen=True)
class AugmentSettings:
    """Ranges each augmentation draws from; probabilities are per example."""

    jitter_s: float = 0.01  # timing jitter (std) of each re-rendered hit
    gain_db: tuple[float, float] = (-12.0, 0.0)
    noise_prob: float = 0.5
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    speed_prob: float = 0.5  # STAGE: speed x0.8-1.2 with p=0.5 (mix and drums together)
    speed_range: tuple[float, float] = (0.8, 1.2)
    pitch_prob: float = 0.5  # STAGE: pitch +-4 semitones with p=0.5 (context only)
    pitch_semitones: float = 4.0


def jitter_onsets(onsets: list[Onset], rng: np.random.Generator, std_s: float) -> list[Onset]:
    """Move each hit by a small Gaussian offset: people never tap exactly on time."""
    if std_s <= 0:
        return list(onsets)
    return [Onset(max(0.0, o.time + float(rng.normal(0.0, std_s))), o.cls, o.strength) for o in onsets]


def rerender_prompt(
    onsets: list[Onset],
    duration: float,
    sample_rate: int,
    rng: np.random.Generator,
    settings: AugmentSettings = AugmentSettings(),
    family: str | None = None,
) -> np.ndarray:
    """The same rhythm played with another timbre, at another level, over some noise."""
    families = VOICE_FAMILIES + PROMPT_VOICES
    family = family or families[int(rng.integers(len(families)))]
    hits = jitter_onsets(onsets, rng, settings.jitter_s)
    if family in PROMPT_VOICES:
        from darc_bridge.audio.prompts import synth_prompt

        audio = synth_prompt(hits, duration, sample_rate, voice=family, seed=int(rng.integers(2**31)))
    else:
        audio = render_onsets(hits, duration, sample_rate, family=family, rng=rng)
    audio = audio * 10 ** (rng.uniform(*settings.gain_db) / 20.0)
    if rng.random() < settings.noise_prob:
        from darc_bridge.audio.prompts import add_noise

        audio = add_noise(audio, float(rng.uniform(*settings.noise_snr_db)), seed=int(rng.integers(2**31)))
    return np.clip(audio, -1.0, 1.0).astype(np.float32)


def training_rhythm(
    drums: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator,
    onsets: list[Onset] | None = None,
    settings: AugmentSettings = AugmentSettings(),
    rhythm: RhythmSettings = RhythmSettings(),
) -> RhythmFeatures:
    """Rhythm features for one target: known onsets (synthetic corpus) or a transcription of the
    drums, re-rendered with another timbre, then NMF-extracted exactly as at inference."""
    from darc_bridge.rhythm.nmf import extract_rhythm

    duration = drums.size / sample_rate
    if onsets is None:
        from darc_bridge.eval.transcribe import transcribe

        onsets = transcribe(drums, sample_rate).onsets
    prompt = rerender_prompt(onsets, duration, sample_rate, rng, settings)
    return extract_rhythm(prompt, sample_rate=sample_rate, settings=rhythm).fit_to(duration)


def change_speed(x: np.ndarray, rate: float) -> np.ndarray:
    """Play `rate` times faster (tempo and pitch together) by resampling: cheap and artefact-free."""
    if rate == 1.0:
        return x
    return librosa.resample(x, orig_sr=int(round(rate * 10000)), target_sr=10000, res_type="soxr_hq").astype(np.float32)


def augment_context(
    context: np.ndarray,
    drums: np.ndarray,
    sample_rate: int,
    rng: np.random.Generator,
    settings: AugmentSettings = AugmentSettings(),
    onsets: list[Onset] | None = None,
) -> tuple[np.ndarray, np.ndarray, list[Onset] | None, dict]:
    """Speed change on mix and drums together (onsets follow), pitch shift on the mix only.

    Returns (context, drums, onsets, what_was_done); the drums keep their length by cutting or
    zero-padding, so the target length the model sees stays fixed.
    """
    done: dict = {}
    n_target = drums.size
    if rng.random() < settings.speed_prob:
        rate = float(rng.uniform(*settings.speed_range))
        context, drums = change_speed(context, rate), change_speed(drums, rate)
        drums = np.pad(drums, (0, max(0, n_target - drums.size)))[:n_target]
        if onsets is not None:
            onsets = [Onset(o.time / rate, o.cls, o.strength) for o in onsets if o.time / rate < n_target / sample_rate]
        done["speed"] = rate
    if rng.random() < settings.pitch_prob:
        steps = float(rng.uniform(-settings.pitch_semitones, settings.pitch_semitones))
        context = librosa.effects.pitch_shift(context, sr=sample_rate, n_steps=steps).astype(np.float32)
        done["pitch"] = steps
    return context.astype(np.float32), drums.astype(np.float32), onsets, done
