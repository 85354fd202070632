"""Explicit decoding for DarcLM: a prefill over the prefix, then one pattern step at a time.

Why not audiocraft's streaming API (still the reference in the tests): each step it grows every
layer's keys and values by concatenation, rebuilds the causal mask, runs einsum attention,
recomputes the text cross-attention although its source is one zero vector, and our rhythm went
in through hooks that read the transformer's private offset with a host sync. Here:

- keys and values go into a cache preallocated per layer; the position is a device tensor;
- attention runs through `scaled_dot_product_attention`;
- the idle cross-attention is reduced to what it adds: over a single key its weight is exactly 1,
  so its output is `out_proj(v_bias)`, a constant (zero for MusicGen's bias-free layers: skipped);
- the in-attention conditioning is an argument (`rhythm_row`), never hidden state;
- the weights are the wrapped audiocraft `LMModel`'s own (read, never copied, except the small
  fused embedding and output tables a session builds once).

`DecodeSession.decode_step(tokens, position, rhythm_row)` reads only device tensors and does
not sync with the host (tests/test_model_decode_syncs.py, through darc_bridge.model.syncs), so
on a GPU it is captured once per row count as a CUDA graph (`CudaGraphSteps`, cuda only;
optionally through `torch.compile`). A step is the prefill's computation for one position,
written for it: it works in buffers the session allocates once (static, as a graph needs; on
the CPU it cuts 10-30 % of a `tiny` step, which is mostly per-operation overhead) and gives
bit-identical logits.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from darc_bridge.model.lm import DarcLM, sin_embedding

log = logging.getLogger(__name__)

GRAPH_ROWS = (1, 2, 3)  # one guidance row, CFG (two rows), CFG with rhythm guidance (three rows)


def decode_dtype(device: str | torch.device) -> torch.dtype:
    """bf16 on a GPU that has it, fp16 on older ones, float32 on the CPU."""
    dev = torch.device(device)
    if dev.type != "cuda":
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


@dataclass
class _Layer:
    """What one audiocraft StreamingTransformerLayer computes, as references to its weights
    (called through torch.nn.functional: no module dispatch per step)."""

    norm1: tuple
    in_proj: tuple[torch.Tensor, torch.Tensor | None]
    out_proj: tuple[torch.Tensor, torch.Tensor | None]
    scale_1: nn.Module | None
    cross: torch.Tensor | None  # the constant the idle cross-attention adds (None: zero)
    norm2: tuple
    linear1: tuple[torch.Tensor, torch.Tensor | None]
    activation: object
    linear2: tuple[torch.Tensor, torch.Tensor | None]
    scale_2: nn.Module | None
    as_float32: bool


def _norm(m: nn.Module) -> tuple:
    if not isinstance(m, nn.LayerNorm):
        raise NotImplementedError(f"the decode path supports layer norm only, not {type(m).__name__}")
    return m.normalized_shape, m.weight, m.bias, m.eps


def _lin(m: nn.Module) -> tuple[torch.Tensor, torch.Tensor | None]:
    return m.weight, m.bias


def _scale(m: nn.Module) -> nn.Module | None:
    return None if isinstance(m, nn.Identity) else m


def _check_layout(model: DarcLM) -> None:
    tr = model.lm.transformer
    problems = []
    if tr.positional_embedding != "sin":
        problems.append(f"positional embedding {tr.positional_embedding!r}")
    for i, layer in enumerate(tr.layers):
        att = layer.self_attn
        if not layer.norm_first:
            problems.append(f"layer {i} is post-norm")
        if not att.custom or att.past_context is not None or att.kv_repeat != 1 or att.qk_layer_norm or att.rope:
            problems.append(f"layer {i} attention (custom={att.custom}, past_context={att.past_context}, "
                            f"kv_repeat={att.kv_repeat}, qk_layer_norm={att.qk_layer_norm})")
    if problems:
        raise NotImplementedError("the decode path supports MusicGen's transformer layout only: "
                                  + "; ".join(problems[:3]))


def _cross_constant(layer: nn.Module) -> torch.Tensor | None:
    """What the cross-attention over one zero vector adds to every position (None when exactly zero)."""
    att = layer.cross_attention
    if att is None:
        return None
    dim = att.embed_dim
    v_bias = None if att.in_proj_bias is None else att.in_proj_bias[2 * dim:]
    if v_bias is None and att.out_proj.bias is None:
        return None
    with torch.no_grad():
        v = v_bias if v_bias is not None else att.in_proj_weight.new_zeros(dim)
        return layer.layer_scale_cross(att.out_proj(v.view(1, 1, dim)))


class KVCache:
    """Keys and values of every layer, preallocated: (layers, 2, rows, heads, steps, head_dim)."""

    def __init__(self, layers: int, rows: int, heads: int, steps: int, head_dim: int,
                 device: torch.device, dtype: torch.dtype) -> None:
        self.kv = torch.zeros(layers, 2, rows, heads, steps, head_dim, device=device, dtype=dtype)

    @property
    def rows(self) -> int:
        return self.kv.shape[2]

    @property
    def steps(self) -> int:
        return self.kv.shape[4]


class Decoder:
    """Builds decode sessions over a DarcLM's weights (stateless itself: safe to share)."""

    def __init__(self, model: DarcLM) -> None:
        _check_layout(model)
        self.model = model
        tr = model.lm.transformer
        first = tr.layers[0].self_attn
        self.dim = model.config.dim
        self.heads = first.num_heads
        self.head_dim = self.dim // self.heads
        self.n_q = model.n_q
        self.card = model.config.card
        self.max_period = tr.max_period
        self.positional_scale = tr.positional_scale
        self.at_input = model.config.rhythm_at_input
        self.injection = model.injection_layers

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.lm.emb[0].weight.dtype

    def layers(self) -> list[_Layer]:
        out = []
        for layer in self.model.lm.transformer.layers:
            att = layer.self_attn
            out.append(_Layer(_norm(layer.norm1), (att.in_proj_weight, att.in_proj_bias), _lin(att.out_proj),
                              _scale(layer.layer_scale_1), _cross_constant(layer), _norm(layer.norm2),
                              _lin(layer.linear1), layer.activation, _lin(layer.linear2),
                              _scale(layer.layer_scale_2), att.attention_as_float32))
        return out

    def session(self, rows: int, steps: int, groups: tuple[int, ...] | None = None) -> DecodeSession:
        """A fresh session with a cache for `rows` batch rows and `steps` pattern steps
        (`groups`: see `DecodeSession`)."""
        return DecodeSession(self, KVCache(len(self.model.lm.transformer.layers), rows, self.heads, steps,
                                           self.head_dim, self.device, self.dtype), groups=groups)


