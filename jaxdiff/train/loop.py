"""The training loop: data -> sharded jitted steps -> checkpoints, metrics and samples.

One loop trains every process of ``diffusion.process``: what differs between them (data,
objective, held-out number, sampler, sample files) is the run's task
(:data:`jaxdiff.tasks.TASKS`), so nothing here asks which process it is.

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

from jaxdiff import data
from jaxdiff import models as jm
from jaxdiff._validation import config_error
from jaxdiff.tasks import Task, get_task
from jaxdiff.tasks.base import PROCESS_SETTINGS
from jaxdiff.train.checkpoint import Checkpointer, abstract_like
from jaxdiff.train.config import ExperimentConfig, TrainConfig, from_dict, validate
from jaxdiff.train.optimizer import make_optimizer
from jaxdiff.train.phema import exponent_from_std
from jaxdiff.train.preemption import StopOnSignals
from jaxdiff.train.reporting import MetricsWriter
from jaxdiff.train.sharding import state_sharding
from jaxdiff.train.snapshots import save_snapshot
from jaxdiff.train.state import TrainState, create_train_state
from jaxdiff.train.step import make_eval_step, make_train_step


@dataclasses.dataclass(frozen=True)
class Run:
    """Everything built from a config: its task, data, process and the model's functions.

    ``task`` is the process's :class:`jaxdiff.tasks.Task` (``TASKS[diffusion.process]``);
    ``dataset`` is the training data (an image ``ArrayDataset``, or a text split's
    ``uint8`` character ids) and ``eval_dataset`` the held-out data (the image test split,
    or the text validation split cut into ``int32 [N, seq_len]`` rows); ``process`` is the
    task's process object (a Gaussian ``Schedule``, a ``D3PMProcess``, a ``MaskedProcess``;
    None for the autoregressive baseline).
    """

    config: ExperimentConfig
    task: Task
    dataset: data.ArrayDataset | np.ndarray
    eval_dataset: data.ArrayDataset | np.ndarray
    process: object
    model_config: jm.NetworkConfig
    graphdef: object
    rest: object
    optimizer: object
    mesh: jax.sharding.Mesh

    @property
    def num_classes(self) -> int | None:
        """The number of classes of a class-conditional image run; None otherwise."""
        return self.dataset.num_classes if self.config.data.conditional else None

    def apply_fn(self, *, train: bool = False):
        """The run's pure ``apply_fn(params, x_t, t, cond, key)`` in its compute dtype
        (``jaxdiff.models.bind`` turns it into a ``denoise_fn``)."""
        return jm.make_apply_fn(self.graphdef, self.rest, train=train,
                                compute_dtype=self.compute_dtype)

    @property
    def compute_dtype(self):
        """``model.compute_dtype`` as a dtype, or None (the parameters' dtype)."""
        dtype = self.config.model.compute_dtype
        return None if dtype is None else jnp.dtype(dtype)

    def decode_fns(self):
        """``(init_cache, decode)`` of a causal or block text network in the run's compute
        dtype (``jaxdiff.models.functional.make_decode_fns``)."""
        return jm.make_decode_fns(self.graphdef, self.rest, compute_dtype=self.compute_dtype)


def model_config_for(config: ExperimentConfig, dataset) -> jm.NetworkConfig:
    """The preset's config with the fields the data and the process fix, then the config's
    overrides. A pretrained network (``diffusers:DIR``) is what it is: a field the data or
    the process would set otherwise is a named error."""
    task = get_task(config.diffusion.process)
    fitted = {**task.modality.model_fields(config, dataset), **task.model_fields(config)}
    if _is_pretrained(config):
        network = jm.preset_config(config.model.preset)
        for name, value in fitted.items():
            if getattr(network, name) != value:
                raise config_error(_FITTED_BY[name], f"the pretrained {config.model.preset!r} "
                                                     f"has {name}={getattr(network, name)!r}; "
                                                     f"this run's data and process give "
                                                     f"{value!r}")
        return dataclasses.replace(network, **config.model.overrides)
    return jm.preset_config(config.model.preset, **{**fitted, **config.model.overrides})


# the config field that fixes each model field a run's data or process sets
_FITTED_BY = {"image_size": "data.image_size", "in_channels": "data.name",
              "num_classes": "data.conditional", "text_dim": "data.text_encoder",
              "caption_vocab_size": "data.text_encoder", "caption_length": "data.caption_length",
              "discriminator_layers": "diffusion.adversarial_weight",
              "learned_variance": "diffusion.learned_variance",
              "vocab_size": "diffusion.process", "causal": "diffusion.process",
              "time_conditioning": "diffusion.process", "block_size": "diffusion.block_size"}


def _is_pretrained(config: ExperimentConfig) -> bool:
    return config.model.preset.startswith(jm.DIFFUSERS_PREFIX)


def _absolute_pretrained(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with a pretrained network's folder as an absolute path: the run is rebuilt
    from it (its network and scheduler configs) wherever it is resumed or evaluated."""
    if not _is_pretrained(config):
        return config
    folder = pathlib.Path(config.model.preset[len(jm.DIFFUSERS_PREFIX):]).resolve()
    return dataclasses.replace(config, model=dataclasses.replace(
        config.model, preset=f"{jm.DIFFUSERS_PREFIX}{folder}"))


def build_run(config: ExperimentConfig) -> Run:
    """Validates ``config`` (before any compilation) and builds the run's parts."""
    validate(config, num_devices=jax.device_count())
    task = get_task(config.diffusion.process)
    dataset, eval_dataset = task.modality.load(config)
    process = task.process(config)
    if getattr(dataset, "noise", None) is not None:
        if task.coupled_noise is None:
            raise config_error("data.name", f"{config.data.name!r} couples each image with "
                                            f"noise (a reflow pairs file); process "
                                            f"{config.diffusion.process!r} trains on images "
                                            f"alone (reflow trains the flow process)")
        try:
            task.coupled_noise(process)
        except ValueError as err:
            raise config_error("diffusion.schedule", str(err)) from None
    model_config = model_config_for(config, dataset)
    graphdef, abstract_params, rest = jm.abstract_init(model_config)
    o, t = config.optim, config.train
    optimizer = make_optimizer(learning_rate=o.learning_rate, total_steps=t.num_steps,
                               warmup_steps=o.warmup_steps, weight_decay=o.weight_decay,
                               clip_norm=o.clip_norm)
    mesh = data.device_mesh(config.train.mesh)
    try:
        state_sharding(abstract_params, mesh)
    except ValueError as err:
        raise config_error("train.mesh", f"{config.train.mesh} cannot shard the parameters: "
                                         f"params{err}") from None
    return Run(config=config, task=task, dataset=dataset, eval_dataset=eval_dataset,
               process=process, model_config=model_config,
               graphdef=graphdef, rest=rest, optimizer=optimizer, mesh=mesh)


def loss_fn_for(run: Run, *, train: bool):
    """``loss_fn(params, key, batch) -> [B]``: the task's training objective
    (``train=True``) or what the loop reports on held-out data (for text an unbiased bound
    per sequence in nats)."""
    return run.task.objective(run) if train else run.task.held_out(run)


def _phema_stds(run: Run) -> tuple[float, ...]:
    return tuple(run.config.optim.phema_stds or ())


def initial_state(run: Run) -> TrainState:
    """Step 0: the parameters drawn from ``train.seed``, or a pretrained network's."""
    key = jax.random.key(run.config.train.seed)
    if _is_pretrained(run.config):
        from jaxdiff.pretrained import load_model  # the loop does not need it otherwise

        _, params = load_model(run.config.model.preset[len(jm.DIFFUSERS_PREFIX):])
        want = jm.abstract_init(run.model_config)[1]
        if jax.tree.map(jnp.shape, params) != jax.tree.map(jnp.shape, want):
            raise config_error("model.overrides", f"change the parameters of the pretrained "
                                                  f"{run.config.model.preset!r}: only fields "
                                                  f"that keep them (dropout, ...) can be set")
    else:
        _, params, _ = jm.init(run.model_config, key=jax.random.fold_in(key, 0))
    return create_train_state(params, run.optimizer, jax.random.fold_in(key, 1),
                              phema_profiles=len(_phema_stds(run)))


def placed(run: Run, state: TrainState) -> tuple[TrainState, TrainState]:
    """``state`` on the run's mesh and its shardings (:func:`jaxdiff.train.sharding.
    state_sharding`: the large arrays split over "fsdp", the rest replicated)."""
    shardings = state_sharding(state, run.mesh)
    return jax.device_put(state, shardings), shardings


def compiled_train_step(run: Run, shardings: TrainState):
    """The loop's step, jitted: ``(state, global batch) -> (state, metrics)`` with the state
    donated and returned on ``shardings`` and the metrics replicated."""
    train_step = make_train_step(
        loss_fn_for(run, train=True), run.optimizer, ema_decay=run.config.optim.ema_decay,
        phema_exponents=tuple(float(g) for g in exponent_from_std(_phema_stds(run))),
        microbatches=run.config.train.microbatches)
    return jax.jit(train_step, donate_argnums=0,
                   out_shardings=(shardings, NamedSharding(run.mesh, PartitionSpec())))


def state_from_workdir(run: Run, workdir: str | os.PathLike) -> TrainState:
    """Step 0 of ``run`` with the EMA parameters of the finished run in ``workdir`` as its
    parameters (and EMA), a fresh optimizer: ``train.init_from``."""
    source_run, source = restore_workdir(workdir)
    if source_run.model_config != run.model_config:
        raise config_error("train.init_from", f"{str(workdir)!r} trained another network "
                                              f"({source_run.model_config}); this run's is "
                                              f"{run.model_config}")
    key = jax.random.fold_in(jax.random.key(run.config.train.seed), 1)
    return create_train_state(source.ema_params, run.optimizer, key,
                              phema_profiles=len(_phema_stds(run)))


def make_sampler(run: Run, *, count: int, sampler: str | None = None, **options):
    """``sample(key, params)``, jitted: ``count`` samples from the task's ``sampler`` (its
    default when None) with ``options`` (``num_steps``, ``guidance_scale``, ...; None means
    not given). An option the process does not support is a ``ValueError`` naming it."""
    return run.task.sampler(run, count=count, sampler=sampler, **options)


def save_samples(run: Run, path_stem: pathlib.Path, samples: np.ndarray) -> pathlib.Path:
    """Writes ``samples`` next to ``path_stem`` (an image grid ``.png``, or text ``.txt``
    with one decoded sample per line); returns the path."""
    return run.task.modality.save_samples(run, path_stem, samples)


def train_batches(run: Run, *, start_step: int):
    """The run's training batches from ``start_step`` on (this process's rows)."""
    return run.task.modality.train_batches(run, start_step)


def eval_batches(run: Run) -> list:
    """``train.eval_batches`` fixed held-out batches."""
    return run.task.modality.eval_batches(run)


# Model config fields renamed since runs were first recorded: old name -> new name.
_RENAMED_MODEL_FIELDS = {"learn_sigma": "learned_variance", "input_size": "image_size"}

# ``config.json`` carries ``CONFIG_VERSION`` from version 2 on (unversioned files are 1).
# Version 2 placed UNet attention by level index (``attention_levels``) where version 1
# named spatial sizes (``attention_resolutions``, with these preset defaults). Version 3
# left the process-owned diffusion fields (``PROCESS_SETTINGS``) None where the process does
# not read them; earlier versions wrote prediction="eps" and weighting="uniform" for all.
# Version 4 made ``num_steps``, ``learned_variance``, ``label_dropout`` and ``hybrid_coeff``
# process-owned too (earlier versions wrote 1000, False, 0.1 and 0.01 for every run), and
# ``label_dropout`` None on runs without class labels. Version 5 gave the ``ddpm_cifar10``
# preset Ho et al.'s downsampling pad and time features (google/ddpm-cifar10-32's network);
# a run recorded earlier keeps the ones it trained with (:data:`_VERSION_5_DDPM_CIFAR10`).
# Version 6 put the column first in DiT's 2D position features, as the DiT code does; a DiT
# run recorded earlier keeps the rows first (:data:`_VERSION_6_DIT`).
CONFIG_VERSION = 6
_VERSION_5_DDPM_CIFAR10 = {"downsample_padding": 1, "timestep_cos_first": True,
                           "timestep_freq_shift": 0.0}
_VERSION_6_DIT = {"position_columns_first": False}
_VERSION_6_DIT_PRESETS = ("dit_s2", "dit_b2", "dit_xl2", "dit_tiny")
_VERSION_4_SETTINGS = ("num_steps", "learned_variance", "label_dropout", "hybrid_coeff")
_VERSION_1_ATTENTION = {"unet_tiny": (8,), "ddpm_cifar10": (16,)}


def recorded_config(config: ExperimentConfig) -> dict:
    """What :func:`train` writes to ``config.json``: the config and its schema version."""
    return {"version": CONFIG_VERSION, **dataclasses.asdict(config)}


def upgrade_recorded_config(values: dict) -> dict:
    """A ``config.json`` written by an earlier jaxdiff, in today's schema (same run).

    Earlier versions wrote ``train.sampler="ddim"`` for every run (text runs ignored it),
    a schedule and ``train.sample_steps`` for the autoregressive baseline (ignored too), and
    the model fields ``learn_sigma`` / ``input_size``. Those values now are errors, so they
    are read as what they meant: the process's default sampler, no schedule and no steps for
    the AR baseline, ``learned_variance`` / ``image_size``. A version-1 UNet's attention
    resolutions become the level indices of the same network; before version 3 (4 for
    ``num_steps``, ``learned_variance``, ``label_dropout``, ``hybrid_coeff``), the
    process-owned fields a process does not read become None, and before version 4 so does
    the ``label_dropout`` of a run without class labels; a ``ddpm_cifar10`` run recorded
    before version 5 keeps the preset's earlier padding and time features as overrides, and
    a DiT run recorded before version 6 its rows-first position features. Nothing else is
    changed.
    """
    values = {k: dict(v) if isinstance(v, dict) else v for k, v in values.items()}
    version = values.pop("version", 1)
    if not isinstance(version, int) or not 1 <= version <= CONFIG_VERSION:
        raise ValueError(f"version must be an integer in 1..{CONFIG_VERSION}, got {version!r}"
                         f" (a config.json of a newer jaxdiff?)")
    diffusion, train_ = values.get("diffusion", {}), values.get("train", {})
    task = get_task(diffusion.get("process", "gaussian"))
    if train_.get("sampler") is not None and train_["sampler"] not in task.samplers:
        train_["sampler"] = None
    if not task.schedules:
        diffusion["schedule"] = None
    if "num_steps" not in task.sampler_options:
        train_["sample_steps"] = None
    if version < 3:
        for name in PROCESS_SETTINGS:
            if name not in task.settings and name in diffusion:
                diffusion[name] = None
    if version < 4:
        for name in _VERSION_4_SETTINGS:
            if name not in task.settings and name in diffusion:
                diffusion[name] = None
        if not values.get("data", {}).get("conditional", False):
            diffusion["label_dropout"] = None
    model = values.get("model", {})
    if "overrides" in model:
        model["overrides"] = {_RENAMED_MODEL_FIELDS.get(k, k): v
                              for k, v in dict(model["overrides"]).items()}
    if version < 5 and model.get("preset") == "ddpm_cifar10":
        model["overrides"] = {**_VERSION_5_DDPM_CIFAR10, **dict(model.get("overrides", {}))}
    if version < 6 and model.get("preset") in _VERSION_6_DIT_PRESETS:
        model["overrides"] = {**_VERSION_6_DIT, **dict(model.get("overrides", {}))}
    if version == 1 and model.get("preset") in _VERSION_1_ATTENTION:
        model["overrides"] = _attention_as_levels(model, values.get("data", {}))
    return values


def _attention_as_levels(model: dict, data_values: dict) -> dict:
    """Version-1 overrides with ``attention_resolutions`` (spatial sizes) replaced by the
    ``attention_levels`` of the same network; the image size is the data's when the
    overrides do not set it."""
    overrides = dict(model.get("overrides", {}))
    resolutions = overrides.pop("attention_resolutions", _VERSION_1_ATTENTION[model["preset"]])
    image_size = overrides.get("image_size") or data_values.get("image_size")
    if image_size is None:
        image_size = data.load(data_values["name"], "train").images.shape[1]
    mults = overrides.get("channel_mults", jm.PRESETS[model["preset"]].channel_mults)
    sizes = [image_size // 2**level for level in range(len(mults))]
    overrides["attention_levels"] = tuple(sizes.index(r) for r in resolutions)
    return overrides


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
        return from_dict(upgrade_recorded_config(json.loads(config_path.read_text())))
    except (ValueError, TypeError, KeyError) as err:
        raise ValueError(f"workdir {str(workdir)!r}: config.json is not a valid run config "
                         f"({err})") from err


def restore_workdir(workdir: str | os.PathLike) -> tuple[Run, TrainState]:
    """The run of a :func:`train` workdir (from its ``config.json``) and its newest state,
    read onto one device whatever mesh wrote it (the run's ``train.mesh`` becomes the
    default, all devices on "data": a run sharded over 8 devices is read on any number).

    Raises:
      FileNotFoundError: naming ``workdir`` when it, its ``config.json`` or a checkpoint is
        missing; ValueError when ``config.json`` is not a valid run config.
    """
    config = load_config(workdir)
    config = dataclasses.replace(config, train=dataclasses.replace(config.train,
                                                                   mesh=TrainConfig().mesh))
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
    """Trains (or resumes) the run of ``config`` in ``workdir``; returns the final state.

    SIGTERM / SIGINT during training finish the current step, log it, save its checkpoint
    and return that state (a restart resumes from it); each step's evaluation runs after
    its checkpoint is written."""
    if config.train.distributed:
        initialize_distributed()
    config = _absolute_pretrained(config)
    run = build_run(config)
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    if jax.process_index() == 0:
        (workdir / "config.json").write_text(json.dumps(recorded_config(config), indent=2))
    t = config.train
    checkpointer = Checkpointer(workdir / "checkpoints", max_to_keep=t.keep_checkpoints)
    state, shardings = placed(run, initial_state(run))
    # the checkpoint is read onto this run's mesh, whichever mesh wrote it
    restored = checkpointer.restore_latest(abstract_like(state))
    if restored is not None:
        state = restored[0]
    elif t.init_from is not None:
        state = jax.device_put(state_from_workdir(run, t.init_from), shardings)
    phema_stds = _phema_stds(run)
    train_step = compiled_train_step(run, shardings)
    eval_step = jax.jit(make_eval_step(loss_fn_for(run, train=False)))
    sample = make_sampler(run, sampler=t.sampler, num_steps=t.sample_steps,
                          count=t.sample_count)
    held_out = eval_batches(run)
    lead = jax.process_index() == 0      # one process writes the run's files
    start = int(state.step)
    # Rows of steps after the restored one were computed by a run that was then lost: drop
    # them, so that after any number of kills and resumes each step is logged once.
    writer = MetricsWriter(workdir, tensorboard=t.tensorboard, resume_step=start) if lead \
        else None
    batches = train_batches(run, start_step=start)
    # Steps are dispatched asynchronously and wait at the log line; the bar advances there, by
    # the steps that finished, so that its rate is the measured one.
    bar = tqdm(total=t.num_steps, initial=start, disable=not progress, desc="train")
    pending: list[tuple[int, dict]] = []
    tick, ticked_at = time.perf_counter(), start
    try:
        with StopOnSignals(sync_every=t.log_every) as stop:
            for step in range(start, t.num_steps):
                state, metrics = train_step(state, data.global_batch(next(batches), run.mesh))
                pending.append((step, metrics))
                done = step + 1
                stopping = stop.requested(done)
                last = done == t.num_steps
                if done % t.log_every == 0 or done % t.checkpoint_every == 0 or last or stopping:
                    _check_finite(pending)
                    now = time.perf_counter()
                    logged = {k: np.mean([float(m[k]) for _, m in pending]) for k in metrics}
                    logged["steps_per_second"] = (done - ticked_at) / (now - tick)
                    if lead:
                        writer.write(done, logged)
                    bar.update(done - ticked_at)
                    bar.set_postfix(loss=f"{logged['loss']:.4f}",
                                    steps_s=f"{logged['steps_per_second']:.2f}")
                    pending, tick, ticked_at = [], now, done
                if done % t.checkpoint_every == 0 or last or stopping:
                    checkpointer.save(state, {"data_step": done})
                if phema_stds and (done % t.phema_every == 0 or last):
                    phema = process_allgather(state.phema, tiled=True)   # every process
                    if lead:
                        save_snapshot(workdir, done, phema_stds, phema)
                if stopping:
                    checkpointer.wait()
                    print(f"{stop.signal_name or 'a stop signal'}: stopped after step {done}; "
                          f"checkpoint saved in {checkpointer.directory}", flush=True)
                    break
                if done % t.eval_every == 0 or last:   # after its checkpoint is written
                    eval_metrics = evaluate(run, eval_step, state.ema_params, held_out)
                    if lead:
                        writer.write(done, eval_metrics)
                if (t.sample_every and done % t.sample_every == 0) or last:
                    samples = process_allgather(sample(jax.random.key(t.seed + 1),
                                                       state.ema_params), tiled=True)
                    if lead:
                        save_samples(run, workdir / f"samples_{done:07d}", np.asarray(samples))
    finally:
        bar.close()
        checkpointer.close()
    return state


def evaluate(run: Run, eval_step, params, held_out: list[dict]) -> dict[str, float]:
    """``eval_loss``: the mean of the held-out objective over ``held_out`` (fixed keys), and
    what the modality adds (text: ``eval_bpc``, the bound in bits per character)."""
    losses = [float(eval_step(params, jax.random.key(i), data.global_batch(batch, run.mesh)))
              for i, batch in enumerate(held_out)]
    eval_loss = float(np.mean(losses))
    return {"eval_loss": eval_loss, **run.task.modality.held_out_metrics(run, eval_loss)}
