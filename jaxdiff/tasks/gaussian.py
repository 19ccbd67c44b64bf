r"""``gaussian``: DDPM-family diffusion of images on a discrete T-step schedule.

Process: :func:`jaxdiff.gaussian.cosine_schedule` (default), ``linear`` or ``sigmoid`` with
``diffusion.num_steps`` steps. Objective: :func:`jaxdiff.gaussian.loss` (``prediction``,
``weighting``, ``learned_variance`` for L_hybrid); with ``data.conditional`` the labels
condition the model and are replaced by the null class at rate ``label_dropout``
(classifier-free guidance training, Ho & Salimans 2022). Samplers: ``ddim`` (default),
``ddpm``, ``dpm_solver++``, ``heun`` (:func:`jaxdiff.gaussian.sample`) and the ODE solvers
``euler`` / ``midpoint`` on the schedule as a path, with ``x0`` clipped to the data range
unless ``clip_x0=False``. Evaluation: the VLB in bits/dim
(:func:`jaxdiff.gaussian.nll_bits_per_dim`), VDM's continuous-time bound beside it (on the
schedule as a path), reconstruction error and loss per timestep.
"""

import jax
import numpy as np

from jaxdiff import gaussian
from jaxdiff._validation import config_error
from jaxdiff.metrics.diagnostics import loss_per_timestep, reconstruction_error
from jaxdiff.models.functional import bind
from jaxdiff.models.presets import DIFFUSERS_PREFIX
from jaxdiff.tasks.base import Task
from jaxdiff.tasks.conditions import UNCONDITIONAL, ImageConditions, run_conditions
from jaxdiff.tasks.images import IMAGES, LABEL_DROPOUT, ImageEvaluation, vdm_bound

SCHEDULES = {"cosine": gaussian.cosine_schedule, "linear": gaussian.linear_schedule,
             "sigmoid": gaussian.sigmoid_schedule}
PRETRAINED_SCHEDULE = "diffusers"
"""The ``diffusion.schedule`` of a pretrained network (``model.preset = "diffusers:DIR"``): the
betas of DIR's scheduler (:func:`jaxdiff.pretrained.load_scheduler`); ``num_steps`` and
``prediction`` must be the scheduler's."""
ODE_SOLVERS = ("euler", "midpoint")
"""The ODE solvers a run also takes, on its schedule as a path (its ``heun`` is the discrete
EDM-form Heun of :func:`jaxdiff.gaussian.sample`)."""
RECONSTRUCTION_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 0.9)
RECONSTRUCTION_CHAIN_STEPS = 20
LOSS_BUCKETS = 10


def _prediction(config) -> str:
    return GAUSSIAN.setting(config, "prediction")


def _weighting(config) -> str:
    return GAUSSIAN.setting(config, "weighting")


def _learned_variance(config) -> bool:
    return GAUSSIAN.setting(config, "learned_variance")


def _check_config(config) -> None:
    f = config.diffusion
    if _prediction(config) not in gaussian.PREDICTIONS:
        raise config_error("diffusion.prediction", f"must be one of "
                                                   f"{list(gaussian.PREDICTIONS)}, got "
                                                   f"{f.prediction!r}")
    if _weighting(config) not in gaussian.WEIGHTINGS:
        raise config_error("diffusion.weighting", f"must be one of "
                                                  f"{list(gaussian.WEIGHTINGS)}, got "
                                                  f"{f.weighting!r}")
    if GAUSSIAN.setting(config, "num_steps") < 1:
        raise config_error("diffusion.num_steps", f"must be >= 1, got {f.num_steps}")
    if f.schedule == PRETRAINED_SCHEDULE:
        scheduler = _pretrained_scheduler(config)
        for name, value in (("num_steps", scheduler.schedule.num_steps),
                            ("prediction", scheduler.prediction)):
            if GAUSSIAN.setting(config, name) != value:
                raise config_error(f"diffusion.{name}", f"the scheduler of "
                                                        f"{config.model.preset!r} has {value!r}"
                                                        f", this run "
                                                        f"{GAUSSIAN.setting(config, name)!r}")


