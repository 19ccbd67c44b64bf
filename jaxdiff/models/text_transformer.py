"""The text transformer: a time-conditioned bidirectional denoiser for discrete diffusion,
and its causal twin for the autoregressive baseline.

The bidirectional model is the DiT-style backbone of masked diffusion language models
(Sahoo et al. 2024, "Simple and Effective Masked Diffusion Language Models", MDLM;
Lou et al. 2024, SEDD): adaLN-Zero blocks (Peebles & Xie 2023) conditioned on the
diffusion time, rotary (Su et al. 2021) or learned positions. With ``causal=True`` and
``time_conditioning=False`` the same blocks form a GPT-style decoder (Radford et al.
2019) whose ``decode_step`` extends a KV cache one token at a time. With ``block_size`` they
form the block diffusion model of BD3-LM (Arriola et al. 2025, "Block Diffusion"):
bidirectional within blocks, causal across them; it reads BD3-LM's two-stream training input
(:class:`TwoStream`) and extends its KV cache a block at a time (``decode_block``). With
``num_classes`` every variant is also label-conditioned: a label embedding (row
``num_classes`` the null label of classifier-free guidance) is added to the adaLN condition,
as DiT's class embedding (Peebles & Xie 2023), so guided text generation (Nisonoff et al.
2024; Schiff et al. 2024) has its conditional and unconditional branches in one network.
"""

import dataclasses
from typing import Literal, NamedTuple

import jax
import jax.numpy as jnp
from flax import nnx

from jaxdiff._validation import (
    check_bool,
    check_divisible,
    check_floating,
    check_int,
    check_integer,
    check_rate,
    check_real,
)
from jaxdiff.discrete.block import TwoStream
from jaxdiff.models.attention import CAUSAL, BlockCausalMask, LayerKVCache
from jaxdiff.models.embeddings import Embedding, TimestepMLP
from jaxdiff.models.initializers import NORMAL_002, ZEROS
from jaxdiff.models.transformer_block import TransformerBlock, modulate
from jaxdiff.typing import Array, PRNGKey


@dataclasses.dataclass(frozen=True, kw_only=True)
class TextTransformerConfig:
    """Hyperparameters of ``TextTransformer``; defaults are MDLM's 12-layer backbone.

    Attributes:
      vocab_size: number of token ids, ``[MASK]`` included (the caller picks its id).
      max_length: longest sequence (size of the learned position table and KV cache).
      hidden_size: transformer width.
      depth: number of blocks.
      num_heads: attention heads.
      mlp_ratio: MLP hidden width over ``hidden_size``.
      dropout: dropout on residual branches (train mode only).
      positions: ``"rotary"`` (in attention) or ``"learned"`` (added to the embeddings).
      causal: each position attends only to itself and earlier positions.
      block_size: block-causal attention (``jaxdiff.models.attention.BlockCausalMask``):
        each position attends to its own block of ``block_size`` tokens and the blocks
        before it; None: bidirectional (or causal). Not with ``causal``.
      time_conditioning: adaLN-Zero conditioning on the diffusion time ``t``; without
        it (and without ``num_classes``) the blocks are plain pre-LayerNorm blocks and ``t``
        must be ``None``.
      num_classes: label conditioning (adaLN-Zero on a label embedding, added to the time
        embedding when there is one): ``cond`` is ``int [B]`` in ``[0, num_classes]``,
        ``num_classes`` the null label; None: ``cond`` must be None.
      cond_dim: width of the time and label embeddings that drive adaLN.
      frequency_dim: size of the sinusoidal time features.
      continuous_time_scale: floating ``t`` in ``[0, 1]`` is multiplied by this before
        the sinusoidal features, so it spans the same frequencies as integer step
        indices in ``[0, continuous_time_scale)``.
      remat: recompute each block's activations in the backward pass instead of keeping
        them (:mod:`jaxdiff.models.remat`): less memory in training for about one more
        forward pass; the same function and parameters.
    """

    vocab_size: int
    max_length: int
    hidden_size: int = 768
    depth: int = 12
    num_heads: int = 12
    mlp_ratio: float = 4.0
    dropout: float = 0.1
    positions: Literal["rotary", "learned"] = "rotary"
    causal: bool = False
    block_size: int | None = None
    time_conditioning: bool = True
    num_classes: int | None = None
    cond_dim: int = 128
    frequency_dim: int = 256
    continuous_time_scale: float = 1000.0
    remat: bool = False

    def __post_init__(self):
        check_bool("remat", self.remat)
        for name in ("vocab_size", "max_length", "hidden_size", "depth", "num_heads",
                     "cond_dim", "frequency_dim"):
            check_int(name, getattr(self, name))
        check_divisible("hidden_size", self.hidden_size, "num_heads", self.num_heads)
        if self.positions == "rotary":
            check_divisible("hidden_size // num_heads", self.hidden_size // self.num_heads,
                            "2 (rotary pairs)", 2)
        elif self.positions != "learned":
            raise ValueError(f"positions must be 'rotary' or 'learned', got {self.positions!r}")
        check_rate("dropout", self.dropout)
        check_int("num_classes", self.num_classes, optional=True)
        if self.block_size is not None:
            check_int("block_size", self.block_size)
            if self.causal:
                raise ValueError("block_size must be None for a causal model (causal "
                                 "attention is block_size 1)")

    @property
    def attention_mask(self) -> BlockCausalMask | None:
        """The single-stream attention mask: causal, block-causal or None (bidirectional)."""
        if self.causal:
            return CAUSAL
        return None if self.block_size is None else BlockCausalMask(self.block_size)

    @property
    def conditioned(self) -> bool:
        """Whether the blocks are adaLN-Zero blocks (time or label conditioning)."""
        return self.time_conditioning or self.num_classes is not None

    @property
    def decodes(self) -> bool:
        """Whether the model has a KV cache (causal or block-causal attention)."""
        return self.causal or self.block_size is not None


