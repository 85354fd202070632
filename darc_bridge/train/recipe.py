"""The whole recipe in one resumable command: `darc-bridge train recipe --preset mini` (`make model`).

    pack    recorded one-shots (Debian's hydrogen-drumkits, or --pack FILE built elsewhere)
    data    synthetic songs on `tune` kits only (data/kit_corpus.py)
    codec   EnCodec of the preset, trained from scratch on that audio
    cache   tokens + augmented rhythm features (train/cache.py)
    base    STAGE: the mix prefix, no rhythm, every weight (a random LM: warm-up + cosine)
    darc    jump fine-tuning with adaptive in-attention on top of the base (MusiConGen)
    decoder the codec's decoder alone trains on (encoder and codebooks frozen: every token stays
            what the LM learned), then WORK/model = the DARC LM with that decoder
    guidance the classifier-free guidance coefficient that follows the prompt best on a validation
            set of `tune` kits (never the gate's), written as WORK/model's default (train/guidance.py)
    gate    32 cases from `held_out` kits, rhythm on and off, transcribed (train/gate.py)
    ship    fp16 safetensors + gate report + the exact command + data seed -> models/darc-mini,
            only if the gate passed; otherwise the same files -> models/darc-mini-wip (no engine's
            default), which `--resume-from` continues: build/ does not outlive a machine, and a
            checkpoint that is not committed is hours of CPU training lost

Every stage leaves its result in WORK/<stage> and is skipped when that result is complete; the
training stages resume from their `latest`. `--resume-from models/darc-mini` continues a shipped
model: its codec is kept (the cache is rebuilt with it), the base stage is skipped, and DARC
training goes on from its weights (a fresh optimizer and a short warm-up: optimizer state would
triple the shipped bytes). A scale's `budget_s` splits a fixed wall time (one GPU loan) between
the stages; a stage out of time saves and the next run of the same command continues it.

Why a decoder stage: on a time budget the codec is the stage cut short, and retraining it would
change every token and so throw away the LM. Its decoder can go on learning without touching a
token (train/codec.py `decoder_only`), which is how a later run improves the sound of a model it
cannot afford to retrain: the LM's training and the decoder's each continue where they stopped.
"""

from __future__ import annotations

import json
import logging
import shlex
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from darc_bridge.errors import InputError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Scale:
    """How much of everything one run makes and trains."""

    name: str
    songs: int
    song_s: float
    codec_steps: int
    codec_batch: int
    codec_segment_s: float
    base_steps: int
    darc_steps: int
    batch_size: int
    segment_s: float  # cached segment length (the window at full scale)
    min_s: float
    max_s: float
    gate_cases: int
    gate_s: float
    save_every: int
    variants: int = 1
    budget_s: float | None = None  # wall-time budget of the whole run (None: train every step)
    cache_workers: int = 1  # 0: one per CPU core but one (the cache's augmentation and rhythm are CPU work)
    shares: tuple[float, float, float, float] | None = None  # codec, base, DARC, decoder shares of budget_s
    # (None: BUDGET_SHARES)
    codec_snapshot_every: int = 0  # save the codec so far every this many steps (train/codec.py), 0: never
    decoder_steps: int = 0  # decoder-only codec steps after DARC (0: the model keeps the codec as trained)
    decoder_batch: int = 8
    decoder_segment_s: float = 1.0
    valid_cases: int = 16  # validation cases (tune kits) the guidance stage scores each coefficient on


