"""NOVAPipeline: load a checkpoint, turn prompts (and an image or latents) into images or videos.

Argument names, defaults and outputs follow the reference pipeline (diffnext), so code written
for it runs after changing the import. Differences, all deliberate:

* a call leaves no state behind (the reference keeps ``flow_shift`` on its scheduler);
* ``latents`` may pre-fill K >= 1 frames, all of which go through the temporal encoder;
* the VAE decodes T latents to 1 + 4(T-1) frames for every T;
* noise is drawn in float32 and the latent canvas stays float32 in every dtype.
"""

from __future__ import annotations

import functools
import sys
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from . import hub, loading
from .devices import device_scope
from .arguments import check_call, check_latents, embedding_rows, prompt_lists
from .errors import InputError
from .progress import NullProgress, RichProgress
from .sampling import Guidance, sample_video
from .sampling_fast import GraphCache
from .schedulers import supports as tensor_form_exists
from .text import encode_prompts
from .timing import NullTimer

# diffusers' from_pretrained options nova cannot honour: the only value it behaves as (None is
# always fine). Anything else given is refused, not silently ignored.
LOADING_OPTIONS = {
    "trust_remote_code": (False, "nova never runs code from a checkpoint; every component is built from "
                                 "nova's own classes"),
    "use_safetensors": (True, "nova reads only safetensors"),
    "variant": (None, "weight variants are not supported: the weights load as stored; pass torch_dtype"),
    "device_map": (None, "load, then move with .to(device), or use enable_low_memory(device)"),
}
HARMLESS_OPTIONS = {"low_cpu_mem_usage"}  # always true: weights are built on the meta device, then assigned


def check_loading_options(options: dict) -> None:
    for name, value in options.items():
        if name in HARMLESS_OPTIONS:
            continue
        if name not in LOADING_OPTIONS:
            raise InputError(f"from_pretrained got an unknown argument {name!r} (known besides the path: "
                             f"torch_dtype, revision, cache_dir, local_files_only, timer, "
                             f"{', '.join([*LOADING_OPTIONS, *HARMLESS_OPTIONS])})")
        wanted, why = LOADING_OPTIONS[name]
        if value is not None and value != wanted:
            raise InputError(f"{name}={value!r}: {why}")


def vae_input(pixels: np.ndarray, vae) -> torch.Tensor:
    """uint8 (H, W, 3) or (F, H, W, 3) -> (1, 3, [F,] H, W) in [-1, 1] on the VAE's device and dtype."""
    x = torch.from_numpy(np.array(pixels)).to(vae.device, vae.dtype)  # a writable copy
    return ((x - 127.5) / 127.5).movedim(-1, 0).unsqueeze(0)


def on_execution_device(method):
    """Run a pipeline method with its execution device as CUDA's current device, so nothing that
    uses "the current device" (streams, events, graph capture, empty_cache) lands on GPU 0 when
    the pipeline is on cuda:N."""

    @functools.wraps(method)
    def call(self, *args, **kwargs):
        with device_scope(self.execution_device):
            return method(self, *args, **kwargs)

    return call


@dataclass
class NOVAPipelineOutput:
    """``images`` (B, H, W, 3 / B, 3, H, W / list of PIL) or ``frames`` (B, T, ... / list of lists)."""

    images: Any = None
    frames: Any = None

    def __getitem__(self, index):
        return [v for v in (self.images, self.frames) if v is not None][index]


