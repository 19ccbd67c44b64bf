"""Invalid configs fail before anything compiles, with the field's name."""

import jax
import pytest

from jaxdiff import train
from tests.train.util import tiny_config


@pytest.mark.parametrize("sections,match", [
    (dict(data={"name": "imagenet64"}), "data.name"),
    (dict(diffusion={"schedule": "quadratic"}), "diffusion.schedule"),
    (dict(diffusion={"prediction": "score"}), "diffusion.prediction"),
    (dict(train={"batch_size": 12}), "train.batch_size"),
    (dict(train={"num_steps": 0}), "train.num_steps"),
    (dict(train={"sampler": "euler"}), "train.sampler"),
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