SCALES: dict[str, Scale] = {
    # CI: every stage runs and writes its files in a couple of minutes on 2 cores; the gate is not met.
    "smoke": Scale("smoke", songs=3, song_s=8.0, codec_steps=12, codec_batch=2, codec_segment_s=0.5, base_steps=4,
                   darc_steps=4, batch_size=2, segment_s=4.0, min_s=1.0, max_s=2.0, gate_cases=2, gate_s=4.0,
                   save_every=4, decoder_steps=3, decoder_batch=2, decoder_segment_s=0.5, valid_cases=2),
    # A background run on a contended 2-core CPU in about 95 minutes. The codec gets 3000 steps and a
    # third of the time: its tokens are final once the LM starts (a codec cut at 1570 steps kept
    # snare F1 0.46 of the tune kits' reference, at 3070 steps 0.65, and more steps or codebooks did
    # not raise it; docs/training.md, sixth session), while DARC continues in later runs. Crops of
    # 3-8 s reach the gate's 8 s cases, so generation stays at trained positions.
    "cpu": Scale("cpu", songs=120, song_s=20.0, codec_steps=3000, codec_batch=8, codec_segment_s=0.5,
                 base_steps=1500, darc_steps=3000, batch_size=3, segment_s=10.0, min_s=3.0, max_s=8.0,
                 gate_cases=32, gate_s=8.0, save_every=100, budget_s=95 * 60.0, shares=(0.35, 0.15, 0.26, 0.06),
                 codec_snapshot_every=250, decoder_steps=4000),
    # One H200-class GPU in at most 9 minutes of wall time, resumable by the next loan.
    "full": Scale("full", songs=240, song_s=20.0, codec_steps=3000, codec_batch=16, codec_segment_s=1.0,
                  base_steps=3000, darc_steps=3000, batch_size=16, segment_s=10.0, min_s=5.0, max_s=10.0,
                  gate_cases=32, gate_s=10.0, save_every=250, variants=2, budget_s=9 * 60.0, cache_workers=0,
                  decoder_steps=3000, decoder_batch=16, valid_cases=8),
}
# Shares of a time budget: codec, base, DARC and decoder train in what is left after data, cache and gate.
BUDGET_SHARES = {"codec": 0.2, "base": 0.28, "darc": 0.26, "decoder": 0.06}
RANDOM_BASE_LR = 5e-4
DARC_LR = 2e-4  # jump fine-tuning of our own small base: higher than MusicGen's 1e-5, it is not MusicGen
# The DARC stage starts from a base that already plays drums without rhythm; what it has to learn is
# the rhythm, so more of its rows see it than the loop's default 0.5. Rows without rhythm stay
# (1 - cfg 0.2) x 0.3 + 0.2 = 44 %, enough for rhythm guidance and the null rows.
DARC_RHYTHM_DROPOUT = 0.3
# The decoder stage starts from a trained decoder: half the from-scratch codec rate, held constant so
# that the steps of a run cut short and of the run that continues it count alike.
DECODER_LR = 5e-4
STAGES = ("pack", "data", "codec", "cache", "base", "darc", "decoder", "guidance", "gate", "ship")


WIP_SUFFIX = "-wip"  # models/darc-mini-wip: the unshipped checkpoint a later run resumes from


@dataclass
class RecipeResult:
    work: Path
    gate: dict[str, Any]
    shipped: Path | None
    stages: dict[str, float]  # wall seconds per stage run this time
    kept: Path | None = None  # the unshipped checkpoint when the gate failed (models/darc-mini-wip)


def _done(path: Path) -> bool:
    return (path / "darc.json").is_file()


def _deadline(start: float, scale: Scale, stage: str) -> float | None:
    if scale.budget_s is None:
        return None
    shares = dict(zip(BUDGET_SHARES, scale.shares, strict=True)) if scale.shares else BUDGET_SHARES
    names = list(shares)
    before = sum(shares[s] for s in names[: names.index(stage)])
    return start + scale.budget_s * (before + shares[stage]) + 60.0  # a minute for data and cache


