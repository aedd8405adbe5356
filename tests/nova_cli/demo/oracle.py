"""Probe of the demo's transformer stage apart from its VAE: "oracle" latents.

    python -m tests.nova_cli.demo.oracle cache PREPARED_CACHE DATA_DIR BASE_CHECKPOINT OUT_CACHE
    python -m tests.nova_cli.demo.oracle probe CHECKPOINT OUT_CACHE [--prompts 12] [--ar-steps 8]

A learned VAE's latents can blur, lag or carry edge artifacts, so when the transformer draws no
object it is unclear which stage failed. Here every latent frame is the frame itself, 4x4-pooled
and folded 2x2 into channels (12 of the 16 latent channels; the other 4 are zero), and decoded
back by folding out and upsampling bilinearly. The detector reads colour, direction and background
of such round trips right for every clip (shape for ~70 %, the bilinear decode rounds corners).

``cache`` rewrites a ``nova prepare`` cache with these latents (same items, captions, motion flow
and caption embeddings) and sets the base checkpoint's ``scaling_factor`` to 1 / their std, so
``nova train --model BASE --scratch --cache OUT_CACHE`` trains on them. ``probe`` samples t2i, t2v
and i2v with a trained checkpoint, reads them with the detector, writes a contact sheet beside
the checkpoint (rows: t2i, t2v frame 4, i2v frames 0/4/8), measures :func:`alignment`,
:func:`object_evidence` and :func:`history_reach` and prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from nova_core.training.init import own_cells
from nova_core.training.vae import FOLD, POOL, pooled_latents, to_pixels

CHANNELS = 16  # latent channels


def encode(frames: np.ndarray) -> torch.Tensor:
    """uint8 (T, H, W, 3) -> unscaled latents (16, 1 + (T - 1) // 4, H / 8, W / 8): latent k holds
    frame 4k (frame 0 alone first, as the causal video VAE's); the layout the demo VAE's
    ``latent_anchor_weight`` pulls towards."""
    return pooled_latents(to_pixels(np.array(frames))[None], CHANNELS)[0].contiguous()


def decode(latents: torch.Tensor) -> np.ndarray:
    """Unscaled latents (16, T, h, w) -> uint8 (T, 8h, 8w, 3), one frame per latent frame."""
    cells = F.pixel_shuffle(latents[: 3 * FOLD * FOLD].float().transpose(0, 1), FOLD)
    x = F.interpolate(cells, scale_factor=POOL, mode="bilinear", align_corners=False)
    return ((x.clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).numpy()


def build_cache(prepared: Path, data: Path, base: Path, out: Path) -> float:
    """Rewrite ``prepared`` (a ``nova prepare`` cache of ``data``) with oracle latents into ``out``;
    returns the scaling factor, also written into ``base``'s VAE config so training accepts it."""
    from safetensors import safe_open
    from safetensors.torch import save_file

    from nova_cli.demo.recipe import read_items

    index = json.loads((prepared / "index.json").read_text())
    latents = [encode(frames) for frames in read_items([data / it["source"] for it in index["items"]])]
    scale = float(1 / torch.cat([z.flatten() for z in latents]).std())
    out.mkdir(parents=True, exist_ok=True)
    shards: dict[int, dict] = {}
    for item, z in zip(index["items"], latents):
        if z.size(1) != item["latent_frames"]:
            raise ValueError(f"{item['source']}: {z.size(1)} oracle latent frames, the cache has {item['latent_frames']}")
        tensors = shards.setdefault(item["shard"], {})
        tensors[f"{item['id']}.mean"], tensors[f"{item['id']}.logvar"] = z, torch.full_like(z, -30.0)
        with safe_open(str(prepared / index["shards"][item["shard"]]), framework="pt") as handle:
            if f"{item['id']}.text" in handle.keys():
                tensors[f"{item['id']}.text"] = handle.get_tensor(f"{item['id']}.text")
    for shard, tensors in shards.items():
        save_file(tensors, str(out / index["shards"][shard]), metadata={"format": "pt"})
    index["header"]["checkpoint"]["scaling_factor"] = scale
    (out / "index.json").write_text(json.dumps(index, indent=1) + "\n")
    config_path = base / "vae" / "config.json"
    config = json.loads(config_path.read_text())
    config["scaling_factor"] = scale
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return scale


def probe(checkpoint: Path, cache: Path, prompts: int = 12, ar_steps: int = 8, diffusion_steps: int = 10,
          cfg: float = 5.0) -> dict:
    """Sample t2i / t2v / i2v on grammar prompts and read them; oracle-decoded, no VAE involved."""
    from nova_core.demo.scenes import parse_caption, random_scene
    from nova_core.pipeline import NOVAPipeline
    from PIL import Image
    from tests.nova_core.demo import detector

    index = json.loads((cache / "index.json").read_text())
    scale = index["header"]["checkpoint"]["scaling_factor"]
    flow = float(np.median([it["motion_flow"] for it in index["items"] if it["kind"] == "video"]))
    pipe = NOVAPipeline.from_pretrained(str(checkpoint))

    def generate(prompt, seed, frames, flow_value, latents=None):
        out = pipe(prompt, num_inference_steps=ar_steps, num_diffusion_steps=diffusion_steps, max_latent_length=frames,
                   guidance_scale=cfg, motion_flow=flow_value, generator=torch.Generator().manual_seed(seed),
                   latents=latents, output_type="latent", disable_progress_bar=True)
        return decode(torch.as_tensor(out[0])[0] / scale)

    reads: dict[str, list] = {"t2i": [], "t2v": [], "i2v": []}
    sheet = []
    for i in range(prompts):
        scene = random_scene(np.random.default_rng([7, i]))
        want = parse_caption(scene.caption)
        image = generate(scene.caption, i, 1, 0.0)
        video = generate(scene.caption, 100 + i, 9, flow)
        given = generate(scene.caption, 200 + i, 9, flow, encode(scene.render()[:1])[None] * scale)
        for kind, frames in (("t2i", image), ("t2v", video), ("i2v", given)):
            r = detector.read(frames if kind != "i2v" else frames[1:])  # i2v: only what it generated
            got = {k: r.attributes()[k] == want[k] for k in ("colour", "shape", "background")}
            if kind != "t2i":
                got["direction"] = r.direction == want["direction"]
            got["present"] = float(r.present.mean())
            reads[kind].append(got)
        sheet.append(np.concatenate([image[0], video[4], given[0], given[4], given[8]], axis=1))
    Image.fromarray(np.concatenate(sheet, axis=0)).save(str(checkpoint.parent / f"{checkpoint.name}-oracle.png"))
    shares, evidence, reach = [], [], []
    for i in range(min(prompts, 12)):
        scene = random_scene(np.random.default_rng([7, i]))
        text = pipe.encode_prompt(scene.caption, 1, None, None, None, False)
        prefix = pipe.transformer.prefix(text, torch.full((1,), flow))
        latents = encode(scene.render())[None] * scale
        shares.append(alignment(pipe.transformer, latents, prefix))
        evidence.append(object_evidence(pipe, latents, prefix, scale))
        mirrored = encode(mirror(scene.render(), scene.direction))[None] * scale
        reach.append(history_reach(pipe.transformer, latents, mirrored, prefix))
    result = {"alignment": [round(float(v), 3) for v in np.mean(shares, axis=0)],
              "alignment_uniform": round(1 / pipe.transformer.geometry.num_video_tokens, 3),
              "object_evidence": round(float(np.nanmean(evidence)), 3),
              "history_reach": {key: round(float(np.mean([r[key] for r in reach])), 3) for key in reach[0]}}
    return result | {kind: {key: float(np.mean([r[key] for r in rows])) for key in rows[0]} for kind, rows in reads.items()}


@torch.no_grad()
def object_evidence(pipe, latents: torch.Tensor, prefix: torch.Tensor, scale: float, frames=(1, 4, 8)) -> float:
    """How much of the object the head's x0 estimate at the noisiest timestep shows in ``frames``,
    every token hidden, given the true earlier ``latents`` (1, C, T, h, w): the estimate's mean RGB
    distance from the background over the true object's pixels less that over the other pixels, as
    a share of the truth's (0: nothing where the object is, 1: the object as it is; the subtraction
    keeps an epsilon model's noisy estimate from counting as object). The estimate at t = 999 is what the model expects
    before any token is drawn, so this measures what the frames before tell it about the object."""
    from nova_core.patches import patchify, unpatchify
    from nova_core.schedulers import original_sample

    model, scheduler = pipe.transformer, pipe.scheduler
    geo, p = model.geometry, model.geometry.patch_size
    grid = (geo.latent_size[0] // p, geo.latent_size[1] // p)
    t = scheduler.config.num_train_timesteps - 1
    alpha = scheduler.alphas_cumprod[t]
    conditions = model.temporal_conditions(prefix, latents)
    shares = []
    for k in frames:
        z = model.image_encoder(model.mask_embed.mask_token.expand(1, geo.num_tokens, -1), conditions[:, k],
                                torch.zeros(1, 0, 1, dtype=torch.long), model.image_space_embedding())
        x0 = patchify(latents[:, :, k], p)
        xt = alpha.sqrt() * x0 + (1 - alpha).sqrt() * torch.randn(x0.shape, generator=torch.Generator().manual_seed(k))
        out = model.image_decoder(unpatchify(xt, p, grid), torch.full((1, geo.num_tokens), t), z)
        estimate = original_sample(scheduler.config.prediction_type, xt, out, alpha.sqrt(), (1 - alpha).sqrt())
        truth = decode(latents[0, :, k : k + 1] / scale)[0].astype(float)
        guess = decode(unpatchify(estimate, p, grid)[0][:, None] / scale)[0].astype(float)
        background = np.median(truth.reshape(-1, 3), axis=0)
        true_distance = np.linalg.norm(truth - background, axis=-1)
        on_object = true_distance > 60
        if on_object.any():
            guess_distance = np.linalg.norm(guess - background, axis=-1)
            contrast = guess_distance[on_object].mean() - guess_distance[~on_object].mean()
            shares.append(contrast / true_distance[on_object].mean())
    return float(np.mean(shares)) if shares else float("nan")


@torch.no_grad()
def alignment(transformer, latents: torch.Tensor, prefix: torch.Tensor, frame: int = 4) -> list[float]:
    """Per second-half spatial block, the best head's mean share of a masked token's attention over
    the condition tokens that falls on its own coarse cell (the condition token whose 4x4 latent
    patch holds it), for a fully masked ``frame`` given the true earlier ``latents`` (1, C, T, h, w).

    Uniform attention gives 1 / (condition tokens): the spatial encoder then sees the earlier
    frames only as a whole (their background), never where their object was.
    """
    geo, encoder = transformer.geometry, transformer.image_encoder
    own = own_cells(*geo.image_base_size)
    c = transformer.temporal_conditions(prefix, latents)[:, frame]
    split = len(encoder.blocks) // 2
    for block in encoder.blocks[:split]:  # nothing revealed yet: the first half sees the condition only
        c = block(c)
    h = torch.cat([c, transformer.mask_embed.mask_token.expand(1, geo.num_tokens, -1)
                   + transformer.image_space_embedding()], dim=1)
    shares = []
    for block in encoder.blocks[split:]:
        attn = block.attn
        q, k, _ = attn.qkv(h).view(1, h.size(1), 3, attn.num_heads, attn.head_dim).permute(2, 0, 3, 1, 4)
        weights = (q @ k.transpose(-1, -2) / attn.head_dim**0.5).softmax(-1)[0, :, c.size(1):, : c.size(1)]
        weights = weights / weights.sum(-1, keepdim=True).clamp_min(1e-30)  # none on c: share 0
        on_own = weights.gather(2, own.view(1, -1, 1).expand(weights.size(0), -1, 1))[..., 0]
        shares.append(float(on_own.mean(1).max()))
        h = block(h)
    return shares


@torch.no_grad()
def history_reach(transformer, latents: torch.Tensor, mirrored: torch.Tensor, prefix: torch.Tensor,
                  frame: int = 5) -> dict:
    """How far the place of the earlier frames' object carries towards a fully hidden ``frame``:
    the largest relative change, over tokens, of each stage of the path when the earlier frames
    are swapped for their mirror image (the object on the other side), both (1, C, T, h, w).

    ``temporal``: the temporal encoder's output before the scale-shift layer; ``condition``: after
    it (what the spatial encoder gets); ``blocks``: the hidden tokens after each second-half spatial
    block; ``spatial``: the spatial encoder's output, which conditions the diffusion head. 0 means
    the stage does not see where the object was; a path that loses it between two stages shows
    where the frames after the first stop following their predecessors.
    """
    model, geo = transformer, transformer.geometry
    encoder, split = transformer.image_encoder, len(transformer.image_encoder.blocks) // 2
    hidden = model.mask_embed.mask_token.expand(1, geo.num_tokens, -1) + model.image_space_embedding()
    stages = []
    for lat in (latents, mirrored):
        features = model.temporal_features(prefix, lat)
        c = model.scale_shift(features)[:, frame]
        found = {"temporal": features[:, frame], "condition": c}
        for block in encoder.blocks[:split]:
            c = block(c)
        h = torch.cat([c, hidden], dim=1)
        for i, block in enumerate(encoder.blocks[split:]):
            h = block(h)
            found[f"block{split + i}"] = h[:, c.size(1):]
        found["spatial"] = encoder.norm(h[:, c.size(1):])
        stages.append(found)
    first, second = stages
    return {key: float(((first[key] - second[key]).norm(dim=-1) / first[key].norm(dim=-1)).max()) for key in first}


def mirror(frames: np.ndarray, direction: str) -> np.ndarray:
    """(T, H, W, 3) flipped across the motion's axis: the same clip moving the other way."""
    return np.ascontiguousarray(frames[:, :, ::-1] if direction in ("left", "right") else frames[:, ::-1])


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tests.nova_cli.demo.oracle", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    c = sub.add_parser("cache")
    for name in ("prepared", "data", "base", "out"):
        c.add_argument(name, type=Path)
    p = sub.add_parser("probe")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("cache", type=Path)
    p.add_argument("--prompts", type=int, default=12)
    p.add_argument("--ar-steps", type=int, default=8)
    p.add_argument("--diffusion-steps", type=int, default=10)
    p.add_argument("--cfg", type=float, default=5.0)
    args = parser.parse_args(argv)
    if args.command == "cache":
        print(json.dumps({"scaling_factor": build_cache(args.prepared, args.data, args.base, args.out)}))
    else:
        print(json.dumps(probe(args.checkpoint, args.cache, args.prompts, args.ar_steps, args.diffusion_steps, args.cfg)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
