"""`train codec`: EnCodec trains from scratch on a folder of audio and lands in a loadable checkpoint."""

from __future__ import annotations

import pytest
import torch

from darc_bridge.data.synth_corpus import write_corpus
from darc_bridge.errors import InputError
from darc_bridge.model.checkpoint import load_checkpoint, random_checkpoint
from darc_bridge.train.__main__ import main as train_main
from darc_bridge.train.codec import CodecTrainSettings, train_codec

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("torch_one_thread")]

def test_codec_loss_goes_down_and_checkpoint_holds_the_new_codec(tmp_path, capsys):
    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    rc = train_main(["codec", "--data", str(tmp_path / "corpus"), "--out", str(tmp_path / "ckpt"), "--steps", "8",
                     "--batch-size", "2", "--segment-s", "0.25", "--lr", "1e-3"])
    assert rc == 0 and "codec trained" in capsys.readouterr().out
    trained = load_checkpoint(tmp_path / "ckpt")
    assert trained.source == "codec-trained:8steps"
    before = random_checkpoint("tiny", seed=0).codec.state_dict()
    after = trained.codec.state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    result = train_codec(tmp_path / "corpus", tmp_path / "again", CodecTrainSettings(steps=6, batch_size=2,
                         segment_s=0.25, lr=1e-3), init=str(tmp_path / "ckpt"))
    losses = result["losses"]
    assert min(losses[-3:]) < losses[0]
    assert load_checkpoint(tmp_path / "again").source == "codec-trained:14steps"  # 8 before, 6 now


def test_snapshots_save_the_codec_mid_run_beside_the_output_without_marking_it_done(tmp_path):
    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    settings = CodecTrainSettings(steps=4, batch_size=2, segment_s=0.25, snapshot_every=3, kmeans_batch=4)
    train_codec(tmp_path / "corpus", tmp_path / "codec", settings, preset="tiny")
    snap, final = load_checkpoint(tmp_path / "codec.snapshot"), load_checkpoint(tmp_path / "codec")
    assert snap.source == "codec-snapshot:3steps" and final.source == "codec-trained:4steps"
    s, f = snap.codec.state_dict(), final.codec.state_dict()
    assert any(not torch.equal(s[k], f[k]) for k in s)  # step 3's weights, not the final ones


def test_a_snapshot_of_a_continued_codec_counts_its_earlier_steps(tmp_path):
    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    settings = CodecTrainSettings(steps=4, batch_size=2, segment_s=0.25, snapshot_every=3, kmeans_batch=4)
    train_codec(tmp_path / "corpus", tmp_path / "codec", settings, preset="tiny")
    train_codec(tmp_path / "corpus", tmp_path / "more", settings, init=str(tmp_path / "codec.snapshot"))
    assert load_checkpoint(tmp_path / "more.snapshot").source == "codec-snapshot:6steps"  # 3 before, 3 now
    assert load_checkpoint(tmp_path / "more").source == "codec-trained:7steps"


def test_training_the_whole_codec_of_a_trained_model_marks_its_lm_as_untrained(tmp_path, caplog):
    from darc_bridge.model.checkpoint import is_random, save_checkpoint, weight_origin

    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    model = random_checkpoint("tiny", seed=3)
    model.source, model.codec_source, model.lm_source = "train:5steps", "codec-trained:9steps", "train:5steps"
    save_checkpoint(model, tmp_path / "model", overwrite=True)
    settings = CodecTrainSettings(steps=3, batch_size=2, segment_s=0.25, snapshot_every=2)
    with caplog.at_level("WARNING", logger="darc_bridge.train.codec"):
        train_codec(tmp_path / "corpus", tmp_path / "whole", settings, init=str(tmp_path / "model"))
    assert "no longer fits" in caplog.text
    for out in ("whole", "whole.snapshot"):  # every token changed: the old LM must not pass for a model
        ckpt = load_checkpoint(tmp_path / out)
        assert is_random(ckpt, "lm") and "train:5steps" in weight_origin(ckpt, "lm"), out
    assert load_checkpoint(tmp_path / "whole").source == "codec-trained:12steps"
    decoder = CodecTrainSettings(steps=2, batch_size=2, segment_s=0.25, snapshot_every=1, decoder_only=True)
    train_codec(tmp_path / "corpus", tmp_path / "polished", decoder, init=str(tmp_path / "model"))
    polished, snap = load_checkpoint(tmp_path / "polished"), load_checkpoint(tmp_path / "polished.snapshot")
    assert weight_origin(polished, "lm") == weight_origin(snap, "lm") == "train:5steps"  # tokens kept: LM valid
    assert polished.source == "codec-trained:9steps+decoder:2steps"
    assert snap.source == "codec-trained:9steps+decoder-snapshot:2steps"