def run_recipe(work: str | Path, preset: str = "mini", scale: str | Scale = "smoke", seed: int = 0,
               pack: str | Path | None = None, resume_from: str | Path | None = None,
               ship_to: str | Path | None = None, device: str = "auto", command: str | None = None,
               until: str = "ship") -> RecipeResult:
    """Run (or continue) every stage up to `until`; returns the gate figures and where the model went."""
    from darc_bridge.data.kit_corpus import write_gate_set, write_kit_corpus
    from darc_bridge.data.kit_pack import build_pack, load_pack, save_pack
    from darc_bridge.model.checkpoint import load_checkpoint, save_checkpoint
    from darc_bridge.model.presets import preset as preset_config
    from darc_bridge.train.loop import TrainSettings, latest_step_dir, train

    s = SCALES[scale] if isinstance(scale, str) else scale
    if until not in STAGES:
        raise InputError(f"unknown stage {until!r}; stages: {', '.join(STAGES)}")
    config = preset_config(preset)  # an unknown preset is an InputError before anything is written
    root = Path(work)
    root.mkdir(parents=True, exist_ok=True)
    t_start, times = time.time(), {}

    def stage(name: str):
        times[name] = time.time()
        log.info("recipe stage %s", name)

    def stop(name: str) -> bool:
        times[name] = time.time() - times[name]
        return until == name

    # pack: recorded one-shots at the codec's rate
    stage("pack")
    pack_path = Path(pack) if pack else root / "pack.npz"
    if not pack_path.is_file():
        if pack:
            raise InputError(f"sample pack not found: {pack_path}")
        save_pack(build_pack(config.sample_rate), pack_path)
    samples = load_pack(pack_path)
    if samples.sample_rate != config.sample_rate:
        raise InputError(f"sample pack is at {samples.sample_rate} Hz, the {preset} codec at {config.sample_rate} Hz")
    if stop("pack"):
        return RecipeResult(root, {}, None, times)

    stage("data")
    corpus = root / "corpus"
    write_kit_corpus(corpus, s.songs, samples, s.song_s, seed=seed)
    if stop("data"):
        return RecipeResult(root, {}, None, times)

    stage("codec")
    codec_dir = root / "codec"
    if resume_from is not None:
        if not _done(codec_dir):
            resumed = load_checkpoint(resume_from)
            if resumed.config.preset != preset:
                raise InputError(f"{resume_from} is a {resumed.config.preset} model, not {preset}")
            resumed.source = f"resumed:{resume_from}"
            save_checkpoint(resumed, codec_dir, overwrite=True)
    elif not _done(codec_dir):
        from darc_bridge.train.codec import CodecTrainSettings, train_codec

        train_codec(corpus, codec_dir, CodecTrainSettings(steps=s.codec_steps, batch_size=s.codec_batch,
                                                          segment_s=s.codec_segment_s, lr=1e-3, seed=seed,
                                                          snapshot_every=s.codec_snapshot_every, device=device), init=None, preset=preset,
                    deadline=_deadline(t_start, s, "codec"))
    if stop("codec"):
        return RecipeResult(root, {}, None, times)

    stage("cache")
    cache = root / "cache"
    _cache(corpus, cache, load_checkpoint(codec_dir), s, seed, device)
    if stop("cache"):
        return RecipeResult(root, {}, None, times)

    common = dict(batch_size=s.batch_size, grad_accum=1, min_s=s.min_s, max_s=s.max_s, save_every=s.save_every,
                  seed=seed, device=device)
    stage("base")
    base = root / "base"
    darc = root / "darc"
    # Once DARC has started from the base, the base is final: a rerun after a base cut short by the
    # time budget goes on with DARC rather than training a base DARC no longer starts from.
    if resume_from is None and latest_step_dir(darc) is None:
        settings = TrainSettings(steps=s.base_steps, mode="stage", lr=RANDOM_BASE_LR, schedule="cosine",
                                 warmup_steps=max(1, s.base_steps // 20), **common)
        train(cache, base, None if latest_step_dir(base) else str(codec_dir), settings,
              deadline=_deadline(t_start, s, "base"))
    if stop("base"):
        return RecipeResult(root, {}, None, times)

    stage("darc")
    start = codec_dir if resume_from is not None else latest_step_dir(base)
    if start is None:
        raise InputError(f"the base model has no checkpoint in {base}")
    settings = TrainSettings(steps=s.darc_steps, mode="jump", lr=DARC_LR, schedule="cosine",
                             rhythm_dropout=DARC_RHYTHM_DROPOUT, warmup_steps=max(1, s.darc_steps // 20), **common)
    result = train(cache, darc, None if latest_step_dir(darc) else str(start), settings,
                   deadline=_deadline(t_start, s, "darc"))
    if result["step"] < s.darc_steps:
        log.warning("DARC stopped at step %d of %d (time budget): run the same command again to continue",
                    result["step"], s.darc_steps)
    if stop("darc"):
        return RecipeResult(root, {}, None, times)

    stage("decoder")
    model = _model_with_decoder(corpus, root, latest_step_dir(darc), codec_dir, s, seed, device,
                                _deadline(t_start, s, "decoder"))
    if stop("decoder"):
        return RecipeResult(root, {}, None, times)

    stage("guidance")
    from darc_bridge.train.guidance import choose_guidance, with_guidance

    valid_set = root / "valid-set"
    write_gate_set(valid_set, samples, cases=s.valid_cases, duration=s.gate_s, seed=seed + 7000, split="tune")
    guidance = choose_guidance(valid_set, root / "guidance", model, seed=seed)
    with_guidance(model, guidance["cfg_coef"])
    if stop("guidance"):
        return RecipeResult(root, {}, None, times)

    stage("gate")
    from darc_bridge.train.gate import run_gate

    gate_set = root / "gate-set"
    write_gate_set(gate_set, samples, cases=s.gate_cases, duration=s.gate_s, seed=seed + 5000)
    gate = run_gate(gate_set, root / "gate", str(model), seed=seed)
    if stop("gate"):
        return RecipeResult(root, gate, None, times)

    stage("ship")
    from darc_bridge.model.shipped import shipped_dir

    shipped = kept = None
    target = Path(ship_to) if ship_to else shipped_dir()
    command = command or recipe_command(preset, s.name, seed)
    recipe = {"command": command, "preset": preset, "scale": asdict(s), "data_seed": seed, "pack": str(pack_path),
              "trained_steps": result["step"], "stage": "darc", "gate_passed": bool(gate["passed"]),
              "runs": _runs(resume_from, command, result["step"], decoder_steps_done(root / "decoder"))}
    # The gate is the bar: a model that passes it ships even when the time budget cut DARC short
    # (the CPU scale's case); `trained_steps` records how far it got, and a rerun goes on training.
    if gate["passed"]:
        shipped = ship(model, target, root / "gate", recipe)
    else:
        kept = keep_unshipped(root, wip_dir(target), recipe)  # WORK/model: the gated checkpoint
        log.warning("not shipped: the gate failed; the checkpoint is kept in %s (`--resume-from %s` continues it)",
                    kept, kept)
    stop("ship")
    base_state = latest_step_dir(base)
    summary = {"gate": gate, "shipped": str(shipped) if shipped else None, "stage_seconds": times,
               "codec": {k: load_checkpoint(codec_dir).manifest.get(k) for k in ("source", "codec_high_band_retention")},
               "base_history": _history(base_state), "darc_history": result["history"], "scale": asdict(s),
               "guidance": {k: guidance[k] for k in ("cfg_coef", "scores", "figures", "cases")},
               "seed": seed, "kept": str(kept) if kept else None}
    (root / "recipe.json").write_text(json.dumps(summary, indent=1, default=str))
    return RecipeResult(root, gate, shipped, times, kept)


def wip_dir(shipped: Path) -> Path:
    """Where an unshipped checkpoint goes beside the shipped folder `shipped` (models/darc-mini-wip)."""
    return shipped.with_name(shipped.name + WIP_SUFFIX)


def _runs(resume_from: str | Path | None, command: str, darc_steps: int, decoder_steps: int) -> list[dict]:
    """The runs a checkpoint was trained in: those of the model it resumed from, then this one."""
    before: list[dict] = []
    if resume_from is not None and (Path(resume_from) / "recipe.json").is_file():
        before = list(json.loads((Path(resume_from) / "recipe.json").read_text()).get("runs", []))
    return before + [{"command": command, "resumed_from": str(resume_from) if resume_from else None,
                      "darc_steps": darc_steps, "decoder_steps": decoder_steps,
                      "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}]


def keep_unshipped(work: Path, out: Path, recipe: dict[str, Any]) -> Path | None:
    """Write a work folder's best checkpoint the way `ship` writes a model, for a run the gate did not
    pass or that stopped before it (a GPU loan's time limit): WORK/model when it holds the latest DARC
    state, else the latest DARC, else the latest base checkpoint. None when nothing was saved."""
    import torch

    from darc_bridge.train.loop import STATE_FILE, latest_step_dir

    stage, latest = "darc", latest_step_dir(work / "darc")
    if latest is None:
        stage, latest = "base", latest_step_dir(work / "base")
    if latest is None:
        return None
    step = int(torch.load(latest / STATE_FILE, weights_only=False).get("step", -1))
    checkpoint = latest
    model = work / "model"  # the DARC LM with the decoder stage's codec, when made from this DARC state
    if stage == "darc" and _done(model) and json.loads((model / "darc.json").read_text()).get("darc_state") == str(latest):
        checkpoint = model
    recipe = {**recipe, "trained_steps": step, "stage": stage, "gate_passed": False, "checkpoint": str(checkpoint)}
    return ship(checkpoint, out, work / "gate", recipe)


def decoder_steps_done(path: Path) -> int:
    """Decoder-only steps the codec in checkpoint `path` has had (0: none, or no checkpoint)."""
    if not _done(path):
        return 0
    return int(json.loads((path / "darc.json").read_text()).get("decoder_steps", 0))


def _model_with_decoder(corpus: Path, root: Path, darc_state: Path | None, codec_dir: Path, s: Scale, seed: int,
                        device: str, deadline: float | None) -> Path:
    """Train the decoder up to `s.decoder_steps` (resuming WORK/decoder), then write WORK/model: the
    DARC LM of `darc_state` with that codec. The tokens are the same, so the LM needs nothing else."""
    from darc_bridge.model.checkpoint import load_checkpoint, save_checkpoint, weight_origin
    from darc_bridge.train.codec import CodecTrainSettings, train_codec

    if darc_state is None:
        raise InputError(f"the DARC stage has no checkpoint in {root / 'darc'}")
    decoder = root / "decoder"
    done = decoder_steps_done(decoder)
    if done < s.decoder_steps:
        settings = CodecTrainSettings(steps=s.decoder_steps - done, batch_size=s.decoder_batch,
                                      segment_s=s.decoder_segment_s, lr=DECODER_LR, seed=seed + done,
                                      decoder_only=True, device=device)
        train_codec(corpus, decoder, settings, init=str(decoder if done else codec_dir), deadline=deadline)
        done = decoder_steps_done(decoder)
    model = root / "model"
    darc_source = json.loads((darc_state / "darc.json").read_text())["source"]
    made_of = {"darc_state": str(darc_state), "darc_source": darc_source, "decoder_steps": done}
    if _done(model) and all(json.loads((model / "darc.json").read_text()).get(k) == v for k, v in made_of.items()):
        return model  # already this LM with this decoder
    ckpt = load_checkpoint(darc_state)
    if done:
        polished = load_checkpoint(decoder)
        ckpt.codec, ckpt.codec_source = polished.codec, weight_origin(polished, "codec")
    save_checkpoint(ckpt, model, overwrite=True, extra=made_of)
    return model


def _history(step_dir: Path | None) -> list:
    """[step, loss] of a training run, from its latest train state (empty when there is none)."""
    import torch

    from darc_bridge.train.loop import STATE_FILE

    if step_dir is None or not (step_dir / STATE_FILE).is_file():
        return []
    return list(torch.load(step_dir / STATE_FILE, weights_only=False).get("history", []))


def _cache(corpus: Path, cache: Path, ckpt, s: Scale, seed: int, device: str) -> None:
    from darc_bridge.data.segments import SegmentSettings
    from darc_bridge.train.cache import CacheSettings, build_cache, is_cache, read_manifest

    if is_cache(cache) and read_manifest(cache).get("complete") and \
            len(read_manifest(cache)["songs_done"]) >= len(list(corpus.glob("song_*"))):
        return
    import os

    segments = SegmentSettings(target_s=s.segment_s, context_min_s=s.min_s, context_max_s=s.max_s)
    workers = s.cache_workers or max(1, (os.cpu_count() or 2) - 1)
    from darc_bridge.train.loop import resolve_device

    build_cache(corpus, cache, ckpt.codec.to(resolve_device(device)), ckpt.rhythm_settings, segments,
                CacheSettings(variants=s.variants, seed=seed, workers=workers), beat=ckpt.config.beat_conditioning)



def ship(checkpoint: Path, out: Path, gate_dir: Path, recipe: dict[str, Any]) -> Path:
    """fp16 weights, the gate report and the recipe into `out` (written beside it, then renamed)."""
    import torch

    from darc_bridge.model.checkpoint import load_checkpoint, save_checkpoint

    ckpt = load_checkpoint(checkpoint)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    for name in ("gate.json", "gate.md"):
        if (gate_dir / name).is_file():
            shutil.copy2(gate_dir / name, tmp / name)
    (tmp / "recipe.json").write_text(json.dumps(recipe, indent=1))
    ckpt.source = f"recipe:{recipe['preset']}:{recipe['scale']['name']}"
    save_checkpoint(ckpt, tmp, overwrite=True, dtype=torch.float16,
                    extra={"recipe_command": recipe["command"], "data_seed": recipe["data_seed"]})
    old = out.parent / f".{out.name}.old"
    if out.exists():
        shutil.rmtree(old, ignore_errors=True)
        out.rename(old)
    tmp.rename(out)
    shutil.rmtree(old, ignore_errors=True)
    log.info("shipped %s", out)
    return out


def recipe_command(preset: str, scale: str, seed: int) -> str:
    return f"darc-bridge train recipe --preset {preset} --scale {scale} --seed {seed}"


def run_recipe_cli(args) -> int:
    from darc_bridge.model.presets import preset as preset_config

    preset_config(args.preset)
    if args.scale not in SCALES:
        raise InputError(f"unknown scale {args.scale!r}; scales: {', '.join(SCALES)}")
    from dataclasses import replace

    scale = SCALES[args.scale]
    if getattr(args, "budget_min", None) is not None:
        if not args.budget_min > 0:
            raise InputError(f"--budget-min must be a positive number of minutes, got {args.budget_min}")
        scale = replace(scale, budget_s=60.0 * args.budget_min)
    for name, least in (("base_steps", 1), ("darc_steps", 1), ("decoder_steps", 0)):
        value = getattr(args, name, None)
        if value is not None:
            if value < least:
                raise InputError(f"--{name.replace('_', '-')} must be at least {least}, got {value}")
            scale = replace(scale, **{name: value})
    work = Path(args.out or f"build/recipe-{args.preset}-{args.scale}")
    command = "darc-bridge " + " ".join(shlex.quote(a) for a in sys.argv[1:]) if sys.argv[1:2] == ["train"] else None
    r = run_recipe(work, args.preset, scale, seed=args.seed, pack=args.pack, resume_from=args.resume_from,
                   ship_to=args.ship, device=args.device,
                   command=command or recipe_command(args.preset, args.scale, args.seed))
    from darc_bridge.train.gate import _cell

    g = r.gate
    print(f"gate ({g.get('cases', 0)} cases): onset F1 {_cell(g['onset_f1'])}, kick F1 {_cell(g['kick_f1'])}, snare "
          f"F1 {_cell(g['snare_f1'])}, on-off gap {_cell(g['gap'])}, hat F1 {_cell(g['hat_f1'])}, grid alignment "
          f"{_cell(g['grid_alignment'])}: {'passed' if g['passed'] else 'FAILED'}; report {r.work / 'gate' / 'gate.md'}")
    print(f"model shipped to {r.shipped}" if r.shipped else
          f"model not shipped: the gate failed (see the report); kept in {r.kept}: --resume-from {r.kept} continues it")
    return 0
