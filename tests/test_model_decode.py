"""The explicit decode path (darc_bridge.model.decode) against audiocraft's streaming loop as the
product ran it (tests/model_reference.py), in float32: same tokens, greedy and sampled, under
CFG with 1-3 rows, across window boundaries with forced tokens; rhythm strength 0; cancel; the
graph-shaped step; the idle cross-attention; batched jobs.

The parity tests run on `decode_device()`: cuda when torch sees a GPU (or DARC_TEST_DEVICE says
so: scripts/gpu_decode_check.sh), else the CPU, including the CUDA-graph test, which needs cuda.
The batching tests compare a job alone with the same job in a batch bit for bit: that is a
property of the CPU sessions (per-job products), so they always run on the CPU."""

from __future__ import annotations

import pytest
import torch
from decode_support import decode_device
from model_reference import reference_drums, reference_sample, tiny

from darc_bridge.engines.base import CancelToken
from darc_bridge.errors import Cancelled
from darc_bridge.model.decode import Decoder, EagerSteps
from darc_bridge.model.generate import (
    DrumJob,
    SamplingSettings,
    count_steps,
    generate_drums,
    generate_drums_batch,
    plan_windows,
)
from darc_bridge.model.lm import DarcLM
from darc_bridge.model.presets import TRANSFORMER_DEFAULTS
from darc_bridge.model.sampling import draw

K = 4
N, WINDOW, OVERLAP = 40, 16, 5  # four windows, each later one continuing from forced tokens

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def device() -> torch.device:
    return decode_device()


@pytest.fixture(scope="module")
def model(device) -> DarcLM:
    return tiny().to(device)


@pytest.fixture(scope="module")
def cpu_model() -> DarcLM:
    return tiny()


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 2048, (K, N), generator=g), torch.rand(3, N, generator=g)


def _both(model, mix, rhythm, settings):
    ref = reference_drums(model, mix, rhythm, settings, WINDOW, OVERLAP)
    ours, info = generate_drums(model, mix, rhythm, settings, window_frames=WINDOW, overlap_frames=OVERLAP)
    assert info["windows"] == len(plan_windows(N, WINDOW, OVERLAP)) >= 3
    return ref, ours


@pytest.mark.parametrize("cfg, strength, rows", [(1.0, 1.0, 1), (3.0, 1.0, 2), (3.0, 1.5, 3)])
def test_greedy_gives_exactly_the_streaming_tokens(model, inputs, cfg, strength, rows):
    from darc_bridge.model.sampling import Guidance

    assert len(Guidance(cfg, strength).weights(True)) == rows
    mix, rhythm = inputs
    settings = SamplingSettings(temperature=0.0, cfg_coef=cfg, rhythm_strength=strength)
    ref, ours = _both(model, mix, rhythm, settings)
    assert torch.equal(ref, ours)
    ref, ours = _both(model, mix, None, settings)
    assert torch.equal(ref, ours)


@pytest.mark.parametrize("settings", [
    SamplingSettings(seed=3, top_k=50),  # two rows
    SamplingSettings(seed=4, top_k=50, rhythm_strength=2.0),  # three rows
    SamplingSettings(seed=5, top_p=0.9, rhythm_strength=1.5, temperature=0.8),
    SamplingSettings(seed=6, top_k=0),
])
def test_sampling_with_the_same_generator_gives_the_same_tokens(model, inputs, settings):
    mix, rhythm = inputs
    ref, ours = _both(model, mix, rhythm, settings)
    assert torch.equal(ref, ours)


