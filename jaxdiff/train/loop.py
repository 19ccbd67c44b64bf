"""The training loop: data -> sharded jitted steps -> checkpoints, metrics and samples.

One loop trains every process of ``diffusion.process``: Gaussian diffusion on image batches
(``{"image", "label"}``, sample grids as PNG), and D3PM (absorbing, uniform), masked
diffusion and the autoregressive baseline on random character windows (``{"tokens"}``,
samples as text), each with its held-out bound in bits per character (``eval_bpc``).

``train(config, workdir)`` resumes from the newest checkpoint in ``workdir`` if there is
one; a run interrupted at any point and restarted ends bit-identical to an uninterrupted run,
because the batches, the step keys and the state are all functions of the step.
"""

import dataclasses
import functools
import json
import os
import pathlib
import time

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental.multihost_utils import process_allgather
from jax.sharding import NamedSharding, PartitionSpec
from tqdm import tqdm

from jaxdiff import autoregressive, data, discrete, gaussian
from jaxdiff import models as jm
from jaxdiff.train import objectives
from jaxdiff.train.checkpoint import Checkpointer, abstract_like
from jaxdiff.train.config import (
    TEXT_PROCESSES,
    ExperimentConfig,
    from_dict,
    schedule_of,
    validate,
)
from jaxdiff.train.optimizer import make_optimizer
from jaxdiff.train.reporting import MetricsWriter, save_image_grid
from jaxdiff.train.state import TrainState, create_train_state
from jaxdiff.train.step import make_eval_step, make_train_step

SCHEDULE_FNS = {"linear": gaussian.linear_schedule, "cosine": gaussian.cosine_schedule,
                "sigmoid": gaussian.sigmoid_schedule}
TOKENIZER = discrete.CharTokenizer()     # text runs: a-z, space and [MASK] (V = 28)

Process = gaussian.Schedule | discrete.D3PMProcess | discrete.MaskedProcess | None


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything built from a config: data, the process, the model's functions.

    ``dataset`` is the training data (an image ``ArrayDataset``, or a text split's
    ``uint8`` character ids) and ``eval_dataset`` the held-out data (the image test split,
    or the text validation split cut into ``int32 [N, seq_len]`` rows); ``process`` is the
    Gaussian ``Schedule``, the ``D3PMProcess`` or the ``MaskedProcess`` (None for the
    autoregressive baseline).
    """

    config: ExperimentConfig
    dataset: data.ArrayDataset | np.ndarray
    eval_dataset: data.ArrayDataset | np.ndarray
    process: Process
    model_config: jm.ModelConfig
    graphdef: object
    rest: object
    optimizer: object
    mesh: jax.sharding.Mesh

    @property
    def is_text(self) -> bool:
        return self.config.diffusion.process in TEXT_PROCESSES

    @property
    def schedule(self) -> gaussian.Schedule:
        """The Gaussian noise schedule (Gaussian runs only)."""
        if not isinstance(self.process, gaussian.Schedule):
            raise ValueError(f"a {self.config.diffusion.process!r} run has no Gaussian "
                             "schedule")
        return self.process

    @property
    def num_classes(self) -> int | None:
        return self.dataset.num_classes if self.config.data.conditional else None


def vocab_size_for(process: str) -> int:
    """The token ids a text process uses: the 27 characters, plus ``[MASK]`` (28) for the
    processes that mask (absorbing, masked) and for the autoregressive baseline's BOS."""
    return len(TOKENIZER.alphabet) if process == "uniform" else TOKENIZER.vocab_size


