"""Every invalid config or tokenizer file is a one-line CheckpointError naming the file and the
problem: malformed JSON, another JSON type than an object, wrong value types, missing keys,
absurd values (refused before anything is built or allocated), components that do not fit."""

import json

import pytest

from nova_core import NOVAPipeline
from nova_core.config_files import Bound, check_types, one_line, read_json
from nova_core.errors import CheckpointError
from tests.conftest import TINY_T2I, TINY_T2V
from tests.nova_core.checkpoints import copy_checkpoint, edit_json


def _set(**values):
    return lambda c: c.update(values)


def _drop(*keys):
    def change(config):
        for key in keys:
            del config[key]
    return change


MALFORMED = "{\"a\": 1,"
ARRAY = "[1, 2, 3]"

# (file, change: text to write or a function editing the JSON, what the message must say)
CASES = {
    "index-malformed": ("model_index.json", MALFORMED, "not valid JSON"),
    "index-array": ("model_index.json", ARRAY, "found a JSON array"),
    "index-string": ("model_index.json", "\"NOVAPipeline\"", "found a JSON string"),
    "index-entry-not-a-pair": ("model_index.json", _set(vae="AutoencoderKLOpenSora"), "vae must be a [library, class]"),
    "index-entry-numbers": ("model_index.json", _set(scheduler=[1, 2]), "scheduler must be a [library, class]"),
    "index-unknown-scheduler": ("model_index.json", _set(scheduler=["diffusers", "NoSuchScheduler"]),
                                "unknown scheduler class 'NoSuchScheduler'"),
    "transformer-malformed": ("transformer/config.json", MALFORMED, "not valid JSON"),
    "transformer-array": ("transformer/config.json", ARRAY, "found a JSON array"),
    "transformer-null": ("transformer/config.json", "null", "found a JSON null"),
    "transformer-image-size-type": ("transformer/config.json", _set(image_size="large"), "image_size must be"),
    "transformer-stride-zero": ("transformer/config.json", _set(image_stride=0), "image_stride must be"),
    "transformer-arch-type": ("transformer/config.json", _set(arch="vit_d2w64"), "arch must name three"),
    "transformer-arch-absurd": ("transformer/config.json", _set(arch=["vit_d100000w64", "vit_d4w64", "mlp_d2w96"]),
                                "depth must be 1..256"),
    "transformer-width-absurd": ("transformer/config.json", _set(arch=["vit_d2w99999936", "vit_d4w64", "mlp_d2w96"]),
                                 "up to 16384"),
    "transformer-size-absurd": ("transformer/config.json", _set(image_size=[10**9, 10**9]), "image_size must be"),
    "transformer-text-len-absurd": ("transformer/config.json", _set(text_token_len=10**7), "text_token_len must be"),
    "transformer-missing-key": ("transformer/config.json", _drop("image_dim", "arch"), "lacks image_dim, arch"),
    "transformer-bool-as-int": ("transformer/config.json", _set(image_dim=True), "image_dim must be"),
    "transformer-wrong-class": ("transformer/config.json", _set(_class_name="UNet2DModel"), "names the class"),
    "vae-malformed": ("vae/config.json", MALFORMED, "not valid JSON"),
    "vae-array": ("vae/config.json", ARRAY, "found a JSON array"),
    "vae-scaling-type": ("vae/config.json", _set(scaling_factor="0.18"), "scaling_factor must be a finite number"),
    "vae-scaling-zero": ("vae/config.json", _set(scaling_factor=0), "scaling_factor must be > 0"),
    "vae-channels-type": ("vae/config.json", _set(block_out_channels="32,64"), "block_out_channels must be a list"),
    "vae-layers-negative": ("vae/config.json", _set(layers_per_block=-1), "layers_per_block must be >= 1"),
    "vae-layers-absurd": ("vae/config.json", _set(layers_per_block=10**6), "layers_per_block must be"),
    "vae-groups": ("vae/config.json", _set(norm_num_groups=7), "not multiples of norm_num_groups"),
    "vae-block-type": ("vae/config.json", _set(up_block_types=["NoSuchBlock"] * 4), "block"),
    "vae-missing-scaling": ("vae/config.json", _drop("scaling_factor"), "lacks scaling_factor"),
    "vae-missing-channels": ("vae/config.json", _drop("latent_channels"), "lacks latent_channels"),
    "scheduler-malformed": ("scheduler/scheduler_config.json", MALFORMED, "not valid JSON"),
    "scheduler-array": ("scheduler/scheduler_config.json", ARRAY, "found a JSON array"),
    "scheduler-steps-type": ("scheduler/scheduler_config.json", _set(num_train_timesteps="1000"),
                             "num_train_timesteps must be an integer"),
    "scheduler-steps-absurd": ("scheduler/scheduler_config.json", _set(num_train_timesteps=10**12),
                               "num_train_timesteps must be"),
    "scheduler-schedule": ("scheduler/scheduler_config.json", _set(beta_schedule="exotic"),
                           "beta_schedule must be one of"),
    "scheduler-beta-negative": ("scheduler/scheduler_config.json", _set(beta_start=-0.1), "beta_start must be > 0"),
    "scheduler-betas-swapped": ("scheduler/scheduler_config.json", _set(beta_start=0.5, beta_end=0.1),
                                "beta_end 0.1 is below beta_start"),
    "scheduler-nan": ("scheduler/scheduler_config.json", "{\"beta_end\": NaN}", "beta_end must be"),
    "scheduler-wrong-class": ("scheduler/scheduler_config.json", _set(_class_name="PNDMScheduler"),
                              "names the class"),
    "text-encoder-malformed": ("text_encoder/config.json", MALFORMED, "not valid JSON"),
    "text-encoder-array": ("text_encoder/config.json", ARRAY, "found a JSON array"),
    "text-encoder-type": ("text_encoder/config.json", _set(hidden_size="80"), "hidden_size must be an integer"),
    "text-encoder-absurd": ("text_encoder/config.json", _set(num_hidden_layers=10**6), "num_hidden_layers must be"),
    "text-encoder-missing": ("text_encoder/config.json", _drop("vocab_size"), "lacks vocab_size"),
    "text-encoder-heads": ("text_encoder/config.json", _set(num_attention_heads=3), "not a multiple of"),
    "text-encoder-model-type": ("text_encoder/config.json", _set(model_type="llama"), "model_type must be 'phi'"),
    "text-encoder-rotary": ("text_encoder/config.json", _set(partial_rotary_factor=0), "partial_rotary_factor"),
    "tokenizer-json-malformed": ("tokenizer/tokenizer.json", MALFORMED, "not valid JSON"),
    "tokenizer-json-array": ("tokenizer/tokenizer.json", ARRAY, "found a JSON array"),
    "tokenizer-json-not-a-tokenizer": ("tokenizer/tokenizer.json", "{\"model\": 5}", "cannot load the tokenizer"),
    "tokenizer-config-malformed": ("tokenizer/tokenizer_config.json", MALFORMED, "not valid JSON"),
    "tokenizer-config-array": ("tokenizer/tokenizer_config.json", ARRAY, "found a JSON array"),
    "tokenizer-class-unknown": ("tokenizer/tokenizer_config.json", _set(tokenizer_class="LlamaTokenizer"),
                                "tokenizer_class 'LlamaTokenizer' is not one nova loads"),
    "tokenizer-not-utf8": ("tokenizer/tokenizer.json", b"\xff\xfe{}", "unreadable"),
    "text-width-mismatch": ("transformer/config.json", _set(text_token_dim=96), "text_token_dim 96"),
    "latent-channels-mismatch": ("vae/config.json", _set(latent_channels=8), "latent_channels 8 are not"),
}