def test_no_audio_is_a_clear_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no audio files"):
        train_codec(tmp_path / "empty", tmp_path / "ckpt", CodecTrainSettings(steps=1))


def test_dead_codes_restart_on_batch_latents_and_survive_the_ema_update():
    from darc_bridge.train.codec import DeadCodeRestarter

    codec = random_checkpoint("tiny", seed=0).codec.train()
    restarter = DeadCodeRestarter(codec)
    x = torch.randn(2, 1, 8000) * 0.3
    with torch.no_grad():
        codec(x)
    book = codec.quantizer.vq.layers[0]._codebook
    assert float(book.embed.norm(dim=-1).max()) > 100  # audiocraft's EMA blew the unused codes up
    assert restarter.restart(torch.Generator().manual_seed(0)) > 0
    latents = restarter.latents[0]
    nearest = torch.cdist(book.embed, latents).min(dim=1).values
    assert float(nearest.max()) < 0.1 * float(latents.norm(dim=-1).mean())  # every code sits on a latent
    with torch.no_grad():
        codec(x)  # the EMA update keeps them (embed_avg and cluster_size were set consistently)
    assert float(book.embed.norm(dim=-1).max()) < 10 * float(latents.norm(dim=-1).max())


def test_mini_codec_keeps_the_hi_hats_that_tiny_loses(tmp_path):
    """Both trained alike, briefly, on kick + 16th hats: mini's reconstruction keeps the band above
    5 kHz (hats, cymbals), tiny's (4 filters at the full rate) keeps far less of it."""
    import numpy as np

    from darc_bridge.audio.io import write_wav_atomic
    from darc_bridge.data.voices import render_onsets
    from darc_bridge.rhythm.features import Onset
    from darc_bridge.train.codec import high_band_retention

    rng = np.random.default_rng(0)
    hats = render_onsets([Onset(t, 2, 0.8) for t in np.arange(0, 8, 0.125)], 8.0, 32000, "acoustic", rng)
    kick = render_onsets([Onset(t, 0, 0.9) for t in np.arange(0, 8, 0.5)], 8.0, 32000, "acoustic", rng)
    x = (hats + kick).astype(np.float32)
    (tmp_path / "audio").mkdir()
    write_wav_atomic(tmp_path / "audio" / "drums.wav", x[None], 32000)
    # 100 steps: at 60 the outcome depended on the machine (this session's fresh box: tiny 0.11,
    # mini 0.07; at 100 steps tiny 0.10, mini 0.30)
    s = CodecTrainSettings(steps=100, batch_size=4, segment_s=0.25, lr=1e-3)
    kept = {}
    for name in ("tiny", "mini"):
        result = train_codec(tmp_path / "audio", tmp_path / name, s, preset=name)
        kept[name] = high_band_retention(load_checkpoint(tmp_path / name).codec, x, 32000)
        assert result["high_band_retention"] > 0
    assert kept["mini"] > 0.15 and kept["mini"] > 1.5 * kept["tiny"], kept


