"""The training loop: data -> sharded jitted steps -> checkpoints, metrics and samples.

``train(config, workdir)`` resumes from the newest checkpoint in ``workdir`` if there is
one; a run interrupted at any point and restarted ends bit-identical to an uninterrupted run,
because the batches, the step keys and the state are all functions of the step.
"""

import dataclasses
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

from jaxdiff import data, gaussian
from jaxdiff import models as jm
from jaxdiff.train.checkpoint import Checkpointer, abstract_like
from jaxdiff.train.config import ExperimentConfig, from_dict, validate
from jaxdiff.train.objectives import gaussian_objective
from jaxdiff.train.optimizer import make_optimizer
from jaxdiff.train.reporting import MetricsWriter, save_image_grid
from jaxdiff.train.state import TrainState, create_train_state
from jaxdiff.train.step import make_eval_step, make_train_step

SCHEDULE_FNS = {"linear": gaussian.linear_schedule, "cosine": gaussian.cosine_schedule,
                "sigmoid": gaussian.sigmoid_schedule}


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything built from a config: data, model functions, jitted steps."""

    config: ExperimentConfig
    dataset: data.ArrayDataset
    eval_dataset: data.ArrayDataset
    schedule: gaussian.Schedule
    model_config: jm.ModelConfig
    graphdef: object
    rest: object
    optimizer: object
    mesh: jax.sharding.Mesh

    @property
    def num_classes(self) -> int | None:
        return self.dataset.num_classes if self.config.data.conditional else None


def model_config_for(config: ExperimentConfig, dataset: data.ArrayDataset) -> jm.ModelConfig:
    """The preset's config fitted to the data (size, channels, classes) plus overrides."""
    base = jm.PRESETS[config.model.preset]
    _, height, _, channels = dataset.images.shape
    size_field = "image_size" if hasattr(base, "image_size") else "input_size"
    sigma_field = "learn_sigma"
    fitted = {size_field: height, "in_channels": channels,
              "num_classes": dataset.num_classes if config.data.conditional else None,
              sigma_field: config.diffusion.learned_variance}
    return jm.preset_config(config.model.preset, **{**fitted, **config.model.overrides})


def build_run(config: ExperimentConfig) -> Run:
    """Validates ``config`` (before any compilation) and builds the run's parts."""
    validate(config, num_devices=jax.device_count())
    d = config.data
    dataset = data.load(d.name, "train", image_size=d.image_size)
    eval_dataset = data.load(d.name, "test", image_size=d.image_size)
    model_config = model_config_for(config, dataset)
    graphdef, _, rest = jm.abstract_init(model_config)
    f = config.diffusion
    schedule = SCHEDULE_FNS[f.schedule](num_steps=f.num_steps)
    o, t = config.optim, config.train
    optimizer = make_optimizer(learning_rate=o.learning_rate, total_steps=t.num_steps,
                               warmup_steps=o.warmup_steps, weight_decay=o.weight_decay,
                               clip_norm=o.clip_norm)
    return Run(config=config, dataset=dataset, eval_dataset=eval_dataset, schedule=schedule,
               model_config=model_config, graphdef=graphdef, rest=rest, optimizer=optimizer,
               mesh=data.data_mesh())


def apply_fn_for(run: Run, *, train: bool = False):
    """The run's pure ``denoise_fn(params, x_t, t, cond, key)`` in its compute dtype."""
    dtype = run.config.model.compute_dtype
    return jm.make_denoise_fn(run.graphdef, run.rest, train=train,
                              compute_dtype=None if dtype is None else jnp.dtype(dtype))


def loss_fn_for(run: Run, *, train: bool):
    f = run.config.diffusion
    apply_fn = apply_fn_for(run, train=train)
    return gaussian_objective(apply_fn, run.schedule, prediction=f.prediction,
                              weighting=f.weighting, learned_variance=f.learned_variance,
                              num_classes=run.num_classes,
                              label_dropout=f.label_dropout if train else 0.0)


def initial_state(run: Run) -> TrainState:
    key = jax.random.key(run.config.train.seed)
    _, params, _ = jm.init(run.model_config, key=jax.random.fold_in(key, 0))
    return create_train_state(params, run.optimizer, jax.random.fold_in(key, 1))


def make_sampler(run: Run, *, sampler: str, num_steps: int, count: int,
                 guidance_scale: float | None = None):
    """``sample(key, params) -> images [count, H, W, C]``, jitted; conditional runs draw the
    classes round-robin."""
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


def restore_workdir(workdir: str | os.PathLike) -> tuple[Run, TrainState]:
    """The run of a :func:`train` workdir (from its ``config.json``) and its newest state.

    Raises:
      FileNotFoundError: naming ``workdir`` when it, its ``config.json`` or a checkpoint is
        missing; ValueError when ``config.json`` is not a valid run config.
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
        config = from_dict(json.loads(config_path.read_text()))
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"workdir {str(workdir)!r}: config.json is not a valid run config "
                         f"({err})") from err
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
    lead = jax.process_index() == 0      # one process writes the run's files
    writer = MetricsWriter(workdir, tensorboard=t.tensorboard) if lead else None
    start = int(state.step)
    batches = data.batches(run.dataset, batch_size=t.batch_size, seed=t.seed, start_step=start)
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
                eval_loss = evaluate(run, eval_step, state.ema_params)
                if lead:
                    writer.write(done, {"eval_loss": eval_loss})
            if done % t.checkpoint_every == 0 or done == t.num_steps:
                checkpointer.save(state, {"data_step": done})
            if (t.sample_every and done % t.sample_every == 0) or done == t.num_steps:
                images = process_allgather(sample(jax.random.key(t.seed + 1), state.ema_params),
                                           tiled=True)
                if lead:
                    save_image_grid(workdir / f"samples_{done:07d}.png", np.asarray(images),
                                    scale=max(1, 128 // images.shape[1]))
            bar.update(1)
    finally:
        bar.close()
        checkpointer.close()
    return state


def evaluate(run: Run, eval_step, params) -> float:
    """Mean loss over ``train.eval_batches`` fixed held-out batches (fixed keys)."""
    t = run.config.train
    batches = data.batches(run.eval_dataset, batch_size=t.batch_size, seed=0)
    losses = [float(eval_step(params, jax.random.key(i),
                              data.global_batch(next(batches), run.mesh)))
              for i in range(t.eval_batches)]
    return float(np.mean(losses))