def model_config_for(config: ExperimentConfig,
                     dataset: data.ArrayDataset | np.ndarray) -> jm.ModelConfig:
    """The preset's config fitted to the data (image size, channels, classes; or the text
    vocabulary, sequence length and causality) plus overrides."""
    base = jm.PRESETS[config.model.preset]
    process = config.diffusion.process
    if process in TEXT_PROCESSES:
        causal = process == "autoregressive"
        fitted = {"vocab_size": vocab_size_for(process), "max_length": config.data.seq_len,
                  "causal": causal, "time_conditioning": not causal}
        return jm.preset_config(config.model.preset, **{**fitted, **config.model.overrides})
    _, height, _, channels = dataset.images.shape
    size_field = "image_size" if hasattr(base, "image_size") else "input_size"
    sigma_field = "learn_sigma"
    fitted = {size_field: height, "in_channels": channels,
              "num_classes": dataset.num_classes if config.data.conditional else None,
              sigma_field: config.diffusion.learned_variance}
    return jm.preset_config(config.model.preset, **{**fitted, **config.model.overrides})


def diffusion_process(config: ExperimentConfig) -> Process:
    """The process object of ``config.diffusion`` (see :class:`Run`)."""
    f = config.diffusion
    schedule = schedule_of(f)
    if f.process == "gaussian":
        return SCHEDULE_FNS[schedule](num_steps=f.num_steps)
    if f.process in ("absorbing", "uniform"):
        return discrete.d3pm_process(
            f.process, vocab_size=vocab_size_for(f.process), num_steps=f.num_steps,
            schedule=schedule, mask_id=TOKENIZER.mask_id if f.process == "absorbing" else None)
    if f.process == "masked":
        return discrete.masked_process(schedule, vocab_size=TOKENIZER.vocab_size,
                                       mask_id=TOKENIZER.mask_id)
    return None


def _load_data(config: ExperimentConfig):
    d = config.data
    if config.diffusion.process in TEXT_PROCESSES:
        train_ids = data.load_text_corpus(d.name, "train", path=d.path)
        eval_rows = data.chunk(data.load_text_corpus(d.name, "validation", path=d.path),
                               d.seq_len)
        return train_ids, eval_rows
    return (data.load(d.name, "train", image_size=d.image_size),
            data.load(d.name, "test", image_size=d.image_size))


def build_run(config: ExperimentConfig) -> Run:
    """Validates ``config`` (before any compilation) and builds the run's parts."""
    validate(config, num_devices=jax.device_count())
    dataset, eval_dataset = _load_data(config)
    model_config = model_config_for(config, dataset)
    graphdef, _, rest = jm.abstract_init(model_config)
    o, t = config.optim, config.train
    optimizer = make_optimizer(learning_rate=o.learning_rate, total_steps=t.num_steps,
                               warmup_steps=o.warmup_steps, weight_decay=o.weight_decay,
                               clip_norm=o.clip_norm)
    return Run(config=config, dataset=dataset, eval_dataset=eval_dataset,
               process=diffusion_process(config), model_config=model_config,
               graphdef=graphdef, rest=rest, optimizer=optimizer, mesh=data.data_mesh())


def apply_fn_for(run: Run, *, train: bool = False):
    """The run's pure ``denoise_fn(params, x_t, t, cond, key)`` in its compute dtype."""
    dtype = run.config.model.compute_dtype
    return jm.make_denoise_fn(run.graphdef, run.rest, train=train,
                              compute_dtype=None if dtype is None else jnp.dtype(dtype))


def loss_fn_for(run: Run, *, train: bool):
    """The training objective (``train=True``), or what the loop reports on held-out
    data: the same loss for images, the bound per sequence in nats for text (see
    :mod:`jaxdiff.train.objectives`)."""
    f = run.config.diffusion
    apply_fn = apply_fn_for(run, train=train)
    if f.process == "gaussian":
        return objectives.gaussian_objective(
            apply_fn, run.process, prediction=f.prediction, weighting=f.weighting,
            learned_variance=f.learned_variance, num_classes=run.num_classes,
            label_dropout=f.label_dropout if train else 0.0)
    if f.process in ("absorbing", "uniform"):
        if train:
            return objectives.d3pm_objective(apply_fn, run.process,
                                             hybrid_coeff=f.hybrid_coeff)
        return objectives.d3pm_bound_objective(apply_fn, run.process)
    if f.process == "masked":
        return objectives.masked_objective(apply_fn, run.process)
    return objectives.autoregressive_objective(apply_fn)


