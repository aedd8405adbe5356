"""Read a checkpoint folder in the official layout into components, with our own classes.

The official ``model_index.json`` points the transformer, VAE and text encoder at ``.py`` shims
(``__transformer__`` ...) that ``trust_remote_code`` would execute. We read only the class
names and build every component from code in this package, diffusers or transformers, with
remote code refused and safetensors only; every config is checked (:mod:`.config_files`) and
every weight file must match its config exactly (:mod:`.weights`) before anything is loaded.
"""

from __future__ import annotations

import inspect
import json
from pathlib import Path

import torch

from .config import Geometry, geometry
from .config_files import Bound, check_bounds, check_class, check_types, one_line, read_config, read_json, refuse_code
from .errors import CheckpointError
from .quiet import quiet_libraries
from .text import TEXT_ENCODER_ARCHITECTURES, TOKENIZER_CLASSES
from .weights import assign, check_match, file_shapes, meta_model, meta_shapes, shapes, weight_files

COMPONENTS = ("transformer", "scheduler", "vae", "text_encoder", "tokenizer")
TRANSFORMER_CLASSES = ("NOVATransformer3DModel",)
VAE_CLASSES = ("AutoencoderKLOpenSora", "AutoencoderKL")
WEIGHTS_STEM = "diffusion_pytorch_model"
# Sizes a config may give without building anything (beyond them nothing NOVA-like exists).
VAE_BOUNDS = {
    "in_channels": Bound(1, 16), "out_channels": Bound(1, 16), "latent_channels": Bound(1, 1024),
    "layers_per_block": Bound(1, 16), "block_out_channels": Bound(1, 8192), "norm_num_groups": Bound(1, 8192),
    "sample_size": Bound(1, 65536), "scaling_factor": Bound(0, 1e6, integer=False, above=True),
    "shift_factor": Bound(-1e6, 1e6, integer=False),
}
# Without these the class defaults would apply silently (a default scaling_factor decodes wrongly).
VAE_REQUIRED = ("latent_channels", "block_out_channels", "scaling_factor")
SCHEDULER_BOUNDS = {
    "num_train_timesteps": Bound(1, 100_000), "beta_start": Bound(0, 1, integer=False, above=True),
    "beta_end": Bound(0, 1, integer=False, above=True), "shift": Bound(0, 1e4, integer=False, above=True),
    "clip_sample_range": Bound(0, 1e6, integer=False, above=True), "steps_offset": Bound(0, 100_000),
}


def read_model_index(folder: Path) -> dict:
    """``model_index.json`` checked: a NOVAPipeline whose five components exist, each named by a
    [library, class] pair of a class nova builds itself (the library part, often a ``.py`` shim
    module of the Hub repos, is never imported)."""
    index_file = folder / "model_index.json"
    if not index_file.is_file():
        raise CheckpointError(f"{folder}: not a NOVA checkpoint (no model_index.json)")
    index = read_json(index_file)
    if index.get("_class_name") != "NOVAPipeline":
        raise CheckpointError(f"{folder}: not a NOVA checkpoint (model_index.json names {index.get('_class_name')!r})")
    refuse_code(index_file, index, "pipeline")
    missing = [c for c in COMPONENTS if c not in index or not (folder / c).is_dir()]
    if missing:
        raise CheckpointError(f"{folder}: checkpoint lacks the {', '.join(missing)} component(s)")
    for component in COMPONENTS:
        entry = index[component]
        if not (isinstance(entry, list) and len(entry) == 2 and all(isinstance(e, str) for e in entry)):
            raise CheckpointError(f"{index_file}: {component} must be a [library, class] pair, got {entry!r}")
    allowed = {"transformer": TRANSFORMER_CLASSES, "vae": VAE_CLASSES, "text_encoder": TEXT_ENCODER_ARCHITECTURES,
               "tokenizer": tuple(TOKENIZER_CLASSES)}
    for component, names in allowed.items():
        if class_name(index, component) not in names:
            raise CheckpointError(f"{index_file}: the {component} class {class_name(index, component)!r} is not one"
                                  f" nova builds ({', '.join(names)}); refused")
    return index


