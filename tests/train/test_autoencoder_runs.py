"""The ``autoencoder`` process: its objective against a float64 reconstruction of the formula,
training that improves the reconstruction of a fixed batch, the latent scale, the report and
the named config errors."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import evaluation, tasks, train
from jaxdiff.models.functional import make_autoencoder_fns
from jaxdiff.tasks.autoencoder import autoencoder_objective, latent_scale, reconstruct_fn
from tests.models.util import random_params
from tests.train.util import TINY_AE, tiny_config


def ae_config(**sections) -> train.ExperimentConfig:
    return tiny_config(TINY_AE, **sections)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ae")
    train.train(ae_config(), workdir)
    return workdir


def _reference_loss(x, mean, log_variance, x_hat, *, kl_weight, rho):
    x, mean, log_variance, x_hat = (np.asarray(a, np.float64)
                                    for a in (x, mean, log_variance, x_hat))
    error = rho(x - x_hat).reshape(len(x), -1).sum(1)
    kl = 0.5 * (mean ** 2 + np.exp(log_variance) - 1 - log_variance).reshape(len(x), -1).sum(1)
    return (error + kl_weight * kl) / x[0].size


@pytest.mark.parametrize("loss, rho", [("l1", np.abs), ("l2", np.square)])
def test_objective_is_reconstruction_plus_weighted_kl(loss, rho):
    run = train.build_run(ae_config())
    encode, decode = make_autoencoder_fns(run.graphdef, run.rest)
    from jaxdiff.models.functional import abstract_init

    params = random_params(abstract_init(run.model_config)[1], seed=3)
    x = jnp.asarray(run.dataset.images[:4])
    key = jax.random.key(7)
    got = autoencoder_objective(encode, decode, kl_weight=0.3, reconstruction_loss=loss)(
        params, key, {"image": x})
    mean, log_variance = encode(params, x)
    z = mean + jnp.exp(0.5 * log_variance) * jax.random.normal(key, mean.shape)
    want = _reference_loss(x, mean, log_variance, decode(params, z), kl_weight=0.3, rho=rho)
    np.testing.assert_allclose(got, want, rtol=2e-5)


def test_training_improves_the_reconstruction_of_a_fixed_batch(trained):
    run, state = train.restore_workdir(trained)
    x = jnp.asarray(run.eval_dataset.images[:64])
    reconstruct = reconstruct_fn(run)
    initial = train.initial_state(run).params

    def mse(params):
        return float(jnp.mean(jnp.square(reconstruct(params, x) - x)))

    assert mse(state.params) < 0.5 * mse(initial)
    assert (trained / "samples_0000060.png").is_file()


def test_latent_scale_is_one_over_the_std_of_posterior_draws(trained):
    run, state = train.restore_workdir(trained)
    encode, _ = make_autoencoder_fns(run.graphdef, run.rest)
    images = run.dataset.images[:40]
    scale, std = latent_scale(lambda x: encode(state.ema_params, x), images,
                              key=jax.random.key(0), batch_size=16)
    draws = []
    for i, start in enumerate(range(0, 40, 16)):
        mean, log_variance = encode(state.ema_params, jnp.asarray(images[start:start + 16]))
        eps = jax.random.normal(jax.random.fold_in(jax.random.key(0), i), mean.shape)
        draws.append(np.asarray(mean + jnp.exp(0.5 * log_variance) * eps, np.float64))
    want = np.concatenate(draws).std()
    np.testing.assert_allclose(std, want, rtol=1e-5)
    assert scale == pytest.approx(1 / std)


def test_report(trained, tmp_path):
    report = evaluation.evaluate_autoencoder_run(trained, examples=100, scale_examples=50,
                                                 inception=False, progress=False,
                                                 cache_dir=tmp_path)
    assert report["latent_shape"] == [8, 8, 4] and report["image_shape"] == [16, 16, 1]
    assert report["psnr_of_mean_mse"] == pytest.approx(10 * np.log10(4 / report["mse"]))
    assert report["psnr"] > 12 and report["kl_per_image"] > 0
    assert report["rfid_inception"].startswith("unavailable: disabled")
    assert 0 <= report["classifier_accuracy_reconstructions"] <= 1
    assert report["classifier_accuracy_originals"] > 0.8
    assert evaluation.report_for(trained).evaluate is evaluation.evaluate_autoencoder_run
    with pytest.raises(ValueError, match="whose report is the 'autoencoder' one; "
                                         "jaxdiff.evaluation.report_for"):
        evaluation.evaluate_run(trained)
    markdown = evaluation.autoencoder_report_markdown(report)
    assert "latent scale (1 / std)" in markdown and "| PSNR" in markdown


@pytest.mark.parametrize("sections, field", [
    (dict(data={"name": "digits", "image_size": 16, "conditional": True}), "data.conditional"),
    (dict(train={"sample_steps": 10}), "train.sample_steps"),
    (dict(diffusion={"process": "autoencoder", "reconstruction_loss": "lpips"}),
     "diffusion.reconstruction_loss"),
    (dict(diffusion={"process": "autoencoder", "kl_weight": -1.0}), "diffusion.kl_weight"),
    (dict(data={"name": "digits", "image_size": 9}), "data.image_size"),
    (dict(model={"preset": "unet_tiny"}), "model.preset"),
    (dict(diffusion={"process": "autoencoder", "prediction": "eps"}), "diffusion.prediction"),
])
def test_bad_configs_are_named(sections, field):
    with pytest.raises(ValueError, match=f"config field {field}"):
        train.build_run(ae_config(**sections))


def test_a_denoising_process_refuses_an_autoencoder_preset():
    config = tiny_config(model={"preset": "vae_tiny", "overrides": {}})
    with pytest.raises(ValueError, match="is AutoencoderKLConfig; process 'gaussian' trains "
                                         "UNetConfig or DiTConfig"):
        train.build_run(config)
    assert tasks.get_task("autoencoder").samplers == ("reconstruct",)
