"""Text runs through the training loop: the four processes train, report their held-out
bound in bits per character and write text samples; the bounds are the right numbers."""

import dataclasses
import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import autoregressive, discrete, tasks, train
from jaxdiff import models as jm
from jaxdiff.tasks.d3pm import d3pm_bound_objective
from tests.train.util import TINY, TINY_AE, TINY_TEXT, tiny_config

SCHEDULE = {"absorbing": "reciprocal", "uniform": "cosine", "masked": "loglinear",
            "autoregressive": None}


def text_config(process: str, **train_fields) -> train.ExperimentConfig:
    if process == "autoregressive":   # it samples in seq_len steps: no sample_steps
        train_fields = {"sample_steps": None, **train_fields}
    return tiny_config(TINY_TEXT, diffusion={"process": process, "schedule": SCHEDULE[process]},
                       train=train_fields)


@pytest.mark.parametrize("process", ["absorbing", "uniform", "masked", "autoregressive"])
def test_text_run_trains_reports_bpc_and_writes_samples(process, tmp_path):
    config = text_config(process)
    state = train.train(config, tmp_path, progress=False)
    assert int(state.step) == 4
    lines = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    final = [m for m in lines if "eval_bpc" in m][-1]
    # eval_bpc is eval_loss (nats per 16-character sequence) in bits per character.
    assert final["eval_bpc"] == pytest.approx(final["eval_loss"] / (16 * np.log(2)), rel=1e-6)
    # An untrained model is near log2(27) = 4.75 bits; a bound is never below 0 and a
    # 4-step model is far from the corpus's ~2 bits.
    assert 3.0 < final["eval_bpc"] < 8.0
    samples = (tmp_path / "samples_0000004.txt").read_text().splitlines()
    assert len(samples) == 8 and all(len(s) == 16 for s in samples)
    assert all(set(s) <= set("abcdefghijklmnopqrstuvwxyz ") for s in samples)
    if process == "autoregressive":   # the exact NLL of the first 32 validation rows
        run, restored = train.restore_workdir(tmp_path)
        apply_fn = run.apply_fn()
        nll = autoregressive.sequence_nll(lambda x: apply_fn(restored.ema_params, x, None),
                                          jnp.asarray(run.eval_dataset[:32]), bos_id=27)
        assert final["eval_loss"] == pytest.approx(float(jnp.mean(nll)), rel=1e-5)


def test_d3pm_bound_estimate_is_unbiased_for_the_full_elbo():
    """Mean of T L_t + L_T over random t equals d3pm_elbo (all T terms) on a random model."""
    process = discrete.d3pm_process("absorbing", vocab_size=28, num_steps=6, mask_id=27)
    config = jm.preset_config("text_tiny", vocab_size=28, max_length=8, hidden_size=16,
                              depth=1, num_heads=2, cond_dim=16, frequency_dim=16)
    graphdef, params, rest = jm.init(config, key=jax.random.key(0))
    apply_fn = jm.make_apply_fn(graphdef, rest)
    tokens = jax.random.randint(jax.random.key(1), (4, 8), 0, 27)
    bound = d3pm_bound_objective(apply_fn, process)
    draws = jax.jit(jax.vmap(lambda k: bound(params, k, {"tokens": tokens})))(
        jax.random.split(jax.random.key(2), 2000))                          # [2000, 4]
    exact = jax.jit(jax.vmap(lambda k: discrete.d3pm_elbo(k, jm.bind(apply_fn, params),
                                                          process, tokens)))(
        jax.random.split(jax.random.key(3), 400))                           # [400, 4]
    se = np.sqrt(draws.var(0) / 2000 + exact.var(0) / 400)
    assert np.all(np.abs(draws.mean(0) - exact.mean(0)) < 4 * se)


def test_text_batches_resume_at_their_step():
    run = train.build_run(text_config("masked"))
    from_start = train.train_batches(run, start_step=0)
    batches = [next(from_start)["tokens"] for _ in range(3)]
    np.testing.assert_array_equal(next(train.train_batches(run, start_step=2))["tokens"],
                                  batches[2])
    assert not np.array_equal(batches[0], batches[1])
    assert batches[0].shape == (16, 16) and batches[0].dtype == np.int32


@pytest.mark.parametrize("sections,match", [
    (dict(diffusion={"process": "absorbing", "schedule": "cosine"}), "diffusion.schedule"),
    (dict(diffusion={"process": "diffusion"}), "diffusion.process"),
    (dict(model={"preset": "unet_tiny", "overrides": {}}), "model.preset"),
    (dict(data={"name": "digits"}), "data.name"),
    (dict(data={"name": "text8"}), "data.path"),
    (dict(data={"seq_len": 0}), "data.seq_len"),
    (dict(diffusion={"process": "absorbing", "schedule": "reciprocal",
                     "hybrid_coeff": -1.0}), "diffusion.hybrid_coeff"),
])
def test_invalid_text_config_is_named(sections, match):
    with pytest.raises(ValueError, match=match):
        train.validate(tiny_config(TINY_TEXT, **sections), num_devices=jax.device_count())


def test_image_process_refuses_a_text_corpus():
    config = tiny_config(data={"name": "enwiki_gensim"})
    with pytest.raises(ValueError, match="data.name"):
        train.validate(config, num_devices=1)