class KVCache(NamedTuple):
    """Decoding state of a causal or block ``TextTransformer``: per-layer keys/values and
    a length.

    Attributes:
      layers: one ``LayerKVCache`` per block, each ``[B, max_length, heads, head_dim]``.
      length: int32 scalar, the number of tokens decoded so far (the next position).
    """

    layers: tuple[LayerKVCache, ...]
    length: Array


class TextTransformer(nnx.Module):
    """Token logits from token ids (and the diffusion time, and a label):
    ``TextTransformer(config, rngs=...)(tokens, t, cond)``."""

    def __init__(self, config: TextTransformerConfig, *, rngs: nnx.Rngs):
        self.config = config
        width = config.hidden_size
        cond_dim = config.cond_dim if config.conditioned else None
        self.token_embed = Embedding(config.vocab_size, width, init=NORMAL_002, rngs=rngs)
        self.position_embed = (Embedding(config.max_length, width, init=NORMAL_002, rngs=rngs)
                               if config.positions == "learned" else None)
        self.time_embed = (TimestepMLP(frequency_dim=config.frequency_dim,
                                       embed_dim=config.cond_dim, kernel_init=NORMAL_002, rngs=rngs)
                           if config.time_conditioning else None)
        self.class_embed = (Embedding(config.num_classes + 1, config.cond_dim, init=NORMAL_002,
                                      rngs=rngs) if config.num_classes is not None else None)
        self.blocks = nnx.List([
            TransformerBlock(width, num_heads=config.num_heads, mlp_ratio=config.mlp_ratio,
                             cond_dim=cond_dim, dropout=config.dropout,
                             rotary=config.positions == "rotary", remat=config.remat,
                             rngs=rngs)
            for _ in range(config.depth)])
        affine = cond_dim is None
        self.final_norm = nnx.LayerNorm(width, epsilon=1e-6, use_scale=affine, use_bias=affine,
                                        rngs=rngs)
        self.final_modulation = (None if affine else
                                 nnx.Linear(cond_dim, 2 * width, kernel_init=ZEROS, rngs=rngs))
        self.output = nnx.Linear(width, config.vocab_size, kernel_init=ZEROS, rngs=rngs)

    def _condition(self, t: Array | None, cond: Array | None,
                   batch_size: int) -> Array | None:
        """The adaLN condition ``[B, cond_dim]``: time embedding plus label embedding (those
        the model has), or None for an unconditioned model."""
        parts = []
        if self.time_embed is None:
            if t is not None:
                raise ValueError("t must be None: the model was built with "
                                 "time_conditioning=False")
        else:
            if t is None:
                raise ValueError("t is required: the model was built with "
                                 "time_conditioning=True")
            check_real("t", t, shape=(batch_size,))
            if jnp.issubdtype(t.dtype, jnp.floating):
                t = t * self.config.continuous_time_scale
            parts.append(self.time_embed(t))
        if self.class_embed is None:
            if cond is not None:
                raise ValueError("cond must be None: the model was built without "
                                 "num_classes (no label conditioning)")
        else:
            if cond is None:
                raise ValueError(f"cond is required: the model is label-conditioned "
                                 f"(num_classes={self.config.num_classes}); pass int labels "
                                 f"[B], {self.config.num_classes} for the null label")
            check_integer("cond", cond, shape=(batch_size,))
            parts.append(self.class_embed(cond))
        return sum(parts[1:], parts[0]) if parts else None

    def _embed_at(self, tokens_BxL: Array, positions_BxL: Array) -> Array:
        h_BxLxD = self.token_embed(tokens_BxL)
        if self.position_embed is not None:
            h_BxLxD = h_BxLxD + self.position_embed(positions_BxL)
        return h_BxLxD

    def _logits(self, h_BxLxD: Array, cond_BxC: Array | None) -> Array:
        h_BxLxD = self.final_norm(h_BxLxD)
        if self.final_modulation is not None:
            shift, scale = jnp.split(self.final_modulation(jax.nn.silu(cond_BxC)), 2, axis=-1)
            h_BxLxD = modulate(h_BxLxD, shift, scale)
        return self.output(h_BxLxD).astype(jnp.float32)

    def embed(self, tokens: Array) -> Array:
        """Token (plus learned position) embeddings ``[B, L, hidden_size]``.

        ``logits_from_embeddings(embed(tokens), t)`` equals ``__call__(tokens, t)``;
        differentiating with respect to the embeddings exposes which positions each
        output depends on.
        """
        check_integer("tokens", tokens, shape=(None, None))
        batch, length = tokens.shape
        if length > self.config.max_length:
            raise ValueError(f"tokens has length {length} > max_length={self.config.max_length}")
        positions_BxL = jnp.broadcast_to(jnp.arange(length)[None, :], (batch, length))
        return self._embed_at(tokens, positions_BxL)

    def logits_from_embeddings(self, h: Array, t: Array | None = None,
                               cond: Array | None = None, *,
                               dropout_key: PRNGKey | None = None) -> Array:
        """Runs the blocks on embeddings ``h`` ``[B, L, hidden_size]`` (see ``embed``)."""
        config = self.config
        check_floating("h", h, shape=(None, None, config.hidden_size))
        batch, length, _ = h.shape
        if length > config.max_length:
            raise ValueError(f"h has length {length} > max_length={config.max_length}")
        return self._run(h, t, cond, mask=config.attention_mask, positions=None,
                         dropout_key=dropout_key)

    def _run(self, h: Array, t: Array | None, cond: Array | None, *, mask, positions,
             dropout_key: PRNGKey | None) -> Array:
        cond_BxC = self._condition(t, cond, h.shape[0])
        dropout_rngs = None if dropout_key is None else nnx.Rngs(dropout=dropout_key)
        for block in self.blocks:
            h = block(h, cond_BxC, mask=mask, positions=positions, dropout_rngs=dropout_rngs)
        return self._logits(h, cond_BxC)

    def _two_stream(self, tokens: TwoStream, t: Array | None, cond: Array | None,
                    dropout_key: PRNGKey | None) -> Array:
        if self.config.block_size is None:
            raise ValueError("a TwoStream input needs a block model (config.block_size)")
        noisy, clean = tokens
        check_integer("tokens.noisy", noisy, shape=(None, None))
        check_integer("tokens.clean", clean, shape=noisy.shape)
        length = noisy.shape[1]
        if length % self.config.block_size:
            raise ValueError(f"a TwoStream input's length {length} must be a multiple of "
                             f"block_size={self.config.block_size}")
        h = jnp.concatenate([self.embed(noisy), self.embed(clean)], axis=1)
        positions = jnp.tile(jnp.arange(length), 2)
        mask = BlockCausalMask(self.config.block_size, two_stream=True)
        logits = self._run(h, t, cond, mask=mask, positions=positions, dropout_key=dropout_key)
        return logits[:, :length]

    def __call__(self, tokens: Array | TwoStream, t: Array | None = None,
                 cond: Array | None = None,
                 *, dropout_key: PRNGKey | None = None) -> Array:
        """Logits over the vocabulary at every position.

        Args:
          tokens: ``int [B, L]`` token ids in ``[0, vocab_size)``, ``L <= max_length``; or,
            for a block model, a :class:`TwoStream` (then the logits are the noisy
            half's, ``[B, N, V]``).
          t: the diffusion time, ``[B]``: int32 step indices in ``[0, T)``, or float32
            continuous time in ``[0, 1]`` (scaled by ``continuous_time_scale``).
            Required iff ``time_conditioning``.
          cond: ``int [B]`` labels in ``[0, num_classes]`` (``num_classes``: the null
            label) iff the model has ``num_classes``, else None.
          dropout_key: enables dropout (train mode); ``None`` is eval mode.

        Returns:
          ``float32 [B, L, vocab_size]``.
        """
        if isinstance(tokens, TwoStream):
            return self._two_stream(tokens, t, cond, dropout_key)
        return self.logits_from_embeddings(self.embed(tokens), t, cond, dropout_key=dropout_key)

    def init_cache(self, batch_size: int, *, dtype=jnp.float32) -> KVCache:
        """An empty ``KVCache`` for ``decode_step`` / ``decode_block`` (causal or block
        models only)."""
        if not self.config.decodes:
            raise ValueError("init_cache needs a causal model (config.causal=True) or a "
                             "block model (config.block_size)")
        check_int("batch_size", batch_size)
        layers = tuple(block.attention.init_cache(batch_size, self.config.max_length, dtype=dtype)
                       for block in self.blocks)
        return KVCache(layers=layers, length=jnp.zeros((), jnp.int32))

    def decode_step(self, tokens: Array, cache: KVCache, t: Array | None = None,
                    cond: Array | None = None) -> tuple[Array, KVCache]:
        """Appends one token per sequence and returns the next-token logits.

        Equals row ``cache.length`` of the causal ``__call__`` on the whole prefix, at
        the cost of one position; jit it once and run it in ``lax.scan`` or a loop.
        Decoding past ``max_length`` is not detected under ``jit``.

        Args:
          tokens: ``int [B]``, the token at position ``cache.length``.
          cache: the state after the previous tokens (start from ``init_cache``).
          t: ``[B]`` diffusion time if ``time_conditioning``, else ``None``.
          cond: ``int [B]`` labels if ``num_classes``, else ``None``.

        Returns:
          ``(float32 [B, vocab_size] logits, updated cache)``.
        """
        if not self.config.causal:
            raise ValueError("decode_step needs a causal model (config.causal=True)")
        batch = cache.layers[0].keys.shape[0]
        check_integer("tokens", tokens, shape=(batch,))
        logits_Bx1xV, cache = self._decode(tokens[:, None], cache, t, cond)
        return logits_Bx1xV[:, 0], cache

    def decode_block(self, tokens: Array, cache: KVCache, t: Array | None = None,
                     cond: Array | None = None) -> tuple[Array, KVCache]:
        """Runs one block of a block model on top of the cached finished blocks.

        Returns the block's logits, equal to its rows of the block-causal ``__call__`` on
        ``[finished blocks, tokens]``, and the cache with the block appended: keep it once
        the block is final (its clean keys and values serve every later block, BD3-LM's KV
        cache), drop it while the block is still being denoised.

        Args:
          tokens: ``int [B, block_size]``, the block at positions ``cache.length ..``.
          cache: the state after the finished blocks (start from ``init_cache``).
          t: ``[B]`` diffusion time if ``time_conditioning``, else ``None``.
          cond: ``int [B]`` labels if ``num_classes``, else ``None`` (a cache serves one
            condition: guidance keeps one per branch).

        Returns:
          ``(float32 [B, block_size, vocab_size] logits, cache with the block)``.
        """
        block_size = self.config.block_size
        if block_size is None:
            raise ValueError("decode_block needs a block model (config.block_size)")
        batch = cache.layers[0].keys.shape[0]
        check_integer("tokens", tokens, shape=(batch, block_size))
        return self._decode(tokens, cache, t, cond)

    def _decode(self, tokens_BxK: Array, cache: KVCache, t: Array | None,
                cond: Array | None) -> tuple[Array, KVCache]:
        batch, count = tokens_BxK.shape
        position = cache.length
        positions_BxK = position + jnp.broadcast_to(jnp.arange(count, dtype=jnp.int32)[None],
                                                    (batch, count))
        h_BxKxD = self._embed_at(tokens_BxK, positions_BxK)
        cond_BxC = self._condition(t, cond, batch)
        layers = []
        for block, layer_cache in zip(self.blocks, cache.layers, strict=True):
            h_BxKxD, layer_cache = block.decode_step(h_BxKxD, cond_BxC, layer_cache,
                                                     position=position)
            layers.append(layer_cache)
        return (self._logits(h_BxKxD, cond_BxC),
                KVCache(layers=tuple(layers), length=position + count))
