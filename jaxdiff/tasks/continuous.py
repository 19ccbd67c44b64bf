r"""``flow`` and ``edm``: continuous-time Gaussian processes of images on a
:class:`~jaxdiff.gaussian.paths.Path`.

``flow`` (flow matching / rectified flow; Lipman et al. 2023, Liu et al. 2023, Esser et al.
2024): path ``diffusion.schedule`` (``rectified_flow`` by default, or a VP path), the network
told ``1000 t``, predicting the velocity by default; training times from
``diffusion.time_density`` (SD3's ``logit_normal`` by default, or ``uniform`` / ``mode``)
with SD3's ``time_shift``. ``edm`` (Karras et al. 2022): the ``ve`` path, the network inside
EDM's preconditioning (:func:`jaxdiff.gaussian.edm_denoiser`, ``sigma_data``), the EDM
weighting and log-normal sigmas. Both: :func:`jaxdiff.gaussian.continuous_loss`; with
``data.conditional`` the labels condition the model and are dropped at ``label_dropout``;
samplers ``euler`` / ``heun`` / ``midpoint`` (:func:`jaxdiff.gaussian.ode_sample`, x0 not
clipped unless ``clip_x0=True``, as in the papers) and ``ddim`` / ``dpm_solver++`` / ``ddpm``
on the path's discrete view; bits/dim from the probability-flow ODE
(:func:`jaxdiff.gaussian.path_nll_bits_per_dim`, Hutchinson's trace) and VDM's bound beside it
where the path's clean end has sigma > 0 (VP paths, ``ve``); diagnostics: the
one-step and 20-step-Euler reconstruction at fractions of the interval, and the loss in
buckets of it.
"""

import dataclasses
import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff import gaussian
from jaxdiff._validation import config_error
from jaxdiff.metrics.diagnostics import psnr
from jaxdiff.models.functional import bind
from jaxdiff.tasks.base import Task
from jaxdiff.tasks.conditions import run_conditions
from jaxdiff.tasks.images import IMAGES, LABEL_DROPOUT, ImageEvaluation, vdm_bound

NLL_STEPS = 100
RECONSTRUCTION_FRACTIONS = (0.1, 0.25, 0.5, 0.75, 0.9)
RECONSTRUCTION_CHAIN_STEPS = 20
LOSS_BUCKETS = 10
SAMPLER_OPTIONS = ("num_steps", "spacing", "shift", "s_churn", "s_tmin", "s_tmax", "s_noise",
                   "eta", "clip_x0", "guidance_scale", "classes", "prompts", "inpaint_mask",
                   "inpaint_values")
DISCRETE_SAMPLERS = ("ddim", "dpm_solver++", "ddpm")
"""The discrete samplers a flow / edm run also takes, through the path's discrete view
(:func:`jaxdiff.gaussian.discrete_view`, :data:`VIEW_STEPS` levels)."""
VIEW_STEPS = 1000


@dataclasses.dataclass(frozen=True)
class _Spec:
    """What tells ``flow`` and ``edm`` apart.

    Attributes:
      settings: the task's :attr:`~jaxdiff.tasks.Task.settings` (user-settable fields).
      fixed: process values that are not settings (EDM's preconditioned output is x0).
      network: ``(run, bound_network) -> denoise_fn(x_t, t, cond)`` on the path's times.
      densities: the ``time_density`` values its paths can draw.
      paths: its ``diffusion.schedule`` names, the default first.
    """

    settings: dict
    fixed: dict
    network: Callable
    densities: tuple[str, ...]
    paths: tuple[str, ...]

    def value(self, config, name: str):
        """``name``'s value for ``config``: fixed, set, or the default; None when the
        process has no such setting."""
        if name in self.fixed:
            return self.fixed[name]
        if name not in self.settings:
            return None
        given = getattr(config.diffusion, name)
        return self.settings[name] if given is None else given


