"""Where the metrics keep files they download or derive (converted weights, reference stats).

One setting decides the root: the ``JAXDIFF_CACHE_DIR`` environment variable if set, else
``$XDG_CACHE_HOME/jaxdiff``, else ``~/.cache/jaxdiff``. Every function that reads or writes
there also takes an explicit path argument, which wins over the setting.
"""

import os
import re
from pathlib import Path

import numpy as np

CACHE_DIR_ENV = "JAXDIFF_CACHE_DIR"

_KEY_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def default_cache_dir() -> Path:
    """The root cache folder (not created here)."""
    if os.environ.get(CACHE_DIR_ENV):
        return Path(os.environ[CACHE_DIR_ENV]).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    base = Path(xdg).expanduser() if xdg else Path.home() / ".cache"
    return base / "jaxdiff"


def check_key(value: str, name: str) -> str:
    """Checks that ``value`` can name a file: letters, digits, ``.``, ``_`` and ``-``."""
    if not isinstance(value, str) or not _KEY_RE.match(value):
        raise ValueError(
            f"{name} must be a non-empty string of letters, digits, '.', '_' or '-' (it names a "
            f"cache file), got {value!r}"
        )
    return value


def atomic_write_npz(path: Path, arrays: dict) -> Path:
    """Writes ``arrays`` to ``path`` (.npz, uncompressed) through a temporary file and a rename,
    so a reader never sees a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)
    return path
