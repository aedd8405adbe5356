"""Every argument of ``NOVAPipeline.__call__`` checked before any work: one InputError line each.

A wrong type must not surface as an AttributeError from deep inside the sampling loop
(``generator="seed"``) or a ValueError from diffusers half-way through a video; so types,
ranges and shapes are all checked here, from the checkpoint's geometry, before the prompt is
encoded.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from .errors import InputError

OUTPUT_TYPES = ("pil", "np", "pt", "latent")
PROGRESS_METHODS = ("start", "step", "frame", "close")


def check_call(pipe, args: dict) -> None:
    """``args``: the call's parameters by name (``__call__``'s ``locals()`` on entry)."""
    geo = pipe.transformer.geometry
    for name in ("num_inference_steps", "num_diffusion_steps", "max_latent_length", "num_images_per_prompt"):
        integer(name, args[name])
    train_steps = getattr(pipe.scheduler.config, "num_train_timesteps", None)
    if train_steps and args["num_diffusion_steps"] > train_steps:
        raise InputError(f"num_diffusion_steps must be <= {train_steps} (the scheduler's training timesteps), "
                         f"got {args['num_diffusion_steps']}")
    if args["max_latent_length"] > 1 and not pipe.is_video_model:
        raise InputError("this is an image checkpoint (2D VAE): max_latent_length must be 1")
    for name in ("guidance_scale", "guidance_trunc", "guidance_renorm", "motion_flow"):
        number(name, args[name], low=0)
    if args["image_guidance_scale"] or args["spatiotemporal_guidance_scale"]:
        raise InputError("image_guidance_scale / spatiotemporal_guidance_scale (a third guidance pass)"
                         " are not supported; leave them at 0")
    _check_flow_shift(pipe, args["flow_shift"])
    rows = _check_prompts(pipe, args) * args["num_images_per_prompt"]
    _check_generator(args["generator"])
    if args["image"] is not None and args["latents"] is not None:
        raise InputError("pass either image or latents, not both")
    if args["image"] is not None:
        pipe._image_array(args["image"])
    if args["latents"] is not None:
        check_latents(args["latents"], rows, args["max_latent_length"], geo)
    if not isinstance(args["output_type"], str) or args["output_type"] not in OUTPUT_TYPES:
        raise InputError(f"output_type must be one of {', '.join(OUTPUT_TYPES)}, got {args['output_type']!r}")
    for name in ("disable_progress_bar", "cuda_graphs"):
        if not isinstance(args[name], bool):
            raise InputError(f"{name} must be True or False, got {args[name]!r}")
    if args["fast"] is not None and not isinstance(args["fast"], bool):
        raise InputError(f"fast must be None, True or False, got {args['fast']!r}")
    progress = args["progress"]
    if progress is not None and not all(callable(getattr(progress, m, None)) for m in PROGRESS_METHODS):
        raise InputError(f"progress must have the methods {', '.join(PROGRESS_METHODS)} "
                         f"(see nova_core.progress.NullProgress), got {type(progress).__name__}")
    if args["timer"] is not None and not callable(args["timer"]):
        raise InputError(f"timer must be callable (see nova_core.timing.StageTimer), got {type(args['timer']).__name__}")


def integer(name: str, value, low: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise InputError(f"{name} must be an integer >= {low}, got {value!r}")


def number(name: str, value, low: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)) or not math.isfinite(value):
        raise InputError(f"{name} must be a finite number, got {value!r}")
    if low is not None and value < low:
        raise InputError(f"{name} must be >= {low}, got {value!r}")


def _check_flow_shift(pipe, flow_shift) -> None:
    if flow_shift is None:
        return
    if not hasattr(pipe.scheduler, "set_shift"):
        raise InputError(f"flow_shift applies to flow-matching checkpoints; this one uses "
                         f"{type(pipe.scheduler).__name__}")
    number("flow_shift", flow_shift)
    if not flow_shift > 0:
        raise InputError(f"flow_shift must be a number > 0, got {flow_shift!r}")


def _check_prompts(pipe, args) -> int:
    """The number of prompts (rows before ``num_images_per_prompt``)."""
    prompt, negative = args["prompt"], args["negative_prompt"]
    embeds, negative_embeds = args["prompt_embeds"], args["negative_prompt_embeds"]
    if embeds is not None:
        if prompt is not None:
            raise InputError("pass either prompt or prompt_embeds, not both")
        dim = pipe.transformer.geometry.text_token_dim
        count = len(embedding_rows("prompt_embeds", embeds, dim))
        if negative_embeds is not None and len(embedding_rows("negative_prompt_embeds", negative_embeds, dim)) != count:
            raise InputError(f"negative_prompt_embeds: expected {count} rows, one per prompt embedding")
        return count
    if negative_embeds is not None:
        raise InputError("negative_prompt_embeds needs prompt_embeds")
    return len(prompt_lists(prompt, negative)[0])


def prompt_lists(prompt, negative_prompt) -> tuple[list[str], list[str]]:
    """(prompts, one negative per prompt) from a string or list of each."""
    prompts = [prompt] if isinstance(prompt, str) else prompt
    if not isinstance(prompts, (list, tuple)) or not prompts or not all(isinstance(p, str) for p in prompts):
        raise InputError(f"prompt must be a string or a non-empty list of strings, got {_kind(prompt)}")
    if negative_prompt is None or isinstance(negative_prompt, str):
        return list(prompts), [negative_prompt or ""] * len(prompts)
    if not isinstance(negative_prompt, (list, tuple)) or len(negative_prompt) != len(prompts) or \
            not all(isinstance(n, str) for n in negative_prompt):
        raise InputError(f"negative_prompt: expected a string or {len(prompts)} strings, one per prompt")
    return list(prompts), list(negative_prompt)


def embedding_rows(name: str, embeds, dim: int) -> list[torch.Tensor]:
    """A (N, length, dim) tensor or a list of (length, dim) floating-point tensors -> the list."""
    items = embeds
    if isinstance(items, torch.Tensor):
        if items.dim() != 3:
            raise InputError(f"{name} must be a (N, length, {dim}) tensor or a list of (length, {dim}) tensors")
        items = list(items)
    if not isinstance(items, (list, tuple)) or not items or any(
            not isinstance(e, torch.Tensor) or e.dim() != 2 or e.size(-1) != dim or e.size(0) < 1
            or not e.is_floating_point() for e in items):
        raise InputError(f"{name} must be floating-point (length, {dim}) tensors")
    return list(items)


def _check_generator(generator) -> None:
    if generator is None or isinstance(generator, torch.Generator):
        return
    if isinstance(generator, (list, tuple)):
        raise InputError("generator: pass one torch.Generator (every row draws from it in order), not a list")
    raise InputError(f"generator must be a torch.Generator (e.g. torch.Generator().manual_seed(0)) or None, "
                     f"got {_kind(generator)}")


def check_latents(latents, rows: int, num_frames: int, geo) -> torch.Tensor:
    """Pre-filled latents -> (1 or rows, C, K, h, w) float32: the shape the checkpoint needs."""
    if isinstance(latents, (list, tuple)):
        if not latents or any(not isinstance(x, torch.Tensor) or x.dim() != 4 for x in latents):
            raise InputError("latents: a list must hold (B, C, h, w) tensors, one per frame")
        if len({tuple(x.shape) for x in latents}) != 1:
            raise InputError(f"latents: the frames of the list differ in shape ({[tuple(x.shape) for x in latents]})")
        latents = torch.stack(list(latents), dim=2)
    if not isinstance(latents, torch.Tensor) or latents.dim() not in (4, 5):
        raise InputError("latents must be a (B, C, K, h, w) or (B, C, h, w) tensor or a list of frames")
    if not latents.is_floating_point():
        raise InputError(f"latents must be a floating-point tensor, got {latents.dtype}")
    latents = latents.unsqueeze(2) if latents.dim() == 4 else latents
    b, c, k, h, w = latents.shape
    expected = f"(1 or {rows}, {geo.latent_channels}, K, {geo.latent_size[0]}, {geo.latent_size[1]})"
    if c != geo.latent_channels or (h, w) != geo.latent_size or b not in (1, rows) or k < 1:
        raise InputError(f"latents have shape {tuple(latents.shape)}, expected {expected}")
    if k > num_frames:
        raise InputError(f"latents pre-fill {k} frames but max_latent_length is {num_frames}")
    if not bool(torch.isfinite(latents).all()):
        raise InputError("latents hold NaN or infinite values")
    return latents.float()


def _kind(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