def test_draw_is_multinomial_without_the_host_checks(device):
    def gen(seed: int) -> torch.Generator:
        return torch.Generator(device=device).manual_seed(seed)

    probs = torch.softmax(torch.randn(16, 300, generator=torch.Generator().manual_seed(0)), -1).to(device)
    a = torch.multinomial(probs, 1, generator=gen(9))
    b = draw(probs, gen(9))
    assert torch.equal(a, b)
    logits = torch.randn(4, 2048).to(device)
    for temp, k, p in ((1.0, 50, 0.0), (0.7, 0, 0.95), (1.2, 0, 0.0)):
        from darc_bridge.model.sampling import sample_tokens

        x = sample_tokens(logits, temp, k, p, gen(1))
        y = reference_sample(logits, temp, k, p, gen(1))
        assert torch.equal(x, y)


def test_rhythm_strength_zero_equals_no_rhythm(model, inputs):
    mix, rhythm = inputs
    zero, _ = generate_drums(model, mix, rhythm, SamplingSettings(seed=11, top_k=50, rhythm_strength=0.0),
                             window_frames=WINDOW, overlap_frames=OVERLAP)
    none, _ = generate_drums(model, mix, None, SamplingSettings(seed=11, top_k=50),
                             window_frames=WINDOW, overlap_frames=OVERLAP)
    one, _ = generate_drums(model, mix, rhythm, SamplingSettings(seed=11, top_k=50),
                            window_frames=WINDOW, overlap_frames=OVERLAP)
    assert torch.equal(zero, none)
    assert not torch.equal(one, none)


class _CountingSteps(EagerSteps):
    """Eager sessions whose decode steps are counted."""

    def __init__(self, model: DarcLM) -> None:
        super().__init__(Decoder(model))
        self.steps = 0

    def session(self, rows: int, steps: int, groups=None):
        outer = self
        ctx = super().session(rows, steps, groups)

        class Wrapped:
            def __enter__(self):
                s = ctx.__enter__()
                real = s.decode_step

                def step(*args, **kwargs):
                    outer.steps += 1
                    return real(*args, **kwargs)

                s.decode_step = step
                return s

            def __exit__(self, *exc):
                return ctx.__exit__(*exc)

        return Wrapped()


def test_cancel_stops_within_one_step(model, inputs):
    mix, rhythm = inputs
    token = CancelToken()
    steps = _CountingSteps(model)
    fractions: list[float] = []

    def progress(f: float) -> None:
        fractions.append(f)
        token.cancel()  # at the first report (after PROGRESS_EVERY steps)

    with pytest.raises(Cancelled):
        generate_drums(model, mix, rhythm, SamplingSettings(seed=1, top_k=50), window_frames=WINDOW,
                       overlap_frames=OVERLAP, progress=progress, cancel=token, steps=steps)
    from darc_bridge.model.generate import PROGRESS_EVERY

    assert len(fractions) == 1
    total = count_steps(plan_windows(N, WINDOW, OVERLAP), K)
    assert fractions[0] == pytest.approx(PROGRESS_EVERY / total)
    # step PROGRESS_EVERY was the last one sampled: prefills give the first step of each window,
    # so the decode steps run are the sampled steps minus one per window started (two windows)
    assert steps.steps == PROGRESS_EVERY - 2


def test_graph_shaped_step_equals_the_cpu_step(model, inputs, device):
    """The step a CUDA graph captures (whole cache under a device mask, no host value) gives the
    logits of the CPU step that reads only the filled part of the cache."""
    mix, rhythm = inputs
    seq = torch.randint(0, 2048, (2, K, 30)).to(device)
    cond = torch.randn(2, 30, model.config.dim).to(device)
    decoder = Decoder(model)
    a, b = decoder.session(2, 30), decoder.session(2, 30)
    la, lb = a.prefill(seq[..., :10], cond[:, :10]), b.prefill(seq[..., :10], cond[:, :10])
    assert torch.equal(la, lb)
    position = torch.tensor([10], device=device)
    for t in range(10, 20):
        la = a.decode_step(seq[..., t:t + 1], position, cond[:, t:t + 1], attend=t + 1)
        lb = b.decode_step(seq[..., t:t + 1], position, cond[:, t:t + 1])
        position.add_(1)
        torch.testing.assert_close(la, lb, rtol=1e-5, atol=1e-5)
    # and both equal the teacher-forced logits of the whole sequence at that step
    with torch.no_grad():
        full = model(seq[..., :20], cond[:, :20])[:, :, -1]
    torch.testing.assert_close(la, full, rtol=1e-4, atol=1e-4)


