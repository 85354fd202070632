"""DarcLM on a tiny random model: token layout, loss mask, rhythm in-attention, guidance,
jump fine-tuning gradients, streaming generation, determinism and long-region windows."""

from __future__ import annotations

import pytest
import torch
from model_reference import tiny

from darc_bridge.model.finetune import apply_jump_finetune
from darc_bridge.model.generate import SamplingSettings, count_steps, generate_drums, plan_windows
from darc_bridge.model.lm import DarcLM
from darc_bridge.model.presets import default_layers, preset
from darc_bridge.model.sampling import Guidance, sample_tokens
from darc_bridge.model.tokens import build_codes, first_drum_step

K, TM, TD = 4, 12, 10

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def model() -> DarcLM:
    return tiny()


@pytest.fixture(scope="module")
def batch() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    mix = torch.randint(0, 2048, (2, K, TM), generator=g)
    drums = torch.randint(0, 2048, (2, K, TD), generator=g)
    rhythm = torch.rand(2, 3, TD, generator=g)
    return mix, drums, rhythm


def test_default_in_attention_layers_follow_the_adaptive_rule():
    assert default_layers(24, 4) == [4, 8, 12, 16]
    assert preset("small").injection_layers == [4, 8, 12, 16]
    assert preset("tiny").injection_layers == [2, 4]
    assert preset("tiny", in_attention_layers=[1, 5]).injection_layers == [1, 5]


def test_codes_layout_and_loss_mask(model, batch):
    mix, drums, rhythm = batch
    codes = build_codes(mix, drums, model.delimiter_token)
    assert codes.shape == (2, K, TM + 1 + TD)
    assert (codes[:, :, TM] == 2049).all()
    with torch.no_grad():
        logits, mask = model.compute_predictions(mix, drums, rhythm)
    assert logits.shape == (2, K, TM + 1 + TD, 2048)
    assert mask.shape == (2, K, TM + 1 + TD)
    assert not mask[:, :, : TM + 1].any()  # mix and delimiter are never targets
    assert mask[:, :, TM + 1:].all()
    assert torch.isfinite(logits[mask]).all()
    loss = model.loss(mix, drums, rhythm)
    assert torch.isfinite(loss) and loss.item() > 0


def _prefix_positions() -> torch.Tensor:
    """(K, T) True where the output predicting (k, t) comes from a step before the first drum step."""
    t = torch.arange(TM + 1 + TD)[None, :]
    k = torch.arange(K)[:, None]
    return (t + k) < first_drum_step(TM)


def test_rhythm_changes_drum_logits_only(model, batch):
    mix, drums, rhythm = batch
    with torch.no_grad():
        a, mask = model.compute_predictions(mix, drums, rhythm)
        b, _ = model.compute_predictions(mix, drums, torch.rand_like(rhythm))
    diff = (a - b).abs().amax(-1).nan_to_num(0.0)  # (B, K, T)
    prefix = _prefix_positions()
    assert (diff[:, prefix] == 0).all()  # nothing computed for the mix sees the rhythm
    assert (diff[mask] > 1e-6).all()  # every drum position does
    # the few non-drum positions sharing steps with drums are outside the loss mask
    assert not mask[0][~prefix & ~mask[0]].any()


def _layer_outputs(m: DarcLM, mix, drums, rhythm) -> list[torch.Tensor]:
    outs: list[torch.Tensor] = []
    handles = [layer.register_forward_hook(lambda mod, args, out: outs.append(out.detach().clone()))
               for layer in m.lm.transformer.layers]
    try:
        with torch.no_grad():
            m.compute_predictions(mix, drums, rhythm)
    finally:
        for h in handles:
            h.remove()
    return outs


