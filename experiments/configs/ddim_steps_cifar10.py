"""The DDIM steps table on CIFAR-10 (Song et al. 2021, Table 1): one DDPM model, sampled with
DDIM (eta = 0), ancestral DDPM, DPM-Solver++ and Heun at 10 / 20 / 50 / 100 / 1000 steps.

The model is ``ddpm_cifar10.py``'s (Ho et al.'s 35.7M UNet, linear schedule, L_simple,
800k steps): this file returns that config unchanged, so that one trained workdir serves both,
and lists the sampling grid in ``STEPS_TABLE``.

Commands (GPU/TPU host, CIFAR-10 from tfds)::

    python experiments/train.py --config experiments/configs/ddim_steps_cifar10.py \\
        --workdir workdirs/ddpm_cifar10
    for s in 10 20 50 100 1000; do for m in ddim ddpm dpm_solver++ heun; do
      python experiments/evaluate.py --workdir workdirs/ddpm_cifar10 --sampler $m \\
          --steps $s --num-samples 50000
    done; done

(check ``python experiments/evaluate.py --help`` for the exact flag names.) Hardware and time:
training as ``ddpm_cifar10.py`` (days on one GPU); each 50k-sample evaluation costs
50k x steps model calls, about an hour per 100 steps on one A100 (an estimate, not measured
here). Expected, the DDIM paper's CIFAR-10 FIDs (50k samples, Table 1): DDIM (eta = 0)
13.36 / 6.84 / 4.67 / 4.16 / 4.04 at 10 / 20 / 50 / 100 / 1000 steps; ancestral with eta = 1
41.07 / 18.36 / 8.01 / 5.78 / 4.73; with sigma-hat 367.43 / 133.37 / 32.72 / 9.99 / 3.17. The
CPU-scale version of this table on the digits is ``experiments/claims/sampler_steps.py``.
"""

import importlib.util
import pathlib


def _sibling(name: str):
    """The config module ``name`` beside this file (config files are loaded by path)."""
    spec = importlib.util.spec_from_file_location(
        name, pathlib.Path(__file__).resolve().parent / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ddpm_cifar10 = _sibling("ddpm_cifar10")

STEPS_TABLE = {"ddim": (10, 20, 50, 100, 1000), "ddpm": (10, 20, 50, 100, 1000),
               "dpm_solver++": (10, 20, 50), "heun": (10, 20, 50)}


def get_config():
    return ddpm_cifar10.get_config()
