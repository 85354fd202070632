"""No host syncs in the decode loop (issue 11): after each window's prefill, the steps (the
forward pass, guidance over 1-3 rows, top-k / top-p sampling, forced tokens across window
boundaries, progress every step, cancel checks, a job leaving a batch) issue no operation that
would make the host wait for a GPU. Recorded through the dispatcher (darc_bridge.model.syncs),
so it holds on the CPU; on cuda (DARC_TEST_DEVICE=cuda, scripts/gpu_decode_check.sh) the CUDA
runtime's own sync check (`set_sync_debug_mode("error")`) runs as well."""

from __future__ import annotations

import pytest
import torch
from decode_support import decode_device
from model_reference import tiny

from darc_bridge.engines.base import CancelToken
from darc_bridge.errors import Cancelled
from darc_bridge.model.decode import CudaGraphSteps, Decoder, EagerSteps
from darc_bridge.model.generate import (
    DrumJob,
    SamplingSettings,
    count_steps,
    generate_drums,
    generate_drums_batch,
    plan_windows,
)
from darc_bridge.model.sampling import Guidance
from darc_bridge.model.syncs import HostSyncRecorder, SyncCheckedSteps

K = 4
N, WINDOW, OVERLAP = 40, 16, 5  # four windows: every later one starts with forced tokens

pytestmark = pytest.mark.usefixtures("torch_one_thread")


@pytest.fixture(scope="module")
def device() -> torch.device:
    return decode_device()


@pytest.fixture(scope="module")
def model(device):
    return tiny().to(device)


@pytest.fixture(scope="module")
def inputs() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(5)
    return torch.randint(0, 2048, (K, N), generator=g), torch.rand(3, N, generator=g)


def _sources(model, device):
    yield "eager", EagerSteps(Decoder(model))
    if device.type == "cuda":
        yield "graphs", CudaGraphSteps(Decoder(model), 2 * WINDOW + 1 + K)


def _decode_steps(n_windows: int) -> int:
    # every sampled step but the first of each window (that one comes from the prefill's logits)
    return count_steps(plan_windows(N, WINDOW, OVERLAP), K) - n_windows


def test_the_recorder_sees_what_would_sync(device):
    x = torch.arange(6.0, device=device)
    rec = HostSyncRecorder()
    with rec:
        rec.phase = "probe"
        x[0].item()
        int(x[1])
        bool(x[2])
        float(x[3])
        if (x > 2).any():
            pass
        x.tolist()
        x.nonzero()
        x[x > 1]
        y = x.clone()
        y[y > 1] = 0.0
        torch.tensor([1, 2], device=device)
        torch.multinomial(x + 1, 1)
        x.cpu().numpy()
    ops = rec.counts("probe")
    assert ops["aten._local_scalar_dense.default"] == 5
    assert ops["Tensor.tolist"] == 1 and ops["Tensor.numpy"] == 1
    assert ops["aten.nonzero.default"] == 1
    assert ops["aten.index.Tensor"] == 1 and ops["aten.index_put_.default"] == 1
    assert ops["aten.lift_fresh.default"] >= 1  # torch.tensor (and the scalar of the masked assignment)
    assert ops["aten.multinomial.default"] == 1
    if device.type == "cuda":
        assert ops["aten._to_copy.default"] >= 1  # .cpu()
    # and nothing for device-only work, the kind a decode step does
    rec = HostSyncRecorder()
    with rec:
        z = torch.softmax(x, 0).topk(3).indices
        torch.where(z > 1, z, torch.full_like(z, 7)).index_select(0, torch.zeros(1, dtype=torch.long, device=device))
    assert rec.events == []
    assert torch.Tensor.tolist(torch.ones(2)) == [1.0, 1.0]  # the wrapped methods were put back


def test_a_sync_in_a_decode_step_is_caught(model, inputs):
    """The check has teeth: a step that reads one value back is reported, in the steps phase."""
    mix, rhythm = inputs

    class Leaky(EagerSteps):
        def session(self, rows, steps, groups=None):
            ctx = super().session(rows, steps, groups)

            class Wrapped:
                def __enter__(self):
                    s = ctx.__enter__()
                    real = s.decode_step

                    def step(tokens, position, row, attend=None):
                        out = real(tokens, position, row, attend)
                        float(out[0, 0, 0])
                        return out

                    s.decode_step = step
                    return s

                def __exit__(self, *exc):
                    return ctx.__exit__(*exc)

            return Wrapped()

    rec = HostSyncRecorder()
    steps = SyncCheckedSteps(Leaky(Decoder(model)), rec)
    with rec:
        generate_drums(model, mix, rhythm, SamplingSettings(seed=1, top_k=50), window_frames=WINDOW,
                       overlap_frames=OVERLAP, steps=steps)
    assert len(rec.in_phase("steps")) == steps.decode_steps == _decode_steps(4)
    assert rec.in_phase("outside")  # the end-of-window check reads back, outside the loop: allowed


@pytest.mark.parametrize("settings, rows", [
    (SamplingSettings(temperature=0.0, cfg_coef=1.0), 1),
    (SamplingSettings(seed=3, top_k=50), 2),
    (SamplingSettings(seed=4, top_p=0.9, rhythm_strength=1.5, temperature=0.8), 3),
    (SamplingSettings(seed=5, top_k=0, rhythm_strength=2.0), 3),
])
def test_decode_steps_make_no_host_syncs(model, inputs, device, settings, rows):
    mix, rhythm = inputs
    assert len(Guidance(settings.cfg_coef, settings.rhythm_strength).weights(True)) == rows
    fractions: list[float] = []
    for name, source in _sources(model, device):
        rec = HostSyncRecorder()
        steps = SyncCheckedSteps(source, rec, cuda_error_mode=True)
        with rec:
            drums, info = generate_drums(model, mix, rhythm, settings, window_frames=WINDOW, overlap_frames=OVERLAP,
                                         progress=fractions.append, cancel=CancelToken(), steps=steps)
        assert info["windows"] == 4 and steps.prefills == 4
        assert steps.decode_steps == _decode_steps(4), name
        assert rec.in_phase("steps") == [], f"{name}: " + "; ".join(map(str, rec.in_phase("steps")[:5]))
        assert fractions and fractions[-1] == pytest.approx(1.0)  # progress was reported meanwhile
        assert drums.shape == (K, N)


def test_batched_jobs_and_a_cancel_make_no_host_syncs(model, inputs, device):
    """Several jobs as rows of one batch, one of them cancelled mid-window: its rows leave the
    batch without a host round trip, the others carry on."""
    mix, rhythm = inputs
    token = CancelToken()
    jobs = [DrumJob(mix, rhythm, SamplingSettings(seed=s, top_k=50, rhythm_strength=1.5), window_frames=WINDOW,
                    overlap_frames=OVERLAP) for s in (1, 2, 3)]
    jobs[1].cancel = token
    jobs[1].progress = lambda f: token.cancel() if f > 0.3 else None
    rec = HostSyncRecorder()
    steps = SyncCheckedSteps(EagerSteps(Decoder(model)), rec, cuda_error_mode=True)
    with rec:
        results = generate_drums_batch(model, jobs, steps=steps)
    assert isinstance(results[1], Cancelled)
    assert all(r[0].shape == (K, N) for r in (results[0], results[2]))
    assert steps.decode_steps == _decode_steps(4)
    assert rec.in_phase("steps") == [], "; ".join(map(str, rec.in_phase("steps")[:5]))
