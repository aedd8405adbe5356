"""Nothing in a checkpoint folder is ever executed: hostile copies of the tiny checkpoints are
refused with one line naming the component, nothing prompts, nothing reads stdin, no marker file.

Each hostile copy carries a ``.py`` module or a pickle that writes a marker file if anything
imports or unpickles it; the checks run in-process and, answering "y" to any prompt like
``yes | nova ...`` would, in a child process.
"""

import json
import subprocess
import sys

import pytest

from nova_core import NOVAPipeline
from nova_core.errors import CheckpointError, InputError
from tests.conftest import REPO, TINY_T2I, TINY_T2V
from tests.nova_core.checkpoints import copy_checkpoint, edit_json, hostile_module, hostile_pickle


def _auto_map(component, file, key, entry):
    def make(ckpt, marker):
        hostile_module(ckpt / component / "evil.py", marker)
        edit_json(ckpt / component / file, lambda c: c.update(auto_map={key: entry}))
    return make


def _tokenizer_class(ckpt, marker):
    hostile_module(ckpt / "tokenizer" / "evil.py", marker)
    edit_json(ckpt / "tokenizer" / "tokenizer_config.json",
              lambda c: c.update(tokenizer_class="EvilTokenizer", auto_map={"AutoTokenizer": ["evil.EvilTokenizer", None]}))


def _tokenizer_model_config(ckpt, marker):
    """No tokenizer_class: transformers would look for one in a config.json beside it."""
    hostile_module(ckpt / "tokenizer" / "evil.py", marker)
    edit_json(ckpt / "tokenizer" / "tokenizer_config.json", lambda c: c.pop("tokenizer_class"))
    config = {"model_type": "evil", "auto_map": {"AutoConfig": "evil.EvilConfig", "AutoTokenizer": ["evil.EvilTokenizer", None]}}
    (ckpt / "tokenizer" / "config.json").write_text(json.dumps(config))


def _architecture(ckpt, marker):
    hostile_module(ckpt / "text_encoder" / "evil.py", marker)
    edit_json(ckpt / "text_encoder" / "config.json", lambda c: c.update(architectures=["EvilModel"]))


def _index_class(component, name):
    def make(ckpt, marker):
        hostile_module(ckpt / component / "evil.py", marker)
        edit_json(ckpt / "model_index.json", lambda c: c.update({component: ["evil", name]}))
    return make


def _pickle_instead(component, stem):
    def make(ckpt, marker):
        (ckpt / component / f"{stem}.safetensors").unlink()
        hostile_pickle(ckpt / component / f"{stem}.bin", marker)
    return make


def _pickle_index(component, stem):
    def make(ckpt, marker):
        (ckpt / component / f"{stem}.safetensors").unlink()
        hostile_pickle(ckpt / component / f"{stem}-00001-of-00001.bin", marker)
        index = {"metadata": {}, "weight_map": {"any.weight": f"{stem}-00001-of-00001.bin"}}
        (ckpt / component / f"{stem}.safetensors.index.json").write_text(json.dumps(index))
    return make


def _pickle_only_index(ckpt, marker):
    (ckpt / "transformer" / "diffusion_pytorch_model.safetensors").unlink()
    hostile_pickle(ckpt / "transformer" / "diffusion_pytorch_model.bin", marker)
    index = {"weight_map": {"any.weight": "diffusion_pytorch_model.bin"}}
    (ckpt / "transformer" / "diffusion_pytorch_model.bin.index.json").write_text(json.dumps(index))


# name -> (make hostile copy, component the error must name, what it must say was refused)
HOSTILE = {
    "tokenizer-auto-map": (_auto_map("tokenizer", "tokenizer_config.json", "AutoTokenizer",
                                     ["evil.EvilTokenizer", None]), "tokenizer", "auto_map"),
    "tokenizer-class": (_tokenizer_class, "tokenizer", "auto_map"),
    "tokenizer-json-auto-map": (_auto_map("tokenizer", "tokenizer.json", "AutoTokenizer", ["evil.EvilTokenizer", None]),
                                "tokenizer", "auto_map"),
    "tokenizer-config-json-auto-map": (_tokenizer_model_config, "tokenizer", "auto_map"),
    "text-encoder-auto-map": (_auto_map("text_encoder", "config.json", "AutoModel", "evil.EvilModel"),
                              "text encoder", "auto_map"),
    "text-encoder-architecture": (_architecture, "text_encoder", "EvilModel"),
    "transformer-auto-map": (_auto_map("transformer", "config.json", "AutoModel", "evil.EvilModel"),
                             "transformer", "auto_map"),
    "vae-auto-map": (_auto_map("vae", "config.json", "AutoModel", "evil.EvilModel"), "vae", "auto_map"),
    "scheduler-auto-map": (_auto_map("scheduler", "scheduler_config.json", "AutoScheduler", "evil.Evil"),
                           "scheduler", "auto_map"),
    "index-transformer-class": (_index_class("transformer", "EvilModel"), "transformer", "EvilModel"),
    "index-vae-class": (_index_class("vae", "EvilModel"), "vae", "EvilModel"),
    "index-text-encoder-class": (_index_class("text_encoder", "EvilModel"), "text_encoder", "EvilModel"),
    "index-tokenizer-class": (_index_class("tokenizer", "EvilTokenizer"), "tokenizer", "EvilTokenizer"),
    "transformer-bin": (_pickle_instead("transformer", "diffusion_pytorch_model"), "transformer", "pickle"),
    "vae-bin": (_pickle_instead("vae", "diffusion_pytorch_model"), "vae", "pickle"),
    "text-encoder-bin": (_pickle_instead("text_encoder", "model"), "text encoder", "pickle"),
    "transformer-index-to-bin": (_pickle_index("transformer", "diffusion_pytorch_model"), "transformer",
                                 "non-safetensors"),
    "text-encoder-index-to-bin": (_pickle_index("text_encoder", "model"), "text encoder", "non-safetensors"),
    "transformer-bin-index": (_pickle_only_index, "transformer", "pickle"),
}