def initial_state(run: Run) -> TrainState:
    key = jax.random.key(run.config.train.seed)
    _, params, _ = jm.init(run.model_config, key=jax.random.fold_in(key, 0))
    return create_train_state(params, run.optimizer, jax.random.fold_in(key, 1))


def make_sampler(run: Run, *, num_steps: int, count: int, sampler: str = "ddim",
                 guidance_scale: float | None = None):
    """``sample(key, params)``, jitted: images ``[count, H, W, C]`` from ``sampler`` with
    ``num_steps`` steps (conditional runs draw the classes round-robin), or text ids
    ``int32 [count, seq_len]`` from the process's own sampler (D3PM ancestral or masked
    unmasking with ``num_steps`` steps; the autoregressive baseline left to right with its
    key-value cache, ignoring ``num_steps``)."""
    if run.is_text:
        return _text_sampler(run, num_steps=num_steps, count=count)
    f = run.config.diffusion
    apply_fn = apply_fn_for(run)
    shape = (count,) + run.dataset.images.shape[1:]
    cond = null = None
    if run.num_classes is not None:
        cond = jnp.arange(count, dtype=jnp.int32) % run.num_classes
        null = jnp.full_like(cond, run.num_classes)

    @jax.jit
    def sample(key, params):
        return gaussian.sample(
            key, jm.bind(apply_fn, params), run.schedule, shape, sampler=sampler,
            num_steps=num_steps, prediction=f.prediction,
            variance="learned" if f.learned_variance else "beta", clip_x0=True, cond=cond,
            guidance_scale=guidance_scale if cond is not None else None, null_cond=null)

    return sample


def _text_sampler(run: Run, *, num_steps: int, count: int):
    shape = (count, run.config.data.seq_len)
    process = run.process
    if run.config.diffusion.process == "autoregressive":
        init_cache, decode = jm.make_decode_fns(run.graphdef, run.rest)

        @jax.jit
        def sample(key, params):
            return autoregressive.ar_sample_cached(
                key, functools.partial(decode, params), init_cache(params, count), shape,
                bos_id=objectives.BOS_ID)

        return sample
    apply_fn = apply_fn_for(run)
    if isinstance(process, discrete.D3PMProcess):
        steps = min(num_steps, process.num_steps)

        @jax.jit
        def sample(key, params):
            return discrete.d3pm_sample(key, jm.bind(apply_fn, params), process, shape,
                                        num_steps=steps)

        return sample

    @jax.jit
    def sample(key, params):
        return discrete.masked_sample(key, jm.bind(apply_fn, params), process, shape,
                                      num_steps=num_steps)

    return sample


