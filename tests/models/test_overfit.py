"""A tiny UNet and a tiny DiT overfit a fixed batch through the Gaussian-core loss.

The batch is 8 random 8x8 RGB images with 4 fixed draws of (t, noise) each, i.e. 32
fixed noisy examples of ``jd.gaussian.loss`` (eps prediction, linear schedule, T=1000).
Both networks start at zero output (zero-initialised output layers), where the loss is
E[eps^2] = 1, and must bring it down 10x within a few hundred Adam steps (100 for the UNet, 300
for the DiT).
"""

import jax
import optax
import pytest

import jaxdiff as jd
import jaxdiff.models as jm

NUM_DRAWS = 4


def overfit(config, *, steps: int, learning_rate: float = 3e-3) -> tuple[float, float]:
    """Trains on the fixed batch; returns the batch loss before and after."""
    graphdef, params, rest = jm.init(config, key=jax.random.key(0))
    apply_fn = jm.make_apply_fn(graphdef, rest, train=True)
    schedule = jd.gaussian.linear_schedule(num_steps=1000)
    images = jax.random.uniform(jax.random.key(1), (8, 8, 8, 3), minval=-1.0, maxval=1.0)
    draw_keys = jax.random.split(jax.random.key(2), NUM_DRAWS)
    optimizer = optax.adam(learning_rate)

    def batch_loss(params, draw_key):
        bound = jm.bind(apply_fn, params, key=jax.random.fold_in(draw_key, 1))
        return jd.gaussian.loss(draw_key, bound, schedule, images, prediction="eps").mean()

    @jax.jit
    def train_step(params, opt_state, draw_key):
        loss, grads = jax.value_and_grad(batch_loss)(params, draw_key)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, loss

    opt_state = optimizer.init(params)

    def fixed_batch_loss(params):
        # train_step reports the loss at the parameters it was given.
        return sum(float(train_step(params, opt_state, k)[2]) for k in draw_keys) / NUM_DRAWS

    initial = fixed_batch_loss(params)
    for step in range(steps):
        params, opt_state, _ = train_step(params, opt_state, draw_keys[step % NUM_DRAWS])
    return initial, fixed_batch_loss(params)


@pytest.mark.parametrize("config, steps", [
    (jm.preset_config("unet_tiny", image_size=8, base_channels=16, attention_levels=(),
                      num_groups=4), 100),
    (jm.preset_config("dit_tiny", image_size=8), 300),
], ids=["unet", "dit"])
def test_tiny_network_overfits_a_batch(config, steps):
    initial, final = overfit(config, steps=steps)
    assert initial == pytest.approx(1.0, abs=0.25)
    assert final < initial / 10