def test_rhythm_enters_only_through_the_configured_layers(batch):
    mix, drums, rhythm = batch
    m = tiny(rhythm_at_input=False, in_attention_layers=[3])
    # explicit conditioning: no layer carries a hook (no hidden per-job state)
    assert not any(layer._forward_pre_hooks for layer in m.lm.transformer.layers)
    a = _layer_outputs(m, mix, drums, rhythm)
    b = _layer_outputs(m, mix, drums, torch.rand_like(rhythm))
    for i in range(3):
        assert torch.equal(a[i], b[i]), f"layer {i} saw the rhythm"
    assert not torch.allclose(a[3], b[3])
    silent = tiny(rhythm_at_input=False, in_attention_layers=[])
    with torch.no_grad():
        x, _ = silent.compute_predictions(mix, drums, rhythm)
        y, _ = silent.compute_predictions(mix, drums, torch.rand_like(rhythm))
    assert torch.equal(x.nan_to_num(0), y.nan_to_num(0))


def _guided(model, mix, drums, rhythm, guidance: Guidance, has_rhythm: bool) -> torch.Tensor:
    weights = guidance.weights(has_rhythm)
    b = mix.shape[0]
    rows = {"full": (1.0, 1.0), "context": (0.0, 1.0), "null": (0.0, 0.0)}
    out = 0
    with torch.no_grad():
        for name, w in weights.items():
            r_on, c_on = rows[name]
            logits, _ = model.compute_predictions(mix, drums, rhythm if has_rhythm else None,
                                                  rhythm_on=torch.full((b,), r_on), context_on=torch.full((b,), c_on))
            out = out + w * logits
    return out.nan_to_num(0.0)


def test_rhythm_strength_zero_equals_no_rhythm(model, batch):
    mix, drums, rhythm = batch
    none = _guided(model, mix, drums, rhythm, Guidance(3.0, 1.0), has_rhythm=False)
    zero = _guided(model, mix, drums, rhythm, Guidance(3.0, 0.0), has_rhythm=True)
    one = _guided(model, mix, drums, rhythm, Guidance(3.0, 1.0), has_rhythm=True)
    two = _guided(model, mix, drums, rhythm, Guidance(3.0, 2.0), has_rhythm=True)
    assert torch.allclose(zero, none, atol=1e-4)
    assert not torch.allclose(one, none, atol=1e-3)
    # strength 2 moves twice as far from the no-rhythm logits as strength 1 (linear in the strength)
    assert torch.allclose(two - none, 2 * (one - none), atol=1e-3)


def test_guidance_weights_sum_to_one_and_drop_unused_rows():
    w = Guidance(3.0, 1.5).weights(True)
    assert abs(sum(w.values()) - 1.0) < 1e-9 and set(w) == {"full", "context", "null"}
    assert set(Guidance(3.0, 1.0).weights(True)) == {"full", "null"}
    assert set(Guidance(1.0, 0.0).weights(True)) == {"context"}


def test_training_step_reaches_only_unfrozen_parameters(batch):
    mix, drums, rhythm = batch
    m = tiny()
    report = apply_jump_finetune(m)
    assert report.layers == (0, 2, 4) and 0 < report.fraction < 1
    m.train()
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=1e-3)
    before = {n: p.detach().clone() for n, p in m.named_parameters()}
    m.loss(mix, drums, rhythm).backward()
    for name, p in m.named_parameters():
        if p.requires_grad:
            assert p.grad is not None and p.grad.abs().sum() > 0, f"{name} got no gradient"
        else:
            assert p.grad is None, f"frozen {name} got a gradient"
    opt.step()
    for name, p in m.named_parameters():
        assert torch.equal(p, before[name]) != p.requires_grad, name
    frozen_layer = m.lm.transformer.layers[1]
    assert not any(p.requires_grad for p in frozen_layer.parameters())
    attn_only = apply_jump_finetune(tiny(), mode="self_attn")
    assert attn_only.trainable < report.trainable


