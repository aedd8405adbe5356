"""The fast path (the default): the same function as :mod:`nova_core.sampling`, restructured for speed.

What changes, and why it computes the same thing:

* Everything fixed once the token order is drawn (per-step index tensors, masks, scheduler
  coefficients, whether CFG is still on at each diffusion step, the head's timestep branch for
  every timestep) is built once per call (:class:`FramePlan`), not at every step.
* The canvas lives in token layout (B, N, p*p*C). A set's diffusion loop carries only its own
  tokens (guidance and the scheduler are elementwise; the plain path discards the other rows),
  or the whole canvas under guidance renorm, whose norms see the other rows' noisy input.
* The head runs as :class:`~nova_core.diffusion_head.FusedHead`: its condition branch once per
  set, each step a few large ops. On the CPU the loop is per-op overhead, not arithmetic, so
  this is what makes the fast path the faster one there too.
* Noise is drawn on the caller's generator in the reference's order (per set: one canvas, then
  one per DDPM step with t > 0), into pinned memory, and copied without blocking the host.
* Scheduler updates use :class:`~nova_core.schedulers.TensorScheduler` (diffusers' coefficients).
* So a set-by-set step has static shapes and no host synchronisation: with ``cuda_graphs`` each
  of the S steps is captured once and replayed for every later frame, and for every later call
  whose :func:`graph_key` is the same (the pipeline keeps a :class:`GraphCache`).

Token order, random draws and the math are those of the plain path; only floating-point
summation order differs (tests: float32 fast == plain within a bound derived from float32
rounding, see tests/nova_core/test_sampling_fast.py).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from .devices import current_stream, device_scope
from .diffusion_head import FusedHead
from .patches import patchify, unpatchify
from .sampling import Guidance, draw
from .schedulers import TensorScheduler
from .timing import NullTimer


@dataclass
class FramePlan:
    """Per set-by-set step i: which tokens are known / predicted, as ready-made device tensors."""

    known: list[torch.Tensor]  # (rows, known_i, 1) ids of revealed tokens (CFG-expanded)
    current: list[torch.Tensor]  # (rows, k_i, 1) ids predicted at step i (CFG-expanded)
    hidden: list[torch.Tensor]  # (B, N, 1) model dtype: 1 where the token is still a MASK
    cfg: list[bool]  # per diffusion step: CFG still on (guidance_trunc switches it off)
    head: FusedHead  # the diffusion head with this call's timestep branch precomputed

    @classmethod
    def build(cls, order, num_preds, scheduler: TensorScheduler, guidance: Guidance, dtype, head):
        batch, num_tokens, _ = order.shape
        device, known, current, hidden, start = order.device, [], [], [], 0
        for k in num_preds:
            known.append(guidance.expand(order[:, :start]))
            current.append(guidance.expand(order[:, start : start + k]))
            mask = torch.zeros(batch, num_tokens, 1, device=device)
            hidden.append(mask.scatter(1, order[:, start:], 1).to(dtype))
            start += k
        cfg, on = [], guidance.enabled
        for t in scheduler.timesteps:
            on = on and not (guidance.trunc and float(t) < guidance.trunc)
            cfg.append(on)
        return cls(known, current, hidden, cfg, FusedHead(head, scheduler.timesteps))


class NoiseStream:
    """The per-set noise of the reference's draw order, delivered on the device.

    Each set needs 1 + (#DDPM steps with t > 0) canvases; they are drawn one canvas at a time (so
    the stream of numbers equals the plain path's) into a pinned buffer and copied asynchronously.
    Two pinned buffers alternate; an event recorded on the copying stream (the current stream of
    *this* device, named explicitly) guards a buffer until its copy has finished, so the host never
    rewrites a buffer whose copy is still queued.
    """

    def __init__(self, generator, count: int, shape, device, patch: int):
        self.generator, self.count, self.shape, self.patch = generator, count, tuple(shape), patch
        self.device = torch.device(device)
        gen_device = generator.device if generator is not None else torch.device("cpu")
        self.staged = self.device.type == "cuda" and gen_device.type == "cpu"
        self.buffers = [torch.empty((count,) + self.shape, pin_memory=self.staged) for _ in range(2 if self.staged else 1)]
        self.events = [None] * len(self.buffers)
        self.turn = 0

    def next(self) -> torch.Tensor:
        """(count, B, N, p*p*C) float32 on the device."""
        i = self.turn = (self.turn + 1) % len(self.buffers)
        if not self.staged:
            canvases = torch.stack([draw(self.shape, self.generator) for _ in range(self.count)]).to(self.device)
        else:
            if self.events[i] is not None:
                self.events[i].synchronize()  # the copy from two sets ago; long finished in practice
            for j in range(self.count):
                self.buffers[i][j].normal_(generator=self.generator)
            stream = current_stream(self.device)
            with torch.cuda.stream(stream):
                canvases = self.buffers[i].to(self.device, non_blocking=True)
            self.events[i] = torch.cuda.Event()
            self.events[i].record(stream)
        b = self.shape[0]
        tokens = patchify(canvases.flatten(0, 1), self.patch)
        return tokens.view(self.count, b, *tokens.shape[1:])


def prepare(order, num_preds, sched: TensorScheduler, guidance: Guidance, generator, geo, dtype, head):
    """What the fast path builds once the set order is drawn: (order, plan, noise stream)."""
    plan = FramePlan.build(order, num_preds, sched, guidance, dtype, head)
    noise = NoiseStream(generator, 1 + sum(sched.draws_noise), (order.size(0), geo.latent_channels,
                        *geo.latent_size), order.device, geo.patch_size)
    return order, plan, noise


def spatial_step(model, i, plan: FramePlan, sched: TensorScheduler, guidance: Guidance, x, c, pos, noises,
                 timer=NullTimer()):
    """One set-by-set step on the token canvas x (B, N, ppC, float32): encode, denoise, write.

    The set's tokens are still 0 in x (each token is written once), so writing them is a scatter.
    """
    dtype, batch = c.dtype, x.size(0)
    with timer("spatial"):
        tokens = model.image_encoder.patch_embed.embed_patches(x.to(dtype))
        hidden = plan.hidden[i]
        tokens = tokens * (1 - hidden) + model.mask_embed.mask_token * hidden
        z = model.image_encoder(guidance.expand(tokens), c, plan.known[i], pos)
    with timer("head"):
        ids = plan.current[i]
        tokens = _denoise_set(plan, sched, guidance, z, ids, noises, batch)
        return x.scatter(1, ids[:batch].expand(-1, -1, x.size(-1)), tokens)


def _denoise_set(plan, sched, guidance, z, ids, noises, batch):
    """The diffusion loop of one set; returns its denoised tokens (B, k, ppC).

    Guidance and the scheduler are elementwise, so only the set's tokens are carried through the
    steps, as rows (B*k, ppC), cond rows first; guidance renorm measures norms over the whole
    canvas, so then the canvas is carried (its other rows hold the noisy input, as in the plain path).
    """
    dtype, width, k = z.dtype, noises.size(-1), ids.size(1)
    canvas = guidance.enabled and guidance.renorm < 1
    own = ids[:batch].expand(-1, -1, width)
    if not canvas:
        noises = noises.gather(2, own.expand(noises.size(0), -1, -1, -1)).flatten(1, 2)
    cond = plan.head.condition(z.gather(1, ids.expand(-1, -1, z.size(-1))))
    conds = {True: cond, False: cond[: batch * k]}  # CFG rows, or the cond rows once CFG is off
    xs, drawn = noises[0], 1
    for j, cfg in enumerate(plan.cfg):
        sel = xs.gather(1, own).flatten(0, 1) if canvas else xs
        out = plan.head((torch.cat([sel, sel]) if cfg else sel).to(dtype), j, conds[cfg]).float()
        if canvas:
            rows = ids.size(0) if cfg else batch
            out = (torch.cat([xs, xs]) if cfg else xs).scatter(1, ids[:rows].expand(-1, -1, width),
                                                               out.view(rows, k, width))
        out = guidance.combine(out) if cfg else out
        noise = None
        if sched.draws_noise[j]:
            noise, drawn = noises[drawn], drawn + 1
        xs = sched.step(j, xs, out, noise)
    return xs.gather(1, own) if canvas else xs.view(batch, k, width)


class GraphedSteps:
    """CUDA graphs of the S set-by-set steps of one :func:`graph_key`, captured on first use.

    A graph replays kernels on fixed addresses, so every tensor a step reads is a static buffer
    owned here: the canvas, the frame's condition, the set's noise, the position table and the
    plan (token order and masks; a new call copies its own values in with :meth:`bind`).
    The scheduler coefficients and guidance of the capturing call are kept: the key says they
    are equal for every call that reuses these graphs. Graphs share one memory pool; that is safe
    because they replay one after another in capture order. Capture and replay run on this
    device's streams, named explicitly.
    """

    def __init__(self, model, plan: FramePlan, sched: TensorScheduler, guidance: Guidance, pos, x, c, noises):
        self.model, self.sched, self.guidance = model, sched, guidance
        # The capturing call's head stays with the graphs (its timestep table and fused weights are
        # what they read); the key's schedule and weight addresses make it equal for later calls.
        self.plan = replace(plan, **{name: [t.clone() for t in getattr(plan, name)] for name in _PLAN_TENSORS})
        self.pos, self.x, self.c, self.noises = pos.clone(), x.clone(), c.clone(), noises.clone()
        self.device = c.device
        self.graphs, self.pool = {}, torch.cuda.graph_pool_handle()

    def bind(self, plan: FramePlan, pos) -> None:
        """Copy this call's plan and position table into the buffers the graphs read."""
        for name in _PLAN_TENSORS:
            for mine, theirs in zip(getattr(self.plan, name), getattr(plan, name)):
                mine.copy_(theirs)
        self.pos.copy_(pos)

    def _run(self, i):
        return spatial_step(self.model, i, self.plan, self.sched, self.guidance, self.x, self.c, self.pos,
                            self.noises)

    def __call__(self, i, x, c, noises):
        with device_scope(self.device):  # capture and replay on this device's streams, whoever calls
            self.x.copy_(x)
            self.c.copy_(c)
            self.noises.copy_(noises)
            if i not in self.graphs:
                self.graphs[i] = self._capture(i)
            graph, out = self.graphs[i]
            graph.replay()
            return out.clone()

    def _capture(self, i):
        main, side = current_stream(self.device), torch.cuda.Stream(self.device)
        side.wait_stream(main)
        with torch.cuda.stream(side):  # warm-up run outside the graph (allocator, kernels)
            self._run(i)
        main.wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool, stream=torch.cuda.Stream(self.device)):
            out = self._run(i)
        return graph, out