def class_name(index: dict, component: str) -> str:
    entry = index[component]
    return entry[1] if isinstance(entry, (list, tuple)) and len(entry) == 2 else str(entry)


def _require(folder: Path, component: str, files) -> None:
    if not any((folder / component / f).is_file() for f in files):
        raise CheckpointError(f"{folder}: the {component} component has no {' or '.join(files)}")


def read_model_config(folder: Path, component: str, cls, bounds=None, required=()) -> dict:
    """``<component>/config.json`` of a diffusers model, checked against ``cls`` (not built)."""
    path = folder / component / "config.json"
    _require(folder, component, ("config.json",))
    config = read_config(path, component)
    check_class(path, config, cls.__name__)
    check_types(path, config, cls)
    check_bounds(path, config, bounds or {}, required)
    return config


def _load_model(cls, folder: Path, component: str, dtype, bounds=None, required=()):
    """A model whose config and safetensors were checked to match exactly first. nova's own classes
    are built once, on the meta device, and take the file's tensors; diffusers' 2D VAE loads itself."""
    from .modeling import ModelMixin

    config = read_model_config(folder, component, cls, bounds, required)
    files = weight_files(folder / component, component, WEIGHTS_STEM)
    config_file = folder / component / "config.json"
    if issubclass(cls, ModelMixin):
        model = meta_model(lambda: cls.from_config(config), config_file, component)
        check_match(component, folder / component, shapes(model), file_shapes(files))
        try:
            assign(model, files, dtype)
        except CheckpointError:
            raise
        except Exception as exc:
            raise CheckpointError(f"{folder / component}: cannot load {cls.__name__} ({one_line(exc)})") from None
        return model.eval()
    expected = meta_shapes(lambda: cls.from_config(config), config_file, component)
    check_match(component, folder / component, expected, file_shapes(files))
    try:
        with quiet_libraries():
            model = cls.from_pretrained(str(folder / component), torch_dtype=dtype, use_safetensors=True,
                                        local_files_only=True)
    except Exception as exc:  # the checks above leave little; say it in one line all the same
        raise CheckpointError(f"{folder / component}: cannot load {cls.__name__} ({one_line(exc)})") from None
    return model.eval()


def vae_dtype(config, dtype):
    """float16 VAEs overflow unless the checkpoint says otherwise (``force_upcast``)."""
    if dtype == torch.float16 and config.get("force_upcast", True):
        return torch.float32
    return dtype


def checkpoint_geometry(folder: Path) -> Geometry:
    """The transformer's geometry from ``transformer/config.json`` alone (no weights loaded)."""
    path = folder / "transformer" / "config.json"
    _require(folder, "transformer", ("config.json",))
    config = read_config(path, "transformer")  # no diffusers import: the CLI plans with this
    check_class(path, config, TRANSFORMER_CLASSES[0])
    names = inspect.signature(geometry).parameters
    defaults = {"rotary_pos_embed": False, "video_mixer_rank": None}
    missing = [k for k in names if k not in config and k not in defaults]
    if missing:
        raise CheckpointError(f"{path}: lacks {', '.join(missing)}")
    try:
        return geometry(**{**defaults, **{k: v for k, v in config.items() if k in names}})
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None


def load_transformer(folder: Path, dtype):
    from .transformer import NOVATransformer3DModel

    checkpoint_geometry(folder)  # the config's own errors, with the file named, before any build
    return _load_model(NOVATransformer3DModel, folder, "transformer", dtype)


def vae_class(folder: Path, name: str):
    if name not in VAE_CLASSES:
        raise CheckpointError(f"{folder}: unknown VAE class {name!r} (expected one of {', '.join(VAE_CLASSES)})")
    if name == "AutoencoderKLOpenSora":
        from .vae_opensora import AutoencoderKLOpenSora as cls
    else:
        from diffusers import AutoencoderKL as cls
    return cls


