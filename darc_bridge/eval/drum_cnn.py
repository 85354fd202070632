"""A small CNN for the drum transcriber, tried against its MLP (eval/drum_model.py): same input, same
training material, labels, frames and decision; only the model differs. Off by default.

Why: on kits it has not heard, the transcriber's MLP (one hidden layer over a flattened vector of 9
context frames x 120 per-frame features) hears a kick+hat as a snare and misses snares under hats;
more recorded kits, procedural kits, spectral tilt removal and a joint head did not generalise
(docs/evaluation.md). A fully connected layer over fixed mel bands can memorise where the tune
kits' pieces sit; a convolution along frequency (and time) answers the same way to a pattern moved
by a few bands, so a kit tuned higher or brighter looks like one heard (the classic argument of
CNN drum transcription: Vogl et al., Southall et al.).

Input: drum_model.stacked(stem_features(...)) frame vectors, read as (3 channels: above-background
log-mel, its SuperFlux rise, plain log-mel) x (9 context offsets) x (40 mel bands) (cnn_input),
standardised per channel (one mean and scale per channel, not per band, so the standardisation keeps
the frequency shift the convolutions are made for). Network (CnnSpec): 3x3 convolutions with ReLU,
each followed by pooling over 2 bands (none in time: 9 offsets only), a small dense ReLU layer and
three sigmoids. Training: BCE with Adam, fixed seed, deterministic on one CPU thread, early stopping
on a tenth of the training frames held back (never the left-out fold), and the output biases
corrected for the subsampled hit-free frames as drum_model.fit does (NEGATIVE_SHARE). The decision
is drum_model.pick_hits with its kick+hat rule, so `drum_scoring.score_stems`, `transcribe(model=...)`
and `held_out_report` take a CnnModel as they take a DrumModel (it has `predict` and `tilt`).

CLI: `python -m darc_bridge.eval.drum_cnn cv` (leave-one-source-out over the 11 tune sources, through
drum_scoring.cross_validate's own data path; `--folds` for some of them, `--out-json` to keep them),
`... train --out FILE` (all tune material; safetensors), `... heldout --set DIR --model FILE` (the
gate's reference drums, committed MLP and CNN in one run). Weights: none shipped.

Verdict (docs/evaluation.md, "A small CNN over the same input"): on the 11 folds the CNN lowered
snare F1 (0.762 -> 0.695, -0.067 +- 0.028 per fold, worse on 10 of 11; 0.696, -0.066 +- 0.021 when
allowed 24 epochs), trading snare recall for precision (snares missed under a cymbal 21 % -> 35 %)
for a better hat (+0.037); so it was not measured on the held-out kits, and the transcriber keeps
its MLP. A fold's fit: about 2.5 minutes on one core (12 epochs of 188k frames).
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from darc_bridge.eval import drum_material, drum_model, drum_scoring
from darc_bridge.rhythm import onset_model

log = logging.getLogger(__name__)

FORMAT = "darc-bridge drum cnn 1"
N_CHANNELS = 3  # stem_features: above-background log-mel, its SuperFlux rise, plain log-mel
VAL_SHARE = 0.1  # training frames held back for early stopping (as MLPClassifier's validation_fraction)
BATCH = 256


@dataclass(frozen=True)
class CnnSpec:
    """The network and its fit."""

    channels: tuple[int, ...] = (8, 16)  # per 3x3 convolution, each followed by pooling over 2 bands
    dense: int = 32
    max_epochs: int = 12
    patience: int = 2  # epochs without a better held-back loss before stopping
    lr: float = 1e-3
    weight_decay: float = 1e-4
    seed: int = 1


def cnn_input(frames: np.ndarray, context: tuple[int, ...] = drum_model.CONTEXT) -> np.ndarray:
    """(N x features) drum_model.stacked frame vectors -> (N, channels, context, bands): stacked puts
    the (3 x bands) feature column of each context offset side by side, offset-major."""
    n_bands = frames.shape[1] // (N_CHANNELS * len(context))
    if frames.shape[1] != N_CHANNELS * len(context) * n_bands:
        raise ValueError(f"{frames.shape[1]} features are not {N_CHANNELS} channels x {len(context)} offsets x bands")
    return frames.reshape(-1, len(context), N_CHANNELS, n_bands).transpose(0, 2, 1, 3)


def _network(spec: CnnSpec, n_context: int, n_bands: int):
    import torch.nn as nn

    layers: list = []
    c_in, t, f = N_CHANNELS, n_context, n_bands
    for c in spec.channels:
        layers += [nn.Conv2d(c_in, c, 3, padding=(0, 1)), nn.ReLU(), nn.MaxPool2d((1, 2))]
        c_in, t, f = c, t - 2, f // 2
    if t < 1 or f < 1:
        raise ValueError(f"{len(spec.channels)} convolutions do not fit {n_context} offsets x {n_bands} bands")
    layers += [nn.Flatten(), nn.Linear(c_in * t * f, spec.dense), nn.ReLU(), nn.Linear(spec.dense, 3)]
    return nn.Sequential(*layers)


@dataclass(frozen=True)
class CnnModel:
    """A fitted network (torch, CPU) and its input: per-channel standardisation, context, tilt."""

    net: object  # torch.nn.Sequential built by _network(spec, ...)
    mean: np.ndarray  # (channels,)
    scale: np.ndarray
    spec: CnnSpec
    n_bands: int = onset_model.N_MELS
    context: tuple[int, ...] = drum_model.CONTEXT
    tilt: bool = False  # stem_features(tilt=...) it was fitted on
    head: str = "sigmoid"  # as DrumModel.head: three sigmoids, so pick_hits applies its kick+hat rule

    def logits(self, frames: np.ndarray) -> np.ndarray:
        """(N x features) stacked frame vectors -> (N x 3) logits."""
        import torch

        x = (cnn_input(frames, self.context) - self.mean[None, :, None, None]) / self.scale[None, :, None, None]
        with torch.no_grad():
            return self.net(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))).numpy()

    def predict(self, base: np.ndarray, chunk: int = 4096) -> np.ndarray:
        """(features, frames) drum_model.stem_features -> (frames x 3) kick, snare, hat probabilities
        (the context stack built a chunk of frames at a time)."""
        from scipy.special import expit

        n, lo, hi = base.shape[1], -min(self.context), max(self.context)
        out = []
        for start in range(0, n, chunk):
            stop = min(n, start + chunk)
            piece = base[:, max(0, start - lo): min(n, stop + hi)]
            pad = (lo - (start - max(0, start - lo)), hi - (min(n, stop + hi) - stop))
            piece = np.pad(piece, ((0, 0), pad), mode="edge")  # the edges repeated, as stacked does
            out.append(drum_model.stacked(piece, self.context)[lo: lo + stop - start])
        return expit(self.logits(np.concatenate(out))).astype(np.float32)

    def save(self, path: Path) -> Path:
        """Weights and meta as safetensors, written to a temporary name and renamed."""
        from safetensors.torch import save_file

        meta = {"format": FORMAT, "hop": onset_model.HOP, "n_mels": self.n_bands, "context": list(self.context),
                "tilt": self.tilt, "channels": list(self.spec.channels), "dense": self.spec.dense}
        tensors = {k: v.detach().contiguous() for k, v in self.net.state_dict().items()}
        import torch

        tensors |= {"mean": torch.from_numpy(self.mean.astype(np.float32)),
                    "scale": torch.from_numpy(self.scale.astype(np.float32))}
        tmp = path.with_name(path.name + ".tmp")
        save_file(tensors, str(tmp), metadata={"meta": json.dumps(meta)})
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: Path) -> CnnModel:
        from safetensors import safe_open

        from darc_bridge.errors import InputError

        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = json.loads((fh.metadata() or {}).get("meta", "{}"))
                tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        except FileNotFoundError:
            raise InputError(f"{path}: no such drum CNN file") from None
        except Exception as exc:  # safetensors' own errors, a bad header, bad JSON
            raise InputError(f"{path}: not a drum CNN file ({exc})") from None
        if meta.get("format") != FORMAT or meta.get("hop") != onset_model.HOP or meta.get("n_mels") != onset_model.N_MELS:
            raise InputError(f"{path}: drum CNN file does not match this version's features")
        spec = CnnSpec(channels=tuple(int(c) for c in meta["channels"]), dense=int(meta["dense"]))
        context = tuple(int(c) for c in meta["context"])
        net = _network(spec, len(context), int(meta["n_mels"]))
        mean, scale = tensors.pop("mean").numpy(), tensors.pop("scale").numpy()
        try:
            net.load_state_dict(tensors)
        except RuntimeError as exc:
            raise InputError(f"{path}: drum CNN weights do not match its meta ({exc})") from None
        net.eval()
        return cls(net, mean, scale, spec, int(meta["n_mels"]), context, bool(meta.get("tilt", False)))


def fit_cnn(x: np.ndarray, y: np.ndarray, spec: CnnSpec = CnnSpec(), context: tuple[int, ...] = drum_model.CONTEXT,
            tilt: bool = False) -> CnnModel:
    """A CNN on (N x features) stacked frames and (N x 3) 0/1 labels, deterministic for spec.seed on
    one CPU thread: Adam on BCE, early stopping on VAL_SHARE of the frames (the best epoch's weights
    kept), output biases corrected for the NEGATIVE_SHARE of hit-free frames kept."""
    import torch

    torch.manual_seed(spec.seed)
    torch.use_deterministic_algorithms(True)
    t0 = time.perf_counter()
    n_bands = x.shape[1] // (N_CHANNELS * len(context))
    rng = np.random.default_rng([spec.seed, 23])
    order = rng.permutation(x.shape[0])
    n_val = max(1, int(round(VAL_SHARE * x.shape[0])))
    val, tr = order[:n_val], order[n_val:]
    # per-channel statistics over the training frames (a subsample pins them)
    sample = cnn_input(x[tr[:: max(1, tr.size // 20000)]], context)
    mean = sample.mean(axis=(0, 2, 3)).astype(np.float32)
    scale = (sample.std(axis=(0, 2, 3)) + 1e-3).astype(np.float32)
    net = _network(spec, len(context), n_bands)
    model = CnnModel(net, mean, scale, spec, n_bands, tuple(context), tilt)

    def batch(idx: np.ndarray):
        xb = (cnn_input(x[idx], context) - mean[None, :, None, None]) / scale[None, :, None, None]
        return torch.from_numpy(np.ascontiguousarray(xb, dtype=np.float32)), torch.from_numpy(y[idx].astype(np.float32))

    opt = torch.optim.Adam(net.parameters(), lr=spec.lr, weight_decay=spec.weight_decay)
    loss_fn = torch.nn.BCEWithLogitsLoss()
    best, best_state, waited, epoch = np.inf, None, 0, 0
    for epoch in range(1, spec.max_epochs + 1):
        net.train()
        for start in range(0, tr.size, BATCH):
            xb, yb = batch(tr[start: start + BATCH])
            opt.zero_grad()
            loss = loss_fn(net(xb), yb)
            loss.backward()
            opt.step()
        rng.shuffle(tr)
        net.eval()
        with torch.no_grad():
            total = sum(float(loss_fn(net(xb), yb)) * len(idx) for idx in np.array_split(val, max(1, val.size // 4096))
                        for xb, yb in [batch(idx)])
        val_loss = total / val.size
        log.info("epoch %d: held-back loss %.4f (%.0f s)", epoch, val_loss, time.perf_counter() - t0)
        if val_loss < best - 1e-4:
            best, waited = val_loss, 0
            best_state = {k: v.clone() for k, v in net.state_dict().items()}
        else:
            waited += 1
            if waited >= spec.patience:
                break
    net.load_state_dict(best_state)
    with torch.no_grad():
        net[-1].bias += float(np.log(drum_model.NEGATIVE_SHARE))
    net.eval()
    log.info("CNN fitted on %d frames in %d epochs, %.0f s", x.shape[0], epoch, time.perf_counter() - t0)
    return model


def fitter(spec: CnnSpec):
    """drum_scoring.cross_validate's `fitter` for a CNN of `spec` (the recipe's seed, context, tilt)."""

    def fit(x: np.ndarray, y: np.ndarray, recipe: drum_model.Recipe) -> CnnModel:
        return fit_cnn(x, y, replace(spec, seed=recipe.seed), recipe.context, recipe.tilt)

    return fit


def train(recipe: drum_model.Recipe | None = None, spec: CnnSpec = CnnSpec(), out: Path | None = None,
          sources: list | None = None) -> CnnModel:
    """Fit on all tune material (drum_model.train's) and write the weights to `out` if given."""
    from darc_bridge.data.kit_pack import check_training_kits

    recipe = recipe or drum_model.Recipe()
    t0 = time.perf_counter()
    sources = drum_material.tune_sources(sources=recipe.sources) if sources is None else sources
    check_training_kits([k for k in sources if not isinstance(k, str)])
    x, y = drum_material.training_frames(recipe, sources)
    log.info("%d training frames (%.0f s to render)", x.shape[0], time.perf_counter() - t0)
    model = fit_cnn(x, y, replace(spec, seed=recipe.seed), recipe.context, recipe.tilt)
    if out is not None:
        model.save(out)
        log.info("drum CNN written to %s after %.0f s", out, time.perf_counter() - t0)
    return model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="a small CNN for the drum transcriber (tried against its MLP)")
    parser.add_argument("command", choices=("train", "cv", "heldout"),
                        help="cv: leave-one-source-out over the tune sources; train: fit on all of them; "
                             "heldout: the gate's reference drums, committed MLP and this CNN (once, at the end)")
    parser.add_argument("--out", type=Path, default=None, help="train: the safetensors file to write")
    parser.add_argument("--model", type=Path, default=None, help="heldout: the CNN file (train --out)")
    parser.add_argument("--set", type=Path, default=Path("/tmp/darc-gate-set"), help="heldout: gate set folder")
    parser.add_argument("--folds", nargs="*", default=(), help="cv: leave out only these tune sources")
    parser.add_argument("--out-json", type=Path, default=None, help="cv: also write the rows to this file")
    parser.add_argument("--channels", type=int, nargs="+", default=list(CnnSpec.channels))
    parser.add_argument("--dense", type=int, default=CnnSpec.dense)
    parser.add_argument("--epochs", type=int, default=CnnSpec.max_epochs)
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads")
    parser.add_argument("--seed", type=int, default=drum_model.Recipe.seed)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    import torch

    from darc_bridge.errors import InputError

    torch.set_num_threads(args.threads)
    spec = CnnSpec(channels=tuple(args.channels), dense=args.dense, max_epochs=args.epochs, seed=args.seed)
    recipe = drum_model.Recipe(seed=args.seed, members=1)  # one CNN, against one MLP fit
    try:
        if args.command == "train":
            if args.out is None:
                raise InputError("train: give --out FILE (no CNN weights are shipped)")
            train(recipe, spec, args.out)
        elif args.command == "heldout":
            if args.model is None:
                raise InputError("heldout: give --model FILE (a train --out file)")
            cnn = CnnModel.load(args.model)
            print(json.dumps(drum_scoring.held_out_report(args.set, candidates={f"drum cnn {args.model.name}": cnn}),
                             indent=1))
        else:
            out = drum_scoring.cross_validate(recipe, folds=tuple(args.folds), fitter=fitter(spec))
            text = json.dumps(out, indent=1)
            if args.out_json is not None:
                tmp = args.out_json.with_name(args.out_json.name + ".tmp")
                tmp.write_text(text)
                tmp.replace(args.out_json)
            print(text)
    except InputError as exc:
        parser.exit(2, f"error: {exc}\n")


if __name__ == "__main__":
    main()
