"""1-D Gaussian data x ~ N(0, S^2) and its exact noise prediction on any path: the closed
forms of the VDM tests."""

S = 0.7


def exact_eps(path):
    """``denoise_fn(z_t, t)`` of the MMSE eps for x ~ N(0, S^2), inputs ``[B, 1]``."""
    def fn(z_t, t, cond=None):
        alpha, sigma = path.alpha_sigma(t)
        x0_hat = alpha * S**2 / (alpha**2 * S**2 + sigma**2) * z_t[:, 0]
        return ((z_t[:, 0] - alpha * x0_hat) / sigma)[:, None]
    return fn
