"""The diffusers reference models of the parity tests, built locally with random weights.

diffusers and the CPU torch wheel are test-only dependencies (``pip install diffusers==0.42.1
torch==2.13.0``), and so is sentence-transformers (the text encoder's reference). Without them
the parity tests are skipped with the reason, unless ``JAXDIFF_REQUIRE_DIFFUSERS=1`` (set in
CI), which turns the skip into a failure.
"""

import os

import numpy as np
import pytest

REQUIRE_ENV = "JAXDIFF_REQUIRE_DIFFUSERS"


def require(module: str, *, install: str = "diffusers==0.42.1 torch==2.13.0"):
    """Imports ``module`` (``torch``, ``diffusers``, ...), or skips / fails with the reason
    (``pip install <install>``)."""
    import importlib

    try:
        out = importlib.import_module(module)
    except ImportError:
        reason = f"{module} is not installed (pip install {install})"
        if os.environ.get(REQUIRE_ENV) == "1":
            pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires it)")
        pytest.skip(reason)
    if module == "torch":
        out.set_num_threads(2)
    return out


def saved_model(model_class: str, folder, *, seed: int = 0, edit=None, **config):
    """A diffusers ``model_class`` with ``config`` and seeded random weights, saved with
    ``save_pretrained`` (safetensors) to ``folder``; returns the torch model (eval mode).
    ``edit(model)``, if given, runs on the weights before saving (e.g. to make equal what a
    published checkpoint has equal)."""
    torch = require("torch")
    diffusers = require("diffusers")
    torch.manual_seed(seed)
    model = getattr(diffusers, model_class)(**config).eval()
    with torch.no_grad():   # perturb: some layers start at zero or one in diffusers too
        for p in model.parameters():
            p.add_(0.02 * torch.randn_like(p))
        if edit is not None:
            edit(model)
    model.save_pretrained(folder, safe_serialization=True)
    return model


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """``max |got - want| / max |want|``: the error relative to the output's scale. (For the
    35.7M DDPM UNet diffusers' own float32 output is ~3e-6 of that scale from its float64
    output: the floor a float32 comparison can reach.)"""
    return float(np.max(np.abs(got - want)) / np.max(np.abs(want)))


def assert_round_trip(source, target):
    """``load_model(source)`` saved to ``target``: the same safetensors tensors bit for bit,
    read back as the same config and parameters; returns ``(config, params)``."""
    import jax
    from safetensors.numpy import load_file

    from jaxdiff import pretrained
    from jaxdiff.pretrained.folder import WEIGHTS_NAME

    config, params = pretrained.load_model(source)
    pretrained.save_model(target, config, params)
    original, written = (load_file(f / WEIGHTS_NAME) for f in (source, target))
    assert sorted(original) == sorted(written)
    for name, value in original.items():
        np.testing.assert_array_equal(written[name], value, err_msg=name)
    again_config, again = pretrained.load_model(target)
    assert again_config == config
    for a, b in zip(jax.tree.leaves(params), jax.tree.leaves(again), strict=True):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    return config, params


def edit_folder(folder, *, config=None, tensors=None):
    """Rewrites a saved model folder: ``config(dict) -> dict`` on its ``config.json``,
    ``tensors(dict) -> dict`` on its safetensors file."""
    import json

    from safetensors.numpy import load_file, save_file

    from jaxdiff.pretrained.folder import CONFIG_NAME, WEIGHTS_NAME

    if config is not None:
        path = folder / CONFIG_NAME
        path.write_text(json.dumps(config(json.loads(path.read_text()))))
    if tensors is not None:
        file = folder / WEIGHTS_NAME
        save_file(tensors(load_file(file)), file)