def _pretrained_scheduler(config):
    """The scheduler of the run's pretrained pipeline (``model.preset = "diffusers:DIR"``)."""
    from jaxdiff.pretrained import load_scheduler  # pretrained builds on the tasks

    preset = config.model.preset
    if not preset.startswith(DIFFUSERS_PREFIX):
        raise config_error("diffusion.schedule", f"{PRETRAINED_SCHEDULE!r} is the scheduler of "
                                                 f"a pretrained pipeline: it needs "
                                                 f"model.preset='diffusers:<folder>', got "
                                                 f"{preset!r}")
    try:
        return load_scheduler(preset[len(DIFFUSERS_PREFIX):])
    except (OSError, ValueError) as err:
        raise config_error("diffusion.schedule", str(err)) from None


def _build_process(config, schedule: str) -> gaussian.Schedule:
    if schedule == PRETRAINED_SCHEDULE:
        return _pretrained_scheduler(config).schedule
    return SCHEDULES[schedule](num_steps=GAUSSIAN.setting(config, "num_steps"))


def _variance(run) -> str:
    """The reverse variance the run's model implies: ``learned``, else a pretrained
    pipeline's scheduler's (``beta`` or ``beta_tilde``), else ``beta``."""
    if _learned_variance(run.config):
        return "learned"
    if run.config.diffusion.schedule == PRETRAINED_SCHEDULE:
        return _pretrained_scheduler(run.config).variance
    return "beta"


def _clip_x0(run) -> bool:
    """Whether the run's samplers clip x0 by default: a pretrained pipeline's scheduler says
    (``clip_sample``); a latent run does not (latents have no [-1, 1] range; LDM does not
    clip); otherwise yes (DDPM's and DDIM's code clip)."""
    if run.config.diffusion.schedule == PRETRAINED_SCHEDULE:
        return _pretrained_scheduler(run.config).clip_x0
    return run.config.data.autoencoder is None


def gaussian_objective(apply_fn, schedule: gaussian.Schedule, *, prediction: str,
                       weighting: str = "uniform", learned_variance: bool = False,
                       conditions: ImageConditions = UNCONDITIONAL,
                       label_dropout: float = 0.0):
    """``loss_fn(params, key, batch) -> [B]``: :func:`jaxdiff.gaussian.loss` of
    ``apply_fn(params, x_t, t, cond, key)`` on ``batch["image"]``; a conditional run's labels
    or captions condition the model (``conditions``) and are replaced by the null condition
    at rate ``label_dropout`` (classifier-free guidance training)."""

    def loss_fn(params, key, batch):
        key_loss, key_dropout, key_labels = jax.random.split(key, 3)
        cond = conditions.dropped(key_labels, batch, label_dropout)
        return gaussian.loss(key_loss, bind(apply_fn, params, key_dropout), schedule,
                             batch["image"], prediction=prediction, cond=cond,
                             weighting=weighting, learned_variance=learned_variance)

    return loss_fn


def _loss_fn(run, *, train: bool):
    conditions = run_conditions(run)
    return gaussian_objective(run.apply_fn(train=train), run.process,
                              prediction=_prediction(run.config),
                              weighting=_weighting(run.config),
                              learned_variance=_learned_variance(run.config),
                              conditions=conditions,
                              label_dropout=(GAUSSIAN.setting(run.config, "label_dropout")
                                             if train and conditions.conditional else 0.0))


def _make_sampler(run, *, count: int, sampler: str, **options):
    options.setdefault("clip_x0", _clip_x0(run))
    if sampler == "ddpm":
        options.setdefault("variance", _variance(run))
    return image_sampler(run.apply_fn(), run.process,
                         shape=run.task.modality.sample_shape(run, count),
                         prediction=_prediction(run.config),
                         learned_variance=_learned_variance(run.config),
                         conditions=run_conditions(run), sampler=sampler, **options)


