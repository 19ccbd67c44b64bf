"""Named tensors of a diffusers (PyTorch) state dict <-> the parameters of a jaxdiff module.

A :class:`Rule` ties one jaxdiff parameter (its path in the ``nnx.State``) to the diffusers
tensor(s) it is made of and a layout :data:`KINDS`: PyTorch stores ``Linear`` weights
``[out, in]`` and convolutions ``OIHW`` where Flax has ``[in, out]`` kernels and ``HWIO``;
jaxdiff fuses the query, key and value projections that diffusers keeps apart, and shares
modules of which a diffusers model may keep copies (:attr:`Rule.copies`). Reading checks
that every tensor a rule names exists with the shape the module needs, that copies are
equal, and that no tensor is left over; every check names the tensor.
"""

import dataclasses

import numpy as np
from flax import nnx


@dataclasses.dataclass(frozen=True)
class Rule:
    """``path`` (a jaxdiff parameter) is made of ``names`` (diffusers tensors) by ``kind``;
    each of ``copies`` names, like ``names``, tensors that hold the same values again (a
    module of which diffusers keeps copies where jaxdiff has one): read, they must equal
    ``names``'s; written, they are."""

    path: tuple
    names: tuple[str, ...]
    kind: str
    copies: tuple[tuple[str, ...], ...] = ()


def _split3(x: np.ndarray, axis: int) -> tuple[np.ndarray, ...]:
    return tuple(np.split(x, 3, axis=axis))


# kind -> (diffusers tensors -> jaxdiff array, jaxdiff array -> diffusers tensors)
KINDS = {
    "copy": (lambda ts: ts[0], lambda x: (x,)),
    "linear": (lambda ts: ts[0].T, lambda x: (x.T,)),
    "conv": (lambda ts: ts[0].transpose(2, 3, 1, 0), lambda x: (x.transpose(3, 2, 0, 1),)),
    "qkv_linear": (lambda ts: np.concatenate([t.T for t in ts], axis=1),
                   lambda x: tuple(t.T for t in _split3(x, 1))),
    "qkv_bias": (lambda ts: np.concatenate(ts), lambda x: _split3(x, 0)),
}


def linear(path: tuple, name: str, *, bias: bool = True) -> list[Rule]:
    """A ``Linear`` (kernel and bias) at ``path`` from diffusers' ``name.weight`` / ``.bias``."""
    rules = [Rule(path + ("kernel",), (f"{name}.weight",), "linear")]
    return rules + ([Rule(path + ("bias",), (f"{name}.bias",), "copy")] if bias else [])


def conv(path: tuple, name: str) -> list[Rule]:
    return [Rule(path + ("kernel",), (f"{name}.weight",), "conv"),
            Rule(path + ("bias",), (f"{name}.bias",), "copy")]


def norm(path: tuple, name: str) -> list[Rule]:
    """A GroupNorm / LayerNorm: jaxdiff's ``scale`` is torch's ``weight``."""
    return [Rule(path + ("scale",), (f"{name}.weight",), "copy"),
            Rule(path + ("bias",), (f"{name}.bias",), "copy")]


def qkv(path: tuple, names: tuple[str, str, str]) -> list[Rule]:
    """jaxdiff's fused ``qkv`` Linear from diffusers' separate ``to_q`` / ``to_k`` / ``to_v``."""
    return [Rule(path + ("kernel",), tuple(f"{n}.weight" for n in names), "qkv_linear"),
            Rule(path + ("bias",), tuple(f"{n}.bias" for n in names), "qkv_bias")]


def _torch_shape(rule: Rule, shape: tuple) -> list[tuple]:
    """The diffusers tensor shapes that make a jaxdiff parameter of ``shape``."""
    dummy = np.zeros(shape, np.float32)
    return [t.shape for t in KINDS[rule.kind][1](dummy)]


def params_from_tensors(abstract_params: nnx.State, rules: list[Rule],
                        tensors: dict[str, np.ndarray], *, what: str) -> nnx.State:
    """The parameters ``abstract_params`` describes (float32), filled from ``tensors``.

    Raises ``ValueError`` naming a tensor that is missing, has the wrong shape, or is not
    used by any rule (``what`` names the model in the messages)."""
    by_path = {rule.path: rule for rule in rules}
    flat = nnx.to_flat_state(abstract_params)
    uncovered = [path for path, _ in flat if path not in by_path]
    if uncovered or len(by_path) != len(flat):
        raise AssertionError(f"the {what} rules do not cover the module: {uncovered[:5]}")
    needed = {n for rule in rules for names in (rule.names, *rule.copies) for n in names}
    missing = sorted(needed - set(tensors))
    if missing:
        raise ValueError(f"{what}: the checkpoint lacks {len(missing)} tensor(s) the config "
                         f"needs: {missing[:8]}{' ...' if len(missing) > 8 else ''}")
    unused = sorted(set(tensors) - needed)
    if unused:
        raise ValueError(f"{what}: the checkpoint has {len(unused)} tensor(s) its config does "
                         f"not describe: {unused[:8]}{' ...' if len(unused) > 8 else ''}")
    filled = []
    for path, variable in flat:
        rule = by_path[path]
        for name, want in zip(rule.names, _torch_shape(rule, variable.shape), strict=True):
            if tensors[name].shape != want:
                raise ValueError(f"{what}: tensor {name!r} has shape "
                                 f"{tuple(tensors[name].shape)}, the config needs {want}")
        for copy in rule.copies:
            for name, other in zip(rule.names, copy, strict=True):
                if not np.array_equal(tensors[other], tensors[name]):
                    raise ValueError(f"{what}: tensor {other!r} differs from {name!r}; "
                                     f"jaxdiff has one parameter {'.'.join(map(str, path))} "
                                     f"for both")
        value = KINDS[rule.kind][0]([np.asarray(tensors[n], np.float32) for n in rule.names])
        filled.append((path, variable.replace(np.ascontiguousarray(value))))
    return nnx.from_flat_state(filled)


def tensors_from_params(params: nnx.State, rules: list[Rule]) -> dict[str, np.ndarray]:
    """The diffusers state dict (float32 NumPy) of ``params``: the inverse of
    :func:`params_from_tensors`."""
    by_path = {rule.path: rule for rule in rules}
    tensors = {}
    for path, variable in nnx.to_flat_state(params):
        rule = by_path[path]
        parts = KINDS[rule.kind][1](np.asarray(variable[...], np.float32))
        for names in (rule.names, *rule.copies):
            tensors.update(zip(names, parts, strict=True))
    return tensors