def _density_options(spec: _Spec, config) -> dict:
    options = {}
    if spec.value(config, "time_density") in ("logit_normal", "log_normal"):
        for name, key in (("density_mean", "mean"), ("density_std", "std")):
            if spec.value(config, name) is not None:
                options[key] = spec.value(config, name)
    else:
        for name in ("density_mean", "density_std"):
            if getattr(config.diffusion, name) is not None:
                raise config_error(f"diffusion.{name}", "density_mean / density_std "
                                                        "parameterise logit_normal and "
                                                        "log_normal")
    shift = spec.value(config, "time_shift")
    if shift is not None and shift != 1.0:
        options["shift"] = shift
    return options


def _weighting_options(spec: _Spec, config) -> dict:
    sigma_data = spec.value(config, "sigma_data")
    return {} if sigma_data is None else {"sigma_data": sigma_data}


def _check_config(spec: _Spec, config) -> None:
    f = config.diffusion
    checks = (("prediction", gaussian.CONTINUOUS_PREDICTIONS),
              ("weighting", gaussian.PATH_WEIGHTINGS),
              ("time_density", spec.densities))
    for name, choices in checks:
        if name in spec.settings and spec.value(config, name) not in choices:
            raise config_error(f"diffusion.{name}", f"must be one of {list(choices)}, got "
                                                    f"{getattr(f, name)!r}")
    name = f.schedule or spec.paths[0]
    path = gaussian.get_path(name) if name in spec.paths else None   # else: validate names it
    if (path is not None and spec.value(config, "prediction") == "eps"
            and path.alpha_sigma_value(path.t_max)[0] == 0):
        raise config_error("diffusion.prediction", f"'eps' cannot be sampled on the "
                                                   f"{path.name!r} path (alpha = 0 at its "
                                                   f"noisy end); use velocity, v or x0")
    for name in ("time_shift", "sigma_data", "density_std"):
        value = spec.value(config, name)
        if value is not None and not value > 0:
            raise config_error(f"diffusion.{name}", f"must be > 0, got {value}")
    _density_options(spec, config)


def _loss_fn(spec: _Spec, run, *, train: bool):
    config = run.config
    apply_fn = run.apply_fn(train=train)
    options = dict(prediction=spec.value(config, "prediction"),
                   density=spec.value(config, "time_density"),
                   density_options=_density_options(spec, config),
                   weighting=spec.value(config, "weighting"),
                   weighting_options=_weighting_options(spec, config))
    conditions = run_conditions(run)
    rate = spec.value(config, "label_dropout") if train and conditions.conditional else 0.0

    def loss_fn(params, key, batch):
        key_loss, key_dropout, key_labels = jax.random.split(key, 3)
        cond = conditions.dropped(key_labels, batch, rate)
        denoiser = spec.network(run, bind(apply_fn, params, key_dropout))
        return gaussian.continuous_loss(key_loss, denoiser, run.process, batch["image"],
                                        cond=cond, noise=batch.get("noise"), **options)

    return loss_fn