def image_sampler(apply_fn, schedule: gaussian.Schedule, *, shape: tuple[int, ...],
                  prediction: str, learned_variance: bool, conditions: ImageConditions,
                  sampler: str, num_steps: int | None = None, spacing: str | None = None,
                  variance: str | None = None, eta: float = 0.0, clip_x0: bool = True,
                  guidance_scale: float | None = None, classes=None, prompts=None,
                  inpaint_mask=None, inpaint_values=None):
    """``sample(key, params)``: ``shape[0]`` images of a network ``apply_fn(params, x_t, t,
    cond)`` on a discrete ``schedule``, from :func:`jaxdiff.gaussian.sample`, or for the
    :data:`ODE_SOLVERS` from :func:`jaxdiff.gaussian.ode_sample` on the schedule as a
    continuous path (:func:`jaxdiff.gaussian.schedule_path`; ``eta`` and ``variance`` are
    errors there). What a ``gaussian`` run and a pretrained diffusers model sample with.

    ``classes`` (label ids ``int [count]``, conditional runs only) default to round-robin,
    ``prompts`` are captions of a caption run (:meth:`ImageConditions.for_sampling`);
    guidance needs a conditional run; ``variance`` defaults to the model's (learned or
    beta)."""
    cond, null = conditions.for_sampling(shape[0], classes=classes, prompts=prompts,
                                         guidance_scale=guidance_scale)
    channels = shape[-1]
    if sampler in ODE_SOLVERS:
        if eta != 0.0 or variance is not None:
            raise ValueError(f"eta and variance are options of the discrete samplers; "
                             f"{sampler!r} solves the probability-flow ODE")
        path = gaussian.schedule_path(schedule)

        @jax.jit
        def sample_ode(key, params):
            denoiser = without_variance(bind(apply_fn, params), channels, learned_variance)
            return gaussian.ode_sample(
                key, gaussian.with_model_time(denoiser, path), path, shape, solver=sampler,
                num_steps=num_steps, spacing=spacing, prediction=prediction, clip_x0=clip_x0,
                cond=cond, guidance_scale=guidance_scale, null_cond=null,
                inpaint_mask=inpaint_mask, inpaint_values=inpaint_values)

        return sample_ode
    if variance is None:   # the model's (a run's _variance)
        variance = "learned" if learned_variance else "beta"

    @jax.jit
    def sample(key, params):
        return gaussian.sample(
            key, bind(apply_fn, params), schedule, shape, sampler=sampler,
            num_steps=num_steps, spacing=spacing, prediction=prediction,
            variance=variance, eta=eta, clip_x0=clip_x0, cond=cond,
            guidance_scale=guidance_scale, null_cond=null, inpaint_mask=inpaint_mask,
            inpaint_values=inpaint_values)

    return sample


# ----------------------------------------------------------------------------- evaluation


def _bits_per_dim(run, *, num_bins: int, nll_steps: int | None):
    """Jitted ``bpd(key, params, x0, cond) -> [B]``: the VLB on a ``num_bins`` grid over the
    full chain of T steps, or a uniformly respaced chain of ``nll_steps`` steps."""
    T = run.process.num_steps
    if nll_steps is not None and nll_steps > T:
        raise ValueError(f"nll_steps must be <= the run's T = {T}, got {nll_steps}")
    apply_fn = run.apply_fn()

    @jax.jit
    def bpd(key, params, x0, cond):
        return gaussian.nll_bits_per_dim(
            key, bind(apply_fn, params), run.process, x0, method="vlb",
            prediction=_prediction(run.config), variance=_variance(run), num_bins=num_bins,
            cond=cond, num_steps=nll_steps)

    return bpd


def _bits_per_dim_protocol(run, *, num_bins: int, nll_steps: int | None) -> dict:
    T = run.process.num_steps
    respaced = nll_steps is not None and nll_steps != T
    steps = T if nll_steps is None else nll_steps
    return {"method": "vlb (upper bound)", "label": "bits/dim (VLB)", "chain_steps": steps,
            "respaced": respaced, "variance": _variance(run),
            "description": f"{steps}-step chain{' (respaced)' if respaced else ''}, "
                           f"{_variance(run)} variance",
            "note": (f"discretized decoder on the data's {num_bins}-level grid"
                     + (" (digits are 0..16: not comparable with 256-level bits/dim)"
                        if num_bins != 256 else "")
                     + (f"; chain respaced from T={T} to {nll_steps} uniform steps (a looser "
                        "bound than the full chain)" if respaced else ""))}


def without_variance(denoise_fn, channels: int, learned_variance: bool):
    """``denoise_fn`` without its learned-variance half (the last ``channels`` outputs)."""
    if not learned_variance:
        return denoise_fn
    return lambda x_t, t, cond=None: denoise_fn(x_t, t, cond)[..., :channels]


