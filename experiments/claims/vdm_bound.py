r"""Claim 14: for the same model, the continuous-time VDM bound is not looser than the
1000-step bound, and antithetic times lower the variance of its estimate (Kingma et al.
2021, Sec. 3.4-3.5 and App. I.2).

VDM shows that for a fixed model the discrete-time diffusion loss can only fall when the
number of steps doubles, :math:`L_T \ge L_{2T} \ge \dots \ge L_\infty`, with the reverse
step :math:`p(z_s | z_t) = q(z_s | z_t, x = \hat x)` (the posterior variance
:math:`\tilde\beta`). Two runs of :mod:`claims._image_runs`, ``cosine-eps`` and
``linear-eps`` (DDPM, eps prediction, T = 1000), each evaluated on the first
:data:`NUM_BPD_IMAGES` test digits on their 17-level grid, EMA parameters:

* **the 1000-step bound**: the VLB over the full chain (:func:`claims._image_runs.bits_per_dim`,
  the protocol of claim 2) with the fixed reverse variances :math:`\tilde\beta_t` (VDM's
  discrete model) and :math:`\beta_t`;
* **the continuous bound**: :func:`jaxdiff.gaussian.vdm_bits_per_dim` on the run's schedule as a
  continuous path (:func:`jaxdiff.gaussian.schedule_path`: the log-SNR interpolated between the
  1000 levels, the network told the fractional step), per image the mean of
  :data:`DRAWS_PER_IMAGE` draws of ``(t, eps)``; its prior, reconstruction (VDM's decoder at
  the first level) and diffusion terms are reported;
* **the variance of the estimate**: :data:`REPEATS` estimates of the batch mean of the
  diffusion term over the same images, one ``(t, eps)`` per image, with VDM's low-discrepancy
  times :math:`t_i = (u_0 + i/B) \bmod 1` and with i.i.d. times.

Expected before the run (VDM): the continuous bound is not above the 1000-step
:math:`\tilde\beta` bound by more than :data:`Z` standard errors of the paired per-image
difference; the antithetic estimate's standard deviation is below the i.i.d. one's. The
:math:`\beta` bound is reported beside (it is not VDM's discrete model, so no direction is
stated for it).
"""

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxdiff as jd
from claims import _image_runs as runs

NAME = "vdm_bound"
CLAIM = ("For the same model, the continuous-time VDM bound is not looser than the 1000-step "
         "bound with the posterior variance, and antithetic (low-discrepancy) times lower the "
         "variance of its estimate (Kingma et al. 2021, Sec. 3.4-3.5).")

RUNS = ("cosine-eps", "linear-eps")
VARIANCES = ("beta_tilde", "beta")
NUM_BPD_IMAGES = 100
DRAWS_PER_IMAGE = 64
REPEATS = 200
SEED = 0
Z = 2.0


def _terms_fn(run, params, x0):
    """``terms(key, antithetic=True) -> [3, B]``: the bound's prior, reconstruction and
    diffusion terms in bits/dim of the model on its schedule as a path, jitted."""
    path = jd.gaussian.schedule_path(run.process)
    denoiser = jd.gaussian.with_model_time(runs.denoise_fn(run, params), path)
    prediction = run.task.setting(run.config, "prediction")
    per_nats = 1.0 / (math.prod(x0.shape[1:]) * math.log(2.0))

    @functools.partial(jax.jit, static_argnames="antithetic")
    def terms(key, antithetic=True):
        t = jd.gaussian.vdm_terms(key, denoiser, path, x0, prediction=prediction,
                                  num_bins=runs.NUM_BINS, antithetic=antithetic)
        return jnp.stack([t["prior"], t["reconstruction"], t["diffusion"]]) * per_nats

    return terms


