"""Helpers shared by the model tests."""

import jax
import numpy as np

import jaxdiff.models as jm

# A small class-conditional DiT with learned sigma, shared so its jitted init compiles once.
SMALL_DIT = jm.DiTConfig(image_size=8, in_channels=3, patch_size=2, hidden_size=32, depth=2,
                         num_heads=4, num_classes=5, learned_variance=True, frequency_dim=32)


def random_params(abstract_params, *, seed: int = 0, scale: float = 0.1):
    """Gaussian values ``N(0, scale^2)`` for every leaf of an abstract parameter tree.

    The networks zero-initialise their output layers and adaLN gates, so a fresh network
    outputs zero and ignores its conditioning; random parameters make every path carry
    signal, which the conditioning, causality and precision tests need. NumPy draws them,
    so no initialiser has to be compiled.
    """
    rng = np.random.default_rng(seed)
    return jax.tree.map(
        lambda leaf: (scale * rng.standard_normal(leaf.shape)).astype(leaf.dtype),
        abstract_params)
