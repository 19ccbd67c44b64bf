r"""An in-domain image classifier for "classifier IS" and "classifier FID".

The standard Inception network needs weights that are not always at hand (offline machines),
and on 8x8 digits or 28x28 MNIST its ImageNet features say little. A small CNN trained on the
dataset itself gives in-domain replacements, reported under their own names:

* **classifier IS**: :func:`jaxdiff.metrics.inception_score` with the classifier's
  ``logits_fn`` (bounded by the number of classes, 10 for digits);
* **classifier FID**: :func:`jaxdiff.metrics.feature_stats` with its ``features_fn`` (the
  penultimate, post-ReLU hidden layer) on both image sets, then
  :func:`jaxdiff.metrics.fid_from_stats`.

Numbers from different classifiers are not comparable: :attr:`TrainedClassifier.name` encodes
the dataset and every training setting, and is the ``extractor`` key to give
:func:`jaxdiff.metrics.cached_reference_stats`. ::

    clf = evaluation.train_or_load_classifier("digits")        # trained once, then cached
    is_mean, is_std = metrics.inception_score(clf.logits_fn(), samples)
    ref = metrics.cached_reference_stats(
        lambda: metrics.feature_stats(clf.features_fn(), test_images),
        dataset="digits", split="test", extractor=clf.name)
    fid = metrics.fid_from_stats(metrics.feature_stats(clf.features_fn(), samples), ref)

Architecture: ``conv3x3(width)`` then stride-2 ``conv3x3(2 width)`` layers until the side is at
most 8 (8 -> 4, 28 -> 14 -> 7, 32 -> 16 -> 8), ReLU after each; flatten; ``dense(hidden)`` +
ReLU (the features); ``dense(num_classes)`` (the logits). Training: Adam on softmax
cross-entropy over :func:`jaxdiff.data.batches` of the train split, one jitted pure step.
Parameters are stored as ``.npz`` (no pickle) under ``<cache>/classifiers/<name>.npz``.
"""

import dataclasses
import functools
import os
from pathlib import Path
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from jaxdiff._validation import check_int
from jaxdiff.data import ArrayDataset, batches, load
from jaxdiff.metrics.features import extract_features
from jaxdiff.metrics.paths import atomic_write_npz, check_key, default_cache_dir

_FORMAT_VERSION = 1