_PLAN_TENSORS = ("known", "current", "hidden")  # what a call's token order changes (the rest the key fixes)


def graph_key(model, plan: FramePlan, sched: TensorScheduler, guidance: Guidance, c, pos, noise_count) -> tuple:
    """Everything that fixes a captured step: shapes (batch, CFG rows, set sizes, tokens), dtype,
    device, the schedule and guidance values baked into its kernels, and the address of every
    weight it reads (a moved or reloaded model gets new ones)."""
    weights = tuple(t.data_ptr() for t in (*model.parameters(), *model.buffers()))
    batch = plan.hidden[0].size(0) if plan.hidden else 0
    return (str(c.device), str(c.dtype), tuple(c.shape), tuple(pos.shape), batch,
            tuple(t.size(1) for t in plan.current), tuple(plan.cfg), sched.signature,
            (guidance.scale, guidance.trunc, guidance.renorm), noise_count, id(model), weights)


class GraphCache:
    """The captured steps of the last key, kept across calls (a pipeline holds one).

    ``get`` returns the graphs for a key, capturing anew (and dropping the old ones, with their
    memory pool) when the key changed; ``clear`` drops them (the pipeline does when it moves).
    """

    def __init__(self):
        self.key, self.steps = None, None

    def get(self, key, build):
        if key != self.key:
            self.clear()
            self.steps, self.key = build(), key
        return self.steps

    def clear(self) -> None:
        self.key, self.steps = None, None


