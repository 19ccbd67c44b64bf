"""Invalid configs fail before anything compiles, with the field's name."""

import dataclasses
import json

import jax
import pytest

from jaxdiff import tasks, train
from tests.train.util import TINY, TINY_TEXT, tiny_config


@pytest.mark.parametrize("sections,match", [
    (dict(data={"name": "imagenet64"}), "data.name"),
    (dict(diffusion={"schedule": "quadratic"}), "diffusion.schedule"),
    (dict(diffusion={"prediction": "score"}), "diffusion.prediction"),
    (dict(train={"batch_size": 12}), "train.batch_size"),
    (dict(train={"num_steps": 0}), "train.num_steps"),
    (dict(train={"sampler": "lms"}), "train.sampler"),
    (dict(model={"preset": "unet_huge"}), "model.preset"),
    (dict(model={"overrides": {"widht": 3}}), "model.overrides.widht"),
    (dict(optim={"ema_decay": 1.5}), "optim"),
])
def test_invalid_field_is_named_before_compilation(sections, match):
    config = tiny_config(**sections)
    with pytest.raises(ValueError, match=match):
        train.validate(config, num_devices=jax.device_count())


def test_unknown_keys_are_named():
    with pytest.raises(ValueError, match="train.batchsize"):
        train.from_dict({"train": {"batchsize": 8}})
    with pytest.raises(ValueError, match="optimiser"):
        train.from_dict({"optimiser": {}})


def test_train_refuses_an_invalid_config_without_touching_the_workdir(tmp_path):
    with pytest.raises(ValueError, match="train.batch_size"):
        train.train(tiny_config(train={"batch_size": 12}), tmp_path / "run", progress=False)
    assert not (tmp_path / "run").exists()


def test_the_main_config_builds_on_images_of_another_size():
    """Attention is placed by level, so digits_cpu's network fits 28x28 and 16x16 data."""
    from configs import digits_cpu

    from jaxdiff import data

    config = train.from_dict(digits_cpu.get_config().to_dict())
    for name, image_size, levels in (("digits", None, (8, 4)), ("mnist_5k", None, (28, 14)),
                                     ("digits", 16, (16, 8))):
        dataset = data.load(name, "train", image_size=image_size)
        model = train.model_config_for(config, dataset)
        assert model.image_size == levels[0] and model.attention_levels == (1,)


def test_a_version_1_config_json_places_attention_on_the_same_levels(tmp_path):
    """Version 1 named attention by spatial size (unet_tiny's default (8,)); the recorded
    file loads as the same network, and what train writes carries the current version."""
    written = train.recorded_config(tiny_config())
    assert written["version"] == train.CONFIG_VERSION == 6
    (tmp_path / "config.json").write_text(json.dumps(written))
    assert train.load_config(tmp_path) == tiny_config()
    for overrides, levels in (({"attention_resolutions": [4]}, (1,)),
                              ({"attention_resolutions": [8, 4]}, (0, 1)),
                              ({}, (0,)),                                  # (8,) at 8x8
                              ({"image_size": 16}, (1,))):                 # (8,) at 16x16
        values = train.recorded_config(tiny_config())
        del values["version"]
        values["model"]["overrides"] = {"base_channels": 8, "channel_mults": [1, 2],
                                        "num_groups": 4, **overrides}
        (tmp_path / "config.json").write_text(json.dumps(values))
        assert train.load_config(tmp_path).model.overrides["attention_levels"] == levels
    values["version"] = 7
    (tmp_path / "config.json").write_text(json.dumps(values))
    with pytest.raises(ValueError, match=r"version must be an integer in 1\.\.6, got 7"):
        train.load_config(tmp_path)


@pytest.mark.parametrize("process, conditional", [("flow", False), ("gaussian", False),
                                                  ("gaussian", True), ("masked", False)])