class ClassifierConfig(NamedTuple):
    """The architecture: image shape ``(H, W, C)``, classes, conv width, hidden (feature) size."""

    image_shape: tuple[int, int, int]
    num_classes: int
    width: int = 32
    hidden: int = 128

    @property
    def num_downsamples(self) -> int:
        """Stride-2 convolutions: at least one, then until the larger side is at most 8."""
        size, n = max(self.image_shape[:2]), 1
        size = -(-size // 2)
        while size > 8:
            size, n = -(-size // 2), n + 1
        return n


def _check_config(config) -> ClassifierConfig:
    if not isinstance(config, ClassifierConfig):
        raise TypeError(f"config must be a ClassifierConfig, got {type(config).__name__}")
    shape = config.image_shape
    if (not isinstance(shape, tuple) or len(shape) != 3
            or not all(isinstance(d, (int, np.integer)) and d > 0 for d in shape)):
        raise ValueError(f"config.image_shape must be (H, W, C) positive ints, got {shape!r}")
    for field in ("num_classes", "width", "hidden"):
        check_int(f"config.{field}", getattr(config, field))
    if config.num_classes < 2:
        raise ValueError(f"config.num_classes must be >= 2, got {config.num_classes}")
    return config


class ImageClassifier(nnx.Module):
    """The CNN: ``__call__`` gives logits ``[B, K]``, :meth:`features` the ``[B, hidden]``
    penultimate activations. Images are NHWC in ``[-1, 1]``."""

    def __init__(self, config: ClassifierConfig, *, rngs: nnx.Rngs):
        config = _check_config(config)
        height, width, channels = config.image_shape
        self.stem = nnx.Conv(channels, config.width, (3, 3), padding="SAME", rngs=rngs)
        downs, ch = [], config.width
        for _ in range(config.num_downsamples):
            downs.append(nnx.Conv(ch, 2 * config.width, (3, 3), strides=(2, 2), padding="SAME",
                                  rngs=rngs))
            ch = 2 * config.width
            height, width = -(-height // 2), -(-width // 2)
        self.downs = nnx.List(downs)
        self.hidden = nnx.Linear(height * width * ch, config.hidden, rngs=rngs)
        self.head = nnx.Linear(config.hidden, config.num_classes, rngs=rngs)

    def features(self, images: jax.Array) -> jax.Array:
        h = jax.nn.relu(self.stem(images))
        for conv in self.downs:
            h = jax.nn.relu(conv(h))
        return jax.nn.relu(self.hidden(h.reshape(h.shape[0], -1)))

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.head(self.features(images))


def _check_images(name: str, images, image_shape) -> None:
    shape = getattr(images, "shape", None)
    if shape is None or len(shape) != 4 or tuple(shape[1:]) != tuple(image_shape):
        raise ValueError(f"{name} must be NHWC images [B, {', '.join(map(str, image_shape))}] "
                         f"in [-1, 1], got shape {shape}")
    if not jnp.issubdtype(images.dtype, jnp.floating):
        raise TypeError(f"{name} must have a floating dtype, got {images.dtype}")


def _apply(graphdef, params, images, *, features: bool) -> jax.Array:
    model = nnx.merge(graphdef, params)
    return model.features(images) if features else model(images)


@functools.partial(jax.jit, static_argnums=(0,), static_argnames=("features",))
def _apply_jit(graphdef, params, images, *, features: bool) -> jax.Array:
    return _apply(graphdef, params, images.astype(jnp.float32), features=features)


def _optimizer(learning_rate: float, steps: int) -> optax.GradientTransformation:
    return optax.adam(optax.cosine_decay_schedule(learning_rate, steps))


@functools.partial(jax.jit, static_argnums=(0, 1, 2), donate_argnums=(3, 4))
def _train_step(graphdef, learning_rate, steps, params, opt_state, images, labels):
    """One pure Adam step on the softmax cross-entropy; compiled once per architecture and
    optimizer setting."""
    def loss_fn(p):
        logits = _apply(graphdef, p, images, features=False)
        return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = _optimizer(learning_rate, steps).update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss


@dataclasses.dataclass(frozen=True, eq=False)
class TrainedClassifier:
    """A trained classifier: its architecture, parameters and identifying name.

    Attributes:
      config: the architecture.
      graphdef: the NNX graph definition (static).
      params: the parameters, an ``nnx.State`` pytree.
      name: a cache key naming the dataset and every training setting (use it as the
        ``extractor`` of :func:`jaxdiff.metrics.cached_reference_stats`).
    """

    config: ClassifierConfig
    graphdef: nnx.GraphDef
    params: nnx.State
    name: str

    def logits_fn(self):
        """A jitted ``images [B, H, W, C] in [-1, 1] -> logits float32 [B, K]``: the
        classifier for **classifier IS** (:func:`jaxdiff.metrics.inception_score`)."""
        return self._fn(features=False)

    def features_fn(self):
        """A jitted ``images [B, H, W, C] in [-1, 1] -> features float32 [B, hidden]``: the
        extractor for **classifier FID** (:func:`jaxdiff.metrics.feature_stats`)."""
        return self._fn(features=True)

    def _fn(self, *, features: bool):
        graphdef, params, image_shape = self.graphdef, self.params, self.config.image_shape

        def fn(images):
            _check_images("images", images, image_shape)
            return _apply_jit(graphdef, params, images, features=features)

        return fn


def _graphdef_and_template(config: ClassifierConfig):
    abstract = nnx.eval_shape(lambda: ImageClassifier(config, rngs=nnx.Rngs(0)))
    return nnx.split(abstract)


def init_classifier(key: jax.Array, config: ClassifierConfig):
    """``(graphdef, params)`` of a freshly initialised :class:`ImageClassifier`."""
    _check_config(config)
    return nnx.split(ImageClassifier(config, rngs=nnx.Rngs(params=key)))


def classifier_name(dataset: str, *, image_size: int | None, steps: int, seed: int,
                    width: int, hidden: int, batch_size: int, learning_rate: float) -> str:
    """The cache key of a classifier trained with these settings."""
    if not isinstance(dataset, str) or not dataset:
        raise ValueError(f"dataset must be a non-empty str, got {dataset!r}")
    size = "native" if image_size is None else f"{image_size}px"
    name = (f"classifier-{dataset.replace(':', '_')}-{size}-w{width}-h{hidden}-"
            f"steps{steps}-bs{batch_size}-lr{learning_rate:g}-seed{seed}")
    return check_key(name, "dataset")


def train_classifier(train_set: ArrayDataset, *, steps: int = 600, batch_size: int = 128,
                     learning_rate: float = 2e-3, seed: int = 0, width: int = 32,
                     hidden: int = 128, name: str | None = None) -> TrainedClassifier:
    """Trains an :class:`ImageClassifier` on ``train_set`` with Adam (cosine-decayed rate).

    Args:
      train_set: the labelled training images (:func:`jaxdiff.data.load`).
      steps: optimizer steps.
      batch_size: examples per step (batches from :func:`jaxdiff.data.batches`, seeded by
        ``seed``).
      learning_rate: Adam's peak learning rate, cosine-decayed to 0 over ``steps``.
      seed: seeds the initialisation and the batch order.
      width, hidden: the architecture (see :class:`ClassifierConfig`).
      name: the :attr:`TrainedClassifier.name`; default ``classifier-<dataset name>-...``.
    """
    if not isinstance(train_set, ArrayDataset):
        raise TypeError(f"train_set must be an ArrayDataset, got {type(train_set).__name__}")
    steps = check_int("steps", steps)
    batch_size = check_int("batch_size", batch_size)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ValueError(f"learning_rate must be a positive float, got {learning_rate!r}")
    config = _check_config(ClassifierConfig(tuple(int(d) for d in train_set.image_shape),
                                            int(train_set.num_classes),
                                            check_int("width", width),
                                            check_int("hidden", hidden)))
    if name is None:
        name = classifier_name(train_set.name.split(":")[0] or "data", image_size=None,
                               steps=steps, seed=int(seed), width=width, hidden=hidden,
                               batch_size=batch_size, learning_rate=learning_rate)
    graphdef, params = init_classifier(jax.random.key(seed), config)
    learning_rate = float(learning_rate)
    opt_state = _optimizer(learning_rate, steps).init(params)
    stream = batches(train_set, batch_size=batch_size, seed=int(seed), process_index=0,
                     process_count=1)
    for _, batch in zip(range(steps), stream, strict=False):
        params, opt_state, _ = _train_step(graphdef, learning_rate, steps, params, opt_state,
                                           batch["image"], batch["label"])
    return TrainedClassifier(config=config, graphdef=graphdef, params=params, name=name)


def classifier_accuracy(classifier: TrainedClassifier, dataset: ArrayDataset, *,
                        batch_size: int = 500) -> float:
    """The fraction of ``dataset`` whose argmax logit is its label."""
    if not isinstance(classifier, TrainedClassifier):
        raise TypeError(f"classifier must be a TrainedClassifier, "
                        f"got {type(classifier).__name__}")
    if not isinstance(dataset, ArrayDataset):
        raise TypeError(f"dataset must be an ArrayDataset, got {type(dataset).__name__}")
    logits = extract_features(classifier.logits_fn(), dataset.images, batch_size=batch_size)
    return float(np.mean(np.argmax(logits, axis=1) == dataset.labels))


def save_classifier(path: str | os.PathLike, classifier: TrainedClassifier) -> Path:
    """Writes ``classifier`` to ``path`` as ``.npz``: ``param:<path>`` arrays, the config and
    the name (no pickle)."""
    if not isinstance(classifier, TrainedClassifier):
        raise TypeError(f"classifier must be a TrainedClassifier, "
                        f"got {type(classifier).__name__}")
    leaves, _ = jax.tree_util.tree_flatten_with_path(classifier.params)
    arrays = {f"param:{jax.tree_util.keystr(p)}": np.asarray(leaf) for p, leaf in leaves}
    c = classifier.config
    arrays |= {"format_version": np.array(_FORMAT_VERSION),
               "image_shape": np.array(c.image_shape, np.int64),
               "num_classes": np.array(c.num_classes), "width": np.array(c.width),
               "hidden": np.array(c.hidden), "name": np.array(classifier.name)}
    return atomic_write_npz(Path(path), arrays)


def load_classifier(path: str | os.PathLike, *, expected_name: str | None = None
                    ) -> TrainedClassifier:
    """Reads a classifier written by :func:`save_classifier`; with ``expected_name`` the stored
    name must match (guards against a file renamed by hand)."""
    path = Path(path)
    with np.load(path, allow_pickle=False) as npz:
        version = int(npz["format_version"]) if "format_version" in npz.files else None
        if version != _FORMAT_VERSION:
            raise ValueError(f"{path} has classifier format {version}, expected {_FORMAT_VERSION}")
        name = str(npz["name"])
        if expected_name is not None and name != expected_name:
            raise ValueError(f"{path} holds classifier {name!r}, not {expected_name!r}")
        config = _check_config(ClassifierConfig(
            tuple(int(d) for d in npz["image_shape"]), int(npz["num_classes"]),
            int(npz["width"]), int(npz["hidden"])))
        graphdef, template = _graphdef_and_template(config)
        leaves, treedef = jax.tree_util.tree_flatten_with_path(template)
        values = []
        for p, leaf in leaves:
            key = f"param:{jax.tree_util.keystr(p)}"
            if key not in npz.files:
                raise ValueError(f"{path} lacks parameter {key!r}")
            value = npz[key]
            if value.shape != leaf.shape:
                raise ValueError(f"{path}: parameter {key!r} has shape {value.shape}, "
                                 f"expected {leaf.shape}")
            values.append(jnp.asarray(value, leaf.dtype))
    params = jax.tree_util.tree_unflatten(treedef, values)
    return TrainedClassifier(config=config, graphdef=graphdef, params=params, name=name)


def classifier_path(name: str, *, cache_dir: str | os.PathLike | None = None) -> Path:
    """``<cache_dir>/<name>.npz``; ``cache_dir`` defaults to ``<cache>/classifiers``."""
    root = Path(cache_dir).expanduser() if cache_dir is not None else (
        default_cache_dir() / "classifiers")
    return root / f"{check_key(name, 'name')}.npz"


def train_or_load_classifier(dataset: str, *, cache_dir: str | os.PathLike | None = None,
                             image_size: int | None = None, steps: int = 600,
                             batch_size: int = 128, learning_rate: float = 2e-3,
                             seed: int = 0, width: int = 32, hidden: int = 128,
                             recompute: bool = False) -> TrainedClassifier:
    """The classifier for ``dataset``, trained on its ``"train"`` split once and then loaded
    from ``<cache_dir>/<name>.npz`` (see :func:`classifier_name`, :func:`classifier_path`).

    Args:
      dataset: a :func:`jaxdiff.data.load` name, e.g. ``"digits"``, ``"mnist_5k"``.
      cache_dir: where the ``.npz`` lives; default ``<cache>/classifiers``
        (:mod:`jaxdiff.metrics.paths`).
      image_size: passed to :func:`jaxdiff.data.load` (e.g. 32 for MNIST padded to 32x32).
      steps, batch_size, learning_rate, seed, width, hidden: see :func:`train_classifier`;
        all are part of the cache key.
      recompute: train again and overwrite the cached file.
    """
    name = classifier_name(dataset, image_size=image_size, steps=steps, seed=seed, width=width,
                           hidden=hidden, batch_size=batch_size, learning_rate=learning_rate)
    path = classifier_path(name, cache_dir=cache_dir)
    if path.exists() and not recompute:
        return load_classifier(path, expected_name=name)
    classifier = train_classifier(load(dataset, "train", image_size=image_size), steps=steps,
                                  batch_size=batch_size, learning_rate=learning_rate, seed=seed,
                                  width=width, hidden=hidden, name=name)
    save_classifier(path, classifier)
    return classifier
