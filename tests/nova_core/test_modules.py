"""Component parity with the reference (cases/text, modules, video_encoder, t2v_taps), atol 1e-5."""

import json

import pytest
import torch

from tests.conftest import CASES, REFERENCE, load_case

ATOL = 1e-5


def close(actual, expected, atol=ATOL):
    assert actual.shape == expected.shape, (actual.shape, expected.shape)
    diff = (actual.float() - expected.float()).abs().max().item() if actual.numel() else 0.0
    assert diff <= atol, f"max |diff| = {diff:.3g}"


@pytest.fixture(scope="module")
def models():
    from nova_core import NOVATransformer3DModel

    return {ck: NOVATransformer3DModel.from_pretrained(str(REFERENCE / f"tiny-{ck}" / "transformer")).eval()
            for ck in ("t2v", "t2i")}


@pytest.fixture(scope="module")
def modules_case():
    return load_case("modules")[0]


@pytest.mark.parametrize("ck", ["t2v", "t2i"])
def test_text_tokens_phi_and_padding(ck, models):
    from nova_core.text import encode_prompts, load_text_encoder, load_tokenizer

    ref, meta = load_case("text")
    tokenizer = load_tokenizer(REFERENCE / f"tiny-{ck}" / "tokenizer")
    phi = load_text_encoder(REFERENCE / f"tiny-{ck}" / "text_encoder", torch.float32)
    ids, _ = tokenizer.encode(meta["prompts"], 16)
    assert torch.equal(ids, ref[f"{ck}.input_ids"])
    hidden, lengths = encode_prompts(tokenizer, phi, meta["prompts"], 16)
    assert lengths == ref[f"{ck}.unpadded_lengths"].tolist()
    close(hidden, ref[f"{ck}.last_hidden_state"])
    embed = models[ck].text_embed
    close(embed.weight[:16], ref[f"{ck}.padding_weight_rows"], 0)
    with torch.no_grad():
        padded = embed.pad(hidden, lengths)
        close(padded, ref[f"{ck}.encode_prompts"])
        close(embed(padded), ref[f"{ck}.text_embed_out"])


@pytest.mark.parametrize("ck", ["t2v", "t2i"])
def test_diffusion_head(ck, models, modules_case):
    m, p = modules_case, f"{ck}.mlp."
    head = models[ck].image_decoder
    with torch.no_grad():
        close(head(m[p + "x"], m[p + "timestep"], m[p + "z"]), m[p + "out_all"])
        close(head(m[p + "x"], m[p + "timestep"], m[p + "z"], m[p + "pred_ids"]), m[p + "out_pred"])


@pytest.mark.parametrize("ck", ["t2v", "t2i"])
def test_fused_head_is_the_same_function(ck, models, modules_case):
    """The sampling form of the head (timestep branch per scheduler step) equals the reference's
    head and the module (the same elementwise ops in the same order: only matmul sizes differ)."""
    from nova_core.diffusion_head import FusedHead

    m, p = modules_case, f"{ck}.mlp."
    head = models[ck].image_decoder
    fused = FusedHead(head, m[p + "timestep"])  # row b is at "scheduler step" b
    patches = head.patch_embed.patchify(m[p + "x"])
    with torch.no_grad():
        module = head.denoise_tokens(head.patch_embed.embed_patches(patches), m[p + "timestep"], m[p + "z"])
        for b in range(patches.size(0)):
            out = fused(patches[b], b, fused.condition(m[p + "z"][b : b + 1]))
            close(out, m[p + "out_all"][b])
            torch.testing.assert_close(out, module[b], atol=1e-6, rtol=1e-6)


