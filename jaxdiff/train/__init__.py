"""Training: a pure, jitted, data-parallel train step around the diffusion math, with
orbax checkpoints, EMA, metrics and sample grids.

    from jaxdiff import train
    config = train.from_dict(get_config().to_dict())       # experiments/configs/*.py
    state = train.train(config, workdir)                   # resumes from workdir
"""

from jaxdiff.train.checkpoint import Checkpointer, abstract_like
from jaxdiff.train.config import (
    DataConfig,
    DiffusionConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    TrainConfig,
    check_setting_name,
    config_dict,
    describe_settings,
    from_dict,
    setting_names,
    validate,
    with_process_defaults,
)
from jaxdiff.train.loop import (
    CONFIG_VERSION,
    Run,
    build_run,
    compiled_train_step,
    eval_batches,
    initial_state,
    load_config,
    loss_fn_for,
    make_sampler,
    model_config_for,
    placed,
    recorded_config,
    restore_workdir,
    save_samples,
    state_from_workdir,
    train,
    train_batches,
)
from jaxdiff.train.optimizer import make_optimizer
from jaxdiff.train.posthoc import posthoc_params, write_posthoc_workdir
from jaxdiff.train.reporting import MetricsWriter, read_metrics
from jaxdiff.train.sharding import bytes_per_device, fsdp_spec, state_sharding
from jaxdiff.train.state import TrainState, create_train_state, step_key
from jaxdiff.train.step import ema_update, make_eval_step, make_train_step

__all__ = [
    "CONFIG_VERSION", "Checkpointer", "DataConfig", "DiffusionConfig", "ExperimentConfig",
    "MetricsWriter", "ModelConfig", "OptimConfig", "Run", "TrainConfig", "TrainState",
    "abstract_like", "build_run", "bytes_per_device", "check_setting_name", "compiled_train_step",
    "config_dict", "create_train_state", "describe_settings", "ema_update", "eval_batches",
    "from_dict", "fsdp_spec", "initial_state", "load_config", "loss_fn_for", "make_eval_step",
    "make_optimizer", "make_sampler", "make_train_step", "model_config_for", "placed",
    "posthoc_params", "read_metrics", "recorded_config", "restore_workdir", "save_samples",
    "setting_names", "state_from_workdir", "state_sharding", "step_key", "train",
    "train_batches", "validate", "with_process_defaults", "write_posthoc_workdir",
]