def read_vae_config(folder: Path, name: str) -> dict:
    config = read_model_config(folder, "vae", vae_class(folder, name), VAE_BOUNDS, VAE_REQUIRED)
    path = folder / "vae" / "config.json"
    channels, groups = config.get("block_out_channels"), config.get("norm_num_groups")
    for key, prefix in (("down_block_types", "DownEncoderBlock"), ("up_block_types", "UpDecoderBlock")):
        types_ = config.get(key)
        if types_ is None:
            continue
        if any(t not in (f"{prefix}2D", f"{prefix}3D") for t in types_):
            raise CheckpointError(f"{path}: {key} must hold {prefix}2D/{prefix}3D blocks, got {types_}")
        if isinstance(channels, list) and len(types_) != len(channels):
            raise CheckpointError(f"{path}: {len(types_)} {key} for {len(channels)} block_out_channels")
    if isinstance(channels, list) and isinstance(groups, int) and any(c % groups for c in channels):
        raise CheckpointError(f"{path}: block_out_channels {channels} are not multiples of norm_num_groups {groups}")
    return config


def load_vae(folder: Path, name: str, dtype):
    config = read_vae_config(folder, name)
    return _load_model(vae_class(folder, name), folder, "vae", vae_dtype(config, dtype), VAE_BOUNDS, VAE_REQUIRED)


def scheduler_class(folder: Path, name: str):
    """nova's own DDPM / flow-matching schedulers (diffusers' to the bit, without importing it);
    another diffusers scheduler a checkpoint names comes from diffusers itself."""
    from . import scheduling

    if name in scheduling.SCHEDULERS:
        return scheduling.SCHEDULERS[name]
    import diffusers
    from diffusers import SchedulerMixin

    cls = getattr(diffusers, name, None)
    if not (isinstance(cls, type) and issubclass(cls, SchedulerMixin)):
        raise CheckpointError(f"{folder / 'model_index.json'}: unknown scheduler class {name!r} (not a diffusers "
                              f"scheduler)")
    return cls


def load_scheduler(folder: Path, name: str):
    """The scheduler ``name``, built from its checked config (it holds no weights)."""
    cls = scheduler_class(folder, name)
    _require(folder, "scheduler", ("scheduler_config.json",))
    path = folder / "scheduler" / "scheduler_config.json"
    config = read_config(path, "scheduler")
    check_class(path, config, name)
    check_types(path, config, cls)
    check_bounds(path, config, SCHEDULER_BOUNDS)
    if isinstance(config.get("beta_start"), float) and isinstance(config.get("beta_end"), float) \
            and config["beta_end"] < config["beta_start"]:
        raise CheckpointError(f"{path}: beta_end {config['beta_end']} is below beta_start {config['beta_start']}")
    try:
        with quiet_libraries():
            return cls.from_config(config)
    except Exception as exc:  # e.g. a beta_schedule diffusers does not implement
        raise CheckpointError(f"{path}: {name} cannot be built from it ({one_line(exc)})") from None


def load_text_encoder(folder: Path, dtype):
    from .text import load_text_encoder as load

    return load(folder / "text_encoder", dtype)


def load_tokenizer(folder: Path):
    from .text import load_tokenizer as load

    return load(folder / "tokenizer")


def check_compatible(folder: Path, index: dict) -> None:
    """The components fit together (from their configs alone, before any weights are read):
    Phi's width is the transformer's text width, the VAE's latents are the transformer's."""
    from .text import read_text_encoder_config

    geo = checkpoint_geometry(folder)
    vae = read_vae_config(folder, class_name(index, "vae"))
    text = read_text_encoder_config(folder / "text_encoder")
    problems = []
    if text.hidden_size != geo.text_token_dim:
        problems.append(f"text_encoder/config.json hidden_size {text.hidden_size} is not transformer/config.json "
                        f"text_token_dim {geo.text_token_dim}")
    if vae.get("latent_channels") != geo.latent_channels:
        problems.append(f"vae/config.json latent_channels {vae.get('latent_channels')} are not "
                        f"transformer/config.json image_dim {geo.latent_channels}")
    channels = vae.get("block_out_channels") or []
    stride = 2 ** (len(channels) - 1)
    if channels and stride * geo.latent_size[0] != geo.pixel_size[0]:
        problems.append(f"vae/config.json downsamples {stride}x, transformer/config.json image_stride is "
                        f"{geo.pixel_size[0] // geo.latent_size[0]}")
    if problems:
        raise CheckpointError(f"{folder}: the components do not fit together: {'; '.join(problems)}")


