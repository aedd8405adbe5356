"""The training loop: build everything from a :class:`TrainConfig`, then step, log and save.

One optimizer step = ``batch_size`` samples (global), split into ``grad_accum`` micro-steps and
over the torchrun processes. The loss of a step is normalised by the hidden-token counts of the
whole global batch (known before the forward pass, see :mod:`.data`), and each process scales
its part by the process count to undo DDP/FSDP gradient averaging: the gradient is the same
however the batch is split.
"""

from __future__ import annotations

import contextlib
import json
import random
import signal
import time
from pathlib import Path

import numpy as np
import torch

from .. import hub, loading
from . import checkpoint, distributed
from .cache import CacheError, TrainingCache, write_atomic
from .config import ConfigError, TrainConfig
from .data import BatchMaker, BatchPlan, CaptionEncoder, SampleSettings
from .display import NullDisplay
from .ema import EMA
from .init import initialise
from .loss import NoiseSchedule, TrainingObjective
from .lr import lr_factor

LOG = "log.jsonl"


class TrainingInterrupted(Exception):
    """Ctrl-C (or SIGTERM) stopped the run after a step; a checkpoint of that step was saved."""

    def __init__(self, step: int, folder: Path):
        super().__init__(f"interrupted at step {step}; saved {folder}; run the same command to resume")
        self.step, self.folder = step, folder


