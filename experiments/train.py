"""Trains a diffusion model: ``python experiments/train.py --config CONFIG --workdir DIR``.

Resumes from the newest checkpoint in DIR. The config is a Python file whose
``get_config()`` returns :func:`jaxdiff.train.config_dict` of its values; every setting can
be overridden on the command line, e.g. ``--config.train.num_steps=100
--config.data.name=my_images/``, whether or not the file sets it; an unknown one is a
one-line error with the nearest valid name. ``--settings`` lists every setting with its
default and meaning. SIGTERM / SIGINT (a preemption, Ctrl-C) finish the current step, save
a checkpoint and exit 0.
"""

import sys

from absl import app, flags, logging
from ml_collections import config_flags

from jaxdiff import perf, train

_CONFIG = config_flags.DEFINE_config_file("config", None, "experiment config file",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "where checkpoints, metrics and samples go")
_SETTINGS = flags.DEFINE_bool("settings", False, "list every --config.<section>.<field> "
                                                 "setting with its default and meaning")


def check_overrides(argv: list[str]) -> None:
    """Exits with one line (status 2) when a ``--config.<setting>`` override names no
    setting (absl would end in a traceback)."""
    for arg in argv[1:]:
        if arg.startswith("--config."):
            try:
                train.check_setting_name(arg[len("--config."):].split("=")[0])
            except ValueError as err:
                sys.exit(f"train.py: {err}")


def main(argv):
    del argv
    if _SETTINGS.value:
        print(train.describe_settings())
        return
    if _CONFIG.value is None or _WORKDIR.value is None:
        raise app.UsageError("--config and --workdir are required (--settings lists every "
                             "setting)")
    perf.configure()   # recommended XLA flags, persistent compilation cache
    logging.set_verbosity(logging.WARNING)   # orbax logs every save at INFO
    train.train(train.from_dict(_CONFIG.value.to_dict()), _WORKDIR.value)


if __name__ == "__main__":
    check_overrides(sys.argv)
    app.run(main)
