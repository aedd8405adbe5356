"""``nova train``: fine-tune a checkpoint (or train one from scratch) on a ``nova prepare`` cache.

Settings come from a TOML file (``--config``), then the flags, then ``--set section.key=value``.
Run it as is on one GPU or the CPU, or under ``torchrun --nproc-per-node N -m nova_cli train``.
A run writes checkpoints in the official layout into ``--output-dir`` and resumes from the newest
one when started again with the same settings.
"""

from __future__ import annotations

from pathlib import Path

import typer

# flag name -> setting it overrides
FLAGS = {
    "model": "model.checkpoint", "scratch": "model.scratch", "cache": "data.cache",
    "output_dir": "train.output_dir", "steps": "train.steps", "batch_size": "train.batch_size",
    "grad_accum": "train.grad_accum", "seed": "train.seed", "lr": "optim.lr",
    "warmup_steps": "optim.warmup_steps", "ema_decay": "ema.decay", "log_every": "log.every",
    "save_every": "log.save_every", "gradient_checkpointing": "train.gradient_checkpointing",
    "mixed_precision": "train.mixed_precision", "strategy": "distributed.strategy", "device": "train.device",
}


def train(
    config: Path = typer.Option(None, "--config", "-c", help="TOML settings file (see README, Training)."),
    model: str = typer.Option(None, "--model", "-m", help="Checkpoint to start from: folder or Hub repo id."),
    scratch: bool = typer.Option(None, "--scratch", help="Random transformer weights (the checkpoint still "
                                 "gives the architecture, VAE, text encoder, scheduler); off: "
                                 "--set model.scratch=false.", show_default=False),
    cache: str = typer.Option(None, "--cache", help="Cache folder written by `nova prepare`."),
    output_dir: str = typer.Option(None, "--output-dir", "-o", help="Where checkpoints and log.jsonl go."),
    steps: int = typer.Option(None, "--steps", help="Optimizer steps in total."),
    batch_size: int = typer.Option(None, "--batch-size", help="Samples per step over all processes."),
    grad_accum: int = typer.Option(None, "--grad-accum", help="Micro-steps per optimizer step."),
    seed: int = typer.Option(None, "--seed", help="Seed of the data order, masks and noise."),
    lr: float = typer.Option(None, "--lr", help="Learning rate (0: 1e-4 x batch / 256)."),
    warmup_steps: int = typer.Option(None, "--warmup-steps", help="Linear learning-rate warm-up steps."),
    ema_decay: float = typer.Option(None, "--ema-decay", help="EMA decay of the saved weights; 0 disables the EMA."),
    log_every: int = typer.Option(None, "--log-every", help="Steps between lines in log.jsonl."),
    save_every: int = typer.Option(None, "--save-every", help="Steps between checkpoints (one is always saved at the end)."),
    gradient_checkpointing: int = typer.Option(None, "--gradient-checkpointing",
                                               help="0 off; 1 temporal encoder, 2 + spatial, 3 + diffusion head."),
    mixed_precision: str = typer.Option(None, "--mixed-precision", help="bf16 (CUDA autocast) or no."),
    strategy: str = typer.Option(None, "--strategy", help="ddp or fsdp (with torchrun)."),
    device: str = typer.Option(None, "--device", help="auto, cpu or cuda."),
    assignments: list[str] = typer.Option(None, "--set", help="Any setting, section.key=value (repeatable)."),
    print_config: bool = typer.Option(False, "--print-config", help="Print the resolved settings as TOML and exit."),
):
    """Train or fine-tune NOVA on a cache from `nova prepare` (single process or torchrun)."""
    from nova_core.training.config import load_config, parse_assignment

    values = dict(model=model, scratch=scratch, cache=cache, output_dir=output_dir, steps=steps,
                  batch_size=batch_size, grad_accum=grad_accum, seed=seed, lr=lr, warmup_steps=warmup_steps,
                  ema_decay=ema_decay, log_every=log_every, save_every=save_every,
                  gradient_checkpointing=gradient_checkpointing, mixed_precision=mixed_precision,
                  strategy=strategy, device=device)
    overrides = {FLAGS[name]: value for name, value in values.items() if value is not None}
    overrides.update(parse_assignment(a) for a in assignments or [])
    settings = load_config(config, overrides, check=not print_config)
    if print_config:
        typer.echo(settings.to_toml())
        return

    from nova_core.training import distributed
    from nova_core.training.display import default_display
    from nova_core.training.trainer import Trainer, TrainingInterrupted

    display = default_display(is_main=distributed.torchrun_ranks()[0] == 0)
    try:
        trainer = Trainer(settings, display)
        folder = trainer.run()
    except TrainingInterrupted as exc:
        from .errors import Interrupted

        raise Interrupted(str(exc)) from None
    finally:
        distributed.teardown()
    if trainer.procs.is_main and folder is not None:
        display.message(f"checkpoint: {folder} (generate with it: --model {folder})")


def config_defaults() -> dict[str, str]:
    """flag -> the built-in value of the setting it overrides (what applies without it or a --config)."""
    from nova_core.training.config import TrainConfig

    config = TrainConfig()
    found = {}
    for flag, setting in FLAGS.items():
        section, key = setting.split(".")
        value = getattr(getattr(config, section), key)
        if value not in ("", None):
            found[flag] = str(value).lower() if isinstance(value, bool) else str(value)
    return found


def register(app: typer.Typer) -> None:
    from .options import show_defaults

    show_defaults(train, config_defaults())
    app.command("train")(train)
