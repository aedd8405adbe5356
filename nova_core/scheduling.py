"""NOVA's own DDPM and flow-matching schedulers, numerically identical to diffusers' classes of the same names.

Importing anything from diffusers costs ~1.7 s of CPU (its config machinery pulls in torch._dynamo), and NOVA's
sampling path needs nothing from it but these two update rules. The classes redo diffusers' computations operation
for operation (the same numpy/torch calls in the same dtypes), so tables, timesteps and seeded trajectories are
bit-identical, and they read and write the same ``scheduler_config.json``. This module never imports diffusers.
"""

import inspect
import json
import math
from pathlib import Path
from typing import Literal, NamedTuple

import numpy as np
import torch

from .modeling import FrozenConfig, diffusers_version, randn_tensor

CONFIG_NAME = "scheduler_config.json"
VarianceType = Literal["fixed_small", "fixed_small_log", "fixed_large", "fixed_large_log", "learned", "learned_range"]


class _Scheduler:
    """``config``, ``from_config``, ``from_pretrained`` and ``save_pretrained`` as diffusers' ConfigMixin has them."""

    config_name = CONFIG_NAME
    order = 1

    def _register(self, arguments: dict) -> None:
        self.config = FrozenConfig({name: arguments[name] for name in self._parameters()})

    @classmethod
    def _parameters(cls) -> list[str]:
        return [name for name in inspect.signature(cls.__init__).parameters if name != "self"]

    @classmethod
    def from_config(cls, config=None, **kwargs):
        """Build from a dict or another scheduler's config (``kwargs`` override); like diffusers, keys that are no
        constructor parameter (``_class_name``, ``_diffusers_version``, unknown ones) are ignored."""
        values, names = {**dict(config or {}), **kwargs}, cls._parameters()
        return cls(**{key: value for key, value in values.items() if key in names})

    @classmethod
    def from_pretrained(cls, pretrained_model_name_or_path, subfolder: str | None = None, **kwargs):
        """Read ``scheduler_config.json`` from a local folder (no Hub access)."""
        path = Path(pretrained_model_name_or_path, subfolder or "", CONFIG_NAME)
        if not path.is_file():
            raise FileNotFoundError(f"{path} not found (nova's schedulers read local folders only)")
        return cls.from_config(json.loads(path.read_text(encoding="utf-8")), **kwargs)

    def to_json_string(self) -> str:
        values = {key: value.tolist() if isinstance(value, np.ndarray) else value for key, value in self.config.items()}
        values.update(_class_name=type(self).__name__, _diffusers_version=diffusers_version())
        return json.dumps(values, indent=2, sort_keys=True) + "\n"

    def save_pretrained(self, save_directory, push_to_hub: bool = False, **kwargs) -> None:
        """Write ``scheduler_config.json`` byte for byte as diffusers' ``save_pretrained`` writes it."""
        if push_to_hub:
            raise NotImplementedError("nova's schedulers do not push to the Hub")
        Path(save_directory).mkdir(parents=True, exist_ok=True)
        Path(save_directory, CONFIG_NAME).write_text(self.to_json_string(), encoding="utf-8")

    def __len__(self) -> int:
        return self.config.num_train_timesteps


class DDPMSchedulerOutput(NamedTuple):
    prev_sample: torch.Tensor
    pred_original_sample: torch.Tensor | None = None


def _betas_for_alpha_bar(n: int, kind: str, max_beta: float = 0.999) -> torch.Tensor:
    """Betas that discretise a continuous cumulative alpha_bar(t), t in [0, 1] (cosine: Nichol & Dhariwal)."""
    def alpha_bar(t):
        if kind == "cosine":
            return math.cos((t + 0.008) / 1.008 * math.pi / 2) ** 2
        snr = math.exp(-0.5 * math.copysign(1, 0.5 - t) * math.log(1 - 2 * math.fabs(0.5 - t) + 1e-6))  # laplace
        return math.sqrt(snr / (1 + snr))
    betas = [min(1 - alpha_bar((i + 1) / n) / alpha_bar(i / n), max_beta) for i in range(n)]
    return torch.tensor(betas, dtype=torch.float32)


