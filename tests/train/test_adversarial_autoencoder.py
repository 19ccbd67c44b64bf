"""The autoencoder's optional adversarial patch loss: LDM's adaptive weight computed the
straightforward way (full gradients of the two batch means), each player's gradient routed to
its own parameters, the discriminator's patch grid, and the named config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import models as jm
from jaxdiff import train
from jaxdiff.models.functional import abstract_init, make_autoencoder_fns
from jaxdiff.pretrained.autoencoder_kl import diffusers_config
from tests.models.util import random_params
from tests.train.util import TINY_AE, tiny_config

WEIGHT = 0.5
ADVERSARIAL = {"diffusion": {"process": "autoencoder", "adversarial_weight": WEIGHT,
                             "kl_weight": 0.1},
               "model": {"preset": "vae_tiny",
                         "overrides": {**TINY_AE["model"]["overrides"],
                                       "discriminator_layers": 2,
                                       "discriminator_channels": 8}}}


@pytest.fixture(scope="module")
def setup():
    run = train.build_run(tiny_config(TINY_AE, **ADVERSARIAL))
    params = random_params(abstract_init(run.model_config)[1], seed=5)
    batch = {"image": jnp.asarray(run.dataset.images[:4])}
    return run, params, batch


class Reference:
    """The objective's parts in plain jnp, as functions of the parameters ``p`` (the
    posterior draw from ``key``), and LDM's weight from full gradients."""

    def __init__(self, run, params, batch, key):
        self.encode, self.decode = make_autoencoder_fns(run.graphdef, run.rest)
        self.discriminate = jm.make_discriminator_fn(run.graphdef, run.rest)
        self.x, self.key, self.params = batch["image"], key, params
        self.values = self.x[0].size

        def last(g):
            return np.asarray(g["decoder"]["output_conv"]["kernel"][...], np.float64)

        z = self.draw(params)       # the weight's gradients are at the drawn latent
        g_rec = last(jax.grad(lambda p: jnp.mean(self.rec(p, z)))(params))
        g_gen = last(jax.grad(lambda p: jnp.mean(self.gen(p, z)))(params))
        self.lam = WEIGHT * min(max(np.linalg.norm(g_rec) / (np.linalg.norm(g_gen) + 1e-4),
                                    0), 1e4)

    def draw(self, p):
        mean, log_variance = self.encode(p, self.x)
        return mean + jnp.exp(0.5 * log_variance) * jax.random.normal(self.key, mean.shape)

    def kl(self, p):
        mean, log_variance = self.encode(p, self.x)
        return 0.5 * jnp.sum(mean ** 2 + jnp.exp(log_variance) - 1 - log_variance,
                             axis=(1, 2, 3)) / self.values

    def rec(self, p, z):
        return jnp.sum(jnp.abs(self.x - self.decode(p, z)), axis=(1, 2, 3)) / self.values

    def gen(self, p, z):        # the discriminator fixed at the given parameters
        return -jnp.mean(self.discriminate(self.params, self.decode(p, z)), axis=(1, 2, 3))

    def autoencoder_side(self, p):
        z = self.draw(p)
        return self.rec(p, z) + 0.1 * self.kl(p) + self.lam * self.gen(p, z)

    def discriminator_side(self, p):
        fake = jax.lax.stop_gradient(self.decode(self.params, self.draw(self.params)))
        real_logits, fake_logits = self.discriminate(p, self.x), self.discriminate(p, fake)
        return jnp.mean(0.5 * (jnp.mean(jnp.maximum(0, 1 - real_logits), axis=(1, 2, 3))
                               + jnp.mean(jnp.maximum(0, 1 + fake_logits), axis=(1, 2, 3))))


def test_the_loss_is_reconstruction_kl_weighted_generator_and_hinge(setup):
    run, params, batch = setup
    key = jax.random.key(1)
    ref = Reference(run, params, batch, key)
    got = train.loss_fn_for(run, train=True)(params, key, batch)
    # the hinge term's batch mean is the discriminator's loss
    np.testing.assert_allclose(np.mean(np.asarray(got) - ref.autoencoder_side(params)),
                               float(ref.discriminator_side(params)), rtol=1e-4)
    assert 0 < ref.lam < 1e4
    held_out = train.loss_fn_for(run, train=False)(params, key, batch)
    z = ref.draw(params)
    np.testing.assert_allclose(held_out, ref.rec(params, z) + 0.1 * ref.kl(params), rtol=1e-5)


def test_each_player_gets_its_own_gradient(setup):
    run, params, batch = setup
    key = jax.random.key(1)
    ref = Reference(run, params, batch, key)
    loss_fn = train.loss_fn_for(run, train=True)
    grads = jax.grad(lambda p: loss_fn(p, key, batch).mean())(params)
    want_d = jax.grad(ref.discriminator_side)(params)["discriminator"]
    want_ae = jax.grad(lambda p: jnp.mean(ref.autoencoder_side(p)))(params)
    for got, want in ((grads["discriminator"], want_d), (grads["encoder"], want_ae["encoder"]),
                      (grads["decoder"], want_ae["decoder"])):
        for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
            np.testing.assert_allclose(a, b, rtol=2e-3, atol=1e-6)


def test_the_discriminator_judges_patches_and_is_training_only(setup):
    run, params, batch = setup
    discriminate = jm.make_discriminator_fn(run.graphdef, run.rest)
    assert discriminate(params, batch["image"]).shape == (4, 2, 2, 1)   # 16 -> 8 -> 4 -> 3 -> 2
    with pytest.raises(ValueError, match="too small for discriminator_layers=2"):
        discriminate(params, jnp.zeros((1, 8, 8, 1)))
    config, kept = jm.without_discriminator(run.model_config, params)
    assert config.discriminator_layers == 0 and "discriminator" not in kept
    assert jm.count_params(kept) == jm.count_params(abstract_init(config)[1])
    with pytest.raises(ValueError, match="training-only part"):
        diffusers_config(run.model_config)


@pytest.mark.parametrize("fields, match", [
    ({"diffusion": {"process": "autoencoder", "adversarial_weight": -1.0}},
     "diffusion.adversarial_weight"),
    ({"model": {"preset": "vae_tiny", "overrides": {**TINY_AE["model"]["overrides"],
                                                     "discriminator_layers": 2}}},
     "model.overrides"),
])
def test_bad_adversarial_configs_are_named(fields, match):
    with pytest.raises(ValueError, match=f"config field {match}"):
        train.build_run(tiny_config(TINY_AE, **fields))


def test_off_by_default():
    run = train.build_run(tiny_config(TINY_AE))
    assert run.model_config.discriminator_layers == 0
