"""Post-hoc EMA (EDM2): ``python experiments/posthoc_ema.py --workdir RUN --std 0.08 --out
RUN_ema0.08 [--step S]``.

RUN must have trained with ``optim.phema_stds`` (e.g. ``--config.optim.phema_stds='(0.05, 0.1)'
--config.train.phema_every=100``). Reconstructs the EMA of relative std ``--std`` at step
``--step`` (default: the last snapshot) from the run's snapshots
(:func:`jaxdiff.train.posthoc_params`) and writes it as a workdir (the run's config, its
newest state with these EMA parameters, and ``posthoc.json`` with the snapshots' weights);
``sample.py`` and ``evaluate.py`` take that workdir as any other.
"""

from absl import app, flags, logging

from jaxdiff import perf, train

_WORKDIR = flags.DEFINE_string("workdir", None, "a run trained with optim.phema_stds")
_STD = flags.DEFINE_float("std", None, "the EMA length: relative std of its profile")
_OUT = flags.DEFINE_string("out", None, "the workdir to write")
_STEP = flags.DEFINE_integer("step", None, "the step the EMA stands for (default: the last "
                                           "snapshot's)")
flags.mark_flags_as_required(["workdir", "std", "out"])


def main(argv):
    del argv
    perf.configure()
    logging.set_verbosity(logging.WARNING)
    out = train.write_posthoc_workdir(_WORKDIR.value, _OUT.value, _STD.value, step=_STEP.value)
    print(f"wrote {out} (EMA of relative std {_STD.value} from {_WORKDIR.value}'s snapshots)")


if __name__ == "__main__":
    app.run(main)