def _make_sampler(spec: _Spec, run, *, count: int, sampler: str, num_steps: int | None = None,
                  spacing: str | None = None, shift: float | None = None, s_churn: float = 0.0,
                  s_tmin: float = 0.0, s_tmax: float = float("inf"), s_noise: float = 1.0,
                  eta: float = 0.0, clip_x0: bool = False, guidance_scale: float | None = None,
                  classes=None, prompts=None, inpaint_mask=None, inpaint_values=None):
    """``sample(key, params)``: ``count`` images from :func:`jaxdiff.gaussian.ode_sample`;
    ``num_steps`` defaults to the solver's (:data:`jaxdiff.gaussian.ode.DEFAULT_STEPS`),
    ``shift`` to the run's ``time_shift``
    on a uniform grid; x0 is not clipped unless ``clip_x0`` (the papers' samplers do not
    clip). The :data:`DISCRETE_SAMPLERS` run :func:`jaxdiff.gaussian.sample` on the path's
    discrete view (their ``spacing`` and DDIM's ``eta``; the ODE grid's ``shift`` and EDM's
    churn are errors there, as ``eta`` is for the ODE solvers)."""
    apply_fn = run.apply_fn()
    cond, null = run_conditions(run).for_sampling(count, classes=classes, prompts=prompts,
                                                  guidance_scale=guidance_scale)
    shape = run.task.modality.sample_shape(run, count)
    prediction = spec.value(run.config, "prediction")
    if sampler in DISCRETE_SAMPLERS:
        ode_only = {"shift": shift is not None, "s_churn": s_churn != 0.0,
                    "s_tmin": s_tmin != 0.0, "s_tmax": s_tmax != float("inf"),
                    "s_noise": s_noise != 1.0}
        if any(ode_only.values()):
            raise ValueError(f"{sorted(k for k, v in ode_only.items() if v)} are options of "
                             f"the ODE solvers; sampler {sampler!r} runs on the path's "
                             f"discrete view")

        @jax.jit
        def sample_discrete(key, params):
            schedule, view = gaussian.discrete_view(
                spec.network(run, bind(apply_fn, params)), run.process,
                prediction=prediction, num_steps=VIEW_STEPS)
            return gaussian.sample(
                key, view, schedule, shape, sampler=sampler, num_steps=num_steps,
                spacing=spacing, prediction=gaussian.VIEW_PREDICTION, eta=eta,
                clip_x0=clip_x0, cond=cond, guidance_scale=guidance_scale, null_cond=null,
                inpaint_mask=inpaint_mask, inpaint_values=inpaint_values)

        return sample_discrete
    if eta != 0.0:
        raise ValueError(f"eta is DDIM's stochasticity; the ODE solver {sampler!r} has none "
                         f"(use s_churn)")
    if shift is None:
        uniform = (spacing or run.process.sampling_spacing) == "uniform"
        shift = spec.value(run.config, "time_shift") if uniform else None
        shift = 1.0 if shift is None else shift

    @jax.jit
    def sample(key, params):
        return gaussian.ode_sample(
            key, spec.network(run, bind(apply_fn, params)), run.process, shape,
            solver=sampler, num_steps=num_steps, spacing=spacing, shift=shift,
            prediction=prediction, s_churn=s_churn, s_tmin=s_tmin,
            s_tmax=s_tmax, s_noise=s_noise, clip_x0=clip_x0, cond=cond,
            guidance_scale=guidance_scale, null_cond=null, inpaint_mask=inpaint_mask,
            inpaint_values=inpaint_values)

    return sample


# ----------------------------------------------------------------------------- evaluation


def _bits_per_dim(spec: _Spec, run, *, num_bins: int, nll_steps: int | None):
    """Jitted ``bpd(key, params, x0, cond) -> [B]`` from the probability-flow ODE."""
    apply_fn = run.apply_fn()
    prediction = spec.value(run.config, "prediction")

    @jax.jit
    def bpd(key, params, x0, cond):
        return gaussian.path_nll_bits_per_dim(
            key, spec.network(run, bind(apply_fn, params)), run.process, x0,
            prediction=prediction, num_bins=num_bins, cond=cond,
            num_steps=nll_steps or NLL_STEPS)

    return bpd


def _continuous_bound(spec: _Spec, run, *, num_bins: int):
    """VDM's bound beside the ODE estimate (a ``ValueError`` on rectified flow)."""
    apply_fn = run.apply_fn()
    return vdm_bound(run.process, lambda params: spec.network(run, bind(apply_fn, params)),
                     prediction=spec.value(run.config, "prediction"), num_bins=num_bins)


def _sigma_e_ends(path) -> tuple[float, float]:
    """sigma / alpha at the clean and noisy ends of the path's log-SNR grids (clamped to
    EDM's [0.002, 80])."""
    noisy, clean = gaussian.time_grid(path, 2, spacing="log_snr")
    return tuple(float(np.exp(-0.5 * path.log_snr(np.float64(t)))) for t in (clean, noisy))


