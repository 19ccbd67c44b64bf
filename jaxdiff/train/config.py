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
import difflib
from typing import Any, get_origin

from jaxdiff._validation import config_error
from jaxdiff.data.sharding import mesh_shape
from jaxdiff.models.presets import preset_config
from jaxdiff.tasks import get_task
from jaxdiff.tasks.base import PROCESS_SETTINGS


def _setting(default, meaning: str, *, factory=None):
    """A config field with its one line of meaning (``experiments/train.py --settings``)."""
    if factory is not None:
        return dataclasses.field(default_factory=factory, metadata={"help": meaning})
    return dataclasses.field(default=default, metadata={"help": meaning})


@dataclasses.dataclass(frozen=True)
class DataConfig:
    """What to train on (see :func:`jaxdiff.data.load` and :mod:`jaxdiff.data.text`)."""

    name: str = _setting("digits", "digits | mnist_5k | fashion_mnist | tfds:<name> | a folder "
                                   "of images | an .npz/.npy file | enwiki_gensim | text8")
    image_size: int | None = _setting(16, "images: output size (None keeps the native size)")
    conditional: bool = _setting(False, "condition the model on the class labels (images) or "
                                        "the article group (text, enwiki_gensim)")
    seq_len: int = _setting(256, "text: tokens (characters by default) per training "
                                 "sequence")
    tokenizer: str = _setting("chars", "text: chars | bpe (trained on the corpus's training "
                                       "split) | a tokenizer.json file")
    vocab_size: int | None = _setting(None, "text, tokenizer=bpe: its vocabulary size (None: "
                                            "512; [MASK] is one more)")
    path: str | None = _setting(None, "text: the text8 file (name=text8 only)")
    article_groups: int = _setting(4, "conditional text: the labels, page i of the dump in "
                                      "group i mod article_groups")
    download: bool = _setting(False, "tfds:<name> only: let TFDS download and prepare it")
    autoencoder: str | None = _setting(None, "images: train on the latents of this frozen "
                                             "autoencoder (an autoencoder run's workdir, or "
                                             "diffusers:DIR); None: on the pixels")
    latents: str = _setting("cached", "latent runs: 'cached' (one posterior draw per image, "
                                      "made once) or 'per_batch' (each batch encoded when "
                                      "drawn, a fresh draw)")
    text_encoder: str | None = _setting(None, "captioned images, conditional: the text encoder, "
                                              "frozen all-MiniLM-L6-v2 (None) or 'trainable' "
                                              "(the network's own)")
    caption_length: int = _setting(24, "captioned images: tokens per encoded caption, [CLS] "
                                       "and [SEP] included")


@dataclasses.dataclass(frozen=True)
class ModelConfig:
    """A preset of ``jaxdiff.models`` and overrides of its config fields."""

    preset: str = _setting("unet_tiny", "a preset of jaxdiff.models.PRESETS")
    overrides: dict[str, Any] = _setting(None, "fields of the preset's config to replace "
                                               "(set in the config file)", factory=dict)
    compute_dtype: str | None = _setting(None, "None (float32) or bfloat16 (mixed precision)")