@pytest.mark.parametrize("ck", ["t2v", "t2i"])
def test_spatial_encoder(ck, models, modules_case):
    m, p = modules_case, f"{ck}.ienc."
    model = models[ck]
    with torch.no_grad():
        pos = model.image_space_embedding()
        close(pos, m[f"{ck}.pos.image_space_embed"], 0)
        close(model.image_encoder(m[p + "tokens"], m[p + "c"], m[p + "prev_ids"], pos), m[p + "out"])
        empty = m[p + "prev_ids"][:, :0]
        close(model.image_encoder(m[p + "tokens"], m[p + "c"], empty, pos), m[p + "out_no_prev"])


@pytest.mark.parametrize("ck", ["t2v", "t2i"])
def test_time_space_and_motion_embeddings(ck, models, modules_case):
    m, model = modules_case, models[ck]
    with torch.no_grad():
        close(model.video_pos_embed.space_embedding(), m[f"{ck}.pos.video_space_embed"], 0)
        for length in (1, 2, 3, 5):
            key = f"{ck}.pos.video_time_embed_T{length}"
            if key in m:
                close(model.video_pos_embed.time_embedding(length), m[key])
        if ck == "t2i":
            assert model.motion_embed is None
            return
        flow = torch.tensor([5.0, 5.0, 3.0, 9.0])
        close(model.motion_embed(flow), m["t2v.motion.flow_5_5_3_9.fps_none"])
        close(model.motion_embed(flow, torch.full((4,), 24.0)), m["t2v.motion.flow_5_5_3_9.fps_24"])


def test_temporal_encoder_training_form_equals_cached_generation(models):
    """One block-causal pass over the clip (training) = the KV-cached frame-by-frame outputs."""
    from nova_core.transformer import block_causal_mask

    ref, _ = load_case("video_encoder")
    model = models["t2v"]
    mask = block_causal_mask(18, 3, 6)
    assert torch.equal(mask, ref["attn_mask"])
    with torch.no_grad():
        conditions = model.temporal_conditions(ref["cond_tokens"], ref["latents"].expand(2, -1, -1, -1, -1))
    close(conditions, ref["train_mode_out_after_mixer"])
    close(conditions, ref["generation_mode_out_after_mixer"])


def test_kv_cached_loop_reproduces_reference_taps(models):
    """Hook our modules inside a real t2v call and compare with the tensors tapped in the reference.

    The taps are module calls in the reference's form, which the plain loop makes (``fast=False``)."""
    from nova_core import NOVAPipeline

    taps, _ = load_case("t2v_taps")
    meta = json.loads((CASES / "t2v.json").read_text())
    pipe = NOVAPipeline.from_pretrained(str(REFERENCE / "tiny-t2v"))
    model = pipe.transformer
    seen: dict[str, int] = {}
    recorded = {}

    def hook(name):
        def record(module, args, output):
            call = seen.get(name, 0)
            seen[name] = call + 1
            for i, a in enumerate(args):
                if isinstance(a, torch.Tensor):
                    recorded[f"{name}.call{call}.in{i}"] = a.detach().clone()
            recorded[f"{name}.call{call}.out"] = output.detach().clone()
        return record

    handles = [getattr(model, name).register_forward_hook(hook(name)) for name in
               ("text_embed", "motion_embed", "video_encoder", "image_encoder", "image_decoder")]
    handles.append(model.video_encoder.mixer.register_forward_hook(hook("mixer")))
    try:
        args = {k: v for k, v in meta["pipeline_call_args"].items()
                if k not in ("image_guidance_scale", "spatiotemporal_guidance_scale")}
        pipe(**args, generator=torch.Generator().manual_seed(meta["seed"]), output_type="latent", fast=False)
    finally:
        for h in handles:
            h.remove()
    recorded["text_embed.out"] = recorded.pop("text_embed.call0.out")
    recorded["motion_embed.out"] = recorded.pop("motion_embed.call0.out")
    for key, expected in taps.items():
        assert key in recorded, key
        if expected.dtype == torch.int64:
            assert torch.equal(recorded[key].cpu(), expected), key
        else:
            close(recorded[key], expected)