def _broken(tmp_path, name, src=TINY_T2V):
    file, change, _ = CASES[name]
    ckpt = copy_checkpoint(src, tmp_path / "ckpt")
    path = ckpt / file
    if callable(change):
        edit_json(path, change)
    elif isinstance(change, bytes):
        path.write_bytes(change)
    else:
        path.write_text(change)
    return ckpt, path


@pytest.mark.parametrize("name", sorted(CASES))
def test_invalid_file_is_one_line_naming_it(tmp_path, name):
    ckpt, path = _broken(tmp_path, name)
    with pytest.raises(CheckpointError) as info:
        NOVAPipeline.from_pretrained(str(ckpt))
    message = str(info.value)
    assert "\n" not in message and len(message) < 400, message
    assert CASES[name][2] in message, message
    assert str(ckpt) in message and str(path.relative_to(ckpt)) in message.replace(f"{ckpt}/", ""), message


@pytest.mark.parametrize("name", ["transformer-array", "transformer-missing-key", "transformer-arch-absurd",
                                  "index-array", "index-entry-not-a-pair"])
def test_the_cli_plan_reads_configs_with_the_same_checks(tmp_path, name):
    """``nova`` plans from the configs alone (loading.checkpoint_geometry), before any weights."""
    from nova_core import loading

    ckpt, path = _broken(tmp_path, name)
    with pytest.raises(CheckpointError, match=CASES[name][2].replace("[", r"\[")):
        loading.read_model_index(ckpt)
        loading.checkpoint_geometry(ckpt)


def test_image_checkpoint_configs_are_checked_too(tmp_path):
    ckpt, path = _broken(tmp_path, "scheduler-steps-type", TINY_T2I)
    with pytest.raises(CheckpointError, match="num_train_timesteps must be an integer"):
        NOVAPipeline.from_pretrained(str(ckpt))


def test_types_follow_the_class_annotations():
    class Example:
        def __init__(self, n: int = 1, x: float = 0.5, names: tuple[str, ...] = (), maybe: float | None = None,
                   loose: float = None, anything=None):
            pass

    check_types("f.json", {"n": 3, "x": 1, "names": ["a"], "maybe": None, "loose": None, "anything": {}}, Example)
    for bad, what in [({"n": 1.5}, "n must be an integer"), ({"x": "1"}, "x must be a finite number"),
                      ({"names": ["a", 2]}, "names must be a list of a string"), ({"n": True}, "n must be")]:
        with pytest.raises(CheckpointError, match=what):
            check_types("f.json", bad, Example)


def test_bounds():
    assert Bound(1, 8).problem(0) and Bound(1, 8).problem(9) and Bound(1, 8).problem(2.5)
    assert Bound(1, 8).problem([1, 9]) and not Bound(1, 8).problem([1, 8])
    assert Bound(0, 1, integer=False, above=True).problem(0) and not Bound(0, 1, integer=False).problem(0)
    assert Bound(0, 1, integer=False).problem(float("nan"))


def test_read_json_names_the_file_and_the_problem(tmp_path):
    path = tmp_path / "x.json"
    with pytest.raises(CheckpointError, match="x.json: missing"):
        read_json(path)
    path.write_text("{\n  \"a\": [1,\n")
    with pytest.raises(CheckpointError, match=r"x.json: not valid JSON \(.*line 3"):
        read_json(path)
    path.write_text(json.dumps(5))
    with pytest.raises(CheckpointError, match="found a JSON number"):
        read_json(path)


def test_one_line_keeps_the_first_line_short():
    assert one_line(ValueError("first\nsecond")) == "first"
    assert len(one_line(ValueError("x" * 1000))) == 200
    assert one_line(KeyError()) == "KeyError"
