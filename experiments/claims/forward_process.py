r"""Claim 1: the forward process turns data into :math:`\mathcal N(0, I)`, and the cosine
schedule destroys information more gradually than the linear one.

Measured on the embedded digits (test split, 8x8, in [-1, 1]) with the library's float32
schedules at T = 1000:

* the prior term :math:`\mathrm{KL}(q(x_T|x_0) \| \mathcal N(0, I))` per dimension, averaged
  over the split (``jd.gaussian.prior_kl / dims``), for the linear, cosine and sigmoid
  schedules. Closed form per dimension, with :math:`\bar\alpha = \bar\alpha_T`:
  :math:`\tfrac12(\bar\alpha\,\overline{x_0^2} - \bar\alpha - \log(1 - \bar\alpha))`;
* how gradually the signal goes (Nichol & Dhariwal 2021, Sec. 3.2 and Fig. 3):
  :math:`\bar\alpha` at :math:`t = T/2`, the first step with :math:`\bar\alpha_t < 1/2`
  (SNR below 1) and the fractions of steps with SNR above 1 and below 0.01;
* the signal that ``q_sample`` actually keeps: the least-squares coefficient of
  :math:`x_t` on :math:`x_0`, an unbiased estimate of :math:`\sqrt{\bar\alpha_t}`, at
  :math:`t = 0, 100, \dots, 1000`.

Steps follow the papers: :math:`t = 1..T` is the library's index :math:`t - 1`, and
:math:`t = 0` is the data itself.

The expected values come from the closed forms, in float64 NumPy, independently of the
library's log-SNR code path: linear :math:`\bar\alpha_t = \prod_{s \le t}(1 - \beta_s)` with
:math:`\beta` from 1e-4 to 0.02 (Ho et al. 2020); cosine
:math:`\bar\alpha_t = f(t/T)/f(0)`, :math:`f(u) = \cos^2(\frac{u + s}{1 + s}\frac\pi2)`,
:math:`s = 0.008` (Nichol & Dhariwal 2021, eq. 17), and sigmoid (Chen 2023, Alg. 1, start -3,
end 3, tau 1), both with :math:`\beta_t` clipped at 0.999 (which only touches the last step).
"""

import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np

import jaxdiff as jd
from claims._figures import save_figure

NAME = "forward_process"
CLAIM = ("The forward process turns data into N(0, I) (KL(q(x_T|x_0) || N(0, I)) per dimension "
         "is negligible for the linear, cosine and sigmoid schedules at T = 1000), and the "
         "cosine schedule destroys information more gradually than the linear one "
         "(Nichol & Dhariwal 2021, Fig. 3).")

T = 1000
SCHEDULES = ("linear", "cosine", "sigmoid")
DATASET = "digits"
SPLIT = "test"
SEED = 0
NOISE_DRAWS = 8                      # noise draws per image for the signal estimate
FIGURE_STEPS = tuple(range(0, T + 1, 100))   # paper steps; 0 is the data
FIGURE_DIGITS = 8
FIGURE_SCALE = 4

# Tolerances, each stated in the results and used by check().
KL_BOUND = 1e-4          # nats per dimension: "turns data into N(0, I)"
KL_ATOL = 1e-6           # measured (float32) vs closed form (float64); float32 cancellation
ALPHA_BAR_RTOL = 1e-4    # the library's float32 alpha_bar vs the float64 closed form
STEP_ATOL = 1            # crossing steps and step counts: a level that lies exactly on a
                         # threshold (sigmoid's alpha_bar = 1/2 at T/2) may round either way
SIGNAL_Z = 5.0           # the signal estimate within 5 standard errors of sqrt(alpha_bar)

COSINE_S = 0.008
SIGMOID_START, SIGMOID_END, SIGMOID_TAU = -3.0, 3.0, 1.0
MAX_BETA = 0.999


def library_schedule(name: str) -> jd.gaussian.Schedule:
    """The library's schedule ``name`` with its defaults at ``T``."""
    factory = {"linear": jd.gaussian.linear_schedule, "cosine": jd.gaussian.cosine_schedule,
               "sigmoid": jd.gaussian.sigmoid_schedule}[name]
    return factory(num_steps=T)


def _clipped_cumprod(alpha_bar_fn) -> np.ndarray:
    u = np.arange(T + 1, dtype=np.float64) / T
    f = alpha_bar_fn(u)
    betas = np.minimum(1.0 - f[1:] / f[:-1], MAX_BETA)
    return np.cumprod(1.0 - betas)