def _continuous(run, params, x0, *, draws: int, seed: int) -> dict:
    """Per-image terms ``{prior, reconstruction, diffusion, total}`` in bits/dim, each the
    mean over ``draws`` draws (antithetic times across the batch)."""
    terms = _terms_fn(run, params, x0)

    key = jax.random.key(seed)
    mean = np.mean([np.asarray(terms(jax.random.fold_in(key, i))) for i in range(draws)],
                   axis=0)
    out = dict(zip(("prior", "reconstruction", "diffusion"), mean, strict=True))
    out["total"] = mean.sum(0)
    return out


def _estimate_spread(run, params, x0, *, repeats: int, seed: int) -> dict:
    """Standard deviation over ``repeats`` of the batch-mean diffusion term (bits/dim),
    antithetic and i.i.d. times."""
    terms = _terms_fn(run, params, x0)
    out = {}
    for antithetic in (True, False):
        key = jax.random.key(seed + 1)
        values = np.array([float(terms(jax.random.fold_in(key, i), antithetic)[2].mean())
                           for i in range(repeats)])
        out["antithetic" if antithetic else "iid"] = {"mean": float(values.mean()),
                                                      "std": float(values.std(ddof=1))}
    out["std_ratio_antithetic_over_iid"] = out["antithetic"]["std"] / out["iid"]["std"]
    return out


def run(out_dir) -> dict:
    del out_dir   # no figures
    start = time.time()
    x0 = jnp.asarray(runs.test_split().images[:NUM_BPD_IMAGES])
    per_run = {}
    for name in RUNS:
        run_, state = runs.trained_run(name)
        params = state.ema_params
        discrete = runs.bits_per_dim(run_, params, variances=VARIANCES,
                                     num_images=NUM_BPD_IMAGES, seed=SEED)
        continuous = _continuous(run_, params, x0, draws=DRAWS_PER_IMAGE, seed=SEED)
        per_run[name] = {
            "info": runs.run_info(name),
            "discrete_1000_step": {v: runs.summary(discrete[v]) for v in VARIANCES},
            "continuous": {k: runs.summary(v) for k, v in continuous.items()},
            "difference_continuous_minus_discrete": {
                v: runs.paired(continuous["total"], discrete[v]) for v in VARIANCES},
            "diffusion_estimate_spread": _estimate_spread(run_, params, x0, repeats=REPEATS,
                                                          seed=SEED),
        }
    return {
        "name": NAME, "claim": CLAIM,
        "setup": {"dataset": "digits:test", "num_test_images": NUM_BPD_IMAGES,
                  "num_bins": runs.NUM_BINS, "T": 1000,
                  "continuous_path": "schedule_path (log-SNR interpolated between the "
                                     "schedule's levels, the network told the fractional "
                                     "step)",
                  "draws_per_image": DRAWS_PER_IMAGE, "repeats": REPEATS, "params": "EMA",
                  "seed": SEED, "backend": jax.default_backend(),
                  "jax_version": jax.__version__},
        "tolerances": {"z": Z},
        "runs": per_run,
        "figures": [],
        "runtime_s": round(time.time() - start, 2),
    }


def check(results: dict) -> list[str]:
    failures = []
    try:
        for name in RUNS:
            r = results["runs"][name]
            d = r["difference_continuous_minus_discrete"]["beta_tilde"]
            cont = r["continuous"]["total"]["mean"]
            disc = r["discrete_1000_step"]["beta_tilde"]["mean"]
            if not np.isclose(d["mean"], cont - disc, rtol=1e-6, atol=1e-9):
                failures.append(f"{name}: recorded difference {d['mean']:.5g} is not "
                                f"continuous - discrete = {cont - disc:.5g}")
            if not d["mean"] < Z * d["stderr"]:
                failures.append(f"{name}: the continuous bound {cont:.4f} is above the "
                                f"1000-step beta_tilde bound {disc:.4f} by more than {Z} "
                                f"standard errors ({d['mean']:.4f} +- {d['stderr']:.4f})")
            spread = r["diffusion_estimate_spread"]
            if not spread["antithetic"]["std"] < spread["iid"]["std"]:
                failures.append(f"{name}: antithetic times' std {spread['antithetic']['std']:.4g}"
                                f" is not below i.i.d. {spread['iid']['std']:.4g}")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
