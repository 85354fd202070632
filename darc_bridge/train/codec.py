"""`darc-bridge train codec`: train audiocraft's EnCodec (a small preset) from scratch.

For building the whole system without any pretrained weights; real users start from EnCodec
32 kHz (`darc-bridge model init --from-musicgen`). Losses: L1 on the waveform, audiocraft's
multi-scale mel and multi-resolution STFT losses and the quantizer's commitment penalty. The
adversarial losses of the EnCodec paper (an MS-STFT discriminator, hinge losses and feature
matching) are an option, off by default (`adversarial_weight`, `feature_weight`): reconstruction
losses alone average the noisy part of a sound (a snare's wires) away, which a discriminator
notices. Measured on the CPU recipe's decoder, the hinge loss made things worse (broadband hiss
rather than snare wires) and feature matching alone did no better than plain decoder steps
(docs/training.md), so it stays off.
The result is written as a DARC checkpoint (this codec plus the LM of --init, or a random LM of
the preset), ready for `darc-bridge train cache` and `darc-bridge train`.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from darc_bridge.audio.io import load_audio
from darc_bridge.data.stems import AUDIO_EXTS, LONG_SONG
from darc_bridge.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class CodecTrainSettings:
    steps: int = 2000
    batch_size: int = 8
    segment_s: float = 1.0
    lr: float = 3e-4
    betas: tuple[float, float] = (0.5, 0.9)  # EnCodec's
    l1_weight: float = 0.1
    mel_weight: float = 1.0
    commit_weight: float = 1.0
    # audiocraft's multi-resolution STFT loss (spectral convergence + log magnitude on linear bins):
    # above 5 kHz lie 69 % of the linear bins at 32 kHz but only about a third of 64 mel bands, so this
    # term is what makes a small codec keep hi-hats and cymbals rather than blur them away.
    stft_weight: float = 1.0
    clip_grad: float = 1.0
    log_every: int = 50
    # 0: none. Otherwise every this many steps the codec so far is saved as a checkpoint in
    # OUT.snapshot (never in OUT itself, whose manifest marks a finished codec), so a long CPU run
    # can be inspected (reconstruction, code use) while it trains.
    snapshot_every: int = 0
    kmeans_batch: int = 32  # crops whose latents initialise the codebooks by k-means (random codecs only)
    # Train the decoder alone: the encoder and the codebooks are frozen, so every audio keeps exactly
    # the tokens it had and an LM trained on them stays valid. A codec whose decoder was cut short
    # (a time budget) can then go on improving how the model's drums sound, with no LM retraining.
    decoder_only: bool = False
    # Adversarial training (EnCodec's): audiocraft's MS-STFT discriminator, hinge losses and
    # feature matching; 0 and 0: off. EnCodec weighs adv 4, feat 4 against msspec 2 and L1 0.1 through
    # a gradient balancer; here there is none, so the weights are raw and must leave the
    # reconstruction losses most of the gradient on the decoder (the discriminator's gradients are a
    # correction of the texture, not what decides the waveform; a fresh discriminator's feedback is
    # noise at first). On a mini decoder the reconstruction gradient is ~10 against the hinge
    # loss's 0.02-0.07 (growing) and feature matching's a tenth of that: A = 1, F = 10 was measured.
    adversarial_weight: float = 0.0  # hinge generator loss, averaged over the discriminator's scales
    feature_weight: float = 0.0  # L1 between its feature maps of real and decoded audio
    # EnCodec's way to weigh them: audiocraft's gradient balancer (audiocraft.losses.Balancer). The
    # weights above and l1 / mel / stft then say what share of the gradient on the decoded audio each
    # loss gets (EnCodec: adv 4, feat 4, msspec 2, l1 0.1), whatever its own scale, instead of being
    # raw multipliers. The commitment penalty does not pass through the decoded audio and is added
    # as it is.
    balanced: bool = False
    # Discriminator size, for a 2-core CPU: audiocraft's 32 filters on 5 scales over 1 s crops take
    # 27 s a step (batch 8, one thread); 8 filters on 3 scales over 0.25 s crops take 0.5 s, with
    # the hop a quarter of each FFT as audiocraft's. 256 samples resolve a snare's attack (8 ms).
    disc_filters: int = 8
    disc_ffts: tuple[int, ...] = (1024, 512, 256)
    disc_crop_s: float = 0.25  # the discriminator sees one random window this long of each batch
    seed: int = 0
    device: str = "auto"

    def __post_init__(self) -> None:
        for name in ("adversarial_weight", "feature_weight", "l1_weight", "mel_weight", "stft_weight"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise InputError(f"codec {name} must be a finite number >= 0 (0: off), not {value}")
        if self.balanced and not self.l1_weight + self.mel_weight + self.stft_weight > 0:
            raise InputError("a balanced codec run needs a reconstruction loss with a weight above 0")
        if self.adversarial:
            if self.disc_filters < 1:
                raise InputError(f"codec disc_filters must be at least 1, not {self.disc_filters}")
            if not self.disc_ffts or any(n < 16 or n & (n - 1) for n in self.disc_ffts):
                raise InputError(f"codec disc_ffts must be powers of two of at least 16, not {self.disc_ffts}")
            if not 0 < self.disc_crop_s <= self.segment_s:
                raise InputError(f"codec disc_crop_s must be in (0, segment_s = {self.segment_s}], "
                                 f"not {self.disc_crop_s}")

    @property
    def adversarial(self) -> bool:
        """Whether a discriminator trains beside the codec."""
        return self.adversarial_weight > 0 or self.feature_weight > 0


def load_corpus_audio(root: str | Path, sample_rate: int, max_files: int = 2000) -> list[np.ndarray]:
    """Every audio file under `root` (stems and mixes alike) as mono float32 at `sample_rate`."""
    files = sorted(p for p in Path(root).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_EXTS)[:max_files]
    if not files:
        raise InputError(f"no audio files under {root} to train a codec on")
    clips = []
    for f in files:
        audio = load_audio(f, role="training audio", limits=LONG_SONG, allow_silent=True)
        if audio.peak_dbfs() > -60:
            clips.append(audio.resampled(sample_rate).mono())
    if not clips:
        raise InputError(f"every audio file under {root} is silent")
    return clips


def kmeans_init_codebooks(codec: torch.nn.Module, batch: torch.Tensor) -> None:
    """Initialise every RVQ codebook by k-means on the latents (residuals) of `batch`.

    audiocraft's EMA codebooks collapse from a random (uniform) start: encoder latents are small, one
    code wins every frame, and every unused code's EMA average blows up, so training keeps one code
    per codebook forever. k-means on real latents (audiocraft's own `kmeans_init`) starts them alive.
    """
    for layer in codec.quantizer.vq.layers:
        layer._codebook.inited.fill_(0.0)
    with torch.no_grad():
        codec.train()(batch)


def make_adversary(settings: CodecTrainSettings, sample_rate: int, device: str | torch.device) -> torch.nn.Module:
    """audiocraft's MS-STFT discriminator with its hinge losses and L1 feature matching, wrapped in
    its `AdversarialLoss` (which owns the discriminator's own Adam, EnCodec's betas and the codec's lr).

    Training-only: it is never saved, so a resumed run starts a fresh discriminator."""
    from audiocraft.adversarial import (
        AdversarialLoss,
        FeatureMatchingLoss,
        MultiScaleSTFTDiscriminator,
        get_adv_criterion,
        get_fake_criterion,
        get_real_criterion,
    )

    crop = int(settings.disc_crop_s * sample_rate)
    if crop < max(settings.disc_ffts):
        raise InputError(f"codec disc_crop_s {settings.disc_crop_s} s is {crop} samples, shorter than the "
                         f"discriminator's largest FFT ({max(settings.disc_ffts)})")
    ffts = list(settings.disc_ffts)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings.seed)
        disc = MultiScaleSTFTDiscriminator(settings.disc_filters, n_ffts=ffts, win_lengths=ffts,
                                           hop_lengths=[n // 4 for n in ffts],
                                           activation_params={"negative_slope": 0.3}).to(device)  # EnCodec's slope
    optimizer = torch.optim.Adam(disc.parameters(), lr=settings.lr, betas=settings.betas)
    return AdversarialLoss(disc, optimizer, loss=get_adv_criterion("hinge"), loss_real=get_real_criterion("hinge"),
                           loss_fake=get_fake_criterion("hinge"), loss_feat=FeatureMatchingLoss(torch.nn.L1Loss()))


def random_window(x: torch.Tensor, y: torch.Tensor, n: int, rng: np.random.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """The same random window of `n` samples of both batches (the discriminator's view)."""
    start = int(rng.integers(0, x.shape[-1] - n + 1))
    return x[..., start:start + n], y[..., start:start + n]


class DeadCodeRestarter:
    """Restart dead codebook entries with latents from the batch, keeping the EMA state consistent.

    audiocraft expires dead codes by overwriting `embed`, but in the same forward pass the EMA
    renormalisation (embed = embed_avg / cluster_size) overwrites them again, so with batches far
    smaller than the 2048-entry codebooks nearly every code dies and the first codebook collapses
    to one entry. Here a dead code gets a batch latent in `embed` *and* `embed_avg`, with a cluster
    size of 1, so it survives the next update and competes for frames.
    """

    def __init__(self, codec: torch.nn.Module, threshold: float = 1.0) -> None:
        self.threshold = threshold
        self.latents: dict[int, torch.Tensor] = {}
        self.books = [layer._codebook for layer in codec.quantizer.vq.layers]
        for i, book in enumerate(self.books):
            book.register_forward_pre_hook(lambda _m, args, i=i: self._keep(i, args[0]))

    def _keep(self, i: int, x: torch.Tensor) -> None:
        self.latents[i] = x.detach().reshape(-1, x.shape[-1])

    @torch.no_grad()
    def restart(self, generator: torch.Generator | None = None) -> int:
        """Restart every dead code; returns how many were restarted."""
        total = 0
        for i, book in enumerate(self.books):
            dead = book.cluster_size < self.threshold
            n, x = int(dead.sum()), self.latents.get(i)
            if n == 0 or x is None or x.shape[0] == 0:
                continue
            pick = x[torch.randint(0, x.shape[0], (n,), generator=generator, device=x.device)]
            pick = pick + 0.01 * x.std() * torch.randn(pick.shape, generator=generator, device=x.device)
            book.embed[dead] = pick
            book.embed_avg[dead] = pick
            book.cluster_size[dead] = 1.0
            total += n
        return total


def random_crops(clips: list[np.ndarray], rng: np.random.Generator, batch: int, n: int) -> torch.Tensor:
    out = np.zeros((batch, 1, n), dtype=np.float32)
    for b in range(batch):
        clip = clips[int(rng.integers(len(clips)))]
        start = int(rng.integers(0, max(1, clip.size - n)))
        piece = clip[start:start + n]
        out[b, 0, :piece.size] = piece
    return torch.from_numpy(out)


def train_codec(
    audio_dir: str | Path,
    out_dir: str | Path,
    settings: CodecTrainSettings,
    init: str | None = None,
    preset: str = "tiny",
    deadline: float | None = None,
    adversary: torch.nn.Module | None = None,
) -> dict[str, Any]:
    """Train the codec of `init` (or of a random `preset` checkpoint); save a DARC checkpoint to `out_dir`.

    `deadline` (a time.time() value): stop early once it passes (a fixed time budget), then save.
    `adversary`: with adversarial settings, the discriminator to train on (from `make_adversary`, e.g.
    one that goes on from an earlier call); None: a fresh one. It is never written to `out_dir`."""
    from tqdm import tqdm

    from darc_bridge.compat import import_audiocraft
    from darc_bridge.model.checkpoint import (
        load_checkpoint,
        random_checkpoint,
        save_checkpoint,
        weight_origin,
    )
    from darc_bridge.train.loop import resolve_device

    import_audiocraft()
    from audiocraft.losses import MRSTFTLoss, MultiScaleMelSpectrogramLoss

    if settings.decoder_only and init is None:
        raise InputError("decoder-only codec training needs --init: a trained codec whose tokens it keeps")
    if adversary is not None and not settings.adversarial:
        raise InputError("a discriminator was given but adversarial_weight and feature_weight are both 0")
    device = resolve_device(settings.device)
    ckpt = load_checkpoint(init) if init else random_checkpoint(preset, seed=settings.seed)
    codec = ckpt.codec.to(device).train()
    init_codec = weight_origin(ckpt, "codec") if init is not None else None  # before `source` changes
    prior_decoder = int(ckpt.manifest.get("decoder_steps", 0))
    lm_origin = _lm_origin(weight_origin(ckpt, "lm") if init is not None else "random", settings.decoder_only)
    sr = int(codec.sample_rate)
    clips = load_corpus_audio(audio_dir, sr)
    n = int(settings.segment_s * sr)
    mel = MultiScaleMelSpectrogramLoss(sr, range_start=6, range_end=11, n_mels=64, normalized=True).to(device)
    stft = MRSTFTLoss(factor_sc=1.0, factor_mag=1.0).to(device)
    if init is None:
        kmeans_init_codebooks(codec, random_crops(clips, np.random.default_rng([settings.seed, 2**31]),
                                                  settings.kmeans_batch, n).to(device))
    if settings.decoder_only:
        codec.encoder.requires_grad_(False).eval()
        codec.quantizer.requires_grad_(False).eval()  # eval: no EMA codebook updates
        restarter = None
    else:
        restarter = DeadCodeRestarter(codec)
    params = [p for p in codec.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=settings.lr, betas=settings.betas)
    if settings.adversarial and adversary is None:
        adversary = make_adversary(settings, sr, device)
    disc_n = int(settings.disc_crop_s * sr)
    weights = {"l1": settings.l1_weight, "mel": settings.mel_weight, "stft": settings.stft_weight,
               "adv": settings.adversarial_weight, "feat": settings.feature_weight}
    balancer = None
    if settings.balanced:
        from audiocraft.losses import Balancer

        balancer = Balancer({k: w for k, w in weights.items() if w > 0})
    losses: list[float] = []
    history: dict[str, list[float]] = {"reconstruction": [], "adversarial": [], "feature": [], "discriminator": []}
    t0 = time.perf_counter()
    bar = tqdm(range(settings.steps), desc="train codec", unit="step", file=sys.stderr, dynamic_ncols=True)
    for step in bar:
        rng = np.random.default_rng([settings.seed, step])
        x = random_crops(clips, rng, settings.batch_size, n).to(device)
        y, penalty = _decoder_pass(codec, x) if settings.decoder_only else _full_pass(codec, x)
        terms = {"l1": F.l1_loss(y, x), "mel": mel(y, x), **({"stft": stft(y, x)} if settings.stft_weight else {})}
        loss = sum(weights[k] * v for k, v in terms.items()) + settings.commit_weight * penalty
        history["reconstruction"].append(float(loss.detach()))
        if adversary is not None:
            real, fake = random_window(x, y, disc_n, rng)
            history["discriminator"].append(float(adversary.train_adv(fake, real).detach()))  # it detaches `fake`
            adv, feat = adversary(fake, real)  # the discriminator just updated, read-only here
            terms |= {"adv": adv, "feat": feat}
            loss = loss + settings.adversarial_weight * adv + settings.feature_weight * feat
            history["adversarial"].append(float(adv.detach()))
            history["feature"].append(float(feat.detach()))
        optimizer.zero_grad(set_to_none=True)
        if balancer is None:
            loss.backward()
        else:  # each term's gradient on y scaled to its share; the penalty (encoder side) as it is
            penalty = penalty if torch.is_tensor(penalty) else torch.zeros((), device=y.device)  # decoder-only: 0
            if penalty.requires_grad:
                (settings.commit_weight * penalty).backward(retain_graph=True)
            loss = balancer.backward({k: v.mean() for k, v in terms.items() if weights[k] > 0}, y) \
                + settings.commit_weight * penalty.detach()
        torch.nn.utils.clip_grad_norm_(params, settings.clip_grad)
        optimizer.step()
        if restarter is not None:
            restarter.restart()
        value = float(loss.detach())
        if not math.isfinite(value):
            raise RuntimeError(f"codec loss became {value} at step {step}: lower the learning rate")
        losses.append(value)
        speed = (step + 1) * settings.batch_size * settings.segment_s / (time.perf_counter() - t0)
        shown = {"loss": f"{value:.3f}", "audio_s_per_s": f"{speed:.1f}"}
        if adversary is not None:
            shown["d"] = f"{history['discriminator'][-1]:.3f}"
        bar.set_postfix(shown)
        if (step + 1) % settings.log_every == 0:
            if adversary is None:
                log.info("codec step %d loss %.4f", step + 1, value)
            else:
                log.info("codec step %d loss %.4f (reconstruction %.4f, adversarial %.4f, feature %.4f, "
                         "discriminator %.4f)", step + 1, value,
                         *(history[k][-1] for k in ("reconstruction", "adversarial", "feature", "discriminator")))
        if settings.snapshot_every and (step + 1) % settings.snapshot_every == 0:
            _snapshot(ckpt, codec, Path(str(out_dir) + ".snapshot"),
                      codec_origin(init_codec, prior_decoder, step + 1, settings.decoder_only, snapshot=True),
                      lm_origin)
        if deadline is not None and time.time() >= deadline:
            log.info("codec time budget spent at step %d of %d", step + 1, settings.steps)
            break
    codec.eval().to("cpu")
    probe = random_crops(clips, np.random.default_rng([settings.seed, 2**31 + 1]), 8, n)[:, 0].numpy().reshape(-1)
    retention = high_band_retention(codec, probe, sr)
    log.info("codec keeps %.0f %% of the energy above %d Hz", 100 * retention, HIGH_BAND_HZ)
    ckpt.codec = codec
    extra: dict[str, Any] = {"codec_high_band_retention": round(retention, 4),
                             # provenance of the last run's loss: its weights and whether they were balanced
                             "codec_losses": {k: getattr(settings, k) for k in ("l1_weight", "mel_weight", "stft_weight",
                                                                                "commit_weight", "balanced")}}
    if settings.adversarial:  # provenance of the last run: how its decoder was pushed
        extra["codec_adversarial"] = {k: getattr(settings, k) for k in ("adversarial_weight", "feature_weight",
                                                                         "disc_filters", "disc_ffts", "disc_crop_s",
                                                                         "balanced")}
    if settings.decoder_only:
        extra["decoder_steps"] = prior_decoder + len(losses)  # over every run
    ckpt.source = codec_origin(init_codec, prior_decoder, len(losses), settings.decoder_only)
    ckpt.codec_source = ckpt.source
    ckpt.lm_source = lm_origin
    save_checkpoint(ckpt, out_dir, overwrite=True, extra=extra)
    # `losses`: what the codec minimised; `history`: its reconstruction part, and with adversarial
    # training its other parts and the discriminator's own loss (those lists stay empty without).
    # The discriminator is not saved: it only serves training.
    return {"losses": losses, "history": history, "checkpoint": str(out_dir), "high_band_retention": retention}


def _full_pass(codec: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | float]:
    """Reconstruction and commitment penalty of the whole codec (encoder, codebooks, decoder)."""
    res = codec(x)
    return res.x, (res.penalty if res.penalty is not None else 0.0)


def _decoder_pass(codec: torch.nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, float]:
    """Reconstruction with gradients through the decoder only: the frozen encoder and codebooks give
    the tokens `x` has at inference, and the decoder learns to render them."""
    with torch.no_grad():
        codes, scale = codec.encode(x)
        emb = codec.decode_latent(codes)
    return codec.postprocess(codec.decoder(emb), scale)[..., : x.shape[-1]], 0.0


def codec_origin(init_codec: str | None, prior_decoder: int, steps: int, decoder_only: bool,
                 snapshot: bool = False) -> str:
    """The provenance of a codec after `steps` of this run, counting what it had before.

    A whole codec continued from --init ("codec-trained:1570steps", or a snapshot of one) adds its
    steps to the earlier ones: its tokens change with every step. A decoder-only run keeps the
    tokens and so the codec's own count, and adds to its decoder steps. `snapshot`: the same for a
    mid-run snapshot, marked as one ("codec-snapshot:..." / "...+decoder-snapshot:...")."""
    if decoder_only:
        trained = (init_codec or "random").split("+decoder")[0]
        return f"{trained}+decoder{'-snapshot' if snapshot else ''}:{prior_decoder + steps}steps"
    before = re.match(r"codec-(?:trained|snapshot):(\d+)steps", init_codec or "")
    return f"codec-{'snapshot' if snapshot else 'trained'}:{(int(before.group(1)) if before else 0) + steps}steps"


def _lm_origin(init_lm: str, decoder_only: bool) -> str:
    """What the saved LM is: the LM of --init, which a decoder-only run keeps valid. Training the
    whole codec changes every token (docs/training.md: 0.1-1 % of a codebook's codes survive 1500
    steps), so an LM trained on the old tokens plays noise with the new codec: it is saved as
    "random", which the LM trainer treats as a fresh start, never as a model to use."""
    if decoder_only or init_lm.startswith("random"):
        return init_lm
    log.warning("training the whole codec changes its tokens: the LM of --init (%s) no longer fits them and is "
                "saved as untrained (use --decoder-only to keep it valid)", init_lm)
    return f"random (stale: learned on the tokens before this codec training; was {init_lm})"


def _snapshot(ckpt, codec: torch.nn.Module, out: Path, source: str, lm_source: str) -> None:
    """Save the codec so far (its weights are copied to the CPU; training goes on untouched) with the
    LM of --init, usable after a decoder-only run (`lm_source` says which; _lm_origin)."""
    import dataclasses

    from darc_bridge.model.checkpoint import save_checkpoint

    snap = dataclasses.replace(ckpt, codec=codec, source=source, codec_source=source, lm_source=lm_source)
    save_checkpoint(snap, out, overwrite=True)
    log.info("codec snapshot (%s) in %s", source, out)


HIGH_BAND_HZ = 5000  # above this a drum kit is hats, cymbals and the snare's wires


def high_band_retention(codec: torch.nn.Module, audio: np.ndarray, sample_rate: int,
                        cutoff_hz: float = HIGH_BAND_HZ) -> float:
    """Energy above `cutoff_hz` of the codec's reconstruction (encode, quantise, decode) over that of
    `audio`: near 1 keeps hi-hats, near 0 loses them."""
    from scipy.signal import butter, sosfilt

    from darc_bridge.audio.io import Audio
    from darc_bridge.model.codec import decode_tokens, encode_audio

    x = np.asarray(audio, dtype=np.float32)
    y = decode_tokens(codec, encode_audio(codec, Audio(x[None], sample_rate)))[0][: x.size]
    sos = butter(6, cutoff_hz / (sample_rate / 2), btype="high", output="sos")
    ref = float(np.mean(sosfilt(sos, x) ** 2))
    return float(np.mean(sosfilt(sos, y) ** 2)) / ref if ref > 0 else float("nan")