def test_sample_tokens_filters():
    logits = torch.tensor([[0.0, 5.0, 1.0, 4.9], [3.0, 0.0, 0.0, 0.0]])
    g = torch.Generator().manual_seed(0)
    assert sample_tokens(logits, temperature=0.0).tolist() == [1, 0]
    for _ in range(20):
        assert sample_tokens(logits, 1.0, top_k=1, generator=g).tolist() == [1, 0]
        assert sample_tokens(logits, 1.0, top_p=0.01, generator=g).tolist() == [1, 0]
        assert set(sample_tokens(logits, 1.0, top_k=2, generator=g).tolist()[:1]) <= {1, 3}


def test_streaming_generation_continues_from_the_delimiter_and_matches_teacher_forcing(model):
    """Greedy streaming (prefix chunk, then one step at a time) picks the argmax of the full-sequence
    logits at every drum position: the in-attention offsets are right while streaming."""
    g = torch.Generator().manual_seed(5)
    mix = torch.randint(0, 2048, (K, 16), generator=g)
    rhythm = torch.rand(3, 16, generator=g)
    settings = SamplingSettings(temperature=0.0, cfg_coef=1.0, rhythm_strength=1.0)
    drums, info = generate_drums(model, mix, rhythm, settings)
    assert info["steps"] == 16 + K - 1
    with torch.no_grad():
        logits, mask = model.compute_predictions(mix[None], drums[None], rhythm[None])
    greedy = logits[0].argmax(-1)[:, 17:]
    assert torch.equal(greedy, drums)


def test_generation_is_deterministic_by_seed(model):
    g = torch.Generator().manual_seed(6)
    mix = torch.randint(0, 2048, (K, 12), generator=g)
    rhythm = torch.rand(3, 12, generator=g)
    a, _ = generate_drums(model, mix, rhythm, SamplingSettings(seed=11, top_k=50))
    b, _ = generate_drums(model, mix, rhythm, SamplingSettings(seed=11, top_k=50))
    c, _ = generate_drums(model, mix, rhythm, SamplingSettings(seed=12, top_k=50))
    assert torch.equal(a, b)
    assert not torch.equal(a, c)
    # rhythm_strength 0 ignores the prompt exactly: same tokens as no prompt
    d, _ = generate_drums(model, mix, rhythm, SamplingSettings(seed=11, top_k=50, rhythm_strength=0.0))
    e, _ = generate_drums(model, mix, None, SamplingSettings(seed=11, top_k=50))
    assert torch.equal(d, e)


def test_window_plan_covers_the_region_and_each_window_continues():
    plan = plan_windows(150, 50, 10)
    assert plan[0].start == 0 and plan[0].n_forced == 0 and plan[-1].end == 150
    for prev, cur in zip(plan, plan[1:], strict=False):
        assert cur.start + cur.n_forced == prev.end  # forced frames are exactly what exists
        assert cur.n_forced >= 10 and cur.length <= 50
    assert plan_windows(30, 50, 10) == plan_windows(30, 60, 5)[:1]
    assert count_steps(plan_windows(30, 50, 10), K) == 30 + K - 1


def test_region_three_times_the_window_has_no_gaps(model, monkeypatch):
    import darc_bridge.model.generate as gen

    calls: list[tuple[int, torch.Tensor, torch.Tensor]] = []
    real = gen.generate_window

    def spy(m, mix, forced, *args, **kwargs):
        out = real(m, mix, forced, *args, **kwargs)
        calls.append((mix.shape[-1], forced.clone(), out.clone()))
        return out

    monkeypatch.setattr(gen, "generate_window", spy)
    g = torch.Generator().manual_seed(7)
    n = 60
    mix = torch.randint(0, 2048, (K, n), generator=g)
    rhythm = torch.rand(3, n, generator=g)
    fractions: list[float] = []
    drums, info = generate_drums(model, mix, rhythm, SamplingSettings(seed=1, top_k=50), window_frames=20,
                                 overlap_frames=5, progress=fractions.append)
    plan = plan_windows(n, 20, 5)
    assert info["windows"] == len(plan) == len(calls) >= 3
    assert drums.shape == (K, n)
    assert ((drums >= 0) & (drums < 2048)).all()  # every frame filled, no special tokens
    assert info["steps"] == count_steps(plan, K)
    assert fractions == sorted(fractions) and fractions[-1] == pytest.approx(1.0)
    for w, (length, forced, out) in zip(plan, calls, strict=True):
        assert length == w.length <= 20
        # each window starts from the drums already made and keeps them unchanged
        assert torch.equal(forced, drums[:, w.start:w.start + w.n_forced])
        assert torch.equal(out, drums[:, w.start:w.end])
    assert all(forced.shape[-1] >= 5 for _, forced, _ in calls[1:])


