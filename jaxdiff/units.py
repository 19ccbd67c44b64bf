r"""Units of likelihoods: nats to bits per token, character or dimension.

Negative log-likelihoods and their bounds are computed in nats per example; they are reported
in bits per unit (bits per token / character for text, bits per dimension for images):

.. math:: \text{bits per unit} = \frac{\mathcal L}{N \ln 2},

with :math:`\mathcal L` in nats and :math:`N` the units per example.
"""

import math


def bits_per_unit(nats, num_units):
    r"""Nats per example to bits per unit: :math:`\mathcal L / (N \ln 2)`.

    Args:
      nats: per-example values :math:`\mathcal L` in nats (scalar or array; NumPy, JAX or
        Python numbers -- the result has their type and precision).
      num_units: units per example :math:`N`: tokens, characters or dimensions (an int, or an
        array broadcasting against ``nats`` for ragged examples).
    """
    return nats / (num_units * math.log(2.0))