def test_decoder_only_training_keeps_every_token_and_the_lm_so_the_model_stays_valid(tmp_path, capsys):
    import numpy as np

    from darc_bridge.audio.io import Audio
    from darc_bridge.model.checkpoint import save_checkpoint, weight_origin
    from darc_bridge.model.codec import encode_audio

    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    save_checkpoint(random_checkpoint("tiny", seed=3), tmp_path / "model", overwrite=True)
    rc = train_main(["codec", "--data", str(tmp_path / "corpus"), "--init", str(tmp_path / "model"), "--out",
                     str(tmp_path / "polished"), "--decoder-only", "--steps", "10", "--batch-size", "2",
                     "--segment-s", "0.25", "--lr", "3e-3", "--snapshot-every", "5"])
    assert rc == 0 and "codec trained" in capsys.readouterr().out
    before, after = load_checkpoint(tmp_path / "model"), load_checkpoint(tmp_path / "polished")
    assert after.source.endswith("+decoder:10steps")
    b, a = before.codec.state_dict(), after.codec.state_dict()
    changed = {k for k in b if not torch.equal(b[k], a[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)  # encoder and codebooks untouched
    assert all(torch.equal(t, after.model.state_dict()[k]) for k, t in before.model.state_dict().items())
    x = np.random.default_rng(0).standard_normal((1, 16000)).astype(np.float32) * 0.3
    assert torch.equal(encode_audio(before.codec, Audio(x, 32000)), encode_audio(after.codec, Audio(x, 32000)))
    snap = load_checkpoint(tmp_path / "polished.snapshot")  # a usable model: the LM of --init rides along
    assert all(torch.equal(t, snap.model.state_dict()[k]) for k, t in before.model.state_dict().items())
    assert weight_origin(snap, "lm") == weight_origin(after, "lm") == weight_origin(before, "lm") == "random"


def test_decoder_only_training_without_a_model_to_keep_is_a_clear_error(tmp_path):
    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    with pytest.raises(InputError, match="needs --init"):
        train_codec(tmp_path / "corpus", tmp_path / "ckpt", CodecTrainSettings(steps=1, decoder_only=True))


def test_adversarial_decoder_only_steps_keep_every_token_and_leave_the_discriminator_out(tmp_path, capsys):
    import json

    import numpy as np
    from safetensors import safe_open

    from darc_bridge.audio.io import Audio
    from darc_bridge.model.checkpoint import save_checkpoint
    from darc_bridge.model.codec import encode_audio

    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    save_checkpoint(random_checkpoint("tiny", seed=3), tmp_path / "model", overwrite=True)
    rc = train_main(["codec", "--data", str(tmp_path / "corpus"), "--init", str(tmp_path / "model"), "--out",
                     str(tmp_path / "sharp"), "--decoder-only", "--steps", "3", "--batch-size", "2",
                     "--segment-s", "0.25", "--lr", "3e-3", "--adversarial-weight", "1", "--feature-weight", "2"])
    assert rc == 0 and "codec trained" in capsys.readouterr().out
    before, after = load_checkpoint(tmp_path / "model"), load_checkpoint(tmp_path / "sharp")
    b, a = before.codec.state_dict(), after.codec.state_dict()
    assert set(a) == set(b)  # the same codec; nothing of the discriminator rides along
    changed = {k for k in b if not torch.equal(b[k], a[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)
    x = np.random.default_rng(1).standard_normal((1, 16000)).astype(np.float32) * 0.3
    assert torch.equal(encode_audio(before.codec, Audio(x, 32000)), encode_audio(after.codec, Audio(x, 32000)))
    with safe_open(str(tmp_path / "sharp" / "codec.safetensors"), "pt") as f:
        assert not any("adversary" in k or "discriminator" in k for k in f.keys())
    manifest = json.loads((tmp_path / "sharp" / "darc.json").read_text())
    assert manifest["codec_adversarial"]["adversarial_weight"] == 1.0
    assert manifest["codec_adversarial"]["feature_weight"] == 2.0


def test_the_discriminator_trains_beside_the_codec_and_its_losses_are_reported(tmp_path):
    from darc_bridge.model.checkpoint import save_checkpoint
    from darc_bridge.train.codec import make_adversary

    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    save_checkpoint(random_checkpoint("tiny", seed=3), tmp_path / "model", overwrite=True)
    s = CodecTrainSettings(steps=2, batch_size=2, segment_s=0.25, lr=3e-3, decoder_only=True,
                           adversarial_weight=1.0, feature_weight=1.0, disc_filters=4, disc_ffts=(512, 256),
                           disc_crop_s=0.125)
    adversary = make_adversary(s, 32000, "cpu")
    start = {k: v.clone() for k, v in adversary.adversary.state_dict().items()}
    result = train_codec(tmp_path / "corpus", tmp_path / "sharp", s, init=str(tmp_path / "model"),
                         adversary=adversary)
    now = adversary.adversary.state_dict()
    assert any(not torch.equal(start[k], now[k]) for k in start)  # its own optimizer stepped
    h = result["history"]
    assert all(len(h[k]) == 2 for k in ("reconstruction", "adversarial", "feature", "discriminator"))
    assert all(0 <= d <= 4 for d in h["discriminator"])  # hinge: real + fake terms, each in [0, 2] near the start
    # the decoder minimised reconstruction + weighted adversarial + feature losses
    assert result["losses"][0] == pytest.approx(h["reconstruction"][0] + h["adversarial"][0] + h["feature"][0],
                                                rel=1e-5)


def test_plain_codec_training_has_no_discriminator():
    s = CodecTrainSettings()
    assert not s.adversarial and CodecTrainSettings(feature_weight=1.0).adversarial


@pytest.mark.parametrize(("bad", "message"), [
    ({"adversarial_weight": -1.0}, "adversarial_weight must be a finite number >= 0"),
    ({"feature_weight": float("nan")}, "feature_weight must be a finite number >= 0"),
    ({"adversarial_weight": float("inf")}, "adversarial_weight must be a finite number >= 0"),
    ({"adversarial_weight": 1.0, "disc_filters": 0}, "disc_filters must be at least 1"),
    ({"adversarial_weight": 1.0, "disc_ffts": ()}, "disc_ffts must be powers of two"),
    ({"adversarial_weight": 1.0, "disc_ffts": (1000,)}, "disc_ffts must be powers of two"),
    ({"adversarial_weight": 1.0, "disc_crop_s": 2.0}, r"disc_crop_s must be in \(0, segment_s"),
    ({"adversarial_weight": 1.0, "disc_crop_s": 0.0}, r"disc_crop_s must be in \(0, segment_s"),
])
def test_bad_adversarial_settings_are_refused_by_name(bad, message):
    with pytest.raises(InputError, match=message):
        CodecTrainSettings(**bad)


def test_a_discriminator_window_shorter_than_its_fft_and_a_stray_discriminator_are_refused(tmp_path):
    from darc_bridge.train.codec import make_adversary

    with pytest.raises(InputError, match="shorter than the discriminator's largest FFT"):
        make_adversary(CodecTrainSettings(adversarial_weight=1.0, disc_crop_s=0.01), 32000, "cpu")
    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    adversary = make_adversary(CodecTrainSettings(adversarial_weight=1.0), 32000, "cpu")
    with pytest.raises(InputError, match="adversarial_weight and feature_weight are both 0"):
        train_codec(tmp_path / "corpus", tmp_path / "ckpt", CodecTrainSettings(steps=1), adversary=adversary)


def test_a_negative_adversarial_weight_on_the_command_line_exits_2(tmp_path, capsys):
    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    rc = train_main(["codec", "--data", str(tmp_path / "corpus"), "--out", str(tmp_path / "ckpt"),
                     "--adversarial-weight", "-0.5"])
    assert rc == 2 and "adversarial_weight must be a finite number >= 0" in capsys.readouterr().err
    assert not (tmp_path / "ckpt").exists()


def test_balanced_codec_steps_hand_each_loss_to_audiocrafts_balancer(tmp_path, monkeypatch):
    """`balanced`: every weighted loss reaches audiocraft's Balancer by name, with the decoded audio
    as the one input it balances on; decoder-only keeps every token; the manifest says so."""
    import json

    import audiocraft.losses
    import numpy as np

    from darc_bridge.audio.io import Audio
    from darc_bridge.model.checkpoint import save_checkpoint
    from darc_bridge.model.codec import encode_audio

    calls: list[tuple[set[str], tuple[int, ...], bool]] = []
    made: list[dict[str, float]] = []

    class Spy(audiocraft.losses.Balancer):
        def __init__(self, weights, **kw):
            made.append(dict(weights))
            super().__init__(weights, **kw)

        def backward(self, losses, input):
            calls.append((set(losses), tuple(input.shape), input.requires_grad))
            return super().backward(losses, input)

    monkeypatch.setattr(audiocraft.losses, "Balancer", Spy)
    write_corpus(tmp_path / "corpus", songs=1, duration=2.0, sample_rate=32000)
    save_checkpoint(random_checkpoint("tiny", seed=3), tmp_path / "model", overwrite=True)
    s = CodecTrainSettings(steps=2, batch_size=2, segment_s=0.25, lr=3e-3, decoder_only=True, balanced=True,
                           adversarial_weight=4.0, feature_weight=4.0, disc_filters=4, disc_ffts=(512, 256),
                           disc_crop_s=0.125)
    result = train_codec(tmp_path / "corpus", tmp_path / "sharp", s, init=str(tmp_path / "model"))
    assert made == [{"l1": 0.1, "mel": 1.0, "stft": 1.0, "adv": 4.0, "feat": 4.0}]
    assert calls == [({"l1", "mel", "stft", "adv", "feat"}, (2, 1, 8000), True)] * 2
    assert all(np.isfinite(result["losses"]))
    before, after = load_checkpoint(tmp_path / "model"), load_checkpoint(tmp_path / "sharp")
    b, a = before.codec.state_dict(), after.codec.state_dict()
    changed = {k for k in b if not torch.equal(b[k], a[k])}
    assert changed and all(k.startswith("decoder.") for k in changed)
    x = np.random.default_rng(1).standard_normal((1, 16000)).astype(np.float32) * 0.3
    assert torch.equal(encode_audio(before.codec, Audio(x, 32000)), encode_audio(after.codec, Audio(x, 32000)))
    assert json.loads((tmp_path / "sharp" / "darc.json").read_text())["codec_adversarial"]["balanced"] is True

    # a whole codec: a zero-weight loss is left out, and the encoder still learns (the commitment
    # penalty is added beside the balanced gradient, which reaches it through the quantizer)
    calls.clear()
    made.clear()
    s = CodecTrainSettings(steps=2, batch_size=2, segment_s=0.25, lr=3e-3, balanced=True, stft_weight=0.0)
    train_codec(tmp_path / "corpus", tmp_path / "whole", s, preset="tiny")
    assert made == [{"l1": 0.1, "mel": 1.0}] and all(c[0] == {"l1", "mel"} for c in calls) and len(calls) == 2
    losses = json.loads((tmp_path / "whole" / "darc.json").read_text())["codec_losses"]
    assert losses["balanced"] is True and losses["stft_weight"] == 0.0  # recorded without adversarial terms
    start = random_checkpoint("tiny", seed=0).codec.state_dict()
    whole = load_checkpoint(tmp_path / "whole").codec.state_dict()
    assert any(not torch.equal(start[k], whole[k]) for k in start if k.startswith("encoder."))


@pytest.mark.parametrize(("bad", "message"), [
    ({"mel_weight": -1.0}, "mel_weight must be a finite number >= 0"),
    ({"balanced": True, "l1_weight": 0.0, "mel_weight": 0.0, "stft_weight": 0.0}, "needs a reconstruction loss"),
])
def test_bad_balanced_settings_are_refused_by_name(bad, message):
    with pytest.raises(InputError, match=message):
        CodecTrainSettings(**bad)