class NOVAPipeline:
    """The five components of a NOVA checkpoint and the generation call."""

    def __init__(self, transformer, scheduler, vae, text_encoder, tokenizer, *, name_or_path=None,
                 revision=None):
        self.transformer, self.scheduler, self.vae = transformer, scheduler, vae
        self.text_encoder, self.tokenizer = text_encoder, tokenizer
        self.name_or_path, self.revision = name_or_path, revision
        self._execution_device = None  # set by enable_low_memory
        self._cuda_graphs = GraphCache()  # captured set-by-set steps, replayed by later calls

    # ----------------------------------------------------------------- loading and saving
    @classmethod
    def from_pretrained(cls, path_or_repo_id, torch_dtype=None, revision=None, cache_dir=None,
                        local_files_only=False, timer=None, **options) -> "NOVAPipeline":
        """A local folder in the official layout, or a Hub repo id (downloaded into the HF cache).

        Nothing in the folder is ever executed: the ``.py`` files that Hub repos ship are never
        downloaded or imported, remote code is refused, only safetensors are read, and every
        component's weights must match its config exactly (see :mod:`nova_core.loading`).
        ``trust_remote_code=True`` is refused rather than ignored.
        ``timer`` (a :class:`~nova_core.timing.StageTimer`-like callable) receives each component's
        name while it loads, so a caller can show and time the loading.
        """
        check_loading_options(options)
        if torch_dtype is not None and not isinstance(torch_dtype, torch.dtype):
            raise InputError(f"torch_dtype must be a torch.dtype such as torch.float16, got {torch_dtype!r}")
        if torch_dtype is not None and not torch_dtype.is_floating_point:
            raise InputError(f"torch_dtype must be a floating-point dtype, got {torch_dtype}")
        dtype = torch_dtype or torch.float32
        timer = timer or NullTimer()
        found = hub.resolve(path_or_repo_id, revision=revision, cache_dir=cache_dir,
                            local_files_only=local_files_only)
        return cls(**loading.load_components(found.folder, dtype, timer), name_or_path=found.name,
                   revision=found.revision)

    def save_pretrained(self, folder) -> None:
        """Write the official folder layout (loadable by this class and by diffnext's shims)."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        self.transformer.save_pretrained(folder / "transformer")
        self.vae.save_pretrained(folder / "vae")
        self.scheduler.save_pretrained(folder / "scheduler")
        self.tokenizer.save_pretrained(folder / "tokenizer")
        loading.save_text_encoder(self.text_encoder, folder / "text_encoder")
        loading.save_model_index(folder, type(self.scheduler).__name__, type(self.vae).__name__)

    def to(self, *args, **kwargs) -> "NOVAPipeline":
        """Move/cast every component (this also ends low-memory mode and drops captured graphs)."""
        self._cuda_graphs.clear()
        for module in (self.transformer, self.vae, self.text_encoder):
            module.to(*args, **kwargs)
        self._execution_device = None
        return self

    @property
    def device(self) -> torch.device:
        return self.transformer.device

    @property
    def dtype(self) -> torch.dtype:
        return self.transformer.dtype

    @property
    def is_video_model(self) -> bool:
        return type(self.vae).__name__ == "AutoencoderKLOpenSora"

    # ----------------------------------------------------------------- the call
    @on_execution_device
    @torch.no_grad()
    def __call__(
        self,
        prompt=None,
        num_inference_steps=64,
        num_diffusion_steps=25,
        max_latent_length=1,
        guidance_scale=5,
        guidance_trunc=0,
        guidance_renorm=1,
        image_guidance_scale=0,
        spatiotemporal_guidance_scale=0,
        flow_shift=None,
        motion_flow=5,
        negative_prompt=None,
        image=None,
        num_images_per_prompt=1,
        generator=None,
        latents=None,
        prompt_embeds=None,
        negative_prompt_embeds=None,
        disable_progress_bar=False,
        output_type="pil",
        progress=None,
        fast=None,
        cuda_graphs=False,
        timer=None,
    ) -> NOVAPipelineOutput:
        """Generate images (max_latent_length 1) or videos of ``max_latent_length`` latent frames.

        ``image`` (uint8 H x W x 3 array or PIL image at the model's resolution) becomes latent
        frame 0; ``latents`` ((B, C, K, h, w), (B, C, h, w) or a list of K (B, C, h, w) tensors,
        scaled latent space) pre-fill the first K frames. ``progress`` takes a
        :class:`~nova_core.progress.NullProgress`-like object. ``fast`` (default: on whenever the
        scheduler has a tensor form, on every device) runs the same computation in the form of
        :mod:`nova_core.sampling_fast`, several times faster on the CPU too; ``fast=False`` runs the
        readable loop of :mod:`nova_core.sampling`; ``cuda_graphs`` (opt-in) also captures its steps,
        and later calls with the same shapes, steps, schedule and guidance replay them; ``timer``
        (:class:`~nova_core.timing.StageTimer`) collects per-stage times.
        """
        check_call(self, dict(locals()))  # every argument, before any work
        guidance = Guidance(float(guidance_scale), float(guidance_trunc), float(guidance_renorm))
        scheduler = self._fresh_scheduler(flow_shift)

        timer = timer or NullTimer()
        with self._stage(self.text_encoder), timer("text"):
            text = self.encode_prompt(prompt, num_images_per_prompt, negative_prompt, prompt_embeds,
                                      negative_prompt_embeds, guidance.enabled)
        batch = text.size(0) // (2 if guidance.enabled else 1)
        if image is not None:  # the posterior sample is the first random draw of the call
            latents = self.encode_image(image, generator)
        prefill = self._prefill(latents, batch, max_latent_length)
        flow = None
        if self.transformer.motion_embed is not None:
            flow = torch.full((text.size(0),), float(motion_flow))

        if progress is None:
            progress = NullProgress() if disable_progress_bar or not sys.stderr.isatty() else RichProgress()
        on_cuda = self.execution_device.type == "cuda"
        if fast is None:
            fast = tensor_form_exists(scheduler)
        if cuda_graphs and not (fast and on_cuda):
            raise InputError("cuda_graphs needs the fast path on a CUDA device")
        with self._stage(self.transformer):
            result = sample_video(
                self.transformer, scheduler, self.transformer.prefix(text, flow),
                num_frames=max_latent_length, prefill=prefill, num_inference_steps=num_inference_steps,
                num_diffusion_steps=num_diffusion_steps, guidance=guidance, generator=generator,
                progress=progress, fast=fast, cuda_graphs=cuda_graphs, timer=timer,
                graph_cache=self._cuda_graphs,
            )
        if output_type == "latent":
            return self.postprocess(result.latents.to(self.dtype), output_type)
        with self._stage(self.vae), timer("vae_decode"):
            x = self.decode_latents(result.latents)
        return self.postprocess(x, output_type)

    # ----------------------------------------------------------------- low memory
    def enable_low_memory(self, device="cuda", vae_tile: int = 32, vae_tile_overlap: int = 8):
        """Keep every component on the CPU and bring each to ``device`` only for its stage.

        Phi-2 (2.7B parameters, four times the transformer) is on the GPU only while prompts are
        encoded, the transformer only while sampling, the VAE only while decoding; the cache is
        emptied between stages, so sampling buffers are gone before the decode (where users ran
        out of memory). The video VAE decodes in its temporal windows and, here, also in
        overlapping spatial tiles (``vae_tile`` latent pixels), which changes pixels slightly near
        tile seams. A float32 VAE kept for float16 pipelines is switched to bfloat16.
        """
        self.to("cpu")
        self._execution_device = torch.device(device)
        if self.dtype in (torch.float16, torch.bfloat16) and self.vae.dtype == torch.float32:
            self.vae.to(torch.bfloat16)
        self.vae.enable_tiling(vae_tile, vae_tile_overlap) if self.is_video_model else self.vae.enable_tiling()
        return self

    @property
    def execution_device(self) -> torch.device:
        """Where the stages run: the transformer's device, or the low-memory target."""
        return self._execution_device or self.device

    @contextmanager
    def _stage(self, module):
        """Low-memory mode: ``module`` on the execution device for one stage only."""
        target = self._execution_device
        if target is None:
            yield
            return
        module.to(target)
        try:
            yield
        finally:
            if module is self.transformer:  # graphs read the weights where they were on the GPU
                self._cuda_graphs.clear()
            module.to("cpu")
            if target.type == "cuda":
                torch.cuda.empty_cache()

    # ----------------------------------------------------------------- pieces of the call
    def encode_prompt(self, prompt, num_images_per_prompt=1, negative_prompt=None, prompt_embeds=None,
                      negative_prompt_embeds=None, do_guidance=True) -> torch.Tensor:
        """Padded Phi states (rows, L, text_dim): [prompts..., negatives...], each row repeated
        ``num_images_per_prompt`` times in place."""
        embed = self.transformer.text_embed
        if prompt_embeds is not None:
            rows = self._pad_embeds(prompt_embeds)
            if do_guidance:
                negatives = (self._pad_embeds(negative_prompt_embeds) if negative_prompt_embeds is not None
                             else embed.pad(rows[:, :0], [0] * rows.size(0)))
                rows = torch.cat([rows, negatives])
            return rows.repeat_interleave(num_images_per_prompt, dim=0)
        prompts, negatives = prompt_lists(prompt, negative_prompt)
        texts = prompts + (negatives if do_guidance else [])
        hidden, lengths = encode_prompts(self.tokenizer, self.text_encoder, texts, embed.num_tokens)
        rows = embed.pad(hidden.to(self.device), lengths)
        return rows.repeat_interleave(num_images_per_prompt, dim=0)

    def _pad_embeds(self, embeds) -> torch.Tensor:
        embed = self.transformer.text_embed
        dim = embed.weight.size(1)
        items = embedding_rows("prompt embeddings", embeds, dim)
        hidden = torch.zeros(len(items), embed.num_tokens, dim, device=self.device)
        lengths = []
        for i, e in enumerate(items):
            n = min(len(e), embed.num_tokens)
            hidden[i, :n] = torch.as_tensor(e)[:n].to(hidden)
            lengths.append(n)
        return embed.pad(hidden, lengths)

    def encode_image(self, image, generator=None) -> torch.Tensor:
        """uint8 image -> scaled posterior sample (1, C, 1, h, w), the i2v frame 0."""
        return self._encode_pixels(self._image_array(image), generator).unsqueeze(2)

    def encode_video(self, frames, generator=None) -> torch.Tensor:
        """uint8 clip (F, H, W, 3), F = 1 + 4k, at the model's size -> scaled posterior sample
        (1, C, 1 + k, h, w): the latents that pre-fill frames to extend a clip (``latents=``)."""
        if not self.is_video_model:
            raise InputError("encode_video needs a video checkpoint (the 3D VAE)")
        frames = np.asarray(frames)
        height, width = self.transformer.geometry.pixel_size
        count = frames.shape[0] if frames.ndim == 4 else 0
        if frames.dtype != np.uint8 or frames.shape[1:] != (height, width, 3) or count < 1 or (count - 1) % 4:
            raise InputError(f"frames must be uint8 (1 + 4k, {height}, {width}, 3), got {frames.dtype} "
                             f"{tuple(frames.shape)}")
        return self._encode_pixels(frames, generator)

    @on_execution_device
    @torch.no_grad()
    def _encode_pixels(self, pixels: np.ndarray, generator) -> torch.Tensor:
        """uint8 (H, W, 3) or (F, H, W, 3) -> scaled posterior sample (1, C, [T,] h, w).

        The sample is drawn in float32 (like the reference) from the caller's generator.
        """
        from .posterior import DiagonalGaussianDistribution

        with self._stage(self.vae):
            moments = self.vae.encode(vae_input(pixels, self.vae)).latent_dist.parameters
        z = DiagonalGaussianDistribution(moments.float()).sample(generator)
        shift = getattr(self.vae.config, "shift_factor", None)
        return (z - shift if shift else z) * self.vae.config.scaling_factor

    @on_execution_device
    def decode_latents(self, latents: torch.Tensor) -> torch.Tensor:
        """Scaled latents (B, C, T, h, w) -> pixels in [-1, 1]: (B, 3, T', H, W) or (B, 3, H, W)."""
        vae, config = self.vae, self.vae.config
        shift = getattr(config, "shift_factor", None)
        samples = []
        for i in range(latents.size(0)):  # one sample at a time, as the reference
            z = latents[i : i + 1].to(vae.device, vae.dtype) * (1 / config.scaling_factor)
            z = z + shift if shift else z
            if self.is_video_model:
                samples.append(vae.decode(z).sample)
            else:
                samples.append(vae.decode(z[:, :, 0]).sample)
        return torch.cat(samples)

    @staticmethod
    def postprocess(x: torch.Tensor, output_type: str) -> NOVAPipelineOutput:
        name = "images" if x.dim() == 4 else "frames"
        if output_type in ("latent", "pt"):
            return NOVAPipelineOutput(**{name: x})
        pixels = (x.float() * 127.5 + 127.5).clamp(0, 255).to(torch.uint8)
        pixels = pixels.movedim(1, -1).cpu().numpy()
        if output_type == "np":
            return NOVAPipelineOutput(**{name: pixels})
        from PIL import Image

        if name == "images":
            return NOVAPipelineOutput(images=[Image.fromarray(p) for p in pixels])
        return NOVAPipelineOutput(frames=[[Image.fromarray(f) for f in video] for video in pixels])

    # ----------------------------------------------------------------- validation and state
    def _fresh_scheduler(self, flow_shift):
        """A scheduler for this call only, so nothing (flow_shift, step counters) outlives it."""
        scheduler = type(self.scheduler).from_config(self.scheduler.config)
        if flow_shift:
            scheduler.set_shift(float(flow_shift))
        return scheduler

    def _image_array(self, image) -> np.ndarray:
        if hasattr(image, "convert") and hasattr(image, "size"):  # PIL
            image = np.asarray(image.convert("RGB"))
        if isinstance(image, torch.Tensor):
            image = image.cpu().numpy()
        if not isinstance(image, np.ndarray):
            raise InputError(f"image must be a uint8 H x W x 3 array or a PIL image, got {type(image).__name__}")
        if image.dtype != np.uint8:
            raise InputError(f"image must have dtype uint8 (0..255), got {image.dtype}")
        height, width = self.transformer.geometry.pixel_size
        if image.shape != (height, width, 3):
            raise InputError(f"image must be {height} x {width} x 3 (H x W x RGB) for this checkpoint, "
                             f"got {' x '.join(map(str, image.shape))}; crop/resize it first")
        return image

    def _prefill(self, latents, batch: int, num_frames: int):
        """Validate pre-filled latents -> (1 or B, C, K, h, w) float32, or None."""
        if latents is None:
            return None
        return check_latents(latents, batch, num_frames, self.transformer.geometry)