def test_a_version_3_config_json_reads_the_old_defaults_as_what_they_meant(
        tmp_path, process, conditional):
    """Before version 4 every run wrote num_steps=1000, learned_variance=False,
    label_dropout=0.1 and hybrid_coeff=0.01: a process that does not read a field loads it
    as None (now an error when set), one that does keeps it, and an unconditional run's
    label_dropout becomes None; the loaded config validates and trains the same run."""
    base = TINY_TEXT if process == "masked" else TINY
    config = tiny_config(base, data={"conditional": conditional} if base is TINY else {},
                         diffusion={"process": process, "schedule": None})
    values = train.recorded_config(config)
    values["version"] = 3
    values["diffusion"].update(num_steps=1000, learned_variance=False, label_dropout=0.1,
                               hybrid_coeff=0.01)
    (tmp_path / "config.json").write_text(json.dumps(values))
    loaded = train.load_config(tmp_path)
    train.validate(loaded, num_devices=1)
    task = tasks.get_task(process)
    for name in ("num_steps", "learned_variance", "label_dropout", "hybrid_coeff"):
        reads = name in task.settings and (name != "label_dropout" or conditional)
        assert (getattr(loaded.diffusion, name) is None) == (not reads), name
    assert train.with_process_defaults(loaded) == train.with_process_defaults(
        dataclasses.replace(config, diffusion=dataclasses.replace(
            config.diffusion, num_steps=1000 if "num_steps" in task.settings else None)))


def _experiment_configs():
    import importlib
    import pathlib

    for path in sorted(pathlib.Path("experiments/configs").glob("*.py")):
        module = importlib.import_module(f"configs.{path.stem}")
        variants = next((getattr(module, name) for name in ("SCHEDULES", "PROCESSES",
                                                             "EXPECTED_BPC")
                         if hasattr(module, name)), None)
        for variant in (variants or [None]):
            yield pytest.param(module, variant, id=f"{path.stem}:{variant}")


@pytest.mark.parametrize("module, variant", list(_experiment_configs()))
def test_every_experiment_config_is_valid(module, variant):
    """Every config file (and each of its processes) passes the checks that run before
    training; text8 is given a path, as its command line does. A pre-tokenised corpus's
    config names the files it needs (tests/data/test_token_corpus.py validates it with
    them)."""
    values = (module.get_config() if variant is None else module.get_config(variant)).to_dict()
    if values["data"]["name"] == "text8":
        values["data"]["path"] = "text8.zip"
    if values["data"]["name"] == "tokens":
        with pytest.raises(ValueError, match="data.path: must be the directory"):
            train.validate(train.from_dict(values), num_devices=1)
        return
    train.validate(train.from_dict(values), num_devices=1)


def test_a_ddpm_cifar10_run_recorded_before_version_5_keeps_its_network(tmp_path):
    """Version 5 gave the ddpm_cifar10 preset google/ddpm-cifar10-32's padding and time
    features; an earlier run loads with the ones it trained with, as overrides."""
    config = tiny_config(model={"preset": "ddpm_cifar10", "overrides": {"dropout": 0.0}})
    values = train.recorded_config(config)
    values["version"] = 4
    (tmp_path / "config.json").write_text(json.dumps(values))
    overrides = train.load_config(tmp_path).model.overrides
    assert overrides == {"dropout": 0.0, "downsample_padding": 1, "timestep_cos_first": True,
                         "timestep_freq_shift": 0.0}
    values["version"] = 5
    (tmp_path / "config.json").write_text(json.dumps(values))
    assert train.load_config(tmp_path).model.overrides == {"dropout": 0.0}


def test_a_dit_run_recorded_before_version_6_keeps_its_position_order(tmp_path):
    """Version 6 put the column first in DiT's position features, as the DiT code does; an
    earlier DiT run loads with the rows first, as an override."""
    config = tiny_config(model={"preset": "dit_tiny", "overrides": {"depth": 1}})
    values = train.recorded_config(config)
    values["version"] = 5
    (tmp_path / "config.json").write_text(json.dumps(values))
    assert train.load_config(tmp_path).model.overrides == {"depth": 1,
                                                           "position_columns_first": False}
    values["version"] = 6
    (tmp_path / "config.json").write_text(json.dumps(values))
    assert train.load_config(tmp_path).model.overrides == {"depth": 1}