def save_samples(run: Run, path_stem: pathlib.Path, samples: np.ndarray) -> pathlib.Path:
    """Writes ``samples`` next to ``path_stem``: an image grid ``.png``, or text ``.txt``
    (one decoded sample per line); returns the path."""
    if run.is_text:
        path = path_stem.with_suffix(".txt")
        path.write_text("".join(TOKENIZER.decode(row) + "\n" for row in samples))
        return path
    path = path_stem.with_suffix(".png")
    save_image_grid(path, samples, scale=max(1, 128 // samples.shape[1]))
    return path


def train_batches(run: Run, *, start_step: int):
    """The run's training batches from ``start_step`` on (this process's rows)."""
    t = run.config.train
    if run.is_text:
        crops = data.random_crops(run.dataset, batch_size=t.batch_size,
                                  seq_len=run.config.data.seq_len, seed=t.seed,
                                  start_step=start_step)
        return ({"tokens": tokens} for tokens in crops)
    return data.batches(run.dataset, batch_size=t.batch_size, seed=t.seed,
                        start_step=start_step)


def eval_batches(run: Run):
    """``train.eval_batches`` fixed held-out batches: the first windows of the text
    validation rows in order, or shuffled image test batches (seed 0)."""
    t = run.config.train
    if not run.is_text:
        batches = data.batches(run.eval_dataset, batch_size=t.batch_size, seed=0)
        return [next(batches) for _ in range(t.eval_batches)]
    rows = run.eval_dataset
    needed = t.eval_batches * t.batch_size
    if len(rows) < needed:
        raise ValueError(f"train.eval_batches x train.batch_size = {needed} held-out "
                         f"sequences, but the validation split has only {len(rows)} of "
                         f"data.seq_len={run.config.data.seq_len} characters")
    process, count = jax.process_index(), jax.process_count()
    local = t.batch_size // count
    return [{"tokens": rows[i * t.batch_size + process * local:
                            i * t.batch_size + (process + 1) * local]}
            for i in range(t.eval_batches)]


def load_config(workdir: str | os.PathLike) -> ExperimentConfig:
    """The config of a :func:`train` workdir, read from its ``config.json``.

    Raises:
      FileNotFoundError: naming ``workdir`` when it or its ``config.json`` is missing;
        ValueError when ``config.json`` is not a valid run config.
    """
    if not isinstance(workdir, (str, os.PathLike)):
        raise TypeError(f"workdir must be a path, got {type(workdir).__name__}")
    workdir = pathlib.Path(workdir)
    if not workdir.is_dir():
        raise FileNotFoundError(f"workdir {str(workdir)!r} is not a directory")
    config_path = workdir / "config.json"
    if not config_path.is_file():
        raise FileNotFoundError(f"workdir {str(workdir)!r} has no config.json: not a run "
                                "written by jaxdiff.train")
    try:
        return from_dict(json.loads(config_path.read_text()))
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"workdir {str(workdir)!r}: config.json is not a valid run config "
                         f"({err})") from err


def restore_workdir(workdir: str | os.PathLike) -> tuple[Run, TrainState]:
    """The run of a :func:`train` workdir (from its ``config.json``) and its newest state.

    Raises:
      FileNotFoundError: naming ``workdir`` when it, its ``config.json`` or a checkpoint is
        missing; ValueError when ``config.json`` is not a valid run config.
    """
    config = load_config(workdir)
    workdir = pathlib.Path(workdir)
    checkpoints = workdir / "checkpoints"
    if not checkpoints.is_dir():
        raise FileNotFoundError(f"workdir {str(workdir)!r} has no checkpoints/ directory")
    run = build_run(config)
    checkpointer = Checkpointer(checkpoints)
    try:
        restored = checkpointer.restore_latest(abstract_like(initial_state(run)))
    finally:
        checkpointer.close()
    if restored is None:
        raise FileNotFoundError(f"workdir {str(workdir)!r} has no checkpoint in {checkpoints}")
    return run, restored[0]


def _check_finite(pending: list[tuple[int, dict]]) -> None:
    for step, metrics in pending:
        loss = float(metrics["loss"])
        if not np.isfinite(loss):
            raise FloatingPointError(
                f"non-finite loss {loss} at step {step}; the run stops and keeps its last "
                "good checkpoint")


def initialize_distributed() -> None:
    """``jax.distributed.initialize`` for ``train.distributed=True``, once per process.

    The coordinator comes from ``JAX_COORDINATOR_ADDRESS`` (read by JAX itself); the process
    count and this process's id from ``JAX_NUM_PROCESSES`` and ``JAX_PROCESS_ID`` when set
    (JAX has no variables of its own for these); whatever is unset is left to JAX's cluster
    auto-detection (SLURM, Open MPI, Cloud TPU, ...). Call it before anything touches a
    device. CPU processes talk over gloo, JAX's default ``jax_cpu_collectives_implementation``
    (``tests/train/test_multihost.py`` trains two processes on 127.0.0.1 with it).
    """
    if jax.distributed.is_initialized():
        return

    def env_int(name):
        value = os.environ.get(name)
        return None if value in (None, "") else int(value)

    jax.distributed.initialize(num_processes=env_int("JAX_NUM_PROCESSES"),
                               process_id=env_int("JAX_PROCESS_ID"))


def train(config: ExperimentConfig, workdir: str | pathlib.Path, *,
          progress: bool = True) -> TrainState:
    """Trains (or resumes) the run of ``config`` in ``workdir``; returns the final state."""
    if config.train.distributed:
        initialize_distributed()
    run = build_run(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        (workdir / "config.json").write_text(json.dumps(dataclasses.asdict(config), indent=2))
    t = config.train
    replicated = NamedSharding(run.mesh, PartitionSpec())
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=t.keep_checkpoints)
    state = jax.device_put(initial_state(run), replicated)
    restored = checkpointer.restore_latest(abstract_like(state))
    if restored is not None:
        state = restored[0]
    train_step = jax.jit(make_train_step(loss_fn_for(run, train=True), run.optimizer,
                                         ema_decay=config.optim.ema_decay),
                         donate_argnums=0, out_shardings=(replicated, replicated))
    eval_step = jax.jit(make_eval_step(loss_fn_for(run, train=False)))
    sample = make_sampler(run, sampler=t.sampler, num_steps=t.sample_steps,
                          count=t.sample_count)
    held_out = eval_batches(run)
    lead = jax.process_index() == 0      # one process writes the run's files
    writer = MetricsWriter(workdir, tensorboard=t.tensorboard) if lead else None
    start = int(state.step)
    batches = train_batches(run, start_step=start)
    bar = tqdm(total=t.num_steps, initial=start, disable=not progress, desc="train")
    pending: list[tuple[int, dict]] = []
    tick, ticked_at = time.perf_counter(), start
    try:
        for step in range(start, t.num_steps):
            state, metrics = train_step(state, data.global_batch(next(batches), run.mesh))
            pending.append((step, metrics))
            done = step + 1
            if done % t.log_every == 0 or done % t.checkpoint_every == 0 or done == t.num_steps:
                _check_finite(pending)
                now = time.perf_counter()
                logged = {k: np.mean([float(m[k]) for _, m in pending]) for k in metrics}
                logged["steps_per_second"] = (done - ticked_at) / (now - tick)
                if lead:
                    writer.write(done, logged)
                bar.set_postfix(loss=f"{logged['loss']:.4f}",
                                steps_s=f"{logged['steps_per_second']:.2f}")
                pending, tick, ticked_at = [], now, done
            if done % t.eval_every == 0 or done == t.num_steps:
                eval_metrics = evaluate(run, eval_step, state.ema_params, held_out)
                if lead:
                    writer.write(done, eval_metrics)
            if done % t.checkpoint_every == 0 or done == t.num_steps:
                checkpointer.save(state, {"data_step": done})
            if (t.sample_every and done % t.sample_every == 0) or done == t.num_steps:
                samples = process_allgather(sample(jax.random.key(t.seed + 1),
                                                   state.ema_params), tiled=True)
                if lead:
                    save_samples(run, workdir / f"samples_{done:07d}", np.asarray(samples))
            bar.update(1)
    finally:
        bar.close()
        checkpointer.close()
    return state


def evaluate(run: Run, eval_step, params, held_out: list[dict]) -> dict[str, float]:
    """``eval_loss``: the mean of the held-out objective over ``held_out`` (fixed keys);
    text runs add ``eval_bpc``, the bound in bits per character."""
    losses = [float(eval_step(params, jax.random.key(i), data.global_batch(batch, run.mesh)))
              for i, batch in enumerate(held_out)]
    metrics = {"eval_loss": float(np.mean(losses))}
    if run.is_text:
        metrics["eval_bpc"] = metrics["eval_loss"] / (run.config.data.seq_len * np.log(2.0))
    return metrics