def test_idle_cross_attention_is_reduced_to_its_constant(inputs, device):
    """MusicGen's text cross-attention over one zero vector adds a constant (zero without biases):
    the decode path skips it, and with biases adds the constant; tokens match the streaming loop."""
    mix, rhythm = inputs
    plain = tiny(cross_attention=True).to(device)
    assert Decoder(plain).layers()[0].cross is None  # bias-free: exactly zero, skipped
    biased = tiny(cross_attention=True, transformer={**TRANSFORMER_DEFAULTS, "bias_attn": True})
    g = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for layer in biased.lm.transformer.layers:
            att = layer.cross_attention
            att.in_proj_bias.copy_(torch.randn(att.in_proj_bias.shape, generator=g) * 0.5)
            att.out_proj.bias.copy_(torch.randn(att.out_proj.bias.shape, generator=g) * 0.5)
    biased.to(device)
    assert Decoder(biased).layers()[0].cross.abs().max() > 0
    for m in (plain, biased):
        ref, ours = _both(m, mix, rhythm, SamplingSettings(temperature=0.0))
        assert torch.equal(ref, ours)


def test_batched_jobs_each_get_their_own_tokens(cpu_model, inputs):
    model = cpu_model
    mix, rhythm = inputs
    other = torch.randint(0, 2048, (K, N), generator=torch.Generator().manual_seed(8))
    jobs = [
        DrumJob(mix, rhythm, SamplingSettings(seed=1, top_k=50), window_frames=WINDOW, overlap_frames=OVERLAP),
        DrumJob(other, None, SamplingSettings(seed=2, top_k=50), window_frames=WINDOW, overlap_frames=OVERLAP),
        DrumJob(mix, rhythm, SamplingSettings(seed=3, top_p=0.9, rhythm_strength=1.5), window_frames=WINDOW,
                overlap_frames=OVERLAP),
        DrumJob(other[:, :25], rhythm[:, :25], SamplingSettings(seed=4, top_k=20)),  # another length: own group
    ]
    seen: dict[int, list[float]] = {i: [] for i in range(len(jobs))}
    for i, job in enumerate(jobs):
        job.progress = seen[i].append
    results = generate_drums_batch(model, jobs)
    for i, (job, (drums, info)) in enumerate(zip(jobs, results, strict=True)):
        alone, alone_info = generate_drums(model, job.mix, job.rhythm, job.settings,
                                           window_frames=job.window_frames, overlap_frames=job.overlap_frames)
        assert torch.equal(drums, alone), f"job {i}"
        assert info == alone_info
        assert seen[i] == sorted(seen[i]) and seen[i][-1] == pytest.approx(1.0)


def test_a_cancelled_job_leaves_the_batch_and_the_others_carry_on(cpu_model, inputs):
    model = cpu_model
    mix, rhythm = inputs
    token = CancelToken()
    settings = [SamplingSettings(seed=s, top_k=50) for s in (1, 2, 3)]
    jobs = [DrumJob(mix, rhythm, st, window_frames=WINDOW, overlap_frames=OVERLAP) for st in settings]
    jobs[1].cancel = token
    jobs[1].progress = lambda f: token.cancel()
    results = generate_drums_batch(model, jobs)
    assert isinstance(results[1], Cancelled)
    for i in (0, 2):
        alone, _ = generate_drums(model, mix, rhythm, settings[i], window_frames=WINDOW, overlap_frames=OVERLAP)
        assert torch.equal(results[i][0], alone)