@dataclasses.dataclass(frozen=True)
class DiffusionConfig:
    """The process (a key of :data:`jaxdiff.tasks.TASKS`) and its settings; each task checks
    the ones it uses."""

    process: str = _setting("gaussian", "gaussian | flow | edm | absorbing | uniform | masked "
                                        "| block | sedd_absorbing | sedd_uniform | "
                                        "autoregressive | autoencoder (jaxdiff.tasks.TASKS)")
    schedule: str | None = _setting(None, "the process's noise schedule or path (None: its "
                                          "default)")
    num_steps: int | None = _setting(None, "gaussian / D3PM: T, the discrete steps (None: "
                                           "1000)")
    prediction: str | None = _setting(None, "gaussian: eps | x0 | v (None: eps); flow: also "
                                            "velocity (None: velocity)")
    weighting: str | None = _setting(None, "gaussian: uniform | min_snr; flow / edm: also edm "
                                           "| sigmoid | likelihood (None: uniform; edm: edm)")
    time_density: str | None = _setting(None, "flow: uniform | logit_normal | mode (None: "
                                              "logit_normal); edm: log_normal")
    density_mean: float | None = _setting(None, "flow / edm: the density's mean (None: 0 for "
                                                "logit_normal, -1.2 for log_normal)")
    density_std: float | None = _setting(None, "flow / edm: the density's std (None: 1; "
                                               "log_normal 1.2)")
    time_shift: float | None = _setting(None, "flow: SD3's shift of the training times and "
                                              "the uniform sampling grid (None: 1)")
    sigma_data: float | None = _setting(None, "edm: the data's standard deviation (None: 0.5)")
    learned_variance: bool | None = _setting(None, "gaussian: learn the variance (L_hybrid; "
                                                   "None: False)")
    label_dropout: float | None = _setting(None, "conditional runs: null-label rate "
                                                 "(classifier-free guidance; None: 0.1)")
    hybrid_coeff: float | None = _setting(None, "D3PM: lambda of L_vb + lambda CE (None: "
                                                "0.01)")
    kl_weight: float | None = _setting(None, "autoencoder: beta of reconstruction + beta KL "
                                             "(None: 1e-6, LDM's)")
    reconstruction_loss: str | None = _setting(None, "autoencoder: l1 | l2 (None: l1)")
    adversarial_weight: float | None = _setting(None, "autoencoder: the patch discriminator's "
                                                      "weight (LDM's disc_weight 0.5; None: "
                                                      "0, off)")
    time_conditioning: bool | None = _setting(None, "masked: condition the denoiser on the "
                                                    "time (None: True; False is MDLM's, "
                                                    "needed by the cached sampler)")
    block_size: int | None = _setting(None, "block: tokens per block, dividing data.seq_len "
                                            "(None: 4, BD3-LM's LM1B headline)")


@dataclasses.dataclass(frozen=True)
class OptimConfig:
    """AdamW with linear warmup and cosine decay (:func:`jaxdiff.train.make_optimizer`)."""

    learning_rate: float = _setting(2e-4, "peak learning rate")
    warmup_steps: int = _setting(100, "linear warmup steps")
    weight_decay: float = _setting(0.0, "AdamW weight decay")
    clip_norm: float = _setting(1.0, "gradient clipping by global norm")
    ema_decay: float = _setting(0.999, "decay of the EMA parameters (evaluated and sampled)")
    phema_stds: tuple[float, ...] | None = _setting(
        None, "EDM2's post-hoc EMA: relative stds of the power-function EMAs tracked beside "
              "the EMA, e.g. (0.05, 0.1) (None: off); snapshots every train.phema_every")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """The loop: steps, checkpoints, logging, held-out evaluation and samples."""

    seed: int = _setting(0, "seeds the parameters, the steps' keys and the data order")
    batch_size: int = _setting(64, "global batch (divisible by the device count)")
    num_steps: int = _setting(1000, "training steps")
    checkpoint_every: int = _setting(500, "steps between checkpoints (and the last step)")
    keep_checkpoints: int = _setting(3, "checkpoints kept")
    log_every: int = _setting(50, "steps between metrics.jsonl rows")
    eval_every: int = _setting(500, "steps between held-out evaluations (EMA parameters)")
    eval_batches: int = _setting(4, "held-out batches per evaluation")
    sample_every: int = _setting(0, "steps between sample files (0: only at the end)")
    sample_count: int = _setting(64, "samples per sample file")
    sampler: str | None = _setting(None, "one of the process's samplers (None: its default)")
    sample_steps: int | None = _setting(50, "sampling steps (None: the sampler's own; T for "
                                            "D3PM; masked needs one; AR needs None)")
    tensorboard: bool = _setting(False, "also write TensorBoard events (tensorboardX)")
    microbatches: int = _setting(1, "gradient accumulation: each step's batch in this many "
                                    "micro-batches of one compiled step (1: off)")
    mesh: dict[str, int] = _setting(None, "the device mesh: sizes of its data and fsdp axes "
                                          "(-1: the devices left over); fsdp > 1 shards the "
                                          "parameters, EMAs and optimizer state over it",
                                    factory=lambda: {"data": -1, "fsdp": 1})
    distributed: bool = _setting(False, "call jax.distributed.initialize() (multi-host)")
    phema_every: int = _setting(0, "steps between post-hoc EMA snapshots (needs "
                                   "optim.phema_stds; 0: off)")
    init_from: str | None = _setting(None, "a finished run's workdir whose EMA parameters "
                                           "start this run (fine-tuning, reflow; the same "
                                           "network); a resumed run keeps its checkpoint")