def _bits_per_dim_protocol(run, *, num_bins: int, nll_steps: int | None) -> dict:
    steps = nll_steps or NLL_STEPS
    clean, noisy = _sigma_e_ends(run.process)
    return {"method": "probability-flow ODE (Hutchinson trace; an estimate, not a bound)",
            "label": "bits/dim (ODE)", "chain_steps": steps,
            "description": f"{steps} levels even in log-SNR, one Rademacher probe",
            "note": (f"uniform dequantization on the data's {num_bins}-level grid; the data "
                     f"sit at sigma/alpha = {clean:.3g}, the prior N(0, sigma^2) at "
                     f"{noisy:.3g}"
                     + (" (digits are 0..16: not comparable with 256-level bits/dim)"
                        if num_bins != 256 else ""))}


def _noise_levels(path, fractions) -> np.ndarray:
    """Times at ``fractions`` of the way from the clean to the noisy end in log-SNR,
    between the ends clamped to EDM's sigma / alpha in [0.002, 80] (one scale for every
    path)."""
    noisy, clean = (float(path.log_snr(np.float64(t)))
                    for t in gaussian.time_grid(path, 2, spacing="log_snr"))
    lams = clean + np.asarray(fractions, np.float64) * (noisy - clean)
    return np.asarray(path.time_at(jnp.asarray(lams)), np.float64)


def _diagnostics(spec: _Spec, run, params, key, x0, cond) -> tuple[dict, dict]:
    """One-step and 20-step Euler reconstruction at :data:`RECONSTRUCTION_FRACTIONS` of the
    log-SNR range and the loss in :data:`LOSS_BUCKETS` equal log-SNR buckets of it."""
    path, prediction = run.process, spec.value(run.config, "prediction")
    weighting = spec.value(run.config, "weighting")
    denoiser = spec.network(run, bind(run.apply_fn(), params))
    batch = x0.shape[0]
    rows = []
    for i, t in enumerate(_noise_levels(path, RECONSTRUCTION_FRACTIONS)):
        noise = jax.random.normal(jax.random.fold_in(key, i), x0.shape, x0.dtype)
        alpha, sigma = (float(c) for c in path.alpha_sigma(np.float64(t)))
        x_t = alpha * x0 + sigma * noise
        tb = jnp.full((batch,), t, x0.dtype)
        one_step = jnp.clip(gaussian.x0_eps_from_output(
            path, prediction, denoiser(x_t, tb, cond), x_t, tb)[0], -1, 1)
        times = np.linspace(t, path.t_min, RECONSTRUCTION_CHAIN_STEPS + 1)[:-1]
        chain = gaussian.ode_sample(key, denoiser, path, x0.shape, solver="euler",
                                    prediction=prediction, clip_x0=True, cond=cond,
                                    times=times, x_init=x_t)
        mse_one = float(((one_step - x0) ** 2).mean())
        mse_chain = float(((chain - x0) ** 2).mean())
        rows.append({"t": round(float(t), 6), "mse_one_step": mse_one,
                     "psnr_one_step": float(psnr(mse_one)), "mse_chain": mse_chain,
                     "psnr_chain": float(psnr(mse_chain))})
    fractions = np.linspace(0.0, 1.0, LOSS_BUCKETS + 1)
    edges = _noise_levels(path, fractions)
    losses = []
    for b in range(LOSS_BUCKETS):
        u = jax.random.uniform(jax.random.fold_in(key, 100 + b), (batch,), jnp.float64)
        inside = fractions[b] + (fractions[b + 1] - fractions[b]) * np.asarray(u)
        t = jnp.asarray(_noise_levels(path, inside), x0.dtype)
        loss = gaussian.continuous_loss(
            jax.random.fold_in(key, 200 + b), denoiser, path, x0, cond=cond, t=t,
            prediction=prediction, weighting=weighting,
            weighting_options=_weighting_options(spec, run.config))
        losses.append(float(loss.mean()))
    results = {"reconstruction": rows,
               "loss_per_timestep": [{"t_from": round(float(lo), 6), "t_to": round(float(hi), 6),
                                      "loss": v}
                                     for lo, hi, v in zip(edges[:-1], edges[1:], losses,
                                                          strict=True)]}
    clean, noisy = _sigma_e_ends(path)
    protocol = {"clip_x0": True, "chain_steps": RECONSTRUCTION_CHAIN_STEPS,
                "chain_sampler": "Euler ODE", "timesteps": [r["t"] for r in rows],
                "loss": f"{prediction} prediction, {weighting} weighting, {LOSS_BUCKETS} "
                        f"buckets even in log-SNR between sigma/alpha = {clean:.3g} and "
                        f"{noisy:.3g}"}
    return results, protocol


