"""A small text encoder trained with the denoiser: the self-contained alternative to a frozen
pretrained one.

Latent diffusion (Rombach et al. 2022, Sec. 4.3) trains its text encoder, a transformer over
the caption's tokens, jointly with the denoiser, where Stable Diffusion and Imagen (Saharia et
al. 2022) freeze a pretrained one. Here the encoder is the library's BERT
(:class:`~jaxdiff.models.bert.BertEncoder`: post-LayerNorm blocks, attention over the real
tokens only) at a small size and random initialisation, owned by the denoiser, so its
parameters take the same optimizer, EMA and checkpoints. The denoiser then takes the
caption's token ids (:class:`~jaxdiff.models.CaptionTokens`) and encodes them into the
:class:`~jaxdiff.models.TextCondition` its cross-attention reads: the last hidden states and
their mean over the real tokens.
"""

from flax import nnx

from jaxdiff.models.bert import BertConfig, BertEncoder, mean_pool
from jaxdiff.models.conditioning import CaptionTokens, TextCondition


class CaptionEncoder(nnx.Module):
    """``CaptionEncoder(config, rngs=...)(CaptionTokens) -> TextCondition`` of width
    ``config.text_dim``: a ``caption_depth``-layer BERT over ``caption_vocab_size`` ids and
    ``caption_length`` positions, with ``caption_heads`` heads and an MLP of 4x the width."""

    def __init__(self, config, *, rngs: nnx.Rngs):
        width = config.text_dim
        self.bert = BertEncoder(BertConfig(
            vocab_size=config.caption_vocab_size, hidden_size=width, depth=config.caption_depth,
            num_heads=config.caption_heads, mlp_size=4 * width,
            max_length=config.caption_length, norm_eps=1e-6), rngs=rngs)

    def __call__(self, caption: CaptionTokens) -> TextCondition:
        hidden_BxSxD = self.bert(caption.ids, caption.mask)
        return TextCondition(tokens=hidden_BxSxD, mask=caption.mask,
                             pooled=mean_pool(hidden_BxSxD, caption.mask))