def test_every_listed_schedule_builds_and_none_is_the_process_default():
    for task in tasks.TASKS.values():
        base = {"images": TINY, "text": TINY_TEXT, "autoencoder": TINY_AE}[task.modality.name]
        for schedule in task.schedules + (None,):
            steps = 4 if "num_steps" in task.sampler_options else None
            config = tiny_config(base, diffusion={"process": task.name, "schedule": schedule},
                                 train={"sample_steps": steps})
            if schedule == tasks.gaussian.PRETRAINED_SCHEDULE:   # tests/pretrained build it
                with pytest.raises(ValueError, match="needs model.preset='diffusers:<folder>'"):
                    train.validate(config, num_devices=1)
                continue
            train.validate(config, num_devices=1)
            assert (task.process(config) is None) == (not task.schedules)
    default = tasks.ABSORBING.process(tiny_config(TINY_TEXT, diffusion={
        "process": "absorbing", "schedule": None}))
    explicit = discrete.d3pm_process("absorbing", vocab_size=28, num_steps=10, mask_id=27)
    np.testing.assert_array_equal(default.betas, explicit.betas)
    assert tasks.GAUSSIAN.process(tiny_config(diffusion={"schedule": None})).num_steps == 100


def test_the_autoregressive_baseline_refuses_a_schedule_and_sample_steps():
    with pytest.raises(ValueError, match="diffusion.schedule: process 'autoregressive' has no"):
        train.validate(tiny_config(TINY_TEXT, diffusion={"process": "autoregressive",
                                                         "schedule": "cosine"},
                                   train={"sample_steps": None}), num_devices=1)
    with pytest.raises(ValueError, match="train.sample_steps"):
        train.validate(tiny_config(TINY_TEXT, diffusion={"process": "autoregressive",
                                                         "schedule": None}), num_devices=1)


def test_a_sampler_option_the_process_does_not_take_is_named():
    run = train.build_run(text_config("masked"))
    with pytest.raises(ValueError, match=r"process 'masked' does not support .*prompts"):
        train.make_sampler(run, count=2, num_steps=2, prompts=["a", "b"])
    with pytest.raises(ValueError, match="sampler for process 'masked' must be one of"):
        train.make_sampler(run, count=2, num_steps=2, sampler="ddim")
    d3pm = train.build_run(text_config("absorbing"))
    with pytest.raises(ValueError, match="num_steps"):   # T = 10: more steps are an error
        train.make_sampler(d3pm, count=2, num_steps=11)(jax.random.key(0), None)
    image = train.build_run(tiny_config())
    with pytest.raises(ValueError, match="class-conditional"):
        train.make_sampler(image, count=2, num_steps=2, guidance_scale=2.0)


def test_the_autoregressive_objective_trains_with_dropout_and_evaluates_without():
    """With dropout the AR training loss depends on the step's key (it has no corruption
    noise: only dropout uses it) and the held-out NLL does not."""
    config = text_config("autoregressive")
    overrides = dict(TINY_TEXT["model"]["overrides"], dropout=0.5)
    run = train.build_run(dataclasses.replace(
        config, model=dataclasses.replace(config.model, overrides=overrides)))
    params = jax.tree.map(lambda p: p + 0.1 * jax.random.normal(jax.random.key(7), p.shape,
                                                                p.dtype),
                          train.initial_state(run).params)   # away from the zero-init gates
    batch = {"tokens": jnp.asarray(run.eval_dataset[:8])}
    objective, held_out = (train.loss_fn_for(run, train=mode) for mode in (True, False))
    key_a, key_b = jax.random.key(1), jax.random.key(2)
    assert np.abs(objective(params, key_a, batch) - objective(params, key_b, batch)).max() > 1e-3
    np.testing.assert_array_equal(held_out(params, key_a, batch), held_out(params, key_b, batch))


def test_a_config_json_of_an_earlier_version_still_loads(tmp_path):
    """Earlier runs recorded train.sampler="ddim" for text runs, a schedule and sample_steps
    for the AR baseline, and learn_sigma: they load as what they meant."""
    values = dataclasses.asdict(text_config("autoregressive"))
    values["diffusion"].update(schedule="loglinear", prediction="eps", weighting="uniform")
    values["train"].update(sampler="ddim", sample_steps=256)
    (tmp_path / "config.json").write_text(json.dumps(values))
    config = train.load_config(tmp_path)
    assert config == text_config("autoregressive")
    train.validate(config, num_devices=1)
    image = dataclasses.asdict(tiny_config())
    image["model"]["overrides"]["learn_sigma"] = True
    (tmp_path / "config.json").write_text(json.dumps(image))
    assert train.load_config(tmp_path).model.overrides["learned_variance"] is True


def test_sample_steps_a_process_cannot_take_are_named_before_training():
    with pytest.raises(ValueError, match="train.sample_steps: D3PM samples at most its T"):
        train.validate(text_config("absorbing", sample_steps=11), num_devices=1)
    with pytest.raises(ValueError, match="train.sample_steps: masked diffusion samples in K"):
        train.validate(text_config("masked", sample_steps=None), num_devices=1)


@pytest.mark.parametrize("process", ["absorbing", "masked", "autoregressive"])
def test_a_template_is_filled_by_every_text_process_keeping_its_known_characters(process):
    run = train.build_run(text_config(process))
    params = train.initial_state(run).params
    mask, values = tasks.text.template_inpainting("a [MASK] b [MASK]", mask_length=2,
                                                  count=3)             # the model has L = 16
    assert mask.shape == values.shape == (3, 9) and not mask[0, 2] and mask[0, 1]
    steps = 4 if "num_steps" in run.task.sampler_options else None
    out = np.asarray(train.make_sampler(run, count=3, num_steps=steps, inpaint_mask=mask,
                                        inpaint_values=values)(jax.random.key(0), params))
    texts = [tasks.TOKENIZER.decode(row) for row in out]
    assert all(len(t) == 9 and t[:2] == "a " and t[4:7] == " b " for t in texts), texts
    with pytest.raises(ValueError, match="at least one"):
        tasks.text.template_inpainting("no spans", mask_length=2, count=1)