def _continuous_task(name: str, *, samplers: tuple[str, ...], spec: _Spec,
                     coupled_noise=None) -> Task:
    bound = lambda fn: functools.partial(fn, spec)  # noqa: E731
    return Task(
        name=name, modality=IMAGES, schedules=spec.paths, samplers=samplers,
        sampler_options=SAMPLER_OPTIONS, check_config=bound(_check_config),
        build_process=lambda config, schedule: gaussian.get_path(schedule),
        model_fields=lambda config: {"learned_variance": False},
        objective=lambda run: _loss_fn(spec, run, train=True),
        held_out=lambda run: _loss_fn(spec, run, train=False),
        make_sampler=bound(_make_sampler),
        evaluation=ImageEvaluation(bits_per_dim=bound(_bits_per_dim),
                                   bits_per_dim_protocol=_bits_per_dim_protocol,
                                   diagnostics=bound(_diagnostics),
                                   continuous_bound=bound(_continuous_bound),
                                   clip_x0=lambda run: False),
        settings=spec.settings, coupled_noise=coupled_noise)


def _edm_network(run, bound):
    return gaussian.edm_denoiser(bound, sigma_data=run.task.setting(run.config, "sigma_data"))


_FLOW_SPEC = _Spec(
    settings={"prediction": "velocity", "weighting": "uniform", "time_density": "logit_normal",
              "density_mean": None, "density_std": None, "time_shift": 1.0,
              "label_dropout": LABEL_DROPOUT},
    fixed={}, network=lambda run, bound: gaussian.with_model_time(bound, run.process),
    densities=("logit_normal", "uniform", "mode"),
    paths=("rectified_flow", "vp_cosine", "vp_linear", "vp_sigmoid", "vp_log_linear"))
_EDM_SPEC = _Spec(
    settings={"weighting": "edm", "time_density": "log_normal", "density_mean": None,
              "density_std": None, "sigma_data": gaussian.SIGMA_DATA,
              "label_dropout": LABEL_DROPOUT},
    fixed={"prediction": "x0"}, network=_edm_network, densities=("log_normal", "uniform"),
    paths=("ve",))
FLOW = _continuous_task("flow", samplers=("euler", "heun", "midpoint", *DISCRETE_SAMPLERS),
                        spec=_FLOW_SPEC, coupled_noise=gaussian.check_pure_noise_end)
EDM = _continuous_task("edm", samplers=("heun", "euler", "midpoint", *DISCRETE_SAMPLERS),
                       spec=_EDM_SPEC)
_SPECS = {"flow": _FLOW_SPEC, "edm": _EDM_SPEC}


def path_denoiser(run, params):
    """A ``flow`` or ``edm`` run's ``denoise_fn(x_t, t, cond)`` on its path's times (for
    ``edm`` inside EDM's preconditioning), bound to ``params``: what its samplers and bounds
    call, for use outside the task (reflow pairs, custom solvers)."""
    if run.task.name not in _SPECS:
        raise ValueError(f"path_denoiser needs a flow or edm run, got process "
                         f"{run.task.name!r}")
    return _SPECS[run.task.name].network(run, bind(run.apply_fn(), params))