@dataclasses.dataclass(frozen=True)
class ExperimentConfig:
    data: DataConfig = DataConfig()
    model: ModelConfig = ModelConfig()
    diffusion: DiffusionConfig = DiffusionConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()


def _sections():
    return [(f.name, f.type) for f in dataclasses.fields(ExperimentConfig)]


def _default(field: dataclasses.Field):
    return field.default_factory() if field.default is dataclasses.MISSING else field.default


def setting_names() -> list[str]:
    """Every setting as ``<section>.<field>``, in schema order."""
    return [f"{name}.{f.name}" for name, kind in _sections() for f in dataclasses.fields(kind)]


def describe_settings() -> str:
    """Every setting with its default and meaning, one line each (what ``python
    experiments/train.py --settings`` prints)."""
    lines = []
    for name, kind in _sections():
        lines.append(f"{name}: {kind.__doc__.splitlines()[0]}")
        for f in dataclasses.fields(kind):
            lines.append(f"  --config.{name}.{f.name}={_default(f)!r}  {f.metadata['help']}")
    return "\n".join(lines)


def check_setting_name(name: str) -> None:
    """Raises a one-line ``ValueError`` for a setting ``<section>.<field>`` that does not
    exist, with the nearest valid name. ``model.overrides.<field>`` is checked against the
    preset by :func:`validate`."""
    if name.startswith("model.overrides."):
        return
    known = setting_names()
    if name not in known:
        near = difflib.get_close_matches(name, known, n=1)
        hint = f"; did you mean config.{near[0]}?" if near else (
            "; python experiments/train.py --settings lists them")
        raise ValueError(f"unknown setting config.{name}{hint}")


def config_dict(values: dict | None = None):
    """Every setting as an ``ml_collections.ConfigDict``, at its default unless ``values``
    (nested ``{section: {field: value}}``, e.g. a config file's) sets it.

    Config files return this, so that the command line can override every setting
    (``--config.train.eval_batches=1``), not only the ones the file writes; a setting whose
    value is None is a typed placeholder, so it can be set too. An unknown setting in
    ``values`` is a ``ValueError`` naming it.
    """
    import ml_collections

    values = values or {}
    for section, fields in values.items():
        for field in fields:
            check_setting_name(f"{section}.{field}")
    out = {}
    for name, kind in _sections():
        given = values.get(name, {})
        out[name] = {}
        for f in dataclasses.fields(kind):
            value = given.get(f.name, _default(f))
            if value is None:
                types = [t for t in getattr(f.type, "__args__", (f.type,)) if t is not type(None)]
                # tuple[float, ...] -> tuple: the placeholder's type is the plain class
                value = ml_collections.FieldReference(
                    None, field_type=get_origin(types[0]) or types[0])
            out[name][f.name] = value
    return ml_collections.ConfigDict(out)


def schedule_of(diffusion: DiffusionConfig) -> str | None:
    """``diffusion.schedule``, or its process's default (None for a process without one,
    such as the autoregressive baseline)."""
    if diffusion.schedule is not None:
        return diffusion.schedule
    return get_task(diffusion.process).default_schedule()


def with_process_defaults(config: ExperimentConfig) -> ExperimentConfig:
    """``config`` with each process-owned ``diffusion`` field its process reads
    (:attr:`jaxdiff.tasks.Task.settings`) at the value :meth:`~jaxdiff.tasks.Task.setting`
    gives it: two configs of the same run compare equal whether a default was written out or
    left None (a cached run recorded before a field became process-owned)."""
    task = get_task(config.diffusion.process)
    values = {name: task.setting(config, name) for name in task.settings}
    return dataclasses.replace(config, diffusion=dataclasses.replace(config.diffusion, **values))


