"""The main job: a small UNet on the embedded digits (scikit-learn's 1797 8x8 images).

Command: ``python experiments/train.py --config experiments/configs/digits_cpu.py
--workdir workdirs/digits_cpu``. Hardware: 2 CPU cores. Time: see the README (measured).
Expected: recognisable digits in ``samples_<step>.png`` and an eval loss that falls from
~1.0 to ~0.1 (eps-MSE, cosine schedule).
"""

import ml_collections

from jaxdiff import train


def get_config() -> ml_collections.ConfigDict:
    return train.config_dict({
        "data": {"name": "digits", "image_size": None, "conditional": False},
        "model": {"preset": "unet_tiny",
                  "overrides": {"base_channels": 32, "channel_mults": (1, 2),
                                "num_res_blocks": 1, "attention_levels": (1,),
                                "num_groups": 8}},
        "diffusion": {"schedule": "cosine", "num_steps": 1000, "prediction": "eps"},
        "optim": {"learning_rate": 2e-3, "warmup_steps": 100, "ema_decay": 0.995},
        "train": {"batch_size": 64, "num_steps": 3000, "checkpoint_every": 500,
                  "log_every": 50, "eval_every": 500, "sample_count": 64, "sampler": "ddim",
                  "sample_steps": 50},
    })
