"""Trains a diffusion model: ``python experiments/train.py --config CONFIG --workdir DIR``.

Resumes from the newest checkpoint in DIR. The config is a Python file whose
``get_config()`` returns an ``ml_collections.ConfigDict``; fields can be overridden on the
command line, e.g. ``--config.train.num_steps=100``.
"""

from absl import app, flags, logging
from ml_collections import config_flags

from jaxdiff import perf, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "where checkpoints, metrics and samples go")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    del argv
    perf.configure()   # recommended XLA flags, persistent compilation cache
    logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
    train.train(train.from_dict(_CONFIG.value.to_dict()), _WORKDIR.value)


if __name__ == "__main__":
    app.run(main)
