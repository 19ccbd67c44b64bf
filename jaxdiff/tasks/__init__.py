"""The training processes, one value each: ``TASKS[config.diffusion.process]``.

Everything that differs between processes lives here -- the process object, the model
fields it fixes, the data and batches (through its :class:`Modality`), the training
objective, the held-out bound, the samplers with their options, how samples are saved, and
what the evaluation report needs -- so the loop (:mod:`jaxdiff.train`), the sampler program
and the evaluation (:mod:`jaxdiff.evaluation`) never branch on a process name.

Adding a process is one module that builds a :class:`Task` and one entry in :data:`TASKS`.
"""

from jaxdiff._validation import config_error
from jaxdiff.tasks.autoencoder import AUTOENCODER
from jaxdiff.tasks.autoregressive import AUTOREGRESSIVE
from jaxdiff.tasks.base import Modality, Task
from jaxdiff.tasks.block import BLOCK
from jaxdiff.tasks.continuous import EDM, FLOW
from jaxdiff.tasks.d3pm import ABSORBING, UNIFORM
from jaxdiff.tasks.gaussian import GAUSSIAN
from jaxdiff.tasks.images import IMAGES, ImageEvaluation
from jaxdiff.tasks.masked import MASKED
from jaxdiff.tasks.sedd import SEDD_ABSORBING, SEDD_UNIFORM
from jaxdiff.tasks.text import TEXT, TOKENIZER, TextEvaluation

TASKS: dict[str, Task] = {task.name: task for task in
                          (GAUSSIAN, FLOW, EDM, ABSORBING, UNIFORM, MASKED, BLOCK,
                           SEDD_ABSORBING, SEDD_UNIFORM, AUTOREGRESSIVE, AUTOENCODER)}


def get_task(name: str) -> Task:
    """``TASKS[name]``, or a ``ValueError`` naming ``diffusion.process`` and the choices."""
    if name not in TASKS:
        raise config_error("diffusion.process", f"must be one of {list(TASKS)}, got {name!r}")
    return TASKS[name]


__all__ = ["ABSORBING", "AUTOENCODER", "AUTOREGRESSIVE", "BLOCK", "EDM", "FLOW", "GAUSSIAN",
           "IMAGES", "MASKED", "SEDD_ABSORBING", "SEDD_UNIFORM", "TASKS", "TEXT", "TOKENIZER",
           "UNIFORM", "ImageEvaluation", "Modality", "Task", "TextEvaluation", "config_error",
           "get_task"]