def _hostile(tmp_path, name):
    make, component, refused = HOSTILE[name]
    ckpt = copy_checkpoint(TINY_T2V, tmp_path / name)
    marker = tmp_path / f"{name}.executed"
    make(ckpt, marker)
    return ckpt, marker, component, refused


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_checkpoint_is_refused_naming_the_component(tmp_path, name, capsys):
    ckpt, marker, component, refused = _hostile(tmp_path, name)
    with pytest.raises(CheckpointError) as info:
        NOVAPipeline.from_pretrained(str(ckpt))
    message = str(info.value)
    assert "\n" not in message and component in message and refused in message and "refused" in message
    assert not marker.exists()
    out = capsys.readouterr()
    assert "[y/N]" not in out.out + out.err and "custom code" not in out.out + out.err


@pytest.mark.slow
def test_no_prompt_no_stdin_no_code_in_a_child_answering_yes(tmp_path):
    """Like ``yes | nova ...``: stdin says "y" forever; nothing may prompt, read it, or run code."""
    cases = {name: _hostile(tmp_path, name) for name in sorted(HOSTILE)}
    script = (
        "import json, sys\n"
        "from nova_core import NOVAPipeline\n"
        "from nova_core.errors import CheckpointError\n"
        "for name, folder in json.loads(sys.argv[1]).items():\n"
        "    try:\n"
        "        NOVAPipeline.from_pretrained(folder)\n"
        "        print(name, 'LOADED', file=sys.stderr)\n"
        "    except CheckpointError as exc:\n"
        "        print(name, 'REFUSED', exc, file=sys.stderr)\n"
        "print('unread stdin:', len(sys.stdin.read()), file=sys.stderr)\n"
    )
    answers = "y\n" * 5000
    done = subprocess.run([sys.executable, "-c", script, json.dumps({n: str(c[0]) for n, c in cases.items()})],
                          input=answers, capture_output=True, text=True, cwd=REPO, timeout=600,
                          env={"PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""  # transformers' "Do you wish to run the custom code? [y/N]" goes to stdout
    lines = done.stderr.splitlines()
    assert lines[-1] == f"unread stdin: {len(answers)}"  # nobody consumed an answer
    assert sorted(line.split()[0] for line in lines[:-1]) == sorted(cases)
    assert all(" REFUSED " in line for line in lines[:-1])
    assert not [name for name, case in cases.items() if case[1].exists()]


# Present but referenced by nothing: the Hub repos ship .py shims; training leaves .pt files around.
UNREFERENCED = {
    "modules": (hostile_module, ("transformer/__transformer__.py", "vae/__vae__.py", "text_encoder/__text_encoder__.py",
                                 "tokenizer/__tokenizer__.py", "scheduler/__scheduler__.py")),
    "pickles": (hostile_pickle, ("transformer/diffusion_pytorch_model.bin", "vae/diffusion_pytorch_model.bin",
                                 "text_encoder/pytorch_model.bin", "transformer/training_args.pt")),
}


@pytest.mark.parametrize("kind", sorted(UNREFERENCED))
def test_unreferenced_code_and_pickles_beside_the_weights_load_and_never_run(tmp_path, kind):
    ckpt = copy_checkpoint(TINY_T2I, tmp_path / "ckpt")
    marker = tmp_path / "executed"
    write, parts = UNREFERENCED[kind]
    for part in parts:
        write(ckpt / part, marker)
    NOVAPipeline.from_pretrained(str(ckpt))
    assert not marker.exists()


def test_shard_outside_the_component_folder_is_refused(tmp_path):
    ckpt = copy_checkpoint(TINY_T2I, tmp_path / "ckpt")
    folder = ckpt / "transformer"
    (folder / "diffusion_pytorch_model.safetensors").rename(tmp_path / "elsewhere.safetensors")
    index = {"metadata": {}, "weight_map": {"any.weight": "../../elsewhere.safetensors"}}
    (folder / "diffusion_pytorch_model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(CheckpointError, match="shards must be files beside the index"):
        NOVAPipeline.from_pretrained(str(ckpt))


def test_trust_remote_code_is_refused_not_ignored():
    with pytest.raises(InputError, match="never runs code"):
        NOVAPipeline.from_pretrained(str(TINY_T2I), trust_remote_code=True)