def _network(preset: str):
    """The network config of ``model.preset``, or a named error."""
    try:
        return preset_config(preset)
    except (OSError, ValueError) as err:
        _fail("model.preset", str(err).splitlines()[0])


def _fail(field: str, message: str):
    raise config_error(field, message)


def validate(config: ExperimentConfig, *, num_devices: int) -> ExperimentConfig:
    """Checks every field that can be checked before compiling; returns ``config``."""
    d, m, f, o, t = config.data, config.model, config.diffusion, config.optim, config.train
    task = get_task(f.process)
    if d.seq_len < 1:
        _fail("data.seq_len", f"must be >= 1, got {d.seq_len}")
    network = _network(m.preset)
    for name in PROCESS_SETTINGS:
        if getattr(f, name) is not None and name not in task.settings:
            _fail(f"diffusion.{name}", f"is not a setting of process {f.process!r} (it must be "
                                       f"None; the process reads {sorted(task.settings) or 'none'}"
                                       f" of {list(PROCESS_SETTINGS)})")
    if not isinstance(network, task.modality.networks):
        _fail("model.preset", f"{m.preset!r} is {type(network).__name__}; process "
                              f"{f.process!r} trains "
                              f"{' or '.join(c.__name__ for c in task.modality.networks)}")
    task.modality.check_config(config)
    task.check_config(config)
    fields = {x.name for x in dataclasses.fields(network)}
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
    if t.sampler is not None and t.sampler not in task.samplers:
        _fail("train.sampler", f"for process {f.process!r} must be None or one of "
                               f"{list(task.samplers)}, got {t.sampler!r}")
    for name in ("batch_size", "num_steps", "checkpoint_every", "keep_checkpoints", "log_every",
                 "eval_every", "eval_batches", "sample_count", "sample_steps"):
        if name == "sample_steps" and t.sample_steps is None:
            continue
        if getattr(t, name) < 1:
            _fail(f"train.{name}", f"must be >= 1, got {getattr(t, name)}")
    try:
        mesh_shape(t.mesh, num_devices)
    except ValueError as err:
        _fail("train.mesh", str(err))
    if t.batch_size % num_devices:
        _fail("train.batch_size", f"{t.batch_size} is not divisible by the {num_devices} "
                                  "devices")
    if isinstance(t.microbatches, bool) or not isinstance(t.microbatches, int) or (
            t.microbatches < 1):
        _fail("train.microbatches", f"must be an int >= 1, got {t.microbatches!r}")
    if t.batch_size % (t.microbatches * num_devices):
        _fail("train.microbatches", f"{t.microbatches} micro-batches of the batch of "
                                    f"{t.batch_size} do not each divide over the "
                                    f"{num_devices} devices (batch_size must be a multiple "
                                    f"of microbatches x devices = "
                                    f"{t.microbatches * num_devices})")
    if o.learning_rate <= 0 or not 0 <= o.ema_decay < 1 or o.warmup_steps < 0:
        _fail("optim", f"need learning_rate > 0, 0 <= ema_decay < 1, warmup_steps >= 0; got "
                       f"{o}")
    if o.phema_stds is not None:
        if not o.phema_stds or not all(0 < s < 12 ** -0.5 for s in o.phema_stds):
            _fail("optim.phema_stds", f"must be a non-empty tuple of relative stds in "
                                      f"(0, 0.2887), got {o.phema_stds!r}")
        if t.phema_every < 1:
            _fail("train.phema_every", f"must be >= 1 with optim.phema_stds set, got "
                                       f"{t.phema_every}")
    elif t.phema_every:
        _fail("train.phema_every", "needs optim.phema_stds (the profiles it snapshots)")
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
        if isinstance(section.get("phema_stds"), list):
            section["phema_stds"] = tuple(section["phema_stds"])
        sections[field.name] = field.type(**section)
    for key in values:
        if key not in sections:
            _fail(key, "is not a known section")
    return ExperimentConfig(**sections)
