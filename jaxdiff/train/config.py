"""The training run's settings as frozen dataclasses, validated before anything compiles.

One config trains any process of :data:`jaxdiff.tasks.TASKS` (``diffusion.process``):
``"gaussian"`` on an image dataset, or ``"absorbing"`` / ``"uniform"`` (D3PM), ``"masked"``
(continuous-time masked diffusion) or ``"autoregressive"`` (the causal baseline) on a
character corpus. The checks that depend on the process are the task's
(``Task.check_config``, its modality's, its ``schedules`` and ``samplers``).

Experiment files (``experiments/configs/*.py``) build an ``ml_collections.ConfigDict``;
``from_dict`` turns its ``to_dict()`` into these dataclasses, rejecting unknown fields and
invalid values with a message that names the field (``train.batch_size``, ...). Library code
takes the dataclasses, never a ConfigDict.
"""

import dataclasses
from typing import Any

from jaxdiff.models.presets import PRESETS
from jaxdiff.tasks import config_error, get_task


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """``name``: an embedded image dataset, ``tfds:<name>``, or a character corpus
    (``enwiki_gensim``, ``text8``); ``image_size``: None keeps it (images); ``seq_len``:
    characters per training sequence (text); ``path``: the ``text8`` file."""

    name: str = "digits"
    image_size: int | None = 16
    conditional: bool = False      # feed the labels to the model (class conditioning)
    seq_len: int = 256
    path: str | None = None
    download: bool = False         # tfds:<name> only: let TFDS download and prepare it


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A preset of ``jaxdiff.models`` and overrides of its config fields."""

    preset: str = "unet_tiny"
    overrides: dict[str, Any] = dataclasses.field(default_factory=dict)
    compute_dtype: str | None = None   # "bfloat16" for mixed precision


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """``schedule``: the noise schedule of ``process`` (one of its task's ``schedules``; None
    is the process's default, see :func:`schedule_of`); ``num_steps``:
    ``T`` of the discrete-time processes (gaussian, absorbing, uniform); ``prediction``,
    ``weighting``, ``learned_variance`` and ``label_dropout`` are Gaussian settings;
    ``hybrid_coeff``: D3PM's lambda."""

    process: str = "gaussian"
    schedule: str | None = None
    num_steps: int = 1000
    prediction: str = "eps"
    weighting: str = "uniform"
    learned_variance: bool = False
    label_dropout: float = 0.1     # classifier-free guidance training, when conditional
    hybrid_coeff: float = 0.01


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    learning_rate: float = 2e-4
    warmup_steps: int = 100
    weight_decay: float = 0.0
    clip_norm: float = 1.0
    ema_decay: float = 0.999


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    seed: int = 0
    batch_size: int = 64
    num_steps: int = 1000
    checkpoint_every: int = 500
    keep_checkpoints: int = 3
    log_every: int = 50
    eval_every: int = 500
    eval_batches: int = 4
    sample_every: int = 0          # 0: only at the end
    sample_count: int = 64
    sampler: str | None = None     # one of the task's samplers; None: its default
    sample_steps: int | None = 50  # None: the sampler's own (T for D3PM; masked needs a K;
                                   # the AR baseline needs None)
    tensorboard: bool = False
    distributed: bool = False      # call jax.distributed.initialize() (multi-host)


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()


def schedule_of(diffusion: DiffusionConfig) -> str | None:
    """``diffusion.schedule``, or its process's default (None for a process without one,
    such as the autoregressive baseline)."""
    if diffusion.schedule is not None:
        return diffusion.schedule
    return get_task(diffusion.process).default_schedule()


def _fail(field: str, message: str):
    raise config_error(field, message)


def validate(config: ExperimentConfig, *, num_devices: int) -> ExperimentConfig:
    """Checks every field that can be checked before compiling; returns ``config``."""
    d, m, f, o, t = config.data, config.model, config.diffusion, config.optim, config.train
    task = get_task(f.process)
    if d.seq_len < 1:
        _fail("data.seq_len", f"must be >= 1, got {d.seq_len}")
    if m.preset not in PRESETS:
        _fail("model.preset", f"must be one of {sorted(PRESETS)}, got {m.preset!r}")
    task.modality.check_config(config)
    task.check_config(config)
    fields = {x.name for x in dataclasses.fields(PRESETS[m.preset])}
    for key in m.overrides:
        if key not in fields:
            _fail(f"model.overrides.{key}", f"is not a field of {m.preset}'s config")
    if m.compute_dtype not in (None, "float32", "bfloat16"):
        _fail("model.compute_dtype", f"must be None, 'float32' or 'bfloat16', "
                                     f"got {m.compute_dtype!r}")
    if not task.schedules and f.schedule is not None:
        _fail("diffusion.schedule", f"process {f.process!r} has no noise schedule; it must "
                                    f"be None, got {f.schedule!r}")
    if task.schedules and schedule_of(f) not in task.schedules:
        _fail("diffusion.schedule", f"for process {f.process!r} must be one of "
                                    f"{list(task.schedules)}, got {f.schedule!r}")
    if f.num_steps < 1:
        _fail("diffusion.num_steps", f"must be >= 1, got {f.num_steps}")
    if t.sampler is not None and t.sampler not in task.samplers:
        _fail("train.sampler", f"for process {f.process!r} must be None or one of "
                               f"{list(task.samplers)}, got {t.sampler!r}")
    for name in ("batch_size", "num_steps", "checkpoint_every", "keep_checkpoints", "log_every",
                 "eval_every", "eval_batches", "sample_count", "sample_steps"):
        if name == "sample_steps" and t.sample_steps is None:
            continue
        if getattr(t, name) < 1:
            _fail(f"train.{name}", f"must be >= 1, got {getattr(t, name)}")
    if t.batch_size % num_devices:
        _fail("train.batch_size", f"{t.batch_size} is not divisible by the {num_devices} "
                                  "devices")
    if o.learning_rate <= 0 or not 0 <= o.ema_decay < 1 or o.warmup_steps < 0:
        _fail("optim", f"need learning_rate > 0, 0 <= ema_decay < 1, warmup_steps >= 0; got "
                       f"{o}")
    return config


def from_dict(values: dict) -> ExperimentConfig:
    """Builds the dataclasses from a nested dict; an unknown key is an error naming it."""
    sections = {}
    for field in dataclasses.fields(ExperimentConfig):
        section = dict(values.get(field.name, {}))
        known = {x.name for x in dataclasses.fields(field.type)}
        for key in section:
            if key not in known:
                _fail(f"{field.name}.{key}", "is not a known field")
        if "overrides" in section:   # JSON turns tuples into lists; configs must hash
            section["overrides"] = {k: tuple(v) if isinstance(v, list) else v
                                    for k, v in dict(section["overrides"]).items()}
        sections[field.name] = field.type(**section)
    for key in values:
        if key not in sections:
            _fail(key, "is not a known section")
    return ExperimentConfig(**sections)
