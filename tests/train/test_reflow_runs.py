"""Reflow through the library: a pairs file as data (its noise travels with its images),
the flow objective on it, and a run started from another run's parameters."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import data, gaussian, train
from jaxdiff.models.functional import bind
from jaxdiff.tasks.continuous import path_denoiser
from tests.train.util import tiny_config


def _pairs_file(tmp_path, n=40):
    """Pairs whose noise is a known function of the image: noise = -0.5 * image + index."""
    rng = np.random.default_rng(0)
    images = rng.uniform(-1, 1, (n, 8, 8, 1)).astype(np.float32)
    noise = (-0.5 * images + np.arange(n, dtype=np.float32)[:, None, None, None])
    path = tmp_path / "pairs.npz"
    np.savez(path, images=images, noise=noise)
    return path


def _flow_config(train_fields=None, **sections):
    return tiny_config(diffusion={"process": "flow", "schedule": None},
                       train={"num_steps": 4, "eval_every": 4, "checkpoint_every": 4,
                              "sample_steps": None, **(train_fields or {})}, **sections)


def test_a_pairs_file_keeps_each_image_with_its_noise_through_split_and_batches(tmp_path):
    path = _pairs_file(tmp_path)
    for split in ("train", "test"):
        ds = data.load(str(path), split)
        np.testing.assert_allclose(ds.noise + 0.5 * ds.images,
                                   np.round(ds.noise + 0.5 * ds.images), atol=1e-5)
        batch = next(data.batches(ds, batch_size=8, seed=3))
        index = (batch["noise"] + 0.5 * batch["image"])[:, 0, 0, 0]
        np.testing.assert_allclose(batch["noise"], -0.5 * batch["image"]
                                   + index[:, None, None, None], atol=1e-5)
    assert len(data.load(str(path), "test")) == 8      # every fifth pair is held out
    with pytest.raises(ValueError, match="image_size"):
        data.load(str(path), "train", image_size=16)


def test_noise_of_another_shape_is_named(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, images=np.zeros((10, 8, 8, 1), np.float32),
             noise=np.zeros((10, 8, 8, 2), np.float32))
    with pytest.raises(ValueError, match="noise must be floating of the images' shape"):
        data.load(str(path), "train")


def test_only_flow_on_a_pure_noise_path_trains_on_pairs(tmp_path):
    path = str(_pairs_file(tmp_path))
    with pytest.raises(ValueError, match="diffusion.schedule.*pure noise"):
        train.build_run(tiny_config(data={"name": path, "image_size": None},
                                    diffusion={"process": "flow", "schedule": "vp_cosine"},
                                    train={"sample_steps": None}))
    with pytest.raises(ValueError, match="data.name.*reflow"):
        train.build_run(tiny_config(data={"name": path, "image_size": None}))
    with pytest.raises(ValueError, match="data.name.*reflow"):
        train.build_run(tiny_config(data={"name": path, "image_size": None},
                                    diffusion={"process": "edm", "schedule": None}))


def test_the_flow_objective_trains_on_each_pairs_own_noise(tmp_path):
    run = train.build_run(_flow_config(data={"name": str(_pairs_file(tmp_path)),
                                             "image_size": None}))
    params = train.initial_state(run).params
    batch = {k: jnp.asarray(v) for k, v in next(data.batches(run.dataset, batch_size=8,
                                                              seed=0)).items()}
    key = jax.random.key(3)
    got = run.task.objective(run)(params, key, batch)
    key_loss, key_dropout, _ = jax.random.split(key, 3)
    denoiser = gaussian.with_model_time(bind(run.apply_fn(train=True), params, key_dropout),
                                        run.process)
    want = gaussian.continuous_loss(key_loss, denoiser, run.process, batch["image"],
                                    noise=batch["noise"], density="logit_normal")
    np.testing.assert_allclose(got, want, rtol=1e-6)
    independent = gaussian.continuous_loss(key_loss, denoiser, run.process, batch["image"],
                                           density="logit_normal")
    assert not np.allclose(got, independent)


def test_a_run_starts_from_another_runs_ema_parameters(tmp_path):
    source = train.train(_flow_config(), tmp_path / "a", progress=False)
    config = _flow_config({"init_from": str(tmp_path / "a")})
    run = train.build_run(config)
    start = train.state_from_workdir(run, tmp_path / "a")
    assert int(start.step) == 0
    for got, want in zip(jax.tree.leaves(start.params), jax.tree.leaves(source.ema_params),
                         strict=True):
        np.testing.assert_array_equal(got, want)
    # with a learning rate of ~0 the trained run stays at its start: the source's EMA
    frozen = _flow_config({"init_from": str(tmp_path / "a")},
                          optim={"learning_rate": 1e-12, "warmup_steps": 2, "ema_decay": 0.9})
    state = train.train(frozen, tmp_path / "b", progress=False)
    assert int(state.step) == 4
    for got, want in zip(jax.tree.leaves(state.params), jax.tree.leaves(source.ema_params),
                         strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    # the denoiser outside the task is the one the run samples with
    x = jnp.zeros((2, 8, 8, 1))
    assert path_denoiser(run, state.ema_params)(x, jnp.full((2,), 0.5)).shape == x.shape


def test_a_source_with_another_network_is_named(tmp_path):
    train.train(_flow_config(), tmp_path / "a", progress=False)
    other = _flow_config(model={"preset": "unet_tiny",
                                "overrides": {"base_channels": 4, "channel_mults": (1,),
                                              "num_res_blocks": 1, "attention_levels": (),
                                              "num_groups": 2}})
    with pytest.raises(ValueError, match="train.init_from"):
        train.state_from_workdir(train.build_run(other), tmp_path / "a")


def test_the_pairs_script_writes_a_file_the_flow_process_trains_on(tmp_path):
    import reflow  # experiments/reflow.py (experiments/ on the path)
    from absl import app

    train.train(_flow_config(), tmp_path / "a", progress=False)
    run, state = train.restore_workdir(tmp_path / "a")
    images, noise, labels = reflow.pairs(run, state.ema_params, count=12, steps=3,
                                         solver="euler", batch=8, seed=0)
    assert images.shape == noise.shape == (12, 8, 8, 1) and labels is None
    clipped = reflow.write_pairs(tmp_path / "pairs.npz", images, noise, labels)
    assert clipped == float(np.mean(np.abs(images) > 1))
    loaded = data.load(str(tmp_path / "pairs.npz"), "train")
    np.testing.assert_array_equal(loaded.noise, noise[[i for i in range(12) if i % 5 != 4]])
    gaussian_run = train.build_run(tiny_config())
    with pytest.raises(app.UsageError, match="flow run"):
        reflow.pairs(gaussian_run, train.initial_state(gaussian_run).params, count=4,
                     steps=2, solver="euler", batch=4, seed=0)