def _rescale_zero_terminal_snr(betas: torch.Tensor) -> torch.Tensor:
    """Shift and scale sqrt(alpha_bar) so that the last step is pure noise (Lin et al. 2023, Algorithm 1)."""
    root = torch.cumprod(1.0 - betas, dim=0).sqrt()
    first, last = root[0].clone(), root[-1].clone()
    alpha_bar = ((root - last) * (first / (first - last))) ** 2
    return 1 - torch.cat([alpha_bar[0:1], alpha_bar[1:] / alpha_bar[:-1]])


class DDPMScheduler(_Scheduler):
    """Ancestral DDPM sampling (Ho et al. 2020) with diffusers' options, timestep spacings and noise draws."""

    def __init__(self, num_train_timesteps: int = 1000, beta_start: float = 0.0001, beta_end: float = 0.02,
                 beta_schedule: Literal["linear", "scaled_linear", "squaredcos_cap_v2", "sigmoid"] = "linear",
                 trained_betas: np.ndarray | list[float] | None = None, variance_type: VarianceType = "fixed_small",
                 clip_sample: bool = True, prediction_type: Literal["epsilon", "sample", "v_prediction"] = "epsilon",
                 thresholding: bool = False, dynamic_thresholding_ratio: float = 0.995, clip_sample_range: float = 1.0,
                 sample_max_value: float = 1.0,
                 timestep_spacing: Literal["linspace", "leading", "trailing"] = "leading", steps_offset: int = 0,
                 rescale_betas_zero_snr: bool = False):
        self._register(locals())
        n = num_train_timesteps
        if trained_betas is not None:
            betas = torch.tensor(trained_betas, dtype=torch.float32)
        elif beta_schedule == "linear":
            betas = torch.linspace(beta_start, beta_end, n, dtype=torch.float32)
        elif beta_schedule == "scaled_linear":  # linear in sqrt(beta): Stable Diffusion's and NOVA's
            betas = torch.linspace(beta_start**0.5, beta_end**0.5, n, dtype=torch.float32) ** 2
        elif beta_schedule in ("squaredcos_cap_v2", "laplace"):
            betas = _betas_for_alpha_bar(n, "cosine" if beta_schedule == "squaredcos_cap_v2" else "laplace")
        elif beta_schedule == "sigmoid":
            betas = torch.sigmoid(torch.linspace(-6, 6, n)) * (beta_end - beta_start) + beta_start
        else:
            raise NotImplementedError(f"{beta_schedule} is not implemented for {type(self)}")
        self.betas = _rescale_zero_terminal_snr(betas) if rescale_betas_zero_snr else betas
        self.alphas = 1.0 - self.betas
        self.alphas_cumprod = torch.cumprod(self.alphas, dim=0)
        self.one, self.init_noise_sigma = torch.tensor(1.0), 1.0
        self.custom_timesteps, self.num_inference_steps, self.variance_type = False, None, variance_type
        self.timesteps = torch.from_numpy(np.arange(0, n)[::-1].copy())

    def scale_model_input(self, sample: torch.Tensor, timestep: int | None = None) -> torch.Tensor:
        return sample  # DDPM feeds the model the unscaled sample

    def set_timesteps(self, num_inference_steps: int = None, device: str | torch.device = None,
                      timesteps: list[int] | None = None):
        """Inference timesteps: ``timestep_spacing`` as in Lin et al. 2023 (Table 2), or custom descending ones."""
        n_train, spacing = self.config.num_train_timesteps, self.config.timestep_spacing
        if num_inference_steps is not None and timesteps is not None:
            raise ValueError("Can only pass one of `num_inference_steps` or `custom_timesteps`.")
        if timesteps is not None:
            if any(timesteps[i] >= timesteps[i - 1] for i in range(1, len(timesteps))):
                raise ValueError("`custom_timesteps` must be in descending order.")
            if timesteps[0] >= n_train:
                raise ValueError(f"`timesteps` must start before `self.config.train_timesteps`: {n_train}.")
            steps, self.custom_timesteps = np.array(timesteps, dtype=np.int64), True
        elif num_inference_steps > n_train:
            raise ValueError(f"`num_inference_steps`: {num_inference_steps} cannot be larger than "
                             f"`self.config.train_timesteps`: {n_train}.")
        elif spacing == "linspace":
            steps = np.linspace(0, n_train - 1, num_inference_steps).round()[::-1].copy().astype(np.int64)
        elif spacing == "leading":  # multiples of n_train // n, plus steps_offset
            steps = (np.arange(0, num_inference_steps) * (n_train // num_inference_steps)).round()[::-1].copy()
            steps = steps.astype(np.int64) + self.config.steps_offset
        elif spacing == "trailing":
            steps = np.round(np.arange(n_train, 0, -(n_train / num_inference_steps))).astype(np.int64) - 1
        else:
            raise ValueError(f"{spacing} is not supported. Please make sure to choose one of 'linspace', 'leading' "
                             "or 'trailing'.")
        if timesteps is None:
            self.num_inference_steps, self.custom_timesteps = num_inference_steps, False
        self.timesteps = torch.from_numpy(steps).to(device)

    def previous_timestep(self, timestep):
        if self.custom_timesteps or self.num_inference_steps:
            index = (self.timesteps == timestep).nonzero(as_tuple=True)[0][0]
            return torch.tensor(-1) if index == self.timesteps.shape[0] - 1 else self.timesteps[index + 1]
        return timestep - 1

    def _alpha_bars(self, t):
        prev_t = self.previous_timestep(t)
        return self.alphas_cumprod[t], self.alphas_cumprod[prev_t] if prev_t >= 0 else self.one

    def _get_variance(self, t, predicted_variance=None, variance_type: VarianceType | None = None):
        """Variance of the posterior q(x_prev | x_t, x0), or its std/log as ``variance_type`` asks."""
        alpha_prod_t, alpha_prod_t_prev = self._alpha_bars(t)
        current_beta_t = 1 - alpha_prod_t / alpha_prod_t_prev
        variance = torch.clamp((1 - alpha_prod_t_prev) / (1 - alpha_prod_t) * current_beta_t, min=1e-20)
        variance_type = self.config.variance_type if variance_type is None else variance_type
        if variance_type == "fixed_small_log":  # the std, via the log as diffusers computes it
            return torch.exp(0.5 * torch.log(variance))
        if variance_type in ("fixed_large", "fixed_large_log"):
            return current_beta_t if variance_type == "fixed_large" else torch.log(current_beta_t)
        if variance_type == "learned":
            return predicted_variance
        if variance_type == "learned_range":  # a log variance between the posterior's and beta's
            frac = (predicted_variance + 1) / 2
            return frac * torch.log(current_beta_t) + (1 - frac) * torch.log(variance)
        return variance

    def _threshold_sample(self, sample: torch.Tensor) -> torch.Tensor:
        """Dynamic thresholding (Imagen): clip each sample to its ``dynamic_thresholding_ratio`` quantile of |x0|
        (at least 1, at most ``sample_max_value``) and divide by it."""
        dtype, (batch, channels, *rest) = sample.dtype, sample.shape
        if dtype not in (torch.float32, torch.float64):
            sample = sample.float()  # quantile needs float; clamp has no CPU half kernel
        sample = sample.reshape(batch, channels * math.prod(rest))
        s = torch.quantile(sample.abs(), self.config.dynamic_thresholding_ratio, dim=1)
        s = torch.clamp(s, min=1, max=self.config.sample_max_value).unsqueeze(1)
        return (torch.clamp(sample, -s, s) / s).reshape(batch, channels, *rest).to(dtype)

    def step(self, model_output: torch.Tensor, timestep: int, sample: torch.Tensor,
             generator: torch.Generator | None = None, return_dict: bool = True):
        """One reverse step x_t -> x_prev: predict x0, take the posterior mean, add noise unless t == 0."""
        t, config, predicted_variance = timestep, self.config, None
        if model_output.shape[1] == sample.shape[1] * 2 and self.variance_type in ("learned", "learned_range"):
            model_output, predicted_variance = torch.split(model_output, sample.shape[1], dim=1)
        alpha_prod_t, alpha_prod_t_prev = self._alpha_bars(t)
        beta_prod_t, beta_prod_t_prev = 1 - alpha_prod_t, 1 - alpha_prod_t_prev
        current_alpha_t = alpha_prod_t / alpha_prod_t_prev
        current_beta_t = 1 - current_alpha_t
        if config.prediction_type == "epsilon":
            original = (sample - beta_prod_t ** (0.5) * model_output) / alpha_prod_t ** (0.5)
        elif config.prediction_type == "sample":
            original = model_output
        elif config.prediction_type == "v_prediction":
            original = (alpha_prod_t**0.5) * sample - (beta_prod_t**0.5) * model_output
        else:
            raise ValueError(f"prediction_type given as {config.prediction_type} must be one of `epsilon`, `sample` "
                             "or `v_prediction`  for the DDPMScheduler.")
        if config.thresholding:
            original = self._threshold_sample(original)
        elif config.clip_sample:
            original = original.clamp(-config.clip_sample_range, config.clip_sample_range)
        original_coeff = (alpha_prod_t_prev ** (0.5) * current_beta_t) / beta_prod_t
        sample_coeff = current_alpha_t ** (0.5) * beta_prod_t_prev / beta_prod_t
        prev, noise_term = original_coeff * original + sample_coeff * sample, 0
        if t > 0:
            noise = randn_tensor(model_output.shape, generator, model_output.device, model_output.dtype)
            value = self._get_variance(t, predicted_variance=predicted_variance)
            if self.variance_type == "fixed_small_log":
                noise_term = value * noise
            elif self.variance_type == "learned_range":
                noise_term = torch.exp(0.5 * value) * noise
            else:
                noise_term = (value**0.5) * noise
        prev = prev + noise_term
        return DDPMSchedulerOutput(prev, original) if return_dict else (prev, original)

    def _sqrt_alpha_bars(self, like: torch.Tensor, timesteps: torch.Tensor):
        """sqrt(alpha_bar_t) and sqrt(1 - alpha_bar_t), shaped to broadcast over ``like``'s batch."""
        self.alphas_cumprod = self.alphas_cumprod.to(device=like.device)  # diffusers keeps the moved table
        alphas_cumprod, timesteps = self.alphas_cumprod.to(dtype=like.dtype), timesteps.to(like.device)
        a, b = (alphas_cumprod[timesteps] ** 0.5).flatten(), ((1 - alphas_cumprod[timesteps]) ** 0.5).flatten()
        extra = (1,) * (like.ndim - 1)
        return a.reshape(*a.shape, *extra), b.reshape(*b.shape, *extra)

    def add_noise(self, original_samples: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        a, b = self._sqrt_alpha_bars(original_samples, timesteps)
        return a * original_samples + b * noise

    def get_velocity(self, sample: torch.Tensor, noise: torch.Tensor, timesteps: torch.IntTensor):
        a, b = self._sqrt_alpha_bars(sample, timesteps)
        return a * noise - b * sample


class FlowMatchEulerDiscreteSchedulerOutput(NamedTuple):
    prev_sample: torch.Tensor


class FlowMatchEulerDiscreteScheduler(_Scheduler):
    """Euler integration of a rectified-flow ODE: x moves by (sigma_next - sigma) * the predicted velocity."""

    def __init__(self, num_train_timesteps: int = 1000, shift: float = 1.0, use_dynamic_shifting: bool = False,
                 base_shift: float | None = 0.5, max_shift: float | None = 1.15, base_image_seq_len: int = 256,
                 max_image_seq_len: int = 4096, invert_sigmas: bool = False, shift_terminal: float = None,
                 use_karras_sigmas: bool = False, use_exponential_sigmas: bool = False, use_beta_sigmas: bool = False,
                 time_shift_type: Literal["exponential", "linear"] = "exponential", stochastic_sampling: bool = False):
        self._register(locals())
        if use_beta_sigmas + use_exponential_sigmas + use_karras_sigmas > 1:
            raise ValueError("Only one of `config.use_beta_sigmas`, `config.use_exponential_sigmas`, "
                             "`config.use_karras_sigmas` can be used.")
        if time_shift_type not in {"exponential", "linear"}:
            raise ValueError("`time_shift_type` must either be 'exponential' or 'linear'.")
        if use_beta_sigmas:
            raise NotImplementedError("use_beta_sigmas is not implemented by nova's FlowMatchEulerDiscreteScheduler "
                                      "(no NOVA checkpoint uses it; diffusers computes it with scipy)")
        n = num_train_timesteps
        sigmas = torch.from_numpy(np.linspace(1, n, n, dtype=np.float32)[::-1].copy()) / n
        if not use_dynamic_shifting:  # a dynamic shift depends on the resolution: applied by set_timesteps
            sigmas = shift * sigmas / (1 + (shift - 1) * sigmas)
        self.timesteps, self.sigmas = sigmas * n, sigmas
        self.sigma_min, self.sigma_max = sigmas[-1].item(), sigmas[0].item()
        self._shift, self._step_index, self._begin_index, self.num_inference_steps = shift, None, None, None

    @property
    def shift(self):
        return self._shift

    @property
    def step_index(self):
        """Index of the current step's sigma; advances by one at every ``step``."""
        return self._step_index

    @property
    def begin_index(self):
        """Index of the first step when a pipeline starts mid-schedule (img2img); None: found from the timestep."""
        return self._begin_index

    def set_begin_index(self, begin_index: int = 0):
        self._begin_index = begin_index

    def set_shift(self, shift: float):
        """The shift that the *next* ``set_timesteps`` applies (the config keeps the checkpoint's)."""
        self._shift = shift

    def time_shift(self, mu: float, sigma: float, t):
        """Resolution-dependent shift (SD3 / Flux): exponential uses e^mu, linear uses mu itself."""
        m = math.exp(mu) if self.config.time_shift_type == "exponential" else mu
        return m / (m + (1 / t - 1) ** sigma)

    def stretch_shift_to_terminal(self, t):
        """Rescale 1 - sigma so that the last sigma equals ``shift_terminal`` (LTX-Video)."""
        one_minus_z = 1 - t
        return 1 - (one_minus_z / (one_minus_z[-1] / (1 - self.config.shift_terminal)))

    def set_timesteps(self, num_inference_steps: int | None = None, device: str | torch.device = None,
                      sigmas: list[float] | None = None, mu: float | None = None,
                      timesteps: list[float] | None = None):
        """Sigmas from sigma_max to sigma_min (or the given ones), shifted, then a terminal 0 (1 if inverted)."""
        config, n_train = self.config, self.config.num_train_timesteps
        if config.use_dynamic_shifting and mu is None:
            raise ValueError("`mu` must be passed when `use_dynamic_shifting` is set to be `True`")
        if sigmas is not None and timesteps is not None and len(sigmas) != len(timesteps):
            raise ValueError("`sigmas` and `timesteps` should have the same length")
        if num_inference_steps is None:
            num_inference_steps = len(sigmas) if sigmas is not None else len(timesteps)
        elif any(given is not None and len(given) != num_inference_steps for given in (sigmas, timesteps)):
            raise ValueError("`sigmas` and `timesteps` should have the same length as num_inference_steps, if "
                             "`num_inference_steps` is provided")
        self.num_inference_steps, given_timesteps = num_inference_steps, timesteps is not None
        if given_timesteps:
            timesteps = np.array(timesteps).astype(np.float32)
        if sigmas is not None:
            sigmas = np.array(sigmas).astype(np.float32)
        elif timesteps is not None:
            sigmas = timesteps / n_train
        else:  # float64 from here until the conversion to a tensor
            sigmas = np.linspace(self.sigma_max * n_train, self.sigma_min * n_train, num_inference_steps) / n_train
        if config.use_dynamic_shifting:
            sigmas = self.time_shift(mu, 1.0, sigmas)
        else:
            sigmas = self.shift * sigmas / (1 + (self.shift - 1) * sigmas)
        if config.shift_terminal:
            sigmas = self.stretch_shift_to_terminal(sigmas)
        if config.use_karras_sigmas:  # Karras et al. 2022, rho = 7, between this schedule's ends
            low, high = sigmas[-1].item() ** (1 / 7.0), sigmas[0].item() ** (1 / 7.0)
            sigmas = (high + np.linspace(0, 1, len(sigmas)) * (low - high)) ** 7.0
        elif config.use_exponential_sigmas:
            sigmas = np.exp(np.linspace(math.log(sigmas[0].item()), math.log(sigmas[-1].item()), len(sigmas)))
        sigmas = torch.from_numpy(sigmas).to(dtype=torch.float32, device=device)
        if given_timesteps:
            timesteps = torch.from_numpy(timesteps).to(dtype=torch.float32, device=device)
        else:
            timesteps = sigmas * n_train
        if config.invert_sigmas:  # Mochi: inverted sigmas, with timesteps that follow them
            sigmas = 1.0 - sigmas
            timesteps = sigmas * n_train
        end = (torch.ones if config.invert_sigmas else torch.zeros)(1, device=sigmas.device)
        self.timesteps, self.sigmas = timesteps, torch.cat([sigmas, end])
        self._step_index = self._begin_index = None

    def index_for_timestep(self, timestep, schedule_timesteps=None) -> int:
        """Position of ``timestep`` in the schedule; of a repeated value the second one, so that a start
        mid-schedule (img2img) never skips a sigma."""
        indices = ((self.timesteps if schedule_timesteps is None else schedule_timesteps) == timestep).nonzero()
        return indices[1 if len(indices) > 1 else 0].item()

    def _init_step_index(self, timestep) -> None:
        if self.begin_index is not None:
            self._step_index = self._begin_index
        else:
            timestep = timestep.to(self.timesteps.device) if isinstance(timestep, torch.Tensor) else timestep
            self._step_index = self.index_for_timestep(timestep)

    def scale_noise(self, sample: torch.Tensor, timestep: torch.Tensor, noise: torch.Tensor | None = None):
        """Forward process: sigma * noise + (1 - sigma) * sample, sigma at the schedule position of ``timestep``."""
        sigmas = self.sigmas.to(device=sample.device, dtype=sample.dtype)
        dtype = torch.float32 if sample.device.type == "mps" and torch.is_floating_point(timestep) else None
        schedule, timestep = self.timesteps.to(sample.device, dtype), timestep.to(sample.device, dtype)  # mps: no f64
        if self.begin_index is None:
            indices = [self.index_for_timestep(t, schedule) for t in timestep]
        else:  # after the first step (inpainting) or before it (img2img)
            indices = [self.begin_index if self.step_index is None else self.step_index] * timestep.shape[0]
        sigma = sigmas[indices].flatten()
        sigma = sigma.reshape(*sigma.shape, *(1,) * (sample.ndim - 1))
        return sigma * noise + (1.0 - sigma) * sample

    def step(self, model_output: torch.Tensor, timestep, sample: torch.Tensor, s_churn: float = 0.0,
             s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
             generator: torch.Generator | None = None, per_token_timesteps: torch.Tensor | None = None,
             return_dict: bool = True):
        """One Euler step, computed in float32 (``s_*``: diffusers' signature, unused there too); with
        ``stochastic_sampling`` the x0 estimate is re-noised to the next sigma instead."""
        if isinstance(timestep, (int, torch.IntTensor, torch.LongTensor)):
            raise ValueError("Passing integer indices (e.g. from `enumerate(timesteps)`) as timesteps to "
                             "`FlowMatchEulerDiscreteScheduler.step()` is not supported. Make sure to pass one of "
                             "the `scheduler.timesteps` as a timestep.")
        if self.step_index is None:
            self._init_step_index(timestep)
        sample = sample.to(torch.float32)
        if per_token_timesteps is not None:  # each token goes from its own sigma to the next lower one
            current_sigma = per_token_timesteps / self.config.num_train_timesteps
            sigmas = self.sigmas[:, None, None]
            next_sigma = ((sigmas < current_sigma[None] - 1e-6) * sigmas).max(dim=0)[0][..., None]
            current_sigma = current_sigma[..., None]
            dt = current_sigma - next_sigma  # (sic: diffusers' sign for per-token steps)
        else:
            current_sigma, next_sigma = self.sigmas[self.step_index], self.sigmas[self.step_index + 1]
            dt = next_sigma - current_sigma
        if self.config.stochastic_sampling:
            x0 = sample - current_sigma * model_output
            noise = randn_tensor(sample.shape, generator, sample.device, sample.dtype)
            prev = (1.0 - next_sigma) * x0 + next_sigma * noise
        else:
            prev = sample + dt * model_output
        self._step_index += 1
        prev = prev.to(model_output.dtype) if per_token_timesteps is None else prev
        return FlowMatchEulerDiscreteSchedulerOutput(prev) if return_dict else (prev,)


SCHEDULERS = {cls.__name__: cls for cls in (DDPMScheduler, FlowMatchEulerDiscreteScheduler)}