def check_tokenizer(folder: Path, tokenizer, text_encoder_config) -> None:
    if len(tokenizer) > text_encoder_config.vocab_size:
        raise CheckpointError(f"{folder}: the tokenizer has {len(tokenizer)} tokens, more than the text encoder's "
                              f"vocab_size {text_encoder_config.vocab_size}")


def import_libraries(index: dict) -> None:
    """Import the code that loading this checkpoint runs, before any of it loads, so that timing
    the load shows where the seconds go: on a CPU, most of a small model's load is imports, not
    weights. ``index`` is checked (read_model_index). The video layout needs nova and torch only;
    diffusers (~1.7 s) only for a 2D VAE or a scheduler nova has no class of its own for."""
    from . import phi, scheduling, tokenizer, transformer  # noqa: F401  (imported for their import time)

    vae, scheduler = class_name(index, "vae"), class_name(index, "scheduler")
    if vae == "AutoencoderKLOpenSora":
        from . import vae_opensora  # noqa: F401
    theirs = [name for name in (vae, scheduler) if name != "AutoencoderKLOpenSora" and name not in scheduling.SCHEDULERS]
    if theirs:
        import diffusers

        for name in theirs:
            getattr(diffusers, name, None)


def load_components(folder: Path, dtype, timer=None) -> dict:
    """Every component of a checkpoint, cheap checks and loads first, so that a broken file is
    refused before the big weights are read. ``timer(name)`` wraps each component's load."""
    from .text import read_text_encoder_config
    from .timing import NullTimer

    timer = timer or NullTimer()
    index = read_model_index(folder)
    with timer("libraries"):
        import_libraries(index)
    check_compatible(folder, index)
    parts = {}
    with timer("tokenizer"):
        parts["tokenizer"] = load_tokenizer(folder)
        check_tokenizer(folder / "tokenizer", parts["tokenizer"], read_text_encoder_config(folder / "text_encoder"))
    with timer("scheduler"):
        parts["scheduler"] = load_scheduler(folder, class_name(index, "scheduler"))
    with timer("transformer"):
        parts["transformer"] = load_transformer(folder, dtype)
    with timer("vae"):
        parts["vae"] = load_vae(folder, class_name(index, "vae"), dtype)
    with timer("text_encoder"):
        parts["text_encoder"] = load_text_encoder(folder, dtype)
    return parts


def tokenizer_class(folder: Path) -> str:
    """The fast class of the tokenizer folder's own config (Phi-2's ``CodeGenTokenizer`` gives the
    official ``CodeGenTokenizerFast``), so diffnext builds the tokenizer its files describe."""
    try:
        name = json.loads((folder / "tokenizer_config.json").read_text()).get("tokenizer_class")
    except (OSError, ValueError):
        name = None
    if not isinstance(name, str) or not name:
        return "CodeGenTokenizerFast"
    return name if name.endswith("Fast") else name + "Fast"


def save_model_index(folder: Path, scheduler_name: str, vae_name: str) -> None:
    """The official model_index.json (the shim module names included, so diffnext can read it);
    written after the tokenizer folder, whose config names its class."""
    index = {
        "_class_name": "NOVAPipeline",
        "tokenizer": ["transformers", tokenizer_class(folder / "tokenizer")],
        "scheduler": ["diffusers", scheduler_name],
        "vae": ["__vae__", vae_name],
        "text_encoder": ["__text_encoder__", "PhiEncoderModel"],
        "transformer": ["__transformer__", "NOVATransformer3DModel"],
    }
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")


def save_text_encoder(model, folder: Path) -> None:
    """Phi in the official key layout (``model.``-prefixed, as PhiForCausalLM/diffnext expect)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    config = model.config.to_dict()
    config["architectures"] = ["PhiEncoderModel"]
    (folder / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    state = {f"model.{k}": v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"), metadata={"format": "pt"})