def graphed_steps(cache: GraphCache, model, plan, sched, guidance, c, pos, noise_count):
    """The cache's graphs for this call (bound to its plan), built if the key is new."""
    geo, batch, p = model.geometry, plan.hidden[0].size(0), model.geometry.patch_size
    canvas = (batch, (geo.latent_size[0] // p) * (geo.latent_size[1] // p), p * p * geo.latent_channels)
    key = graph_key(model, plan, sched, guidance, c, pos, noise_count)
    with device_scope(c.device):
        steps = cache.get(key, lambda: GraphedSteps(
            model, plan, sched, guidance, pos, torch.zeros(canvas, device=c.device), c,
            torch.empty((noise_count, *canvas), device=c.device)))
        steps.bind(plan, pos)
    return steps


def sample_frame_fast(model, plan, sched, c, pos, noise_stream, guidance, progress, frame_index=0,
                      graphs: GraphedSteps | None = None, timer=NullTimer()):
    geo = model.geometry
    p = geo.patch_size
    grid = (geo.latent_size[0] // p, geo.latent_size[1] // p)
    batch = plan.hidden[0].size(0) if plan.hidden else 1
    x = torch.zeros(batch, grid[0] * grid[1], p * p * geo.latent_channels, device=c.device)

    def run(i, x, c, noises):
        return spatial_step(model, i, plan, sched, guidance, x, c, pos, noises, timer)

    step = graphs if graphs is not None else run  # graphs: no timers (events cannot be captured)
    for i in range(len(plan.hidden)):
        x = step(i, x, c, noise_stream.next())
        progress.step(frame_index, i + 1, len(plan.hidden))
    return unpatchify(x, p, grid)
