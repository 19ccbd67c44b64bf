"""Schedules against float64 NumPy formulas written out independently here."""

import numpy as np
import pytest

import jaxdiff as jd


def _derived(betas):
    """Every schedule array from betas, by the textbook formulas (Ho et al. 2020)."""
    alpha_bars = np.cumprod(1.0 - betas)
    prev = np.append(1.0, alpha_bars[:-1])
    post_var = betas * (1.0 - prev) / (1.0 - alpha_bars)
    return dict(
        alpha_bars=alpha_bars,
        alpha_bars_prev=prev,
        log_snrs=np.log(alpha_bars / (1.0 - alpha_bars)),
        posterior_variance=post_var,
        posterior_log_variance_clipped=np.log(np.append(post_var[1], post_var[1:])),
        posterior_mean_coef_x0=np.sqrt(prev) * betas / (1.0 - alpha_bars),
        posterior_mean_coef_xt=np.sqrt(1.0 - betas) * (1.0 - prev) / (1.0 - alpha_bars),
    )


def _cosine_betas(T, s=0.008):
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    return np.minimum(1 - f[1:] / f[:-1], 0.999)


def _sigmoid_betas(T, start=-3.0, end=3.0, tau=1.0):
    sig = lambda z: 1 / (1 + np.exp(-z))  # noqa: E731
    u = np.arange(T + 1) / T
    ab = (sig(end / tau) - sig((u * (end - start) + start) / tau)) / (
        sig(end / tau) - sig(start / tau))
    return np.minimum(1 - ab[1:] / ab[:-1], 0.999)


@pytest.mark.parametrize("name,make,betas", [
    ("linear", lambda: jd.gaussian.linear_schedule(num_steps=1000), np.linspace(1e-4, 0.02, 1000)),
    ("linear_T100", lambda: jd.gaussian.linear_schedule(num_steps=100),
     np.linspace(1e-3, 0.2, 100)),
    ("cosine", lambda: jd.gaussian.cosine_schedule(num_steps=1000), _cosine_betas(1000)),
    ("sigmoid", lambda: jd.gaussian.sigmoid_schedule(num_steps=500), _sigmoid_betas(500)),
])
def test_schedule_matches_float64_formulas(name, make, betas):
    s = make()
    assert s.num_steps == len(betas)
    np.testing.assert_allclose(np.asarray(s.betas), betas, rtol=2e-5, atol=1e-9)
    for field, ref in _derived(betas).items():
        np.testing.assert_allclose(np.asarray(getattr(s, field)), ref, rtol=2e-5, atol=1e-9,
                                   err_msg=f"{name}.{field}")


def test_cosine_alpha_bar_is_the_closed_form_and_beta_is_clipped():
    s = jd.gaussian.cosine_schedule(num_steps=1000)
    f = lambda t: np.cos((t / 1000 + 0.008) / 1.008 * np.pi / 2) ** 2  # noqa: E731
    t = np.arange(1, 999)   # the last step is clipped, so compare before it
    np.testing.assert_allclose(np.asarray(s.alpha_bars)[:998], f(t) / f(0), rtol=1e-5)
    assert float(s.betas.max()) == pytest.approx(0.999, abs=1e-7)


def test_small_one_minus_alpha_bar_is_exact():
    # vdm numerics: 1 - alpha_bar_0 = beta_0 = 1e-4 must survive float32.
    s = jd.gaussian.linear_schedule(num_steps=1000)
    sigma2 = 1 / (1 + np.exp(np.asarray(s.log_snrs, np.float64)[0]))
    assert sigma2 == pytest.approx(1e-4, rel=1e-6)


def test_respace_keeps_alpha_bars_and_chains_the_jumps():
    s = jd.gaussian.cosine_schedule(num_steps=1000)
    taus = jd.gaussian.sampling_timesteps(s, 25)
    r = jd.gaussian.respace(s, taus)
    ab = np.cumprod(1 - _cosine_betas(1000))[taus]
    np.testing.assert_allclose(np.asarray(r.alpha_bars), ab, rtol=1e-5)
    jumps = 1 - ab / np.append(1.0, ab[:-1])
    np.testing.assert_allclose(np.asarray(r.betas), jumps, rtol=1e-4, atol=1e-9)
    for field, ref in _derived(jumps).items():
        np.testing.assert_allclose(np.asarray(getattr(r, field)), ref, rtol=1e-4, atol=1e-8)


@pytest.mark.parametrize("spacing", ["uniform", "log_snr", "karras"])
@pytest.mark.parametrize("num_steps", [2, 10, 50, 1000])
def test_sampling_timesteps_are_distinct_and_span_the_chain(spacing, num_steps):
    s = jd.gaussian.cosine_schedule(num_steps=1000)
    taus = jd.gaussian.sampling_timesteps(s, num_steps, spacing=spacing)
    assert taus.shape == (num_steps,)
    assert taus[0] == 0 and taus[-1] == 999
    assert np.all(np.diff(taus) > 0)


def test_log_snr_spacing_is_even_in_log_snr():
    s = jd.gaussian.linear_schedule(num_steps=1000)
    taus = jd.gaussian.sampling_timesteps(s, 20, spacing="log_snr")
    lam = np.asarray(s.log_snrs)[taus]
    ratio = np.diff(lam) / (lam[-1] - lam[0]) * 19
    # Rounding to whole steps limits evenness where lambda moves fastest (the first step).
    assert np.abs(ratio - 1).max() < 0.3
    assert np.abs(ratio[3:] - 1).max() < 0.06


@pytest.mark.parametrize("call,match", [
    (lambda: jd.gaussian.linear_schedule(num_steps=1), "num_steps"),
    (lambda: jd.gaussian.linear_schedule(num_steps=10), "beta_end"),
    (lambda: jd.gaussian.cosine_schedule(num_steps=10.5), "num_steps"),
    (lambda: jd.gaussian.schedule_from_betas(np.array([0.1, 1.2])), r"betas\[1\] = 1.2"),
    (lambda: jd.gaussian.schedule_from_betas(np.ones((2, 2)) / 2), "1-D"),
    (lambda: jd.gaussian.schedule_from_log_snrs(np.array([1.0, 2.0])), "decreasing"),
    (lambda: jd.gaussian.sampling_timesteps(jd.gaussian.cosine_schedule(num_steps=10), 11),
     "num_steps"),
    (lambda: jd.gaussian.sampling_timesteps(jd.gaussian.cosine_schedule(num_steps=10), 5,
                                            spacing="cubic"), "spacing"),
    (lambda: jd.gaussian.respace(jd.gaussian.cosine_schedule(num_steps=10), [0, 5, 10]),
     "timesteps"),
])
def test_bad_arguments_are_named(call, match):
    with pytest.raises(ValueError, match=match):
        call()
