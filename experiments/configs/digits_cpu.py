"""The main job: a small UNet on the embedded digits (scikit-learn's 1797 8x8 images).

Command: ``python experiments/train.py --config experiments/configs/digits_cpu.py
--workdir workdirs/digits_cpu``; ``digits_cpu.py:flow`` (rectified flow, velocity
prediction, SD3's logit-normal times, Euler sampling) and ``digits_cpu.py:edm`` (EDM's
preconditioning and log-normal sigmas, Heun sampling) train the same network with the
continuous-time processes. Hardware: 2 CPU cores. Time: see the README (measured).
Expected: recognisable digits in ``samples_<step>.png`` and an eval loss that falls from
~1.0 to ~0.1 (eps-MSE, cosine schedule; the other processes report their own losses).
"""

import ml_collections

from jaxdiff import train

# What each process changes in the diffusion and sampler settings; the network, data and
# optimisation are the same.
PROCESSES = {
    "gaussian": ({"schedule": "cosine", "num_steps": 1000, "prediction": "eps"}, "ddim"),
    "flow": ({}, None),       # every setting at the process's default
    "edm": ({}, None),
}


def get_config(process: str = "gaussian") -> ml_collections.ConfigDict:
    if process not in PROCESSES:
        raise ValueError(f"process must be one of {sorted(PROCESSES)}, got {process!r}")
    diffusion, sampler = PROCESSES[process]
    return train.config_dict({
        "data": {"name": "digits", "image_size": None, "conditional": False},
        "model": {"preset": "unet_tiny",
                  "overrides": {"base_channels": 32, "channel_mults": (1, 2),
                                "num_res_blocks": 1, "attention_levels": (1,),
                                "num_groups": 8}},
        "diffusion": {"process": process, **diffusion},
        "optim": {"learning_rate": 2e-3, "warmup_steps": 100, "ema_decay": 0.995},
        "train": {"batch_size": 64, "num_steps": 3000, "checkpoint_every": 500,
                  "log_every": 50, "eval_every": 500, "sample_count": 64, "sampler": sampler,
                  "sample_steps": 50},
    })