def _spans(groups: tuple[int, ...] | None, rows: int) -> list[tuple[int, int]] | None:
    """Row ranges of `groups` (None: the batch is one group)."""
    if groups is None:
        return None
    if sum(groups) != rows or min(groups) < 1:
        raise ValueError(f"groups {groups} do not split the batch of {rows} rows into jobs")
    if len(groups) == 1:
        return None
    ends = list(itertools.accumulate(groups))
    return list(zip([0, *ends[:-1]], ends, strict=True))


class DecodeSession:
    """One preallocated cache and the forward passes that fill and read it.

    `groups`: how many rows each job of the batch has (None: one group). Every matrix product then
    runs once per group, over that group's rows only, so a job's products are exactly the ones it
    runs alone: a row's result does not depend on the other jobs in the batch (see EagerSteps).
    Everything else (attention, norms, sampling) runs over the whole batch; it is per row anyway.
    """

    def __init__(self, decoder: Decoder, cache: KVCache, tables: tuple | None = None,
                 groups: tuple[int, ...] | None = None) -> None:
        self.decoder = decoder
        self.cache = cache
        self.groups = groups
        self.spans = _spans(groups, cache.rows)
        self.layers = decoder.layers()
        if tables is None:
            tables = self._tables(cache.steps)
        self.emb_table, self.emb_offsets, self.pos_table, self.out_weight, self.out_bias = tables
        self._step = _StepState(self)

    def _tables(self, steps: int) -> tuple:
        """Fused tables, built once per session: all embedding rows (the delimiter rows after each
        codebook's own), the scaled positions of every step, and the output heads as one matrix."""
        d = self.decoder
        m = d.model
        with torch.no_grad():
            rows = []
            for k in range(d.n_q):
                rows += [m.lm.emb[k].weight, m.delimiter[k:k + 1].to(m.lm.emb[k].weight.dtype)]
            table = torch.cat(rows, dim=0)
            width = d.card + 2  # tokens 0..card-1, pad (card), delimiter (card + 1)
            offsets = (torch.arange(d.n_q, device=table.device) * width).view(1, -1, 1)
            positions = torch.arange(steps, device=table.device).view(1, -1, 1)
            pos = d.positional_scale * sin_embedding(positions, d.dim, d.max_period, table.dtype)[0]
            heads = m.lm.linears
            weight = torch.cat([h.weight for h in heads], dim=0)
            bias = None if heads[0].bias is None else torch.cat([h.bias for h in heads], dim=0)
        return table, offsets, pos, weight, bias

    def select_rows(self, index: torch.Tensor, groups: tuple[int, ...] | None = None) -> DecodeSession:
        """A session holding only the rows `index` of this one (a cancelled job leaves a batch),
        grouped by `groups` (only where this session groups its rows)."""
        cache = KVCache.__new__(KVCache)
        cache.kv = self.cache.kv.index_select(2, index)
        return DecodeSession(self.decoder, cache, (self.emb_table, self.emb_offsets, self.pos_table,
                                                   self.out_weight, self.out_bias),
                             groups if self.groups is not None else None)

    def _linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if self.spans is None:
            return F.linear(x, weight, bias)
        return torch.cat([F.linear(x[a:b], weight, bias) for a, b in self.spans])

    # -- the model, explicitly ----------------------------------------------------------------
    def _embed(self, tokens: torch.Tensor, pos: torch.Tensor, rhythm: torch.Tensor | None) -> torch.Tensor:
        e = F.embedding(tokens + self.emb_offsets, self.emb_table)  # (B, K, T, dim)
        x = e[:, 0]
        for k in range(1, e.shape[1]):
            x = x + e[:, k]
        if rhythm is not None and self.decoder.at_input:
            x = x + rhythm.to(x.dtype)
        return x + pos

    def _attend(self, q, k, v, mask, causal: bool, as_float32: bool) -> torch.Tensor:
        dtype = q.dtype
        if as_float32:
            q, k, v = q.float(), k.float(), v.float()
        return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, is_causal=causal).to(dtype)

    def _run(self, x: torch.Tensor, rhythm: torch.Tensor | None, write, read, mask, causal: bool) -> torch.Tensor:
        b, t, _ = x.shape
        d = self.decoder
        lin = self._linear
        for i, layer in enumerate(self.layers):
            if rhythm is not None and i in d.injection:
                x = x + rhythm.to(x.dtype)
            h = F.layer_norm(x, *layer.norm1)
            qkv = lin(h, *layer.in_proj)
            qkv = qkv.view(b, t, 3, d.heads, d.head_dim).permute(2, 0, 3, 1, 4)  # (3, B, H, T, D)
            write(i, qkv[1:])
            keys, values = read(i, qkv)
            att = self._attend(qkv[0], keys, values, mask, causal, layer.as_float32)
            att = lin(att.transpose(1, 2).reshape(b, t, d.dim), *layer.out_proj)
            x = x + (att if layer.scale_1 is None else layer.scale_1(att))
            if layer.cross is not None:
                x = x + layer.cross.to(x.dtype)
            h = F.layer_norm(x, *layer.norm2)
            ff = lin(layer.activation(lin(h, *layer.linear1)), *layer.linear2)
            x = x + (ff if layer.scale_2 is None else layer.scale_2(ff))
        out_norm = d.model.lm.out_norm
        if out_norm is not None:
            x = out_norm(x)
        logits = lin(x[:, -1], self.out_weight, self.out_bias)  # (B, K * card)
        return logits.view(b, d.n_q, d.card)

    @torch.no_grad()
    def prefill(self, sequence: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        """Run the prefix `sequence` (B, K, T) from position 0 into the cache; logits (B, K, card)
        of its last step. `cond` (B, T, dim) is the prefix's per-step conditioning."""
        t = sequence.shape[-1]
        if t > self.cache.steps:
            raise ValueError(f"prefix of {t} steps does not fit a cache of {self.cache.steps}")
        x = self._embed(sequence, self.pos_table[:t], cond)
        kv = self.cache.kv

        def write(i: int, new: torch.Tensor) -> None:
            kv[i, :, :, :, :t] = new

        return self._run(x, cond, write, lambda i, qkv: (qkv[1], qkv[2]), None, True)

    @torch.no_grad()
    def decode_step(self, tokens: torch.Tensor, position: torch.Tensor, rhythm_row: torch.Tensor | None,
                    attend: int | None = None) -> torch.Tensor:
        """Logits (B, K, card) after feeding `tokens` (B, K, 1) at `position` (a one-element device
        tensor), with the step's conditioning `rhythm_row` (B, 1, dim) or None.

        `attend` (host side, optional) is how many cached steps the query sees (`position + 1`): the
        CPU path reads only those. Without it the whole cache is read under a mask built on the
        device, so nothing in the step depends on a host value (what a CUDA graph needs).

        The step is the prefill's computation for one position, written for it: the residual
        stream lives in one preallocated (rows, dim) buffer updated in place, the weights are
        pre-transposed views, the matrix products run per group (see `groups`) into preallocated
        buffers, and the logits land in one. The returned logits are a view of that buffer:
        valid until this session's next step.
        """
        st = self._step
        d = self.decoder
        b = tokens.shape[0]
        x = st.x
        spans = self.spans
        if b != st.b:
            raise ValueError(f"a step of {b} rows in a session of {st.b}")
        e = F.embedding(tokens.view(b, d.n_q) + st.offsets, self.emb_table)  # (B, K, dim)
        x.copy_(e[:, 0])
        for k in range(1, d.n_q):  # in codebook order, as the prefill sums them
            x.add_(e[:, k])
        row = None
        if rhythm_row is not None:
            row = rhythm_row.view(b, d.dim).to(x.dtype)
            if d.at_input:
                x.add_(row)
        x.add_(self.pos_table.index_select(0, position))
        if attend is None:
            torch.le(st.arange, position, out=st.mask)
            mask = st.mask_view
        else:
            mask = None
        for layer in st.layers:
            if row is not None and layer.inject:
                x.add_(row)
            h = torch.layer_norm(x, *layer.norm1)  # F.layer_norm's kernel without its Python checks
            _mm(h, layer.in_t, layer.in_b, st.qkv, spans)
            layer.kv.index_copy_(3, position, st.kv_new)
            if attend is None:
                keys, values = layer.keys, layer.values
            else:
                keys, values = layer.keys.narrow(2, 0, attend), layer.values.narrow(2, 0, attend)
            if layer.as_float32:
                att = self._attend(st.q, keys, values, mask, False, True)
            else:
                att = F.scaled_dot_product_attention(st.q, keys, values, attn_mask=mask)
            _residual(x, att.view(b, d.dim), layer.out_t, layer.out_b, layer.scale_1, st.o, spans)
            if layer.cross is not None:
                x.add_(layer.cross)
            h = torch.layer_norm(x, *layer.norm2)
            f = layer.activation(_mm(h, layer.l1_t, layer.l1_b, st.f, spans))
            _residual(x, f, layer.l2_t, layer.l2_b, layer.scale_2, st.o, spans)
        out = x if st.out_norm is None else st.out_norm(x)
        _mm(out, st.out_t, self.out_bias, st.logits, spans)
        return st.logits_b


def _mm(x: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None, out: torch.Tensor,
        spans: list[tuple[int, int]] | None = None) -> torch.Tensor:
    """`F.linear(x, weight, bias)` for a 2-D `x` (the same BLAS call), into `out`; with `spans`,
    one call per row range (see DecodeSession's `groups`)."""
    if spans is not None:
        for a, b in spans:
            _mm(x[a:b], weight_t, bias, out[a:b])
        return out
    return torch.mm(x, weight_t, out=out) if bias is None else torch.addmm(bias, x, weight_t, out=out)


def _residual(x: torch.Tensor, h: torch.Tensor, weight_t: torch.Tensor, bias: torch.Tensor | None,
              scale: nn.Module | None, out: torch.Tensor, spans: list[tuple[int, int]] | None) -> None:
    """x += scale(linear(h)), the linear into the buffer `out`."""
    y = _mm(h, weight_t, bias, out, spans)
    x.add_(y if scale is None else scale(y))


@dataclass
class _StepLayer:
    """One layer's weights as a decode step uses them (transposed views, no copies) and its
    slice of the cache."""

    norm1: tuple
    in_t: torch.Tensor
    in_b: torch.Tensor | None
    out_t: torch.Tensor
    out_b: torch.Tensor | None
    scale_1: nn.Module | None
    cross: torch.Tensor | None
    norm2: tuple
    l1_t: torch.Tensor
    l1_b: torch.Tensor | None
    activation: object
    l2_t: torch.Tensor
    l2_b: torch.Tensor | None
    scale_2: nn.Module | None
    as_float32: bool
    inject: bool
    kv: torch.Tensor  # (2, B, H, S, D)
    keys: torch.Tensor
    values: torch.Tensor


class _StepState:
    """The preallocated buffers of a session's decode steps (static: what a CUDA graph needs)."""

    def __init__(self, session: DecodeSession) -> None:
        d = session.decoder
        kv = session.cache.kv
        self.b = rows = kv.shape[2]
        dev, dtype = kv.device, kv.dtype
        self.x = torch.zeros(rows, d.dim, device=dev, dtype=dtype)
        self.qkv = torch.empty(rows, 3 * d.dim, device=dev, dtype=dtype)
        self.q = self.qkv[:, :d.dim].view(rows, d.heads, 1, d.head_dim)
        self.kv_new = self.qkv[:, d.dim:].view(rows, 2, d.heads, 1, d.head_dim).transpose(0, 1)
        hidden = session.layers[0].linear1[0].shape[0]
        self.f = torch.empty(rows, hidden, device=dev, dtype=dtype)
        self.o = torch.empty(rows, d.dim, device=dev, dtype=dtype)
        self.offsets = session.emb_offsets.view(1, d.n_q)
        self.arange = torch.arange(kv.shape[4], device=dev)
        self.mask = torch.zeros(kv.shape[4], dtype=torch.bool, device=dev)
        self.mask_view = self.mask.view(1, 1, 1, -1)
        self.out_t = session.out_weight.t()
        self.logits = torch.empty(rows, session.out_weight.shape[0], device=dev, dtype=dtype)
        self.logits_b = self.logits.view(self.b, d.n_q, d.card)
        self.out_norm = d.model.lm.out_norm
        self.layers = []
        for i, layer in enumerate(session.layers):
            cross = None if layer.cross is None else layer.cross.to(dtype).reshape(1, d.dim)
            self.layers.append(_StepLayer(
                layer.norm1, layer.in_proj[0].t(), layer.in_proj[1], layer.out_proj[0].t(), layer.out_proj[1],
                layer.scale_1, cross, layer.norm2, layer.linear1[0].t(), layer.linear1[1], layer.activation,
                layer.linear2[0].t(), layer.linear2[1], layer.scale_2, layer.as_float32, i in d.injection,
                kv[i], kv[i, 0], kv[i, 1]))


@dataclass
class _Graph:
    session: DecodeSession
    graph: object
    tokens: torch.Tensor
    position: torch.Tensor
    rhythm: torch.Tensor
    logits: torch.Tensor
    lock: threading.Lock


class GraphSession:
    """A decode session whose steps replay a captured CUDA graph (its buffers are static)."""

    def __init__(self, entry: _Graph) -> None:
        self.entry = entry
        self.cache = entry.session.cache

    def prefill(self, sequence: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        return self.entry.session.prefill(sequence, cond)

    def decode_step(self, tokens: torch.Tensor, position: torch.Tensor, rhythm_row: torch.Tensor | None,
                    attend: int | None = None) -> torch.Tensor:
        e = self.entry
        e.tokens.copy_(tokens)
        e.position.copy_(position)
        if rhythm_row is None:
            e.rhythm.zero_()  # adding zeros changes nothing: the graph always takes a row
        else:
            e.rhythm.copy_(rhythm_row)
        e.graph.replay()
        return e.logits.clone()

    def select_rows(self, index: torch.Tensor, groups: tuple[int, ...] | None = None) -> DecodeSession:
        return self.entry.session.select_rows(index, groups)


class CudaGraphSteps:
    """One CUDA graph of `decode_step` per row count, captured at engine warm-up (cuda only).

    A graph's cache and input buffers are shared state: a job holds the graph of its row count
    while it decodes (a lock per graph); a job that finds it busy, or needs another row count or
    a longer cache, decodes eagerly instead of waiting.
    """

    def __init__(self, decoder: Decoder, steps: int, rows: tuple[int, ...] = GRAPH_ROWS,
                 compile: bool = False) -> None:
        if decoder.device.type != "cuda":
            raise RuntimeError("CUDA graphs need the model on a cuda device")
        self.decoder = decoder
        self.steps = steps
        self.compile = compile
        self.graphs: dict[int, _Graph] = {}
        for r in rows:
            self.capture(r)

    @torch.no_grad()
    def capture(self, rows: int) -> None:
        d = self.decoder
        session = d.session(rows, self.steps)
        tokens = torch.full((rows, d.n_q, 1), d.model.pad, dtype=torch.long, device=d.device)
        position = torch.zeros(1, dtype=torch.long, device=d.device)
        rhythm = torch.zeros(rows, 1, d.dim, dtype=d.dtype, device=d.device)
        step = session.decode_step
        if self.compile:
            step = torch.compile(step, dynamic=False, fullgraph=False)
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(3):  # warm-up before capture (allocator, kernels, compilation)
                step(tokens, position, rhythm)
        torch.cuda.current_stream().wait_stream(stream)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph):
            logits = step(tokens, position, rhythm)
        self.graphs[rows] = _Graph(session, graph, tokens, position, rhythm, logits, threading.Lock())
        log.info("captured a CUDA graph for %d rows over %d steps", rows, self.steps)

    @contextlib.contextmanager
    def session(self, rows: int, steps: int, groups: tuple[int, ...] | None = None
                ) -> Iterator[GraphSession | DecodeSession]:
        """A graph session for `rows` when one is free, else an eager one (`groups` is not used:
        on a GPU one product over the whole batch is the point of batching)."""
        entry = self.graphs.get(rows)
        if entry is None or steps > self.steps or not entry.lock.acquire(blocking=False):
            yield self.decoder.session(rows, steps)
            return
        try:
            yield GraphSession(entry)
        finally:
            entry.lock.release()


class EagerSteps:
    """Sessions without graphs (CPU, or a GPU without capture): a fresh cache per window.

    `per_job` (default: on the CPU): each job's matrix products run over its own rows (the
    session's `groups`), so a job gives the same tokens alone and batched with others: same seed,
    same stem. A CPU BLAS picks its kernel by the number of rows, and kernels sum in different
    orders: measured, an AMD EPYC box rounds a row alike from 4 rows on, an Intel Xeon box alike
    for 2-10 rows and otherwise from 11, so no padding to a fixed row count keeps a row alike on
    every CPU (padding 2 guidance rows to 4 also made a `small` step twice as slow on the Xeon).
    Batching then saves the per-operation work (attention, norms, sampling, one Python step for
    all jobs), not the reading of the weights. On a GPU one product over the whole batch is the
    point of batching, and cuBLAS gives no such promise anyway.
    """

    def __init__(self, decoder: Decoder, per_job: bool | None = None) -> None:
        self.decoder = decoder
        self.per_job = decoder.device.type == "cpu" if per_job is None else per_job

    @contextlib.contextmanager
    def session(self, rows: int, steps: int, groups: tuple[int, ...] | None = None) -> Iterator[DecodeSession]:
        yield self.decoder.session(rows, steps, groups if self.per_job else None)
