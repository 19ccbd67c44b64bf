"""The optimizer: AdamW with linear warmup, cosine decay and global-norm clipping."""

import optax


def make_optimizer(*, learning_rate: float, total_steps: int, warmup_steps: int = 0,
                   weight_decay: float = 0.0, clip_norm: float | None = 1.0,
                   b1: float = 0.9, b2: float = 0.999) -> optax.GradientTransformation:
    """``clip_by_global_norm(clip_norm)`` then AdamW (Loshchilov & Hutter 2019) at a
    learning rate rising linearly from 0 over ``warmup_steps`` and decaying by a cosine to
    0 at ``total_steps`` (the DDPM recipe is a constant 2e-4 after 5000 warmup steps; pass a
    ``total_steps`` far beyond the run to approximate it)."""
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0, peak_value=learning_rate, warmup_steps=warmup_steps,
        decay_steps=max(total_steps, warmup_steps + 1), end_value=0.0)
    adamw = optax.adamw(schedule, b1=b1, b2=b2, weight_decay=weight_decay)
    if clip_norm is None:
        return adamw
    return optax.chain(optax.clip_by_global_norm(clip_norm), adamw)
