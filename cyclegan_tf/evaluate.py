"""How good is a trained CycleGAN: cycle and identity L1, FID and KID on held-out images of X and Y.

  metrics = evaluate(G, F, load_images("data/testA"), load_images("data/testB"), "eval")
G and F are any callables uint8 [N, H, W, 3] -> uint8 of the same shape (ImageTranslator is one),
so tests can pass fakes. Metrics, all computed on the images as given (see load_images):
  cycle_l1_X      mean |x - F(G(x))|, pixels in [-1, 1]     cycle_l1_Y      mean |y - G(F(y))|
  identity_l1_G   mean |y - G(y)|                           identity_l1_F   mean |x - F(x)|
  fid_XtoY, kid_XtoY  G(X) against the real Y               fid_YtoX, kid_YtoX  F(Y) against real X
  fid_X_Y, kid_X_Y    real X against real Y: the "nothing learned" reference for the two above
FID and KID use the 2048-d average-pool features of Keras' ImageNet InceptionV3 at 299 px. Those
are not the weights of the original TF FID graph, so the values compare runs of this project with
each other, not with published numbers. FID is biased upwards on small sets (a few hundred
images); KID is unbiased, so prefer it there.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Iterable, Sequence, Union

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from cyclegan_tf import files
from cyclegan_tf.config import ConfigError
from cyclegan_tf.data import (BadImage, DataError, check_tfrecords, iterate_images,
                              list_image_files, read_image, resolve_tfrecords)
from cyclegan_tf.export import METADATA_FILE, ExportError
from cyclegan_tf.grids import contact_sheet
from cyclegan_tf.progress import Progress
from cyclegan_tf.translate import ImageTranslator

Translate = Callable[[np.ndarray], np.ndarray]  # uint8 [N, H, W, 3] -> uint8 [N, H, W, 3]
Features = Callable[[np.ndarray], np.ndarray]  # uint8 [N, H, W, 3] -> float [N, D]
NamedImage = tuple[str, np.ndarray]
Images = Union[Sequence[NamedImage], Sequence[np.ndarray], np.ndarray]

INCEPTION_SIZE = 299
INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                 + INCEPTION_FILE)
INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"  # the hash keras.applications checks
KID_SUBSET_SIZE = 1000  # as in the reference KID implementation
GRID_ROWS = 8  # images shown in each grid PNG


class FIDWeightsError(ConfigError):
    """The InceptionV3 weights for FID/KID are missing or unusable; the message says what to do."""


# -- images ----------------------------------------------------------------------------------------

def _resize(image: Image.Image, image_size: int) -> Image.Image:
    # The classic inference behaviour (a square of image_size), as translate_file does it.
    return image.resize((image_size, image_size), Image.BICUBIC) if image_size else image


def load_images(source: str, image_size: int = 0, limit: int = 0,
                log: Callable[[str], None] = print) -> list[NamedImage]:
    """(name, uint8 RGB array) for the test images of one domain.

    source: a folder of image files (sorted by name; unreadable files are skipped and logged) or
    tfrecords (a file, a glob or a sharded base name, as build_data.py writes them).
    image_size: resize each image to this square; 0 keeps each image's own size.
    limit: at most this many images (0: all).
    """
    if image_size < 0 or limit < 0:
        raise ConfigError(f"image_size and limit must be >= 0, got {image_size} and {limit}")
    images: list[NamedImage] = []
    if os.path.isdir(source):
        paths, _ = list_image_files(source)
        skipped = []
        for path in paths:
            if limit and len(images) >= limit:
                break
            try:
                image, _ = read_image(path, min_side=1)  # the translators handle tiny images
            except BadImage as e:
                skipped.append((path, str(e)))
                continue
            images.append((os.path.basename(path), np.asarray(_resize(image, image_size))))
        for path, reason in skipped:
            log(f"  skipped {path}: {reason}")
    else:
        try:
            files = resolve_tfrecords(source)
        except DataError:
            raise DataError(f"test images {source} not found: give a folder of images or "
                            "tfrecords written by build_data.py") from None
        check_tfrecords(files)
        for i, (name, array) in enumerate(iterate_images(source)):
            if limit and i >= limit:
                break
            image = _resize(Image.fromarray(array), image_size)
            images.append((os.path.basename(name) or f"{i:05d}.png", np.asarray(image)))
    if not images:
        raise DataError(f"no usable images in {source}: give a folder of images or tfrecords "
                        "written by build_data.py")
    return images


def _named(images: Images) -> list[NamedImage]:
    """Accepts (name, array) pairs, a list of arrays or one [N, H, W, 3] array."""
    named = []
    for i, item in enumerate(images):
        name, array = item if isinstance(item, tuple) else (f"{i:05d}.png", item)
        array = np.asarray(array)
        if array.dtype != np.uint8 or array.ndim != 3 or array.shape[-1] != 3:
            raise DataError(f"image {name}: expected uint8 RGB [H, W, 3], got {array.dtype} "
                            f"{array.shape}")
        named.append((name, array))
    if not named:
        raise DataError("no images to evaluate")
    return named


def _output_names(names: Iterable[str]) -> list[str]:
    """Input base names as unique .png names (a.jpg and a.png, or shards, may share a stem)."""
    used, out = set(), []
    for i, name in enumerate(names):
        stem = os.path.splitext(os.path.basename(name))[0] or f"{i:05d}"
        candidate = stem + ".png"
        if candidate in used:
            candidate = f"{stem}_{i:05d}.png"
        used.add(candidate)
        out.append(candidate)
    return out


def _batched(fn: Callable[[np.ndarray], np.ndarray], images: Sequence[np.ndarray],
             batch_size: int, progress: Progress | None = None) -> list[np.ndarray]:
    """fn applied to batches of consecutive same-sized images; one result per image, in order.
    Images of different sizes cannot share a batch (image_size=0 keeps each one's own size)."""
    results: list[np.ndarray] = []
    start = 0
    while start < len(images):
        end = start + 1
        while (end < len(images) and end - start < batch_size
               and images[end].shape == images[start].shape):
            end += 1
        out = np.asarray(fn(np.stack(images[start:end])))
        if len(out) != end - start:
            raise ValueError(f"{fn} returned {len(out)} results for {end - start} images")
        results.extend(out)
        if progress is not None:
            progress.update(end - start)
        start = end
    return results


def _translate(fn: Translate, images: Sequence[np.ndarray], batch_size: int,
               what: str, progress: Progress | None = None) -> list[np.ndarray]:
    outputs = _batched(fn, images, batch_size, progress)
    for image, out in zip(images, outputs):
        if out.shape != image.shape or out.dtype != np.uint8:
            raise ValueError(f"{what} must return uint8 of the input's shape {image.shape}, "
                             f"got {out.dtype} {out.shape}")
    return outputs


def mean_l1(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> float:
    """Mean absolute difference of uint8 images in [-1, 1] units, each image weighted equally."""
    return float(np.mean([np.mean(np.abs(x.astype(np.float64) - y.astype(np.float64))) / 127.5
                          for x, y in zip(a, b)]))


# -- FID and KID -----------------------------------------------------------------------------------

def sqrtm_psd(matrix: np.ndarray) -> np.ndarray:
    """Square root of a symmetric positive semi-definite matrix (eigenvalues below 0, which are
    rounding noise, are taken as 0)."""
    matrix = np.asarray(matrix, np.float64)
    values, vectors = np.linalg.eigh((matrix + matrix.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def _trace_sqrtm_product(s1: np.ndarray, s2: np.ndarray) -> float:
    """Tr(sqrtm(S1 S2)) for PSD S1, S2: S1 S2 is similar to sqrt(S1) S2 sqrt(S1), which is
    symmetric PSD, so the trace is the sum of the square roots of its eigenvalues. This avoids the
    general (complex, unstable) sqrtm that the product itself would need."""
    root = sqrtm_psd(s1)
    middle = root @ s2 @ root
    values = np.linalg.eigvalsh((middle + middle.T) / 2)
    return float(np.sum(np.sqrt(np.clip(values, 0, None))))


def _check_features(feats_a: np.ndarray, feats_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.asarray(feats_a, np.float64), np.asarray(feats_b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise ValueError(f"features must be [N, D] with the same D, got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise DataError(f"FID/KID need at least 2 images per set, got {len(a)} and {len(b)}")
    return a, b


def fid(feats_a: np.ndarray, feats_b: np.ndarray) -> float:
    """Fréchet distance of Gaussians fitted to two feature sets [N, D]:
    ||mu_a - mu_b||^2 + Tr(S_a + S_b - 2 sqrtm(S_a S_b))."""
    a, b = _check_features(feats_a, feats_b)
    mu_a, mu_b = a.mean(axis=0), b.mean(axis=0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    value = (np.sum((mu_a - mu_b) ** 2) + np.trace(s_a) + np.trace(s_b)
             - 2 * _trace_sqrtm_product(s_a, s_b))
    return float(max(value, 0.0))  # a distance; tiny negatives are rounding


def kid_subsets(feats_a: np.ndarray, feats_b: np.ndarray, n_subsets: int = 100,
                subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> np.ndarray:
    """Unbiased MMD^2 with the kernel k(a, b) = (a.b / D + 1)^3 on n_subsets random subsets of
    min(subset_size, N_a, N_b) features drawn without replacement from each set."""
    a, b = _check_features(feats_a, feats_b)
    m = min(subset_size, len(a), len(b))
    d = a.shape[1]
    rng = np.random.default_rng(seed)
    values = np.empty(n_subsets)
    for i in range(n_subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        k_xx = (x @ x.T / d + 1) ** 3
        k_yy = (y @ y.T / d + 1) ** 3
        k_xy = (x @ y.T / d + 1) ** 3
        within = (k_xx.sum() - np.trace(k_xx) + k_yy.sum() - np.trace(k_yy)) / (m * (m - 1))
        values[i] = within - 2 * k_xy.sum() / (m * m)
    return values


def kid(feats_a: np.ndarray, feats_b: np.ndarray, n_subsets: int = 100,
        subset_size: int = KID_SUBSET_SIZE, seed: int = 0) -> float:
    """Kernel Inception Distance: the mean of kid_subsets (can be slightly negative near 0)."""
    return float(np.mean(kid_subsets(feats_a, feats_b, n_subsets, subset_size, seed)))


# -- InceptionV3 features --------------------------------------------------------------------------

def _keras_cache_paths() -> list[str]:
    """Where keras.applications keeps the downloaded file: $KERAS_HOME or ~/.keras, and /tmp/.keras
    when the home folder is not writable."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return [os.path.join(home, "models", INCEPTION_FILE),
            os.path.join("/tmp", ".keras", "models", INCEPTION_FILE)]


def _missing_weights_help(looked_at: Sequence[str]) -> str:
    return ("FID/KID need the Keras InceptionV3 ImageNet weights (no top), which were not found "
            f"(looked at {', '.join(looked_at)}). Download {INCEPTION_URL} and either put it at "
            f"{looked_at[0]} or pass its path with --fid_weights; or pass --nofid to skip FID/KID.")


def inception_weights_path(weights: str | None = None, cache_dir: str | None = None,
                           download: bool = True) -> str:
    """The weights file to use: weights if given (it must exist), else the Keras cache copy,
    downloaded there first if download is set and it is missing.

    cache_dir: the Keras home folder to look in (default $KERAS_HOME or ~/.keras).
    """
    if weights and weights != "imagenet":
        if not os.path.isfile(weights):
            raise FIDWeightsError(
                f"--fid_weights {weights} does not exist: give the path of {INCEPTION_FILE} "
                f"(download it from {INCEPTION_URL}), leave --fid_weights empty to use the Keras "
                "cache, or pass --nofid to skip FID/KID")
        return weights
    candidates = ([os.path.join(cache_dir, "models", INCEPTION_FILE)] if cache_dir
                  else _keras_cache_paths())
    for path in candidates:
        if os.path.isfile(path):
            return path
    if not download:
        raise FIDWeightsError(_missing_weights_help(candidates))
    try:
        if cache_dir:  # Keras silently falls back to /tmp/.keras for a folder not yet made
            os.makedirs(cache_dir, exist_ok=True)
        return keras.utils.get_file(INCEPTION_FILE, INCEPTION_URL, cache_subdir="models",
                                    file_hash=INCEPTION_MD5, cache_dir=cache_dir)
    except Exception as e:  # offline, proxy, disk full, bad hash: all end the same way for the user
        raise FIDWeightsError(f"downloading the InceptionV3 weights failed ({e}). "
                              + _missing_weights_help(candidates)) from None


def inception_features(weights: str | None = None, batch_size: int = 32,
                       cache_dir: str | None = None, download: bool = True) -> Features:
    """A callable uint8 [N, H, W, 3] -> float32 [N, 2048]: InceptionV3 average-pool features of the
    images resized to 299 x 299 (bilinear) and scaled by inception_v3.preprocess_input.

    weights: an InceptionV3 no-top weights file (.h5, .weights.h5 or .keras); None or "imagenet"
    uses the Keras cache (see inception_weights_path). Raises FIDWeightsError, saying what to do,
    when the weights cannot be had, before any image is processed.
    """
    path = inception_weights_path(weights, cache_dir, download)
    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                           input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    try:
        model.load_weights(path)
    except Exception as e:  # wrong file type, a with-top or other model, truncated download
        raise FIDWeightsError(
            f"{path} is not usable InceptionV3 no-top weights ({str(e).splitlines()[0]}): "
            f"replace it with {INCEPTION_URL}, or pass --nofid to skip FID/KID") from None

    @tf.function(reduce_retracing=True)
    def embed(images: tf.Tensor) -> tf.Tensor:
        x = tf.image.resize(tf.cast(images, tf.float32), (INCEPTION_SIZE, INCEPTION_SIZE),
                            method="bilinear")
        x = keras.applications.inception_v3.preprocess_input(x)
        return model(x, training=False)

    def features(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        return np.concatenate([embed(tf.constant(images[i:i + batch_size])).numpy()
                               for i in range(0, len(images), batch_size)])

    return features


# -- evaluation ------------------------------------------------------------------------------------

def _write_images(folder: str, names: Sequence[str], images: Sequence[np.ndarray]) -> None:
    os.makedirs(folder, exist_ok=True)
    for name, image in zip(names, images):
        Image.fromarray(image).save(os.path.join(folder, name))


def _write_grid(path: str, columns: Sequence[Sequence[np.ndarray]], rows: int) -> None:
    """One row per image: its columns side by side (x, G(x), F(G(x)) for grid_X.png)."""
    sheet = contact_sheet([[Image.fromarray(column[i]) for column in columns]
                           for i in range(min(rows, len(columns[0])))])
    sheet.save(path)


def evaluate(G: Translate, F: Translate, x_images: Images, y_images: Images, output_dir: str,
             features: Features | None = None, compute_fid: bool = True,
             fid_weights: str | None = None, batch_size: int = 16, n_kid_subsets: int = 100,
             kid_subset_size: int = KID_SUBSET_SIZE, grid_rows: int = GRID_ROWS,
             log: Callable[[str], None] = print, inputs: Sequence[str] = ()) -> dict:
    """Translates the test images both ways, writes them and the grids, returns the metrics.

    G: X -> Y and F: Y -> X, callables uint8 [N, H, W, 3] -> uint8 of the same shape.
    x_images, y_images: (name, uint8 [H, W, 3]) pairs as load_images gives, or bare arrays.
    features: the FID/KID feature extractor, uint8 [N, H, W, 3] -> [N, D]; None builds the
    InceptionV3 one from fid_weights (see inception_features). compute_fid=False skips FID/KID.
    KID is the mean over n_kid_subsets random subsets of kid_subset_size images (fewer: all of
    them); kid_*_std, their spread, is null unless both sets have more images than that, since
    subsets that are the whole set all give the same value (kid_std_note then says so).
    Writes into output_dir: metrics.json, grid_X.png (x, G(x), F(G(x))), grid_Y.png
    (y, F(y), G(F(y))), and XtoY/NAME.png = G(x), YtoX/NAME.png = F(y). output_dir must be new
    or an earlier evaluation (replaced whole when this one is complete); inputs (the test
    images' and models' paths) are never written over (files.check_outputs).
    """
    if batch_size < 1:
        raise ConfigError(f"batch_size must be >= 1, got {batch_size}")
    if compute_fid and features is None:  # first: missing weights fail before minutes of work
        features = inception_features(fid_weights)
    x_named, y_named = _named(x_images), _named(y_images)
    replaced = files.check_outputs([files.Output(output_dir, "folder")], inputs=inputs)
    xs, ys = [a for _, a in x_named], [a for _, a in y_named]

    log(f"translating {len(xs)} X and {len(ys)} Y images")
    progress = Progress(3 * (len(xs) + len(ys)), unit="image", every=500)  # three passes each
    gx = _translate(G, xs, batch_size, "G (XtoY)", progress)
    fgx = _translate(F, gx, batch_size, "F (YtoX)", progress)
    fy = _translate(F, ys, batch_size, "F (YtoX)", progress)
    gfy = _translate(G, fy, batch_size, "G (XtoY)", progress)
    metrics: dict = {
        "num_X": len(xs), "num_Y": len(ys),
        "cycle_l1_X": mean_l1(xs, fgx), "cycle_l1_Y": mean_l1(ys, gfy),
        # G(y) and F(x) are needed for nothing else, so they are not kept (memory on big sets)
        "identity_l1_G": mean_l1(ys, _translate(G, ys, batch_size, "G (XtoY)", progress)),
        "identity_l1_F": mean_l1(xs, _translate(F, xs, batch_size, "F (YtoX)", progress)),
    }
    progress.close()
    if compute_fid:
        log("computing FID/KID features")
        feats = {key: np.stack(_batched(features, images, batch_size))
                 for key, images in (("X", xs), ("Y", ys), ("GX", gx), ("FY", fy))}
        # A subset that is a whole set is the same set every time, so the spread would omit
        # that set's sampling noise (with both whole: std 0), not measure it.
        spread = min(len(xs), len(ys)) > kid_subset_size
        if not spread:
            metrics["kid_std_note"] = (
                f"no KID spread: it is taken over random subsets of {kid_subset_size} images, and "
                f"with {len(xs)} X and {len(ys)} Y images a subset is a whole set every time")
        for name, (a, b) in {"XtoY": ("GX", "Y"), "YtoX": ("FY", "X"), "X_Y": ("X", "Y")}.items():
            subsets = kid_subsets(feats[a], feats[b], n_kid_subsets, kid_subset_size)
            metrics[f"fid_{name}"] = fid(feats[a], feats[b])
            metrics[f"kid_{name}"] = float(np.mean(subsets))
            metrics[f"kid_{name}_std"] = float(np.std(subsets)) if spread else None

    with files.atomic_folder(output_dir) as folder:
        _write_images(os.path.join(folder, "XtoY"), _output_names(n for n, _ in x_named), gx)
        _write_images(os.path.join(folder, "YtoX"), _output_names(n for n, _ in y_named), fy)
        _write_grid(os.path.join(folder, "grid_X.png"), [xs, gx, fgx], grid_rows)
        _write_grid(os.path.join(folder, "grid_Y.png"), [ys, fy, gfy], grid_rows)
        with open(os.path.join(folder, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, sort_keys=True)
    log(f"{'replaced' if replaced else 'wrote'} {output_dir}")
    return metrics


# -- models ----------------------------------------------------------------------------------------

def _saved_direction(model_dir: str) -> str | None:
    """The direction export_graph.py recorded in a SavedModel, if any."""
    try:
        with open(os.path.join(model_dir, METADATA_FILE), encoding="utf-8") as f:
            return json.load(f).get("direction")
    except (OSError, ValueError, AttributeError):
        return None


def load_translators(checkpoint_dir: str = "", XtoY_model: str = "",
                     YtoX_model: str = "") -> tuple[Translate, Translate]:
    """(G, F) from a run folder, or from the two SavedModels export_graph.py wrote."""
    if checkpoint_dir and (XtoY_model or YtoX_model):
        raise ConfigError("give either --checkpoint_dir (a run folder) or --XtoY_model and "
                          "--YtoX_model (exported SavedModels), not both")
    if checkpoint_dir:
        return (ImageTranslator.load(checkpoint_dir, "XtoY"),
                ImageTranslator.load(checkpoint_dir, "YtoX"))
    if not (XtoY_model and YtoX_model):
        raise ConfigError("no model given: pass --checkpoint_dir (the run folder train.py wrote) "
                          "or both --XtoY_model and --YtoX_model (folders export_graph.py wrote)")
    for flag, path, direction in (("XtoY_model", XtoY_model, "XtoY"),
                                  ("YtoX_model", YtoX_model, "YtoX")):
        saved = _saved_direction(path)
        if saved is not None and saved != direction:
            raise ExportError(f"--{flag} {path} was exported as the {saved} direction: "
                              "swap --XtoY_model and --YtoX_model")
    return ImageTranslator.load(XtoY_model, "XtoY"), ImageTranslator.load(YtoX_model, "YtoX")
