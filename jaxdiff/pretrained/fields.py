"""Reading a diffusers ``config.json``: its fields over the class's defaults, every field
known, and the fields jaxdiff's module has one value for at that value."""

from collections.abc import Callable


def read_fields(values: dict, *, defaults: dict, fixed: dict,
                error: Callable[[str, str], ValueError], model: str) -> dict:
    """``values`` (``_``-prefixed metadata dropped) over ``defaults`` and ``fixed``.

    Raises (``error(field, message)``) for a field that is in neither table, and for a
    ``fixed`` field with another value than the one ``model`` supports."""
    known = set(defaults) | set(fixed)
    given = {k: v for k, v in values.items() if not k.startswith("_")}
    unknown = sorted(set(given) - known)
    if unknown:
        raise error(unknown[0], f"is not supported by jaxdiff's {model}; the supported fields "
                                f"are {sorted(known)}")
    v = {**defaults, **fixed, **given}
    for field, value in fixed.items():
        if v[field] != value:
            raise error(field, f"jaxdiff's {model} supports only {value!r}, got {v[field]!r}")
    return v
