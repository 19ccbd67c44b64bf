"""A diffusers DDPM / DDIM scheduler config as what jaxdiff's samplers need: the schedule,
what the model predicts, the reverse variance and whether x0 is clipped.

The model a pipeline ships does not say how it was trained; its scheduler does
(``scheduler/scheduler_config.json``, or ``scheduler_config.json`` beside an old
repository's model files). The betas (``linear``, ``scaled_linear``, ``squaredcos_cap_v2``
or ``trained_betas``), ``prediction_type`` and ``variance_type`` fix the model's process;
a value jaxdiff cannot honour is a ``ValueError`` naming the field. diffusers' placement of
the inference steps (``timestep_spacing``, ``steps_offset``, ``set_alpha_to_one``) is the
sampler's choice in jaxdiff (its ``spacing`` option): it is returned in
:attr:`PretrainedScheduler.diffusers_inference` and reported, not applied.
"""

import dataclasses
import os
import pathlib

import numpy as np

from jaxdiff.gaussian.schedules import Schedule, cosine_schedule, schedule_from_betas
from jaxdiff.pretrained import folder

CLASS_NAMES = ("DDPMScheduler", "DDIMScheduler")
SCHEDULER_CONFIGS = ("scheduler/scheduler_config.json", "scheduler_config.json")
"""Where a pipeline folder keeps its scheduler config, newest layout first."""
PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
VARIANCES = {"fixed_small": "beta_tilde", "fixed_large": "beta", "learned_range": "learned"}
_INFERENCE = ("timestep_spacing", "steps_offset", "set_alpha_to_one")
_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 0.0001, "beta_end": 0.02,
             "beta_schedule": "linear", "trained_betas": None, "variance_type": "fixed_small",
             "clip_sample": True, "clip_sample_range": 1.0, "prediction_type": "epsilon",
             "thresholding": False, "dynamic_thresholding_ratio": 0.995,
             "sample_max_value": 1.0, "rescale_betas_zero_snr": False}


@dataclasses.dataclass(frozen=True)
class PretrainedScheduler:
    """What a diffusers scheduler config says about its model.

    Attributes:
      schedule: the discrete schedule of ``num_train_timesteps`` steps.
      prediction: ``eps``, ``x0`` or ``v`` (``prediction_type``).
      variance: the ancestral sampler's variance: ``beta`` (``fixed_large``),
        ``beta_tilde`` (``fixed_small``) or ``learned`` (``learned_range``).
      clip_x0: ``clip_sample`` (x0 clipped to [-1, 1]).
      diffusers_inference: the config's inference-step placement fields (not applied).
    """

    schedule: Schedule
    prediction: str
    variance: str
    clip_x0: bool
    diffusers_inference: dict


def _error(field: str, message: str) -> ValueError:
    return ValueError(f"scheduler config field {field!r}: {message}")


def _betas(v: dict) -> Schedule:
    T, kind = v["num_train_timesteps"], v["beta_schedule"]
    if v["trained_betas"] is not None:
        betas = np.asarray(v["trained_betas"], np.float64)
        if betas.shape != (T,):
            raise _error("trained_betas", f"must hold num_train_timesteps = {T} values, got "
                                          f"{betas.shape}")
        return schedule_from_betas(betas)
    if kind == "linear":   # diffusers computes them in float32
        return schedule_from_betas(np.linspace(v["beta_start"], v["beta_end"], T,
                                               dtype=np.float32))
    if kind == "scaled_linear":
        root = np.linspace(v["beta_start"] ** 0.5, v["beta_end"] ** 0.5, T, dtype=np.float32)
        return schedule_from_betas(root ** 2)
    if kind == "squaredcos_cap_v2":
        return cosine_schedule(num_steps=T)
    raise _error("beta_schedule", f"must be 'linear', 'scaled_linear' or 'squaredcos_cap_v2' "
                                  f"(or trained_betas), got {kind!r}")


def scheduler_from_config(values: dict) -> PretrainedScheduler:
    """The :class:`PretrainedScheduler` of a scheduler config dict."""
    if values.get("_class_name") not in CLASS_NAMES:
        raise _error("_class_name", f"must be one of {list(CLASS_NAMES)}, got "
                                    f"{values.get('_class_name')!r}")
    known = set(_DEFAULTS) | set(_INFERENCE)
    unknown = sorted(k for k in values if not k.startswith("_") and k not in known)
    if unknown:
        raise _error(unknown[0], f"is not supported; the supported fields are {sorted(known)}")
    v = {**_DEFAULTS, **values}
    for field in ("thresholding", "rescale_betas_zero_snr"):
        if v[field]:
            raise _error(field, "is not supported (it must be false)")
    if v["clip_sample"] and v["clip_sample_range"] != 1.0:
        raise _error("clip_sample_range", f"jaxdiff clips x0 to [-1, 1] only, got "
                                          f"{v['clip_sample_range']}")
    for field, table in (("prediction_type", PREDICTIONS), ("variance_type", VARIANCES)):
        if v[field] not in table:
            raise _error(field, f"must be one of {list(table)}, got {v[field]!r}")
    return PretrainedScheduler(
        schedule=_betas(v), prediction=PREDICTIONS[v["prediction_type"]],
        variance=VARIANCES[v["variance_type"]], clip_x0=bool(v["clip_sample"]),
        diffusers_inference={k: values[k] for k in _INFERENCE if k in values})


def load_scheduler(path: str | os.PathLike) -> PretrainedScheduler:
    """The scheduler of the pipeline folder ``path`` (:data:`SCHEDULER_CONFIGS`)."""
    path = pathlib.Path(path)
    for name in SCHEDULER_CONFIGS:
        if (path / name).is_file():
            return scheduler_from_config(folder.read_config(path, name))
    raise FileNotFoundError(f"{str(path)!r} has no scheduler config ({list(SCHEDULER_CONFIGS)})"
                            f": it says how the model was trained (betas, prediction type)")
