"""The trained text models that claims 8-11 share: train once, reuse everywhere.

The four runs are ``experiments/configs/text_cpu.py:<process>`` exactly (the same 4-block,
128-wide transformer, batch 16, 500 steps of random 256-character windows of the embedded
corpus) for ``absorbing``, ``uniform``, ``masked`` and ``autoregressive``.
:func:`trained_run` trains a run through :func:`jaxdiff.train.train` into
``<root>/text_cpu_<process>`` (``root`` defaults to ``workdirs`` at the repository root,
which git ignores; ``JAXDIFF_TEXT_RUNS_ROOT`` overrides it) unless that workdir already holds
the final checkpoint, then restores it. ``python experiments/train.py --config
experiments/configs/text_cpu.py:<process> --workdir workdirs/text_cpu_<process>`` writes the
same workdir. Training is deterministic, so a rerun from an empty cache gives the same models.

The measurements the claims share live here too: test-split bits per character, samples and
their generation time (the library's :mod:`jaxdiff.evaluation.text`), and infilling.
"""

import os
import pathlib

import jax.numpy as jnp
import numpy as np
from configs import text_cpu  # experiments/configs/text_cpu.py (experiments/ on the path)

import jaxdiff as jd
from jaxdiff.evaluation import text as text_evaluation

_REPO = pathlib.Path(__file__).resolve().parents[2]

PROCESSES = ("absorbing", "uniform", "masked", "autoregressive")
DIFFUSION = PROCESSES[:3]
SEED = 0


def default_root() -> pathlib.Path:
    return pathlib.Path(os.environ.get("JAXDIFF_TEXT_RUNS_ROOT", _REPO / "workdirs"))


def run_config(process: str) -> jd.train.ExperimentConfig:
    return jd.train.from_dict(text_cpu.get_config(process).to_dict())


def trained_run(process: str, root=None):
    """``(run, state)`` of ``process``'s run, training it first unless it is complete."""
    workdir = pathlib.Path(root if root is not None else default_root()) / f"text_cpu_{process}"
    config = run_config(process)
    if (workdir / "config.json").exists() and (
            jd.train.with_process_defaults(jd.train.load_config(workdir))
            != jd.train.with_process_defaults(config)):
        raise ValueError(f"{workdir} holds a run with another config; remove it")
    if not (workdir / "checkpoints" / str(config.train.num_steps)).exists():
        print(f"[_text_runs] training {process} for {config.train.num_steps} steps in "
              f"{workdir}", flush=True)
        jd.train.train(config, workdir, progress=False)
    return jd.train.restore_workdir(workdir)


def run_info(process: str, root=None) -> dict:
    """The run's size, training speed and last held-out numbers, for the results files."""
    run, state = trained_run(process, root)
    workdir = pathlib.Path(root if root is not None else default_root()) / f"text_cpu_{process}"
    lines = jd.train.read_metrics(workdir)
    evals = [m for m in lines if "eval_bpc" in m]
    speeds = [m["steps_per_second"] for m in lines if "steps_per_second" in m]
    return {"process": process, "parameters": jd.models.count_params(state.params),
            "train_steps": int(state.step), "final_eval_bpc": evals[-1]["eval_bpc"],
            "median_steps_per_second": float(np.median(speeds)),
            "config": f"experiments/configs/text_cpu.py:{process}"}


def denoiser(run, params):
    return jd.models.bind(run.apply_fn(), params)


def infill(run, params, key, values: np.ndarray, known: np.ndarray, *,
           steps: int) -> np.ndarray:
    """Fills the unknown positions of ``values [B, L]`` (``known`` True where given) with
    the run's sampler: diffusion with every known token clamped at every step (both sides
    of a gap), the autoregressive model left to right (left context only, no steps);
    ``int32 [B, L]``."""
    num_steps = steps if "num_steps" in run.task.sampler_options else None
    sample = jd.train.make_sampler(run, count=values.shape[0], num_steps=num_steps,
                                   inpaint_mask=jnp.asarray(known),
                                   inpaint_values=jnp.asarray(np.where(known, values, 0)))
    return np.asarray(sample(key, params))


def test_bpc(process: str, *, examples: int, bound_samples: int, batch_size: int = 32,
             root=None) -> dict:
    """Test-split bits per character of ``process``'s run (``text_evaluation``'s protocol), with
    the per-row values for paired comparisons."""
    run, state = trained_run(process, root)
    per_row = text_evaluation.row_bits_per_char(
        run, state.ema_params, text_evaluation.test_rows(run, examples),
        bound_samples=bound_samples, seed=SEED, batch_size=batch_size)
    return {"bpc": float(per_row.mean()),
            "bpc_stderr": float(per_row.std(ddof=1) / np.sqrt(len(per_row))),
            "per_row": per_row.tolist()}
