"""How good is a trained CycleGAN: cycle and identity L1, FID and KID on held-out images of X and Y.

  metrics = evaluate(G, F, load_images("data/testA"), load_images("data/testB"), "eval")
G and F are any callables uint8 [N, H, W, 3] -> uint8 of the same shape (ImageTranslator is one),
so tests can pass fakes. Metrics, all computed on the images as given (see load_images):
  cycle_l1_X      mean |x - F(G(x))|, pixels in [-1, 1]     cycle_l1_Y      mean |y - G(F(y))|
  identity_l1_G   mean |y - G(y)|                           identity_l1_F   mean |x - F(x)|
  fid_XtoY, kid_XtoY  G(X) against the real Y               fid_YtoX, kid_YtoX  F(Y) against real X
  fid_X_Y, kid_X_Y    real X against real Y: the "nothing learned" reference for the two above

A generator (DCGAN, WGAN-GP, StyleGAN) is scored by evaluate_generator: FID and KID of its
samples against real images (optionally the mean of several sample sets, with its standard
error). FID and KID are computed in the features of the network features.py names in every
metrics.json ("feature_network"): the standard FID Inception graph when a user has it, else
Keras' ImageNet InceptionV3, whose figures compare runs of this project with each other but never
with published FID; or, offline, MTCNN's face network (--fid_network face). FID is biased upwards
on small sets (a few hundred images); KID is unbiased, so prefer it there.
"""
from __future__ import annotations

import json
import os
from typing import Callable, Iterable, Sequence, Union

import numpy as np
import tensorflow as tf
from PIL import Image

from cyclegan_tf import files
from cyclegan_tf.config import ConfigError
from cyclegan_tf.data import (BadImage, DataError, check_tfrecords, iterate_images,
                              list_image_files, read_image, resize_shorter_side,
                              resolve_tfrecords)
from cyclegan_tf.export import METADATA_FILE, ExportError
from cyclegan_tf.features import FeatureNetwork, Features, feature_network
from cyclegan_tf.grids import contact_sheet
from cyclegan_tf.progress import Progress
from cyclegan_tf.sampling import ImageGenerator, grid, noise
from cyclegan_tf.translate import ImageTranslator

Translate = Callable[[np.ndarray], np.ndarray]  # uint8 [N, H, W, 3] -> uint8 [N, H, W, 3]
NamedImage = tuple[str, np.ndarray]
Images = Union[Sequence[NamedImage], Sequence[np.ndarray], np.ndarray]

KID_SUBSET_SIZE = 1000  # as in the reference KID implementation
GRID_ROWS = 8  # images shown in each grid PNG


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


def _distances(feats_a: np.ndarray, feats_b: np.ndarray, name: str, n_kid_subsets: int,
               kid_subset_size: int, labels: tuple[str, str]) -> dict:
    """fid_NAME, kid_NAME and kid_NAME_std (or "fid", "kid"... for an empty name); labels name
    the two sets in kid_std_note."""
    suffix = f"_{name}" if name else ""
    subsets = kid_subsets(feats_a, feats_b, n_kid_subsets, kid_subset_size)
    # A subset that is a whole set is the same set every time, so the spread would omit that
    # set's sampling noise (with both whole: std 0), not measure it.
    spread = min(len(feats_a), len(feats_b)) > kid_subset_size
    metrics = {f"fid{suffix}": fid(feats_a, feats_b), f"kid{suffix}": float(np.mean(subsets)),
               f"kid{suffix}_std": float(np.std(subsets)) if spread else None}
    if not spread:
        metrics["kid_std_note"] = (
            f"no KID spread: it is taken over random subsets of {kid_subset_size} images, and "
            f"with {len(feats_a)} {labels[0]} and {len(feats_b)} {labels[1]} images a subset is "
            "a whole set every time")
    return metrics


def _mean_and_error(sets: Sequence[dict]) -> dict:
    """fid and kid of several sample sets: their means, standard errors and per-set figures
    (kid_error takes kid_std's place; a kid_std_note, the same for every set, is kept)."""
    metrics: dict = {"sample_sets": len(sets)}
    for name in ("fid", "kid"):
        values = np.array([s[name] for s in sets])
        metrics |= {name: float(values.mean()),
                    f"{name}_error": float(values.std(ddof=1) / np.sqrt(len(values))),
                    f"{name}_per_set": [float(v) for v in values]}
    if "kid_std_note" in sets[0]:
        metrics["kid_std_note"] = sets[0]["kid_std_note"]
    return metrics


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


