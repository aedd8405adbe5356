"""nova_core.scheduling == diffusers' DDPMScheduler / FlowMatchEulerDiscreteScheduler, bit for bit: tables,
timesteps, whole seeded sampling loops, forward noising, configs on disk; and importing it skips diffusers."""

import ast
import copy
import inspect
import json
import os
import pickle
import subprocess
import sys
import typing

import diffusers
import numpy as np
import pytest
import torch

from nova_core import scheduling
from nova_core.config_files import check_types
from nova_core.scheduling import DDPMScheduler, FlowMatchEulerDiscreteScheduler
from tests.conftest import MANIFESTS, REPO, TINY_T2I, TINY_T2V

PAIRS = [(DDPMScheduler, diffusers.DDPMScheduler),
         (FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler)]
SCALED = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear")  # tiny-t2v's


def same(a, b):
    """Exactly equal: values (NaN == NaN), dtype, device, shape; plain numbers by value."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True)
    else:
        assert a == b or (a != a and b != b), (a, b)


def build(ours, theirs, **config):
    return ours(**config), theirs(**config)


PARAMETERS = {name for _, theirs in PAIRS for name in inspect.signature(theirs.__init__).parameters} - {"self"}


def public(config) -> dict:
    """A diffusers config's constructor values (it also keeps ``_class_name``, ``_use_default_values`` and
    unknown keys, which it ignores when building; ours holds the constructor values only)."""
    return {k: v for k, v in dict(config).items() if k in PARAMETERS}


def sample_loop(mine, ref, steps, shape=(2, 4, 8, 8), out_channels=None, dtype=torch.float32, seed=0, **timesteps):
    """set_timesteps, then step() over random model outputs with equally seeded generators; every output equal."""
    mine.set_timesteps(steps, **timesteps)
    ref.set_timesteps(steps, **timesteps)
    same(mine.timesteps, ref.timesteps)
    draws = torch.Generator().manual_seed(seed)
    g_mine, g_ref = torch.Generator().manual_seed(seed + 1), torch.Generator().manual_seed(seed + 1)
    x = torch.randn(shape, generator=draws).to(dtype)
    x_mine, x_ref = x, x.clone()
    out_shape = (shape[0], out_channels or shape[1], *shape[2:])
    for t_mine, t_ref in zip(mine.timesteps, ref.timesteps):
        out = (torch.randn(out_shape, generator=draws) * 2).to(dtype)
        a, b = mine.step(out, t_mine, x_mine, generator=g_mine), ref.step(out.clone(), t_ref, x_ref, generator=g_ref)
        same(a.prev_sample, b.prev_sample)
        if hasattr(b, "pred_original_sample"):
            same(a.pred_original_sample, b.pred_original_sample)
        x_mine, x_ref = a.prev_sample, b.prev_sample
    same(g_mine.get_state(), g_ref.get_state())  # the same noise was drawn, no more, no less
    return x_mine


# -- the interface nova checks: constructor, config ---------------------------------------------------------------

@pytest.mark.parametrize("ours, theirs", PAIRS, ids=lambda c: c.__name__)
def test_constructor_matches_diffusers(ours, theirs):
    mine, ref = inspect.signature(ours.__init__).parameters, inspect.signature(theirs.__init__).parameters
    assert [(p.name, p.default, p.kind) for p in mine.values()] == [(p.name, p.default, p.kind) for p in ref.values()]
    assert typing.get_type_hints(ours.__init__) == typing.get_type_hints(theirs.__init__)
    assert dict(ours().config) == public(theirs().config)
    assert ours.order == theirs.order == 1 and len(ours()) == len(theirs()) == 1000


def test_config_is_a_frozen_mapping_with_attributes():
    config = DDPMScheduler(**SCALED, prediction_type="v_prediction").config
    assert config.prediction_type == config["prediction_type"] == "v_prediction" and isinstance(config, dict)
    assert dict(config) == public(diffusers.DDPMScheduler(**SCALED, prediction_type="v_prediction").config)
    assert {**config}["beta_schedule"] == "scaled_linear" and json.loads(json.dumps(config)) == dict(config)
    for change in (lambda: config.__setitem__("clip_sample", False), lambda: setattr(config, "clip_sample", False),
                   lambda: config.update(clip_sample=False), lambda: config.pop("clip_sample"),
                   lambda: config.__delitem__("clip_sample"), lambda: config.setdefault("x", 1), config.clear):
        with pytest.raises(TypeError, match="immutable"):
            change()
    assert config.clip_sample is True and len(config) == 15
    with pytest.raises(AttributeError):
        config.missing
    assert copy.deepcopy(config) == config and pickle.loads(pickle.dumps(config)) == config
    scheduler = copy.deepcopy(DDPMScheduler(**SCALED))
    same(scheduler.alphas_cumprod, diffusers.DDPMScheduler(**SCALED).alphas_cumprod)


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=lambda c: c.__name__)
def test_from_config(ours, theirs):
    values = ({"beta_schedule": "squaredcos_cap_v2", "clip_sample": False} if ours is DDPMScheduler
              else {"shift": 3.0, "invert_sigmas": True})
    extra = {"_class_name": ours.__name__, "_diffusers_version": "0.1", "not_a_parameter": 1}
    ref = theirs.from_config({**values, **extra})
    for source in ({**values, **extra}, ref.config, ours.from_config(values).config):
        assert dict(ours.from_config(source).config) == public(theirs.from_config(source).config) == \
            {**public(theirs().config), **values}
    key, value = ("clip_sample", True) if ours is DDPMScheduler else ("shift", 2.0)
    assert ours.from_config(ref.config, **{key: value}).config[key] == value  # keyword arguments override


@pytest.mark.parametrize("ours, theirs", PAIRS, ids=lambda c: c.__name__)
def test_save_and_load_like_diffusers(ours, theirs, tmp_path):
    values = {"beta_schedule": "linear", "steps_offset": 1, "trained_betas": np.linspace(1e-4, 0.02, 1000)} \
        if ours is DDPMScheduler else {"shift": 3.0, "shift_terminal": 0.1}
    ours(**values).save_pretrained(tmp_path / "ours")
    theirs(**values).save_pretrained(tmp_path / "theirs")
    text = (tmp_path / "ours" / "scheduler_config.json").read_text()
    assert text == (tmp_path / "theirs" / "scheduler_config.json").read_text()
    assert list(json.loads(text))[:2] == ["_class_name", "_diffusers_version"]
    assert json.loads(text)["_diffusers_version"] == diffusers.__version__
    loaded_ref, loaded = theirs.from_pretrained(tmp_path / "ours"), ours.from_pretrained(tmp_path / "theirs")
    assert public(loaded_ref.config) == dict(loaded.config) == dict(ours.from_pretrained(tmp_path, "ours").config)
    if ours is DDPMScheduler:
        same(loaded.alphas_cumprod, loaded_ref.alphas_cumprod)
    else:
        same(loaded.sigmas, loaded_ref.sigmas)
    with pytest.raises(FileNotFoundError):
        ours.from_pretrained(tmp_path / "missing")


def test_version_written_without_diffusers_metadata(monkeypatch):
    import importlib.metadata

    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "version", missing)
    assert json.loads(DDPMScheduler().to_json_string())["_diffusers_version"] == "0.0.0"


# -- DDPM ---------------------------------------------------------------------------------------------------------

BETAS = [dict(beta_schedule=s) for s in ("linear", "squaredcos_cap_v2", "sigmoid", "laplace")] + [
    SCALED, dict(SCALED, rescale_betas_zero_snr=True), dict(beta_schedule="squaredcos_cap_v2", num_train_timesteps=50),
    dict(trained_betas=np.linspace(1e-4, 0.02, 100), num_train_timesteps=100), dict(trained_betas=[0.1, 0.2, 0.3],
                                                                                    num_train_timesteps=3)]


@pytest.mark.parametrize("config", BETAS, ids=str)
def test_ddpm_tables(config):
    mine, ref = build(DDPMScheduler, diffusers.DDPMScheduler, **config)
    for name in ("betas", "alphas", "alphas_cumprod", "one", "timesteps"):
        same(getattr(mine, name), getattr(ref, name))
    same(mine.init_noise_sigma, ref.init_noise_sigma)
    assert mine.num_inference_steps is ref.num_inference_steps is None and len(mine) == len(ref)
    for t in (0, 1, len(mine) // 2, len(mine) - 1):  # before set_timesteps: every training step
        same(mine.previous_timestep(t), ref.previous_timestep(t))
    x = torch.randn(1, 2, 3, 3)
    assert mine.scale_model_input(x, 5) is x


def test_ddpm_unknown_schedule():
    for cls in (DDPMScheduler, diffusers.DDPMScheduler):
        with pytest.raises(NotImplementedError, match="cubic"):
            cls(beta_schedule="cubic")


@pytest.mark.parametrize("spacing", ["leading", "trailing", "linspace"])
@pytest.mark.parametrize("offset", [0, 1])
@pytest.mark.parametrize("steps", [1, 4, 10, 25, 50, 999, 1000])
def test_ddpm_timesteps_and_previous(spacing, offset, steps):
    mine, ref = build(DDPMScheduler, diffusers.DDPMScheduler, **SCALED, timestep_spacing=spacing, steps_offset=offset)
    mine.set_timesteps(steps)
    ref.set_timesteps(steps)
    same(mine.timesteps, ref.timesteps)
    assert mine.num_inference_steps == ref.num_inference_steps == steps
    for t in mine.timesteps[:: max(1, steps // 50)].tolist() + [mine.timesteps[-1]]:
        same(mine.previous_timestep(t), ref.previous_timestep(t))


def test_ddpm_custom_timesteps_and_errors():
    mine, ref = build(DDPMScheduler, diffusers.DDPMScheduler, **SCALED)
    sample_loop(mine, ref, None, timesteps=[900, 500, 120, 3, 0])
    assert mine.custom_timesteps and ref.custom_timesteps
    for call in (lambda s: s.set_timesteps(4, timesteps=[3, 2]), lambda s: s.set_timesteps(timesteps=[3, 5]),
                 lambda s: s.set_timesteps(timesteps=[1000, 5]), lambda s: s.set_timesteps(1001)):
        for scheduler in (mine, ref):
            with pytest.raises(ValueError):
                call(scheduler)


STEP_CONFIGS = [dict(SCALED)] + [
    dict(SCALED, prediction_type=p, clip_sample=c) for p in ("epsilon", "sample", "v_prediction") for c in (False, True)
] + [dict(SCALED, clip_sample_range=0.5), dict(prediction_type="v_prediction", clip_sample_range=2.0),
     dict(beta_schedule="squaredcos_cap_v2", thresholding=True), dict(thresholding=True, sample_max_value=3.0,
                                                                      dynamic_thresholding_ratio=0.9),
     dict(SCALED, timestep_spacing="trailing", steps_offset=1), dict(timestep_spacing="linspace", clip_sample=False),
     dict(SCALED, rescale_betas_zero_snr=True, prediction_type="v_prediction", timestep_spacing="trailing")]


@pytest.mark.parametrize("config", STEP_CONFIGS, ids=str)
@pytest.mark.parametrize("steps", [1, 10, 25, 50])
def test_ddpm_sampling_loop(config, steps):
    sample_loop(*build(DDPMScheduler, diffusers.DDPMScheduler, **config), steps)


@pytest.mark.parametrize("config", [dict(SCALED), dict(thresholding=True, prediction_type="sample")], ids=str)
def test_ddpm_sampling_loop_every_training_step(config):
    sample_loop(*build(DDPMScheduler, diffusers.DDPMScheduler, **config), 1000, shape=(1, 2, 4, 4))


@pytest.mark.parametrize("variance", ["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned",
                                      "learned_range"])
def test_ddpm_variance_types(variance):
    mine, ref = build(DDPMScheduler, diffusers.DDPMScheduler, **SCALED, variance_type=variance)
    learned = variance.startswith("learned")
    sample_loop(mine, ref, 10, out_channels=8 if learned else None)
    predicted = torch.rand(2, 4, 3, 3) * 2 - 1
    for t in mine.timesteps.tolist():
        for kind in (None, variance, "fixed_small", "learned_range"):
            same(mine._get_variance(t, predicted, kind), ref._get_variance(t, predicted, kind))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_ddpm_other_dtypes(dtype):
    for config in (dict(SCALED), dict(SCALED, thresholding=True)):
        sample_loop(*build(DDPMScheduler, diffusers.DDPMScheduler, **config), 10, dtype=dtype)


def test_ddpm_return_tuple_and_generator_lists():
    mine, ref = build(DDPMScheduler, diffusers.DDPMScheduler, **SCALED)
    mine.set_timesteps(10)
    ref.set_timesteps(10)
    x, out = torch.randn(3, 4, 5, 5), torch.randn(3, 4, 5, 5)
    for generators in ([torch.Generator().manual_seed(i) for i in range(3)], [torch.Generator().manual_seed(7)]):
        a = mine.step(out, mine.timesteps[2], x, generator=copy.deepcopy(generators), return_dict=False)
        b = ref.step(out, ref.timesteps[2], x, generator=copy.deepcopy(generators), return_dict=False)
        assert type(a) is tuple and len(a) == len(b) == 2
        for u, v in zip(a, b):
            same(u, v)
    assert mine.step(out, 0, x).prev_sample.shape == x.shape  # t == 0 draws nothing: no generator needed


@pytest.mark.parametrize("config", [dict(SCALED), dict(beta_schedule="squaredcos_cap_v2")], ids=str)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16])
def test_ddpm_add_noise_and_velocity(config, dtype):
    mine, ref = build(DDPMScheduler, diffusers.DDPMScheduler, **config)
    x, noise = torch.randn(6, 4, 3, 5).to(dtype), torch.randn(6, 4, 3, 5).to(dtype)
    for t in (torch.tensor([0, 1, 250, 500, 998, 999]), torch.tensor([17] * 6), torch.tensor(321)):
        same(mine.add_noise(x, noise, t), ref.add_noise(x, noise, t))
        same(mine.get_velocity(x, noise, t), ref.get_velocity(x, noise, t))


# -- flow matching ------------------------------------------------------------------------------------------------

FLOW_CONFIGS = [dict(), dict(shift=3.0), dict(shift=0.5), dict(shift=7.0, num_train_timesteps=100),
                dict(shift=3.0, shift_terminal=0.1), dict(invert_sigmas=True), dict(shift=2.0, invert_sigmas=True),
                dict(stochastic_sampling=True), dict(shift=3.0, stochastic_sampling=True),
                dict(use_karras_sigmas=True, shift=3.0), dict(use_exponential_sigmas=True)]
DYNAMIC = [dict(use_dynamic_shifting=True, time_shift_type=kind, shift_terminal=end, stochastic_sampling=noisy)
           for kind in ("exponential", "linear") for end in (None, 0.02) for noisy in (False, True)]


@pytest.mark.parametrize("config", FLOW_CONFIGS + DYNAMIC, ids=str)
def test_flow_initial_tables(config):
    mine, ref = build(FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler, **config)
    same(mine.timesteps, ref.timesteps)
    same(mine.sigmas, ref.sigmas)
    assert (mine.sigma_min, mine.sigma_max, mine.shift) == (ref.sigma_min, ref.sigma_max, ref.shift)
    assert mine.step_index is ref.step_index is None and mine.begin_index is ref.begin_index is None


@pytest.mark.parametrize("config", FLOW_CONFIGS, ids=str)
@pytest.mark.parametrize("steps", [1, 4, 10, 25, 50])
def test_flow_sampling_loop(config, steps):
    mine, ref = build(FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler, **config)
    if steps == 1 and config.get("shift_terminal"):  # one step cannot end at shift_terminal: NaN in both
        with np.errstate(invalid="ignore"):
            mine.set_timesteps(1)
            ref.set_timesteps(1)
        same(mine.sigmas, ref.sigmas)
        assert mine.timesteps.isnan().all()
        return
    sample_loop(mine, ref, steps)
    same(mine.sigmas, ref.sigmas)
    assert mine.step_index == ref.step_index == steps


@pytest.mark.parametrize("config", DYNAMIC, ids=str)
@pytest.mark.parametrize("mu", [0.5, 1.15, 2.0])
def test_flow_dynamic_shifting(config, mu):
    mine, ref = build(FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler, **config)
    for steps in (2 if config["shift_terminal"] else 1, 10, 28):  # 1 step and shift_terminal: NaN (see above)
        sample_loop(mine, ref, steps, mu=mu)
        same(mine.sigmas, ref.sigmas)
    for scheduler in (mine, ref):
        with pytest.raises(ValueError, match="mu"):
            scheduler.set_timesteps(4)


def test_flow_every_training_step_and_set_shift():
    mine, ref = build(FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler, shift=1.0)
    sample_loop(mine, ref, 1000, shape=(1, 2, 4, 4))
    for scheduler in (mine, ref):
        scheduler.set_shift(3.0)  # persists: the next set_timesteps applies it
    assert mine.shift == ref.shift == 3.0 and mine.config.shift == 1.0
    sample_loop(mine, ref, 6)
    same(mine.sigmas, ref.sigmas)


@pytest.mark.parametrize("given", [dict(sigmas=[1.0, 0.8, 0.5, 0.2]), dict(timesteps=[1000.0, 750.0, 333.0, 20.0]),
                                   dict(sigmas=[0.9, 0.6, 0.1], timesteps=[900.0, 600.0, 100.0])], ids=str)
@pytest.mark.parametrize("config", [dict(), dict(shift=3.0), dict(shift=3.0, invert_sigmas=True)], ids=str)
def test_flow_given_sigmas_or_timesteps(given, config):
    mine, ref = build(FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler, **config)
    sample_loop(mine, ref, None, **given)
    same(mine.sigmas, ref.sigmas)
    for scheduler in (mine, ref):
        with pytest.raises(ValueError):
            scheduler.set_timesteps(2, sigmas=[1.0, 0.5, 0.1])


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_flow_lower_precision_model_output(dtype):
    for config in (dict(shift=3.0), dict(stochastic_sampling=True)):
        sample_loop(*build(FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler, **config),
                    8, dtype=dtype)


def test_flow_step_index_bookkeeping():
    mine, ref = build(FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler, shift=3.0)
    x, out = torch.randn(2, 4, 4, 4), torch.randn(2, 4, 4, 4)
    for scheduler in (mine, ref):
        scheduler.set_timesteps(10)
    for t in (mine.timesteps[0], mine.timesteps[4], float(mine.timesteps[9])):
        assert mine.index_for_timestep(t) == ref.index_for_timestep(t)
    repeated = torch.tensor([900.0, 800.0, 800.0, 0.0])
    assert mine.index_for_timestep(800.0, repeated) == ref.index_for_timestep(800.0, repeated) == 2
    # start mid-schedule (the step index is found from the timestep), then with an explicit begin index
    for start, begin in ((3, None), (5, 5)):
        for scheduler in (mine, ref):
            scheduler.set_timesteps(10)
            if begin is not None:
                scheduler.set_begin_index(begin)
        assert mine.begin_index == ref.begin_index == begin
        xm = xr = x
        for t in mine.timesteps[start:]:
            xm, xr = mine.step(out, t, xm).prev_sample, ref.step(out, t, xr).prev_sample
            same(xm, xr)
            assert mine.step_index == ref.step_index
    for scheduler in (mine, ref):
        scheduler.set_timesteps(10)
    a = mine.step(out, mine.timesteps[0], x, return_dict=False)
    b = ref.step(out, ref.timesteps[0], x, return_dict=False)
    assert type(a) is tuple and len(a) == len(b) == 1
    for scheduler in (mine, ref):
        with pytest.raises(ValueError, match="integer"):
            scheduler.step(out, 3, x)


def test_flow_scale_noise():
    mine, ref = build(FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler, shift=3.0)
    x, noise = torch.randn(3, 4, 4, 4), torch.randn(3, 4, 4, 4)
    t = ref.timesteps[torch.tensor([0, 500, 999])]
    same(mine.scale_noise(x, t, noise), ref.scale_noise(x, t, noise))  # training table, found per timestep
    for scheduler in (mine, ref):
        scheduler.set_timesteps(10)
    t = mine.timesteps[[1, 4, 9]]
    same(mine.scale_noise(x, t, noise), ref.scale_noise(x, t, noise))
    for scheduler in (mine, ref):
        scheduler.set_begin_index(2)  # img2img: before the first step, every sample at the begin index
    same(mine.scale_noise(x, t, noise), ref.scale_noise(x, t, noise))
    mine.step(noise, mine.timesteps[2], x)
    ref.step(noise, ref.timesteps[2], x)  # inpainting: after a step, at the step index
    same(mine.scale_noise(x, t, noise), ref.scale_noise(x, t, noise))
    half = x.half()
    same(mine.scale_noise(half, t, noise.half()), ref.scale_noise(half, t, noise.half()))


def test_flow_per_token_timesteps():
    mine, ref = build(FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler, shift=3.0)
    x, out = torch.randn(2, 6, 8), torch.randn(2, 6, 8)
    for scheduler in (mine, ref):
        scheduler.set_timesteps(10)
    per_token = mine.timesteps[torch.randint(0, 10, (2, 6))]
    same(mine.step(out, mine.timesteps[0], x, per_token_timesteps=per_token).prev_sample,
         ref.step(out, ref.timesteps[0], x, per_token_timesteps=per_token).prev_sample)


def test_flow_options_refused_like_diffusers_or_not_implemented():
    for cls in (FlowMatchEulerDiscreteScheduler, diffusers.FlowMatchEulerDiscreteScheduler):
        with pytest.raises(ValueError):
            cls(use_karras_sigmas=True, use_exponential_sigmas=True)
        with pytest.raises(ValueError):
            cls(time_shift_type="cubic")
    with pytest.raises(NotImplementedError, match="use_beta_sigmas"):
        FlowMatchEulerDiscreteScheduler(use_beta_sigmas=True)


# -- noise, the repository's checkpoints, import cost --------------------------------------------------------------

def test_noise_drawn_as_diffusers_draws_it():
    from diffusers.utils.torch_utils import randn_tensor

    for generator in (torch.Generator().manual_seed(3), [torch.Generator().manual_seed(i) for i in range(4)], None):
        for device, dtype in ((None, None), ("cpu", torch.float16), (torch.device("cpu"), torch.float64)):
            torch.manual_seed(5)
            a = scheduling.randn_tensor((4, 3, 2), copy.deepcopy(generator), device, dtype)
            torch.manual_seed(5)
            same(a, randn_tensor((4, 3, 2), copy.deepcopy(generator), device, dtype))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_noise_on_cuda_from_a_cpu_generator():
    from diffusers.utils.torch_utils import randn_tensor

    for generator in (torch.Generator().manual_seed(3), torch.Generator("cuda").manual_seed(3)):
        same(scheduling.randn_tensor((2, 3), copy.deepcopy(generator), "cuda", torch.float16),
             randn_tensor((2, 3), copy.deepcopy(generator), "cuda", torch.float16))
    with pytest.raises(ValueError):
        scheduling.randn_tensor((2, 3), torch.Generator("cuda"), "cpu")
    mine, ref = build(DDPMScheduler, diffusers.DDPMScheduler, **SCALED)
    x, out = torch.randn(2, 4, 8, 8, device="cuda"), torch.randn(2, 4, 8, 8, device="cuda")
    for scheduler in (mine, ref):
        scheduler.set_timesteps(10, device="cuda")
    same(mine.step(out, mine.timesteps[1], x, generator=torch.Generator().manual_seed(1)).prev_sample,
         ref.step(out, ref.timesteps[1], x, generator=torch.Generator().manual_seed(1)).prev_sample)


CHECKPOINT_CONFIGS = [TINY_T2V / "scheduler" / "scheduler_config.json",
                      TINY_T2I / "scheduler" / "scheduler_config.json",
                      *sorted(MANIFESTS.rglob("scheduler_config.json"))]


@pytest.mark.parametrize("path", CHECKPOINT_CONFIGS, ids=lambda p: str(p.relative_to(p.parents[2])))
def test_repository_scheduler_configs(path):
    assert len(CHECKPOINT_CONFIGS) >= 5
    config = json.loads(path.read_text())
    ours = dict(scheduling.__dict__)[config["_class_name"]]
    theirs = getattr(diffusers, config["_class_name"])
    check_types(path, config, ours)  # what nova's loader asks of the class
    mine, ref = ours.from_pretrained(path.parent), theirs.from_pretrained(path.parent)
    assert dict(mine.config) == public(ref.config)
    for steps in (1, 4, 6, 50):
        sample_loop(mine, ref, steps, shape=(1, 4, 8, 12))
    if ours is DDPMScheduler:
        same(mine.alphas_cumprod, ref.alphas_cumprod)
    else:
        same(mine.sigmas, ref.sigmas)


def test_module_never_imports_diffusers():
    tree = ast.parse(inspect.getsource(scheduling))
    names = [alias.name for node in ast.walk(tree) if isinstance(node, ast.Import) for alias in node.names]
    names += [node.module or "" for node in ast.walk(tree) if isinstance(node, ast.ImportFrom)]
    assert not [n for n in names if n.split(".")[0] == "diffusers"]
    code = ("import sys, json, tempfile, torch; from nova_core.scheduling import DDPMScheduler as D, "
            "FlowMatchEulerDiscreteScheduler as F\n"
            "for s in (D(), F()):\n d = tempfile.mkdtemp(); s.save_pretrained(d); s = type(s).from_pretrained(d)\n"
            " x = torch.zeros(1, 1, 2, 2); s.set_timesteps(4); s.step(x, s.timesteps[0], x)\n"
            "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] == 'diffusers')))")
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout) == []


@pytest.mark.parametrize("config", [dict(SCALED), dict(SCALED, prediction_type="v_prediction", clip_sample=False),
                                    dict(shift=3.0)], ids=str)
def test_nova_tensor_scheduler_reads_the_same_coefficients(config):
    from nova_core.schedulers import TensorScheduler

    pair = PAIRS[0] if "beta_schedule" in config else PAIRS[1]
    mine, ref = (TensorScheduler.from_diffusers(cls(**config), 6) for cls in pair)
    assert mine.signature == ref.signature and torch.equal(mine.timesteps, ref.timesteps)