def eps_denoiser(run, params):
    """The run's bound ``(x_t, t, cond)`` denoiser without a learned-variance half."""
    return without_variance(bind(run.apply_fn(), params), run.dataset.images.shape[-1],
                            _learned_variance(run.config))


def _continuous_bound(run, *, num_bins: int):
    """VDM's bound of the run's model on its schedule as a continuous path
    (:func:`jaxdiff.gaussian.schedule_path`; the learned variance plays no part)."""
    path = gaussian.schedule_path(run.process)
    return vdm_bound(path, lambda params: gaussian.with_model_time(eps_denoiser(run, params),
                                                                   path),
                     prediction=_prediction(run.config), num_bins=num_bins)


def _diagnostics(run, params, key, x0, cond) -> tuple[dict, dict]:
    """Reconstruction error at ``RECONSTRUCTION_FRACTIONS`` of T (one step and a 20-step
    DDIM chain, x0 clipped) and the training loss in ``LOSS_BUCKETS`` buckets of [0, T)."""
    schedule = run.process
    T = schedule.num_steps
    denoiser = eps_denoiser(run, params)
    ts = np.array(sorted({min(T - 1, int(frac * T)) for frac in RECONSTRUCTION_FRACTIONS}),
                  np.int32)
    rec = reconstruction_error(jax.random.fold_in(key, 2), denoiser, schedule, x0, ts,
                               num_steps=RECONSTRUCTION_CHAIN_STEPS,
                               prediction=_prediction(run.config),
                               cond=cond, clip_x0=True)
    edges, curve = loss_per_timestep(jax.random.fold_in(key, 3), denoiser, schedule, x0,
                                     num_buckets=min(LOSS_BUCKETS, T),
                                     prediction=_prediction(run.config), cond=cond,
                                     weighting=_weighting(run.config))
    curve = np.asarray(curve)
    results = {
        "reconstruction": [
            {"t": int(t), "mse_one_step": float(a), "psnr_one_step": float(b),
             "mse_chain": float(c), "psnr_chain": float(d)}
            for t, a, b, c, d in zip(np.asarray(rec.timesteps), np.asarray(rec.mse_one_step),
                                     np.asarray(rec.psnr_one_step), np.asarray(rec.mse_chain),
                                     np.asarray(rec.psnr_chain), strict=True)],
        "loss_per_timestep": [
            {"t_from": int(lo), "t_to": int(hi), "loss": float(v)}
            for lo, hi, v in zip(edges[:-1], edges[1:], curve, strict=True)]}
    protocol = {"clip_x0": True, "chain_steps": RECONSTRUCTION_CHAIN_STEPS,
                "chain_sampler": "DDIM", "timesteps": ts.tolist(),
                "loss": f"{_prediction(run.config)} prediction, {_weighting(run.config)} "
                        f"weighting, fixed variance, "
                        f"{len(curve)} buckets of [0, {T})"}
    return results, protocol


GAUSSIAN = Task(
    name="gaussian", modality=IMAGES, schedules=(*SCHEDULES, PRETRAINED_SCHEDULE),
    samplers=("ddim", "ddpm", "dpm_solver++", "heun", *ODE_SOLVERS),
    sampler_options=("num_steps", "spacing", "variance", "eta", "clip_x0", "guidance_scale",
                     "classes", "prompts", "inpaint_mask", "inpaint_values"),
    check_config=_check_config, build_process=_build_process,
    model_fields=lambda config: {"learned_variance": _learned_variance(config)},
    objective=lambda run: _loss_fn(run, train=True),
    held_out=lambda run: _loss_fn(run, train=False),
    make_sampler=_make_sampler,
    evaluation=ImageEvaluation(bits_per_dim=_bits_per_dim,
                               bits_per_dim_protocol=_bits_per_dim_protocol,
                               diagnostics=_diagnostics,
                               continuous_bound=_continuous_bound, clip_x0=_clip_x0),
    settings={"prediction": "eps", "weighting": "uniform", "num_steps": 1000,
              "learned_variance": False, "label_dropout": LABEL_DROPOUT})