def evaluate(G: Translate, F: Translate, x_images: Images, y_images: Images, output_dir: str, *,
             features: FeatureNetwork | Features | None = None, compute_fid: bool = True,
             fid_weights: str | None = None, fid_network: str = "inception",
             batch_size: int = 16, n_kid_subsets: int = 100,
             kid_subset_size: int = KID_SUBSET_SIZE, grid_rows: int = GRID_ROWS,
             log: Callable[[str], None] = print, inputs: Sequence[str] = ()) -> dict:
    """Translates the test images both ways, writes them and the grids, returns the metrics.

    G: X -> Y and F: Y -> X, callables uint8 [N, H, W, 3] -> uint8 of the same shape.
    x_images, y_images: (name, uint8 [H, W, 3]) pairs as load_images gives, or bare arrays.
    features: the FID/KID network (features.FeatureNetwork, or any callable uint8 [N, H, W, 3] ->
    [N, D], reported as "custom"); None builds features.feature_network(fid_network,
    fid_weights). compute_fid=False skips FID/KID.
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
        features = feature_network(fid_network, fid_weights)
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
        for name, (a, b) in {"XtoY": ("GX", "Y"), "YtoX": ("FY", "X"), "X_Y": ("X", "Y")}.items():
            metrics.update(_distances(feats[a], feats[b], name, n_kid_subsets, kid_subset_size,
                                      (a.replace("GX", "G(X)").replace("FY", "F(Y)"), b)))
        metrics["feature_network"] = getattr(features, "name", "custom")

    with files.atomic_folder(output_dir) as folder:
        _write_images(os.path.join(folder, "XtoY"), _output_names(n for n, _ in x_named), gx)
        _write_images(os.path.join(folder, "YtoX"), _output_names(n for n, _ in y_named), fy)
        _write_grid(os.path.join(folder, "grid_X.png"), [xs, gx, fgx], grid_rows)
        _write_grid(os.path.join(folder, "grid_Y.png"), [ys, fy, gfy], grid_rows)
        with open(os.path.join(folder, "metrics.json"), "w", encoding="utf-8") as f:
            json.dump(metrics, f, indent=2, sort_keys=True)
    log(f"{'replaced' if replaced else 'wrote'} {output_dir}")
    return metrics


def _centre(image: np.ndarray, height: int, width: int) -> np.ndarray:
    """The image at the samples' size, as training saw it: shorter side resized, centre crop
    (a stretch would change the faces' proportions)."""
    picture = resize_shorter_side(Image.fromarray(image), max(height, width))
    left, top = (picture.width - width) // 2, (picture.height - height) // 2
    return np.asarray(picture.crop((left, top, left + width, top + height)))


def evaluate_generator(generator: ImageGenerator, real_images: Images, output_dir: str, *,
                       num: int = 500, seed: int = 0, sample_sets: int = 1,
                       truncation: float = 1.0, features: FeatureNetwork | Features | None = None,
                       fid_weights: str | None = None, fid_network: str = "inception",
                       batch_size: int = 64, n_kid_subsets: int = 100,
                       kid_subset_size: int = KID_SUBSET_SIZE, grid_size: int = 64,
                       log: Callable[[str], None] = print, inputs: Sequence[str] = ()) -> dict:
    """Scores a generator (DCGAN, WGAN-GP, StyleGAN): FID and KID of num samples against the real
    images.

    generator: a sampling.ImageGenerator (an exported model, or a run folder at one of its steps).
    The samples are the ones `inference.py --num NUM --seed SEED --truncation T` draws
    (truncation < 1 trades variety for typical images; the usual FID is at 1). Real images of
    another size are resized to the samples' size first (FID compares contents, not
    resolutions).
    sample_sets > 1 scores that many sets of num samples (seeds SEED, SEED + 1, ...) against the
    real features computed once: fid and kid are then the sets' means, fid_error and kid_error
    their standard errors (kid_error in kid_std's place), and fid_per_set, kid_per_set the sets'
    own figures. The error is the noise of sampling one model, so it tells two models apart; two
    training runs of one recipe can differ by more.
    features, fid_network, fid_weights: as in evaluate. Writes metrics.json and samples.png (the
    first grid_size samples of the first set) into output_dir, under the rules of evaluate.
    """
    if num < 2 or batch_size < 1 or sample_sets < 1:
        raise ConfigError(f"--num must be >= 2, --batch_size >= 1 and --sample_sets >= 1, got "
                          f"{num}, {batch_size} and {sample_sets}")
    if truncation < 0:
        raise ConfigError(f"--truncation must be >= 0 (1: none), got {truncation}")
    if features is None:  # first: missing weights fail before minutes of work
        features = feature_network(fid_network, fid_weights)
    real = [array for _, array in _named(real_images)]
    replaced = files.check_outputs([files.Output(output_dir, "folder")], inputs=inputs)

    def draw(set_seed: int) -> np.ndarray:
        log(f"drawing {num} samples (seed {set_seed})")
        return generator.generate(noise(set_seed, num, generator.z_dim), batch_size, truncation)

    samples = draw(seed)  # first: its size is the one the real images are brought to
    first = samples[:grid_size].copy()
    height, width = samples.shape[1:3]
    real = [array if array.shape[:2] == (height, width) else _centre(array, height, width)
            for array in real]
    log(f"computing FID/KID features of {len(real)} real images")
    real_features = np.stack(_batched(features, real, batch_size))

    def score(samples: np.ndarray) -> dict:
        log(f"computing FID/KID features of {num} samples")
        return _distances(np.stack(_batched(features, list(samples), batch_size)), real_features,
                          "", n_kid_subsets, kid_subset_size, ("samples", "real"))

    sets = [score(samples)]
    del samples  # one set of samples in memory at a time
    sets += [score(draw(set_seed)) for set_seed in range(seed + 1, seed + sample_sets)]
    metrics = {"num_samples": num, "num_real": len(real), "seed": seed, "image_size": int(height),
               **({"truncation": truncation} if truncation != 1 else {}),
               **(sets[0] if sample_sets == 1 else _mean_and_error(sets)),
               "feature_network": getattr(features, "name", "custom")}
    with files.atomic_folder(output_dir) as folder:
        grid(first).save(os.path.join(folder, "samples.png"))
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