class Trainer:
    def __init__(self, config: TrainConfig, display=None):
        self.cfg, t = config, config.train
        self.display = display or NullDisplay()
        self.procs = procs = distributed.setup(t.device)
        if t.batch_size % (procs.world_size * t.grad_accum):
            raise ConfigError(f"train.batch_size ({t.batch_size}) must be a multiple of processes x "
                              f"grad_accum ({procs.world_size} x {t.grad_accum})")
        self.output = Path(t.output_dir)
        if self.output.exists() and not self.output.is_dir():
            raise ConfigError(f"train.output_dir {self.output} is a file, not a folder")
        self.cache = TrainingCache(config.data.cache)
        self.resume_from = checkpoint.latest(self.output)
        if self.resume_from:  # it holds every component: the source is not needed again
            source, resume = None, checkpoint.load(self.resume_from)
        else:
            source, resume = hub.resolve(config.model.checkpoint, revision=config.model.revision or None).folder, None
        self.components = self.resume_from or source  # scheduler, VAE, text encoder, tokenizer
        index = loading.read_model_index(self.components)

        self.transformer = self._transformer(source, resume)
        self.schedule = NoiseSchedule(loading.load_scheduler(self.components, loading.class_name(index, "scheduler")))
        self._check_cache(index)
        self.captions = self._caption_encoder()
        self._freeze(t.freeze)
        for encoder in self._encoders()[: t.gradient_checkpointing]:
            encoder.gradient_checkpointing = True
        self.transformer.to(procs.device).train()
        objective = TrainingObjective(self.transformer, self.schedule, t.loss_repeat, t.rare_token_weight)
        find_unused = min(self.cache.latent_frames()) == 1  # 1-frame batches skip the frame embedding and mixer
        self.model = distributed.wrap(objective, procs, config.distributed.strategy, find_unused)

        self.optimizer = torch.optim.AdamW(self._param_groups(), lr=config.lr, betas=tuple(config.optim.betas),
                                           eps=config.optim.eps)
        self.lr_scheduler = torch.optim.lr_scheduler.LambdaLR(self.optimizer, self._lr_factor)
        named = list(self.transformer.named_parameters())
        self.ema = EMA(named, config.ema.decay) if config.ema.decay else None
        self.plan = BatchPlan(self.cache.latent_frames(), t.batch_size, t.seed)
        geo = self.transformer.geometry
        settings = SampleSettings(geo.num_tokens, geo.patch_size**2 * geo.latent_channels, t.loss_repeat,
                                  tuple(t.mask_ratio), t.mask_std, full_mask_share=t.full_mask_share,
                                  caption_dropout=config.data.caption_dropout)
        self.maker = BatchMaker(self.cache, self.schedule, settings, t.seed)
        self.step = 0
        if resume:
            self._restore(resume)

    # ------------------------------------------------------------------ building
    def _transformer(self, source: Path, resume):
        from ..transformer import NOVATransformer3DModel

        if resume is not None:
            model = NOVATransformer3DModel.from_config(resume["config"])
            model.load_state_dict(resume["weights"])
            return model
        if not self.cfg.model.scratch:
            return loading.load_transformer(source, torch.float32)
        config = loading.read_config(source / "transformer" / "config.json", "transformer")
        unknown = set(self.cfg.model.transformer) - set(NOVATransformer3DModel.init_arguments())
        if unknown:
            raise ConfigError(f"model.transformer: unknown transformer setting(s) {', '.join(sorted(unknown))}")
        config.update(self.cfg.model.transformer)
        with torch.random.fork_rng(devices=[]):  # same weights on every process, global RNG untouched
            torch.manual_seed(self.cfg.train.seed)
            model = NOVATransformer3DModel.from_config(config)
            initialise(model, self.cfg.model.init)
            model.text_embed.weight.normal_(std=0.02)
        return model

    def _check_cache(self, index: dict) -> None:
        """The cache must hold latents of this checkpoint's VAE at its size (and its text width)."""
        from .encode import cache_header

        geo, have = self.transformer.geometry, self.cache.header["checkpoint"]
        vae_config = loading.read_vae_config(self.components, loading.class_name(index, "vae"))
        want = cache_header("", loading.class_name(index, "vae"), vae_config, geo, {})["checkpoint"]
        keys = ["vae", "scaling_factor", "shift_factor", "latent_channels", "latent_size"]
        keys += ["text_token_dim"] if self.cache.has_text else []
        for key in keys:
            if have.get(key) != want[key]:
                raise CacheError(f"the cache {self.cache.folder} was encoded for {have.get('name')} with "
                                 f"{key} {have.get(key)!r}; this checkpoint has {want[key]!r}")
        if not geo.has_motion and max(self.cache.latent_frames()) > 1:
            raise CacheError(f"{self.cache.folder} holds video clips, but this is an image checkpoint")

    def _caption_encoder(self) -> CaptionEncoder:
        geo = self.transformer.geometry
        if self.cache.has_text:
            return CaptionEncoder(geo.text_token_len, geo.text_token_dim)
        dtype = torch.bfloat16 if self._bf16 else torch.float32
        encoder = loading.load_text_encoder(self.components, dtype).to(self.procs.device)
        return CaptionEncoder(geo.text_token_len, geo.text_token_dim, loading.load_tokenizer(self.components), encoder)

    def _encoders(self):
        m = self.transformer
        return [m.video_encoder, m.image_encoder, m.image_decoder]

    def _freeze(self, names) -> None:
        """Modules kept fixed (the reference keeps the text LayerNorm and motion embedding frozen)."""
        for name in names:
            parent, _, attr = name.rpartition(".")
            try:
                owner = self.transformer.get_submodule(parent) if parent else self.transformer
            except AttributeError:
                owner = None
            if owner is None or not hasattr(owner, attr):
                raise ConfigError(f"train.freeze: the transformer has no module {name!r}")
            module = getattr(owner, attr)
            if module is not None:  # e.g. motion_embed of an image checkpoint
                module.requires_grad_(False)

    def _param_groups(self):
        """AdamW weight decay on matrices only: not on biases, norms or the BOV/mask tokens."""
        decay, plain = [], []
        for name, p in self.transformer.named_parameters():
            if p.requires_grad:
                (decay if p.ndim >= 2 and not name.endswith("_token") else plain).append(p)
        return [{"params": decay, "weight_decay": self.cfg.optim.weight_decay},
                {"params": plain, "weight_decay": 0.0}]

    def _lr_factor(self, step: int) -> float:
        o = self.cfg.optim
        return lr_factor(step, o.warmup_steps, o.schedule, self.cfg.train.steps - o.warmup_steps)

    @property
    def _bf16(self) -> bool:
        return self.cfg.train.mixed_precision == "bf16" and self.procs.device.type == "cuda"

    # ------------------------------------------------------------------ resume
    def _run_state(self) -> dict:
        t = self.cfg.train
        return {"seed": t.seed, "batch_size": t.batch_size, "cache": self.cache.fingerprint,
                "loss_repeat": t.loss_repeat}

    def _restore(self, resume: dict) -> None:
        from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

        state, expected = resume["state"], self._run_state()
        for key, value in expected.items():
            if state.get(key) != value:
                raise ConfigError(f"{self.output} holds a run with {key} = {state.get(key)!r}, not {value!r}; "
                                  f"resuming would change its data order: use the same settings or a new output_dir")
        set_optimizer_state_dict(self.model, self.optimizer, resume["optimizer"],
                                 options=StateDictOptions(full_state_dict=True))
        self.lr_scheduler.load_state_dict(resume["lr_scheduler"])
        if self.ema is not None:
            if resume["ema_weights"] is None:
                raise ConfigError(f"{self.resume_from} was trained without EMA; set ema.decay = 0 to resume it")
            self.ema.load_state_dict(state["ema"], resume["ema_weights"])
        _set_rng(resume["rng"])
        self.step = int(state["step"])
        if self.procs.is_main:
            _truncate_log(self.output / LOG, self.step)

    # ------------------------------------------------------------------ the loop
    def train_step(self) -> dict:
        """One optimizer step over the global batch of ``self.step``; returns its metrics."""
        t, procs = self.cfg.train, self.procs
        items = self.plan.batch(self.step)
        count_first, count_rest = self.maker.hidden_counts(self.step, items)
        micro = t.batch_size // t.grad_accum
        per_process = micro // procs.world_size
        lr = self.optimizer.param_groups[0]["lr"]
        sums = [0.0, 0.0]
        for m in range(t.grad_accum):
            start = m * micro + procs.rank * per_process
            positions = list(range(start, start + per_process))
            batch = self.maker.make(self.step, [items[p] for p in positions], positions)
            hidden, lengths = self.captions(batch, procs.device)
            with distributed.gradient_sync(self.model, m == t.grad_accum - 1), self._autocast():
                first, rest = self.model(**batch.to(procs.device), text_hidden=hidden, text_lengths=lengths)
                loss = _mean(first, count_first) + _mean(rest, count_rest)
                (loss * procs.world_size).backward()
            sums[0], sums[1] = sums[0] + first.item(), sums[1] + rest.item()
        if t.max_grad_norm:
            torch.nn.utils.clip_grad_norm_(self.transformer.parameters(), t.max_grad_norm)
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.lr_scheduler.step()
        if self.ema is not None:
            self.ema.update(self.transformer.named_parameters())
        self.step += 1
        return dict(_losses(distributed.all_sum(sums, procs), count_first, count_rest), lr=lr)

    @torch.no_grad()
    def evaluate(self, step: int = 0) -> dict:
        """The loss of step ``step``'s global batch and draws under the current weights, without
        training: a fixed yardstick (same items, masks, noise and timesteps every time)."""
        t, procs = self.cfg.train, self.procs
        items = self.plan.batch(step)
        count_first, count_rest = self.maker.hidden_counts(step, items)
        per_process = t.batch_size // procs.world_size
        positions = list(range(procs.rank * per_process, (procs.rank + 1) * per_process))
        batch = self.maker.make(step, [items[p] for p in positions], positions)
        hidden, lengths = self.captions(batch, procs.device)
        with self._autocast():
            objective = distributed.unwrap(self.model)
            first, rest = objective(**batch.to(procs.device), text_hidden=hidden, text_lengths=lengths)
        return _losses(distributed.all_sum([first.item(), rest.item()], procs), count_first, count_rest)

    def _autocast(self):
        if self._bf16:
            return torch.autocast("cuda", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def run(self) -> Path:
        """Train up to ``train.steps``; returns the last checkpoint folder."""
        t, log = self.cfg.train, self.cfg.log
        if self.procs.is_main:
            self.output.mkdir(parents=True, exist_ok=True)
            write_atomic(self.output / "config.toml", self.cfg.to_toml())
            if self.resume_from:
                self.display.message(f"resuming {self.resume_from} (step {self.step})")
        last = self.resume_from
        if self.step >= t.steps:
            self.display.message(f"{self.output} is already at step {self.step} of {t.steps}: nothing to do")
            return last
        window, started = [], time.perf_counter()
        self.display.start(t.steps, self.step)
        try:
            with _StopRequest() as stop:
                while self.step < t.steps:
                    tick = time.perf_counter()
                    window.append(dict(self.train_step(), seconds=time.perf_counter() - tick))
                    self.display.advance(self.step)
                    if self.step % log.every == 0 or self.step == t.steps:
                        self._log(window, time.perf_counter() - started)
                        window = []
                    stopping = distributed.any_process(stop.requested, self.procs)
                    if self.step % log.save_every == 0 or self.step == t.steps or stopping:
                        last = self.save()
                    if stopping:
                        raise TrainingInterrupted(self.step, last)
        finally:
            self.display.close()
        return last

    def _log(self, window: list[dict], elapsed: float) -> None:
        """Means over the steps since the last line; throughput counts training time only."""
        metrics = {"step": self.step, "epoch": self.plan.epoch_of(self.step - 1)}
        for key in ("loss", "loss_t2i", "loss_i2i"):
            values = [m[key] for m in window if key in m]
            if values:
                metrics[key] = float(np.mean(values))
        metrics["lr"] = window[-1]["lr"]
        seconds = sum(m["seconds"] for m in window)
        metrics["samples_per_s"] = len(window) * self.cfg.train.batch_size / max(seconds, 1e-9)
        metrics["elapsed_s"] = round(elapsed, 3)
        if self.procs.is_main:
            with open(self.output / LOG, "a") as f:
                f.write(json.dumps(metrics) + "\n")
            self.display.log(metrics)

    # ------------------------------------------------------------------ saving
    def save(self) -> Path:
        """Checkpoint the current step (every process takes part in gathering FSDP shards)."""
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict
        from torch.distributed.checkpoint.state_dict import get_optimizer_state_dict

        options = StateDictOptions(full_state_dict=True, cpu_offload=True)
        weights = get_model_state_dict(self.model, options=options)
        optimizer = get_optimizer_state_dict(self.model, self.optimizer, options=options)
        ema = None
        if self.ema is not None:
            ema = {name: distributed.full_tensor(t) for name, t in self.ema.shadow.items()}
            ema.update({name: b.detach().cpu() for name, b in self.transformer.named_buffers()})
        folder = self.output / checkpoint.name_for(self.step)
        if self.procs.is_main:
            prefix = "transformer."
            weights = {k[len(prefix):]: v for k, v in weights.items() if k.startswith(prefix)}
            state = dict(self._run_state(), world_size=self.procs.world_size, source=self.cfg.model.checkpoint,
                         ema=self.ema.state_dict() if self.ema else None, epoch=self.plan.epoch_of(self.step))
            folder = checkpoint.save(
                self.output, self.step, components=self.components,
                transformer_config=json.loads(self.transformer.to_json_string()),
                weights=weights, ema_weights=ema, optimizer=optimizer,
                lr_scheduler=self.lr_scheduler.state_dict(), rng=_get_rng(), state=state)
            checkpoint.prune(self.output, self.cfg.log.keep_last)
        distributed.barrier(self.procs)
        self.components = folder  # later saves link from here (the source may be a Hub cache)
        return folder


def _losses(sums, count_first: int, count_rest: int) -> dict:
    """Mean loss over the hidden tokens of frame 0 (t2i) and of later frames (i2i); their sum is
    the loss (frame 0 weighs as much as all later frames together, as in the reference)."""
    metrics = {"loss_t2i": _mean(sums[0], count_first)}
    if count_rest:
        metrics["loss_i2i"] = _mean(sums[1], count_rest)
    metrics["loss"] = metrics["loss_t2i"] + metrics.get("loss_i2i", 0.0)
    return metrics


def _mean(total, count: int):
    """total / count; 0 when no token is hidden (possible only with tiny frames and low ratios)."""
    return total / count if count else total * 0


class _StopRequest:
    """Turns Ctrl-C / SIGTERM into a request checked between steps (a step is never cut in half)."""

    def __init__(self):
        self.requested, self._previous = False, {}

    def _handle(self, signum, frame):
        self.requested = True

    def __enter__(self):
        import threading

        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc):
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)


def _get_rng() -> dict:
    """Global generator states. The loop itself draws only from per-sample generators (see
    :mod:`.data`); these are restored so that anything else drawing globally resumes too."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    state = {"torch": torch.get_rng_state(), "python": random.getstate(),
             "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached]}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    if "cuda" in state and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])


def _truncate_log(path: Path, step: int) -> None:
    """Drop log lines of steps after the resumed checkpoint (they are trained again)."""
    if path.is_file():
        lines = [line for line in path.read_text().splitlines() if line.strip()]
        kept = [line for line in lines if json.loads(line)["step"] <= step]
        write_atomic(path, "".join(line + "\n" for line in kept))
