"""The sampler tests' measure of samples of the analytic mixture."""

import numpy as np
from demo import mixture_errors  # experiments/demo.py (experiments/ on the path)

from jaxdiff import gaussian


def weight_and_mean_errors(x, mixture=gaussian.THREE_GAUSSIANS):
    """(max |weight error|, max |component mean error|) of samples ``x`` [N, 2]."""
    errors = mixture_errors(np.asarray(x), mixture)
    return errors["weight_error"], errors["mean_error"]