def test_beat_conditioning_follows_the_same_path_and_belongs_to_the_context(batch):
    mix, drums, rhythm = batch
    m = tiny(beat_conditioning=True)
    beat = torch.rand(2, 2, TD)
    with torch.no_grad():
        a, mask = m.compute_predictions(mix, drums, rhythm, beat)
        b, _ = m.compute_predictions(mix, drums, rhythm, torch.rand_like(beat))
        off = torch.zeros(2)
        c, _ = m.compute_predictions(mix, drums, rhythm, beat, context_on=off)
        d, _ = m.compute_predictions(mix, drums, rhythm, torch.rand_like(beat), context_on=off)
    diff = (a - b).abs().amax(-1).nan_to_num(0.0)
    assert (diff[:, _prefix_positions()] == 0).all() and (diff[mask] > 1e-6).all()
    assert torch.equal(c.nan_to_num(0), d.nan_to_num(0))  # the null context drops the beat too
    assert tiny().conditioner.beat_proj is None  # off by default


def test_whole_sequence_attention_runs_sdpa_with_the_einsum_branchs_logits_and_gradients(batch, monkeypatch):
    """DarcLM.forward's layers take audiocraft's SDPA branch (model/lm.py `_layer`); the einsum
    branch the model is built with (and streams with) gives the same logits and gradients."""
    from darc_bridge.model import lm as lm_module

    torch.manual_seed(0)
    model = DarcLM(preset("tiny")).train()
    mix, drums, rhythm = batch
    seen: list[bool] = []
    sdpa = torch.nn.functional.scaled_dot_product_attention

    def spy(*args, **kwargs):
        seen.append(kwargs.get("is_causal", False))
        return sdpa(*args, **kwargs)

    def einsum_layer(layer, x, piece, src):  # the layer called as built: einsum and an explicit mask
        return layer(x if piece is None else x + piece, cross_attention_src=src)

    def run():
        model.zero_grad()
        logits, mask = model.compute_predictions(mix, drums, rhythm)
        target = build_codes(mix, drums, model.delimiter_token)[mask]
        torch.nn.functional.cross_entropy(logits[mask].float(), target).backward()
        return logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    monkeypatch.setattr(torch.nn.functional, "scaled_dot_product_attention", spy)
    with monkeypatch.context() as m:
        m.setattr(lm_module, "_layer", einsum_layer)
        einsum_logits, einsum_grads = run()
    assert seen == []
    sdpa_logits, sdpa_grads = run()
    assert len(seen) == len(model.lm.transformer.layers) and all(seen)  # every layer, causal
    assert not any(layer.self_attn.memory_efficient for layer in model.lm.transformer.layers)  # for the call only
    torch.testing.assert_close(sdpa_logits, einsum_logits, rtol=1e-4, atol=1e-5)
    assert einsum_grads.keys() == sdpa_grads.keys() and einsum_grads["conditioner.rhythm_proj.weight"].abs().sum() > 0
    for name in einsum_grads:
        torch.testing.assert_close(sdpa_grads[name], einsum_grads[name], rtol=1e-4, atol=1e-6, msg=name)
