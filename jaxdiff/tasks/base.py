"""What a training process is to the rest of the library: a :class:`Task` value of pure
functions, and the :class:`Modality` (images or text) whose data plumbing it shares.

The loop, ``experiments/sample.py`` and the evaluation never ask which process a run is:
they call the run's task. A task's functions take the run (``jaxdiff.train.Run``: its
config, data, process object, model functions) and return plain values or pure functions,
in the shape of optax's factories.
"""

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

PROCESS_SETTINGS = ("num_steps", "prediction", "weighting", "learned_variance",
                    "time_density", "density_mean", "density_std", "time_shift", "sigma_data",
                    "label_dropout", "hybrid_coeff", "kl_weight", "reconstruction_loss",
                    "adversarial_weight", "time_conditioning", "block_size")
"""The ``diffusion`` fields that belong to some processes only: None unless the run's
process reads them (:attr:`Task.settings`)."""


@dataclasses.dataclass(frozen=True)
class Modality:
    """The data side shared by the processes of one kind of data.

    Attributes:
      name: ``"images"``, ``"text"`` or ``"autoencoder"``: which evaluation report applies
        (:mod:`jaxdiff.evaluation`).
      networks: the network config classes its processes train (``model.preset`` must be
        one: a UNet or a DiT for images, the text transformer for text).
      check_config: ``(config) -> None``: raises ``ValueError`` naming the field for data
        settings this modality cannot train on.
      load: ``(config) -> (train_data, held_out_data)``.
      model_fields: ``(config, dataset) -> dict``: the model config fields the data fixes
        (image size and channels, classes; or the sequence length).
      train_batches: ``(run, start_step) -> iterator`` of this process's batch rows.
      eval_batches: ``(run) -> list`` of ``train.eval_batches`` fixed held-out batches.
      held_out_metrics: ``(run, eval_loss) -> dict``: what the loop logs beside
        ``eval_loss`` (text: ``eval_bpc``).
      sample_shape: ``(run, count) -> tuple``: the shape of ``count`` samples.
      save_samples: ``(run, path_stem, samples) -> path``: a PNG grid or a text file.
      to_pixels: ``(run, samples) -> samples``: what a sample is as data (a latent run's
        samples decoded to images; otherwise the samples themselves).
    """

    name: str
    networks: tuple[type, ...]
    check_config: Callable[[Any], None]
    load: Callable[[Any], tuple[Any, Any]]
    model_fields: Callable[[Any, Any], dict]
    train_batches: Callable[..., Any]
    eval_batches: Callable[[Any], list]
    held_out_metrics: Callable[[Any, float], dict]
    sample_shape: Callable[[Any, int], tuple[int, ...]]
    save_samples: Callable[[Any, Any, Any], Any]
    to_pixels: Callable[[Any, Any], Any] = lambda run, samples: samples


@dataclasses.dataclass(frozen=True)
class Task:
    """Everything that differs between training processes, as one value.

    Attributes:
      name: the ``diffusion.process`` name.
      modality: the data side (:data:`jaxdiff.tasks.images.IMAGES` or
        :data:`jaxdiff.tasks.text.TEXT`).
      schedules: the ``diffusion.schedule`` names it accepts, its default first; ``()``
        when it has none (then the field must be None).
      samplers: the sampler names of :attr:`make_sampler`, its default first.
      sampler_options: the keyword options :attr:`make_sampler` takes besides ``count``
        and ``sampler`` (``num_steps``, ``guidance_scale``, ``inpaint_mask``, ...).
      check_config: ``(config) -> None``: process-specific config checks (named errors).
      build_process: ``(config, schedule) -> process``: the math's process object (a
        Gaussian ``Schedule``, a ``D3PMProcess``, a ``MaskedProcess``; None for the AR
        baseline) for the schedule name ``schedule`` (``diffusion.schedule`` or the default;
        None for a process without one). Call it through :meth:`process`.
      model_fields: ``(config) -> dict``: the model config fields the process fixes
        (learned variance; vocabulary size, causality, time conditioning).
      objective: ``(run) -> loss_fn(params, key, batch) -> [B]``: the training loss.
      held_out: ``(run) -> loss_fn``: what the loop reports on held-out data (the loss;
        for text an unbiased bound per sequence in nats).
      make_sampler: ``(run, *, count, sampler, **options) -> sample(key, params)``,
        jitted; call it through :meth:`sampler`, which checks the options.
      evaluation: what the modality's evaluation report needs from the process
        (:class:`jaxdiff.tasks.images.ImageEvaluation` or
        :class:`jaxdiff.tasks.text.TextEvaluation`).
      settings: the process-owned ``diffusion`` fields it reads (those of
        :data:`PROCESS_SETTINGS`), with the value each takes when the config leaves it None;
        a process-owned field it does not read must be None (:meth:`setting`).
      coupled_noise: ``(process) -> None`` for a process whose objective trains on data
        whose images come with the noise they are coupled with (a reflow pairs file, batches
        with a ``"noise"`` array): raises a ``ValueError`` when the run's process object
        cannot (a path that does not end in pure noise); None: images alone, and loading
        such data is an error.
    """

    name: str
    modality: Modality
    schedules: tuple[str, ...]
    samplers: tuple[str, ...]
    sampler_options: tuple[str, ...]
    check_config: Callable[[Any], None]
    build_process: Callable[[Any, str | None], Any]
    model_fields: Callable[[Any], dict]
    objective: Callable[[Any], Callable]
    held_out: Callable[[Any], Callable]
    make_sampler: Callable[..., Callable]
    evaluation: Any
    # hash=False: a Task stays hashable (e.g. a static argument of jit) with a dict here
    settings: Mapping[str, Any] = dataclasses.field(default_factory=dict, hash=False)
    coupled_noise: Callable[[Any], None] | None = None

    def setting(self, config, name: str):
        """``config.diffusion.<name>``, or this process's default for it when None."""
        value = getattr(config.diffusion, name)
        return self.settings[name] if value is None else value

    def default_schedule(self) -> str | None:
        """The schedule used when ``diffusion.schedule`` is None (None if it has none)."""
        return self.schedules[0] if self.schedules else None

    def process(self, config):
        """The process object of ``config`` (its schedule, or the default one)."""
        return self.build_process(config, config.diffusion.schedule or self.default_schedule())

    def sampler(self, run, *, count: int, sampler: str | None = None, **options):
        """The jitted ``sample(key, params)`` of ``count`` samples from ``sampler`` (the
        default when None). Options that are None are not given; an option the process
        does not support is a ``ValueError`` naming it, never silently ignored."""
        given = {k: v for k, v in options.items() if v is not None}
        unsupported = sorted(set(given) - set(self.sampler_options))
        if unsupported:
            raise ValueError(f"process {self.name!r} does not support the sampler option(s) "
                             f"{unsupported}; it takes {sorted(self.sampler_options)}")
        if sampler is None:
            sampler = self.samplers[0]
        if sampler not in self.samplers:
            raise ValueError(f"sampler for process {self.name!r} must be one of "
                             f"{list(self.samplers)}, got {sampler!r}")
        return self.make_sampler(run, count=count, sampler=sampler, **given)