def test_no_layer_hooks_and_the_model_holds_no_job_state(model, inputs):
    mix, rhythm = inputs
    generate_drums(model, mix[:, :8], rhythm[:, :8], SamplingSettings(seed=0, top_k=5))
    assert not any(layer._forward_pre_hooks or layer._forward_hooks for layer in model.lm.transformer.layers)
    assert not model.lm.transformer._streaming_state


def test_cuda_graph_steps_match_eager_steps_on_the_gpu(inputs, device):
    """On a GPU: tokens decoded through the captured graphs equal eager decoding (float32).
    (Skipped on a CPU-only machine; with DARC_TEST_DEVICE=cuda and no GPU the fixture errors.)"""
    from darc_bridge.model.decode import CudaGraphSteps

    if device.type != "cuda":
        pytest.skip("needs a CUDA GPU (CUDA graphs): scripts/gpu_decode_check.sh runs it there")
    mix, rhythm = inputs
    m = tiny().to(device)
    graphs = CudaGraphSteps(Decoder(m), 2 * WINDOW + 1 + K)
    for settings in (SamplingSettings(temperature=0.0), SamplingSettings(seed=3, top_k=50, rhythm_strength=1.5)):
        a, _ = generate_drums(m, mix, rhythm, settings, window_frames=WINDOW, overlap_frames=OVERLAP, steps=graphs)
        b, _ = generate_drums(m, mix, rhythm, settings, window_frames=WINDOW, overlap_frames=OVERLAP)
        assert torch.equal(a, b)


def test_a_rows_logits_do_not_depend_on_the_rest_of_the_batch(cpu_model):
    """CPU sessions run each job's matrix products over its own rows (EagerSteps' `per_job`), so a
    job decoded alone and inside a bigger batch gives bit-identical logits: batching keeps 'same
    seed, same stem'. The batch (2 + 3 + 2 + 3 + 2 rows: 12, the most a CPU batch has) crosses the
    row counts where a CPU BLAS switches kernels (measured: 4 on one box, 11 on another)."""
    model = cpu_model
    steps = EagerSteps(Decoder(model))
    assert steps.per_job
    groups = (2, 3, 2, 3, 2)
    g = torch.Generator().manual_seed(4)
    seq = torch.randint(0, 2048, (sum(groups), K, 40), generator=g)
    cond = torch.randn(sum(groups), 40, model.config.dim, generator=g)
    alone_rows = slice(2, 5)  # the second job, 3 rows
    with steps.session(3, 40) as alone, steps.session(sum(groups), 40, groups) as batch:
        a = alone.prefill(seq[alone_rows, :, :30], cond[alone_rows, :30])
        b = batch.prefill(seq[..., :30], cond[:, :30])
        assert torch.equal(a, b[alone_rows])
        position = torch.tensor([30])
        for t in range(30, 40):
            a = alone.decode_step(seq[alone_rows, :, t:t + 1], position, cond[alone_rows, t:t + 1], attend=t + 1)
            b = batch.decode_step(seq[..., t:t + 1], position, cond[:, t:t + 1], attend=t + 1)
            position.add_(1)
            assert torch.equal(a, b[alone_rows])
        # the first job leaves the batch: the rest keep their own products
        keep = torch.arange(2, sum(groups))
        batch = batch.select_rows(keep, groups[1:])
        last = torch.tensor([39])  # step 39 again, without its rhythm row
        a = alone.decode_step(seq[alone_rows, :, 39:40], last, None, attend=40)
        b = batch.decode_step(seq[2:, :, 39:40], last, None, attend=40)
        assert torch.equal(a, b[:3])



def test_groups_that_do_not_cover_the_batch_are_refused(cpu_model):
    decoder = Decoder(cpu_model)
    for groups in ((2, 3), (4, 0), (5,)):
        with pytest.raises(ValueError, match="do not split the batch of 4 rows"):
            decoder.session(4, 10, groups)
    assert decoder.session(4, 10, (2, 2)).spans == [(0, 2), (2, 4)]
    assert decoder.session(4, 10, (4,)).spans is None
