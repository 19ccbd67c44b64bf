"""The patch discriminator of latent diffusion's autoencoder training (Rombach et al. 2022,
App. G; the PatchGAN of Isola et al. 2017, "Image-to-Image Translation with Conditional
Adversarial Networks", as in LDM's ``NLayerDiscriminator``).

``layers`` 4x4 convolutions of stride 2 (the first without normalisation; widths
``channels * min(2^i, 8)``), one of stride 1, each followed by a LeakyReLU(0.2), then a 4x4
stride-1 convolution to one logit per patch: every logit judges whether one overlapping patch
of the image is real. LDM normalises with BatchNorm; here it is GroupNorm, because a run's
state holds parameters only (no running batch statistics) and a discriminator's logits should
not depend on the rest of its batch.
"""

import jax
from flax import nnx

from jaxdiff.models.normalization import GroupNorm
from jaxdiff.models.unet import conv_layer
from jaxdiff.typing import Array

LEAK = 0.2


class PatchDiscriminator(nnx.Module):
    """``discriminator(x [B, H, W, C]) -> logits [B, h, w, 1]``, one per patch."""

    def __init__(self, in_channels: int, *, channels: int, layers: int, num_groups: int,
                 rngs: nnx.Rngs):
        widths = [channels * min(2 ** i, 8) for i in range(layers + 1)]
        self.convs = nnx.List(
            [conv_layer(in_channels if i == 0 else widths[i - 1], widths[i], 4,
                        stride=2 if i < layers else 1, padding=(1, 1), rngs=rngs)
             for i in range(layers + 1)])
        self.norms = nnx.List([GroupNorm(w, num_groups=num_groups) for w in widths[1:]])
        self.output = conv_layer(widths[-1], 1, 4, padding=(1, 1), rngs=rngs)

    def __call__(self, x: Array) -> Array:
        h = jax.nn.leaky_relu(self.convs[0](x), LEAK)
        for conv, norm in zip(self.convs[1:], self.norms, strict=True):
            h = jax.nn.leaky_relu(norm(conv(h)), LEAK)
        return self.output(h)
