"""Checkpoint folders and Hub ids: what loads, and the one-line errors for what does not."""

import json
import re
import shutil
import time

import pytest
import torch

from nova_core import NOVAPipeline
from nova_core.errors import CheckpointError, InputError, ModelNotAvailableError
from tests.conftest import TINY_T2I, TINY_T2V
from tests.nova_core.checkpoints import copy_checkpoint


def test_never_imports_or_needs_the_hub_shims(tmp_path):
    """The Hub repos ship transformer/__transformer__.py etc.; a file there must never run."""
    ckpt = copy_checkpoint(TINY_T2I, tmp_path / "ckpt")
    for part in ("transformer/__transformer__.py", "vae/__vae__.py", "text_encoder/__text_encoder__.py"):
        (ckpt / part).write_text("raise SystemExit('shim executed')\n")
    pipe = NOVAPipeline.from_pretrained(str(ckpt))
    assert type(pipe.transformer).__module__ == "nova_core.transformer"


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(CheckpointError, match="not a NOVA checkpoint"):
        NOVAPipeline.from_pretrained(str(tmp_path))


def test_missing_folder():
    with pytest.raises(CheckpointError, match="no such checkpoint folder"):
        NOVAPipeline.from_pretrained("./does/not/exist")


@pytest.mark.parametrize("component", ["vae", "transformer", "text_encoder", "tokenizer", "scheduler"])
def test_missing_component(tmp_path, component):
    ckpt = copy_checkpoint(TINY_T2V, tmp_path / "ckpt")
    shutil.rmtree(ckpt / component)
    with pytest.raises(CheckpointError, match=f"lacks the {component}"):
        NOVAPipeline.from_pretrained(str(ckpt))


def test_missing_weights(tmp_path):
    ckpt = copy_checkpoint(TINY_T2V, tmp_path / "ckpt")
    (ckpt / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(CheckpointError, match="transformer component has no diffusion_pytorch_model"):
        NOVAPipeline.from_pretrained(str(ckpt))


def test_unknown_arch(tmp_path):
    ckpt = copy_checkpoint(TINY_T2V, tmp_path / "ckpt")
    config_file = ckpt / "transformer" / "config.json"
    config = json.loads(config_file.read_text())
    config["arch"][0] = "vit_huge"
    config_file.write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="unknown transformer arch 'vit_huge'"):
        NOVAPipeline.from_pretrained(str(ckpt))


def test_wrong_class_in_model_index(tmp_path):
    ckpt = copy_checkpoint(TINY_T2V, tmp_path / "ckpt")
    (ckpt / "model_index.json").write_text(json.dumps({"_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(CheckpointError, match="StableDiffusionPipeline"):
        NOVAPipeline.from_pretrained(str(ckpt))


def test_unreachable_hub_fails_fast_and_says_what_to_do(tmp_path):
    start = time.monotonic()
    with pytest.raises(ModelNotAvailableError) as info:
        NOVAPipeline.from_pretrained("BAAI/nova-d48w1024-osp480", cache_dir=str(tmp_path))
    assert time.monotonic() - start < 5
    message = str(info.value)
    assert "nova download BAAI/nova-d48w1024-osp480" in message and str(tmp_path) in message


def test_hub_id_loads_from_the_cache_offline(tmp_path):
    """A repo in the HF cache layout loads by its id with no network; the revision is recorded."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "models--BAAI--nova-tiny"
    copy_checkpoint(TINY_T2I, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    pipe = NOVAPipeline.from_pretrained("BAAI/nova-tiny", cache_dir=str(tmp_path), local_files_only=True)
    assert (pipe.name_or_path, pipe.revision) == ("BAAI/nova-tiny", commit)
    out = pipe("a red car", num_inference_steps=2, num_diffusion_steps=2, output_type="latent",
               generator=torch.Generator().manual_seed(0), disable_progress_bar=True)
    assert out.frames.shape == (1, 4, 1, 8, 8)


@pytest.mark.slow
def test_loading_says_nothing_on_stderr_even_with_every_warning_on():
    """torch/diffusers/transformers warnings while loading are muted (``-W default`` shows all)."""
    import subprocess
    import sys

    from tests.conftest import REPO

    script = ("import torch\nfrom nova_core import NOVAPipeline\n"
              f"NOVAPipeline.from_pretrained({str(TINY_T2I)!r})\n"
              f"NOVAPipeline.from_pretrained({str(TINY_T2V)!r}, torch_dtype=torch.float16)\n")
    done = subprocess.run([sys.executable, "-W", "default", "-c", script], capture_output=True, text=True,
                          cwd=REPO, timeout=600, env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1",
                                                      "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0 and done.stderr == "" and done.stdout == "", done.stderr


@pytest.mark.parametrize("options,message", [
    (dict(variant="fp16"), "variant='fp16': weight variants are not supported"),
    (dict(device_map="cuda"), "device_map='cuda': load, then move with .to(device)"),
    (dict(use_safetensors=False), "use_safetensors=False: nova reads only safetensors"),
    (dict(subfolder="x"), "unknown argument 'subfolder'"),
])
def test_loading_options_it_cannot_honour_are_refused_not_ignored(options, message):
    with pytest.raises(InputError, match=re.escape(message)):
        NOVAPipeline.from_pretrained(str(TINY_T2I), **options)


def test_loading_options_that_change_nothing_are_accepted():
    pipe = NOVAPipeline.from_pretrained(str(TINY_T2I), use_safetensors=True, variant=None, device_map=None,
                                        low_cpu_mem_usage=True, trust_remote_code=False)
    assert pipe.transformer is not None