def expected_alpha_bars(name: str) -> np.ndarray:
    r"""Float64 closed-form :math:`\bar\alpha_t` for paper steps ``t = 1..T`` (``[T]``)."""
    if name == "linear":
        return np.cumprod(1.0 - np.linspace(1e-4, 0.02, T, dtype=np.float64))
    if name == "cosine":
        f = lambda u: np.cos((u + COSINE_S) / (1 + COSINE_S) * np.pi / 2) ** 2  # noqa: E731
        return _clipped_cumprod(lambda u: f(u) / f(0.0))
    if name == "sigmoid":
        sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
        lo, hi = sig(SIGMOID_START / SIGMOID_TAU), sig(SIGMOID_END / SIGMOID_TAU)
        return _clipped_cumprod(
            lambda u: (hi - sig((u * (SIGMOID_END - SIGMOID_START) + SIGMOID_START)
                                / SIGMOID_TAU)) / (hi - lo))
    raise ValueError(f"unknown schedule {name!r}")


def expected_alpha_bar_half(name: str) -> float:
    r""":math:`\bar\alpha_{T/2}` straight from the closed form (no clipping reaches the middle):
    cosine :math:`f(1/2)/f(0)`, sigmoid :math:`(\sigma(3) - \sigma(0))/(\sigma(3) - \sigma(-3))
    = 1/2`, linear :math:`\prod_{s \le T/2}(1 - \beta_s)`."""
    if name == "cosine":
        f = lambda u: np.cos((u + COSINE_S) / (1 + COSINE_S) * np.pi / 2) ** 2  # noqa: E731
        return float(f(0.5) / f(0.0))
    if name == "sigmoid":
        sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
        lo, hi = sig(SIGMOID_START / SIGMOID_TAU), sig(SIGMOID_END / SIGMOID_TAU)
        return float((hi - sig((0.5 * (SIGMOID_END - SIGMOID_START) + SIGMOID_START)
                               / SIGMOID_TAU)) / (hi - lo))
    return float(expected_alpha_bars(name)[T // 2 - 1])


def kl_per_dim_closed_form(alpha_bar_T: float, mean_x0_sq: float) -> float:
    r"""Mean over data and dimensions of :math:`\mathrm{KL}(\mathcal N(\sqrt{\bar\alpha} x_0,
    1 - \bar\alpha) \| \mathcal N(0, 1))`, given :math:`\overline{x_0^2}`."""
    return float(0.5 * (alpha_bar_T * mean_x0_sq - alpha_bar_T - np.log1p(-alpha_bar_T)))


def gradualness(alpha_bars: np.ndarray) -> dict:
    """How gradually ``alpha_bars`` (paper steps 1..T) lose the signal."""
    alpha_bars = np.asarray(alpha_bars, np.float64)
    below = np.flatnonzero(alpha_bars < 0.5)
    snr = alpha_bars / (1.0 - alpha_bars)
    return {
        "first_step_alpha_bar_below_half": int(below[0]) + 1 if below.size else T + 1,
        "fraction_steps_snr_above_1": float(np.mean(snr > 1.0)),
        "fraction_steps_snr_below_0.01": float(np.mean(snr < 0.01)),
    }


def expected_values(name: str, mean_x0_sq: float) -> dict:
    """Every expected number of schedule ``name``, from the float64 closed forms."""
    alpha_bars = expected_alpha_bars(name)
    return {
        "alpha_bar_T": float(alpha_bars[-1]),
        "alpha_bar_half": expected_alpha_bar_half(name),
        "prior_kl_per_dim": kl_per_dim_closed_form(float(alpha_bars[-1]), mean_x0_sq),
        **gradualness(alpha_bars),
        "signal_alpha": [1.0 if t == 0 else float(np.sqrt(alpha_bars[t - 1]))
                         for t in FIGURE_STEPS],
    }


def _noised(schedule, x0: jax.Array, noise: jax.Array, step: int) -> jax.Array:
    """``x_t`` at paper step ``step`` (the data at 0) with the given noise."""
    if step == 0:
        return x0
    t = jnp.full((x0.shape[0],), step - 1, jnp.int32)
    return jd.gaussian.q_sample(schedule, x0, t, noise)


def _plot_curves(out_dir: pathlib.Path, curves: dict) -> list[str]:
    """alpha_bar and log-SNR against t/T: a PNG with matplotlib, else a CSV."""
    steps = np.arange(1, T + 1)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        path = out_dir / f"{NAME}_curves.csv"
        columns = [steps.astype(np.float64)]
        header = ["t"]
        for name, ab in curves.items():
            columns += [ab, np.log(ab) - np.log1p(-ab)]
            header += [f"alpha_bar_{name}", f"log_snr_{name}"]
        np.savetxt(path, np.stack(columns, 1), delimiter=",", header=",".join(header),
                   comments="")
        return [path.name]
    fig, (ax_ab, ax_snr) = plt.subplots(1, 2, figsize=(9, 3.4), dpi=90)
    for name, ab in curves.items():
        ax_ab.plot(steps / T, ab, label=name)
        ax_snr.plot(steps / T, np.log(ab) - np.log1p(-ab), label=name)
    ax_ab.set(xlabel="t / T", ylabel="alpha_bar_t", title="signal kept (alpha_bar)")
    ax_snr.set(xlabel="t / T", ylabel="log SNR", title="log SNR = log(alpha_bar/(1-alpha_bar))")
    for ax in (ax_ab, ax_snr):
        ax.axvline(0.5, color="grey", lw=0.5, ls=":")
        ax.grid(alpha=0.3)
    ax_ab.axhline(0.5, color="grey", lw=0.5, ls=":")
    ax_snr.axhline(0.0, color="grey", lw=0.5, ls=":")
    ax_ab.legend()
    return [save_figure(fig, out_dir, f"{NAME}_curves.png")]


def run(out_dir) -> dict:
    """Measures the claim on the digits' test split; writes the figures into ``out_dir``."""
    start = time.time()
    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    data = jd.data.load(DATASET, SPLIT)
    x0 = jnp.asarray(data.images)
    n, dims = x0.shape[0], int(np.prod(x0.shape[1:]))
    mean_x0_sq = float(np.mean(np.asarray(data.images, np.float64) ** 2))
    key = jax.random.key(SEED)
    # The same noise for every schedule, so that the pictures differ only by the schedule.
    noise = jax.random.normal(key, (NOISE_DRAWS,) + x0.shape, x0.dtype)
    x0_rep = jnp.broadcast_to(x0, noise.shape).reshape((-1,) + x0.shape[1:])
    noise_flat = noise.reshape(x0_rep.shape)

    schedules, figures, curves = {}, [], {}
    for name in SCHEDULES:
        schedule = library_schedule(name)
        alpha_bars = np.asarray(schedule.alpha_bars, np.float64)
        curves[name] = alpha_bars
        kl = jd.gaussian.prior_kl(schedule, x0) / dims
        signal = []
        for step in FIGURE_STEPS:
            x_t = _noised(schedule, x0_rep, noise_flat, step)
            signal.append(float(jnp.sum(x_t * x0_rep) / jnp.sum(x0_rep * x0_rep)))
        schedules[name] = {
            "measured": {
                "prior_kl_per_dim": float(jnp.mean(kl)),
                "prior_kl_per_dim_max": float(jnp.max(kl)),
                "alpha_bar_T": float(alpha_bars[-1]),
                "alpha_bar_half": float(alpha_bars[T // 2 - 1]),
                **gradualness(alpha_bars),
                "signal_alpha": signal,
            },
            "expected": expected_values(name, mean_x0_sq),
        }
        grid = np.stack([np.asarray(_noised(schedule, x0[:FIGURE_DIGITS],
                                            noise[0, :FIGURE_DIGITS], step))
                         for step in FIGURE_STEPS], axis=1)   # [digits, steps, H, W, C]
        path = out_dir / f"{NAME}_{name}.png"
        jd.data.save_image_grid(path, grid.reshape((-1,) + grid.shape[2:]),
                                           scale=FIGURE_SCALE, columns=len(FIGURE_STEPS))
        figures.append(path.name)
    figures += _plot_curves(out_dir, curves)
    return {
        "name": NAME,
        "claim": CLAIM,
        "setup": {
            "dataset": f"{DATASET}:{SPLIT}", "num_images": n, "dims": dims, "T": T,
            "mean_x0_squared": mean_x0_sq, "seed": SEED, "noise_draws": NOISE_DRAWS,
            "signal_steps": list(FIGURE_STEPS), "backend": jax.default_backend(),
            "jax_version": jax.__version__,
        },
        "tolerances": {
            "kl_bound_nats_per_dim": KL_BOUND, "kl_atol": KL_ATOL,
            "alpha_bar_rtol": ALPHA_BAR_RTOL, "step_atol": STEP_ATOL, "signal_z": SIGNAL_Z,
        },
        "schedules": schedules,
        "figures": figures,
        "figure_notes": {
            f"{NAME}_<schedule>.png": (f"{FIGURE_DIGITS} test digits (rows) noised at paper "
                                       f"steps t = {', '.join(map(str, FIGURE_STEPS))} "
                                       "(columns), the same noise for every schedule"),
        },
        "runtime_s": round(time.time() - start, 2),
    }


def check(results: dict) -> list[str]:
    """Failure messages; the expected values are recomputed here from the closed forms."""
    failures = []
    try:
        setup, schedules = results["setup"], results["schedules"]
        mean_x0_sq, num_images = setup["mean_x0_squared"], setup["num_images"]
        dims, draws = setup["dims"], setup["noise_draws"]
        if setup["T"] != T or tuple(setup["signal_steps"]) != FIGURE_STEPS:
            failures.append(f"setup: T={setup['T']}, signal_steps={setup['signal_steps']}, "
                            f"expected T={T} and {list(FIGURE_STEPS)}")
        if not 0.0 < mean_x0_sq <= 1.0:
            failures.append(f"setup: mean x0^2 = {mean_x0_sq} outside (0, 1] for data in [-1, 1]")
        for name in SCHEDULES:
            got = schedules[name]["measured"]
            exp = expected_values(name, mean_x0_sq)
            if schedules[name]["expected"] != exp:
                failures.append(f"{name}: the recorded expected values differ from the closed "
                                "forms")
            kl = got["prior_kl_per_dim"]
            if not kl < KL_BOUND:
                failures.append(f"{name}: KL(q(x_T|x_0) || N(0,I)) per dim = {kl:.3g} nats, "
                                f"not below {KL_BOUND:g}")
            if not abs(kl - exp["prior_kl_per_dim"]) <= KL_ATOL:
                failures.append(f"{name}: KL per dim {kl:.6g} vs closed form "
                                f"{exp['prior_kl_per_dim']:.6g} (atol {KL_ATOL:g})")
            for field in ("alpha_bar_T", "alpha_bar_half"):
                if not np.isclose(got[field], exp[field], rtol=ALPHA_BAR_RTOL, atol=0.0):
                    failures.append(f"{name}: {field} = {got[field]:.6g}, closed form "
                                    f"{exp[field]:.6g} (rtol {ALPHA_BAR_RTOL:g})")
            for field, unit in (("first_step_alpha_bar_below_half", 1),
                                ("fraction_steps_snr_above_1", T),
                                ("fraction_steps_snr_below_0.01", T)):
                if not abs(got[field] - exp[field]) * unit <= STEP_ATOL + 1e-9:
                    failures.append(f"{name}: {field} = {got[field]}, closed form {exp[field]} "
                                    f"(tolerance {STEP_ATOL} step)")
            # The least-squares coefficient of x_t on x_0 is alpha + sigma * N(0, 1) / sqrt(S),
            # S = sum of x_0^2 over every (image, draw, dimension).
            total_sq = mean_x0_sq * num_images * dims * draws
            for step, a_got, a_exp in zip(FIGURE_STEPS, got["signal_alpha"],
                                          exp["signal_alpha"], strict=True):
                sigma = np.sqrt(max(1.0 - a_exp**2, 0.0))
                tol = SIGNAL_Z * sigma / np.sqrt(total_sq) + 1e-6
                if not abs(a_got - a_exp) <= tol:
                    failures.append(f"{name}: signal kept at t={step} is {a_got:.5f}, "
                                    f"sqrt(alpha_bar) = {a_exp:.5f} (tolerance {tol:.2g})")
        lin, cos = schedules["linear"]["measured"], schedules["cosine"]["measured"]
        for field in ("alpha_bar_half", "first_step_alpha_bar_below_half",
                      "fraction_steps_snr_above_1"):
            if not cos[field] > lin[field]:
                failures.append(f"direction: cosine {field} = {cos[field]:.4g} is not above "
                                f"linear {lin[field]:.4g}")
        if not cos["fraction_steps_snr_below_0.01"] < lin["fraction_steps_snr_below_0.01"]:
            failures.append("direction: cosine does not spend fewer steps at SNR < 0.01 than "
                            "linear")
    except (KeyError, TypeError, ValueError) as err:
        failures.append(f"malformed results: {type(err).__name__}: {err}")
    return failures
