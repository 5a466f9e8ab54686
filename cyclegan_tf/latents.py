"""A StyleGAN's latent space: real faces into it (projection), directions learned from two
labelled folders, edits along them, the edit as an animation, and style-mixing grids.

All of it runs on an exported StyleGAN (its `mapping` and `synthesis` signatures, differentiated
through) or on a run folder's G_ema, through sampling.ImageGenerator.

Projection is the StyleGAN2 projector (Karras et al. 2020, Appendix D): Adam on one w per image
(or on w+: one per layer), starting at w_avg, with noise added to w that ramps down over the
first three quarters, the learning rate ramped up and then down, and a perceptual distance:
  "vgg16"   LPIPS-style: unit-normalised VGG16 features of five layers (Keras' ImageNet weights,
            downloaded once into ~/.keras/models), compared at 224 px;
  "pixels"  the fallback that needs no download: mean squared error of the images at full,
            1/2 and 1/4 resolution. It matches colours and shapes, not perceived detail, so
            reconstructions are blurrier in the details: every report names the distance used.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from cyclegan_tf import files
from cyclegan_tf.errors import ConfigError, DataError
from cyclegan_tf.sampling import ImageGenerator, noise

DISTANCES = ("auto", "vgg16", "pixels")
VGG_LAYERS = ("block1_conv2", "block2_conv2", "block3_conv3", "block4_conv3", "block5_conv3")
W_STATS_SAMPLES = 2000  # z's drawn for w_avg and the spread of w (the paper draws 10000)


def vgg16_available() -> bool:
    """Whether Keras' VGG16 ImageNet weights are already on this machine (no download)."""
    folder = os.path.join(os.path.expanduser(os.environ.get("KERAS_HOME", "~/.keras")), "models")
    return os.path.isfile(os.path.join(folder, "vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5"))


class PixelDistance:
    """Mean squared error at full, 1/2 and 1/4 resolution, per image (images in [-1, 1])."""

    name = "pixels"

    def __call__(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        total = 0.0
        for _ in range(3):
            total += tf.reduce_mean(tf.square(a - b), axis=[1, 2, 3])
            a = tf.nn.avg_pool2d(a, 2, 2, "VALID")
            b = tf.nn.avg_pool2d(b, 2, 2, "VALID")
        return total


class VGGDistance:
    """LPIPS-style distance without learned weights: per layer, channel-normalised VGG16
    features, squared differences averaged over positions, summed over layers, per image."""

    name = "vgg16"

    def __init__(self):
        try:
            vgg = keras.applications.VGG16(include_top=False, weights="imagenet")
        except Exception as e:  # offline: urllib's error, whatever its type
            raise ConfigError(f"--distance vgg16 needs Keras' VGG16 weights, which could not be "
                              f"downloaded ({type(e).__name__}: {e}); use --distance pixels") from None
        self.features = keras.Model(vgg.input, [vgg.get_layer(n).output for n in VGG_LAYERS])

    def _features(self, images: tf.Tensor) -> list[tf.Tensor]:
        x = tf.image.resize(images, [224, 224], "bilinear")
        x = keras.applications.vgg16.preprocess_input((x + 1.0) * 127.5)
        return [f * tf.math.rsqrt(tf.reduce_sum(tf.square(f), -1, keepdims=True) + 1e-10)
                for f in self.features(x)]

    def __call__(self, a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
        return tf.add_n([tf.reduce_mean(tf.reduce_sum(tf.square(fa - fb), -1), axis=[1, 2])
                         for fa, fb in zip(self._features(a), self._features(b))])


def make_distance(kind: str = "auto"):
    """auto: VGG16 when its weights are already here, else the pixel fallback."""
    if kind not in DISTANCES:
        raise ConfigError(f"--distance must be one of {DISTANCES}, got {kind!r}")
    if kind == "vgg16" or (kind == "auto" and vgg16_available()):
        return VGGDistance()
    return PixelDistance()


def _need_styles(generator: ImageGenerator, what: str) -> None:
    if not generator.styled:
        raise ConfigError(f"{what} needs a StyleGAN (train.py --model stylegan): this model has "
                          "no style space (a DCGAN / WGAN-GP makes images from noise alone)")


def w_statistics(generator: ImageGenerator, count: int = W_STATS_SAMPLES,
                 seed: int = 123) -> tuple[np.ndarray, float]:
    """The mean w of count random z's and the spread of w around it (the projector's start and
    the scale of its noise)."""
    w = np.concatenate([generator.mapping(z=z, truncation=tf.constant(1.0))["w"].numpy()
                        for z in tf.split(noise(seed, count, generator.z_dim), count // 500 or 1)])
    mean = w.mean(axis=0)
    return mean, float(np.sqrt(np.mean(np.sum(np.square(w - mean), axis=1))))


@dataclasses.dataclass
class Projection:
    """Each image's latent ([N, num_ws, w_dim]: the same w repeated, or w+), its reconstruction
    (uint8) and the final distance."""
    ws: np.ndarray
    images: np.ndarray
    distances: np.ndarray
    distance_name: str
    history: list[float]  # the mean distance every 10 steps


def project(generator: ImageGenerator, targets: np.ndarray, steps: int = 300,
            distance=None, w_plus: bool = False, learning_rate: float = 0.1,
            noise_ramp: float = 0.75, initial_noise: float = 0.05, seed: int = 0,
            log: Callable[[str], None] | None = None) -> Projection:
    """The w (or w+) whose images match targets (uint8 [N, H, W, 3] at the model's size), all
    N at once (Adam treats each element alone, so this is N independent projections)."""
    _need_styles(generator, "projection")
    distance = distance or make_distance()
    target = tf.convert_to_tensor(np.asarray(targets, np.float32) / 127.5 - 1.0)
    count = target.shape[0]
    w_avg, w_std = w_statistics(generator)
    layers = generator.num_ws if w_plus else 1
    w_opt = tf.Variable(np.tile(w_avg[None, None], [count, layers, 1]).astype(np.float32))
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.999)
    optimizer.build([w_opt])
    num_ws = generator.num_ws

    @tf.function
    def step(lr, noise_scale, seed_pair):
        w_noise = tf.random.stateless_normal(tf.shape(w_opt), seed_pair) * noise_scale
        with tf.GradientTape() as tape:
            ws = tf.broadcast_to(w_opt + w_noise, [count, num_ws, w_opt.shape[-1]])
            images = generator.synthesis(ws=ws)["images"]
            dist = distance(images, target)
            total = tf.reduce_sum(dist)
        optimizer.learning_rate.assign(lr)
        optimizer.apply_gradients([(tape.gradient(total, w_opt), w_opt)])
        return dist

    history = []
    for i in range(steps):
        t = i / max(steps, 1)
        noise_scale = w_std * initial_noise * max(0.0, 1.0 - t / noise_ramp) ** 2
        ramp = min(1.0, (1.0 - t) / 0.25)
        ramp = (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / 0.05)
        dist = step(tf.constant(learning_rate * ramp, tf.float32),
                    tf.constant(noise_scale, tf.float32), tf.constant([seed, i], tf.int64))
        if i % 10 == 0 or i == steps - 1:
            history.append(float(tf.reduce_mean(dist)))
            if log and (i % 100 == 0 or i == steps - 1):
                log(f"projection step {i + 1}/{steps}: {distance.name} distance "
                    f"{history[-1]:.4f}")
    ws = np.broadcast_to(w_opt.numpy(), (count, num_ws, w_opt.shape[-1])).copy()
    images = generator.synthesize(ws)
    final = distance(tf.convert_to_tensor(images, tf.float32) / 127.5 - 1.0, target).numpy()
    return Projection(ws, images, final, distance.name, history)


# -- directions -------------------------------------------------------------------------------------

def direction_path(model: str, name: str) -> str:
    if not name or os.sep in name or name.startswith("."):
        raise ConfigError(f"--learn_direction / --edit take a plain name such as 'gender', got "
                          f"{name!r}")
    return os.path.join(model, "directions", f"{name}.npy")


def learn_direction(generator: ImageGenerator, model: str, name: str,
                    from_images: np.ndarray, to_images: np.ndarray, steps: int = 200,
                    distance=None, batch: int = 32,
                    log: Callable[[str], None] = print) -> tuple[str, dict]:
    """Projects both sets and stores mean(w of to_images) - mean(w of from_images) as
    model/directions/name.npy ([num_ws, w_dim]; strength 1 moves a face by that difference),
    with name.json saying how it was made. Returns the path and that record."""
    _need_styles(generator, "--learn_direction")
    path = direction_path(model, name)
    distance = distance or make_distance()
    means, record = [], {"name": name, "distance": distance.name, "steps": steps}
    for label, images in (("from", from_images), ("to", to_images)):
        ws, dists = [], []
        for start in range(0, len(images), batch):
            log(f"projecting the '{label}' images {start + 1}-{min(start + batch, len(images))} "
                f"of {len(images)}")
            result = project(generator, images[start:start + batch], steps, distance)
            ws.append(result.ws)
            dists.append(result.distances)
        means.append(np.concatenate(ws).mean(axis=0))
        record[f"{label}_images"] = len(images)
        record[f"{label}_mean_distance"] = float(np.concatenate(dists).mean())
    direction = (means[1] - means[0]).astype(np.float32)
    record["norm"] = float(np.linalg.norm(direction[0]))
    os.makedirs(os.path.dirname(path), exist_ok=True)
    _save_npy(direction, path)
    with open(path[:-4] + ".json", "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    return path, record


def _save_npy(array: np.ndarray, path: str) -> None:
    """Written beside and renamed: a crash never leaves half a file."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def load_direction(model: str, name: str, num_ws: int) -> np.ndarray:
    path = direction_path(model, name)
    if not os.path.isfile(path):
        folder = os.path.dirname(path)
        known = sorted(n[:-4] for n in os.listdir(folder) if n.endswith(".npy")) \
            if os.path.isdir(folder) else []
        raise ConfigError(f"no direction {name!r} in {folder} (known: {', '.join(known) or 'none'}"
                          f"): learn it with --learn_direction {name} --from_images A "
                          "--to_images B")
    direction = np.load(path)
    if direction.shape[0] != num_ws:
        raise ConfigError(f"{path} was learned for another model ({direction.shape[0]} styles, "
                          f"this one has {num_ws})")
    return direction


def edit_frames(ws: np.ndarray, direction: np.ndarray, strength: float,
                frames: int) -> np.ndarray:
    """ws [num_ws, w_dim] moved along direction, from strength 0 to strength in frames steps,
    eased in and out (a smooth start and stop), then back: a looping animation."""
    t = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, frames))
    forward = ws[None] + (strength * t)[:, None, None] * direction[None]
    return np.concatenate([forward, forward[-2:0:-1]])


def mixing_grid(generator: ImageGenerator, rows: int = 4, columns: int = 4, seed: int = 0,
                cutoff: int = 4, truncation: float = 0.7) -> np.ndarray:
    """The paper's style-mixing figure as uint8 [(rows + 1) * H, (columns + 1) * W, 3]: the top
    row and the left column are samples; each cell takes the coarse styles (layers < cutoff:
    pose, face shape) of its row's sample and the fine ones (colours, details) of its column's."""
    _need_styles(generator, "--mix")
    z = noise(seed, rows + columns, generator.z_dim)
    w = generator.mapping(z=z, truncation=tf.constant(truncation, tf.float32))["w"].numpy()
    ws = np.repeat(w[:, None], generator.num_ws, axis=1)
    coarse, fine = ws[:rows], ws[rows:]
    mixed = np.concatenate([np.concatenate([coarse[r, :cutoff], fine[c, cutoff:]])[None]
                            for r in range(rows) for c in range(columns)])
    images = generator.synthesize(np.concatenate([coarse, fine, mixed]))
    h, w_ = images.shape[1:3]
    sheet = np.full(((rows + 1) * h, (columns + 1) * w_, 3), 255, np.uint8)
    for c in range(columns):
        sheet[:h, (c + 1) * w_:(c + 2) * w_] = images[rows + c]
    for r in range(rows):
        sheet[(r + 1) * h:(r + 2) * h, :w_] = images[r]
        for c in range(columns):
            sheet[(r + 1) * h:(r + 2) * h, (c + 1) * w_:(c + 2) * w_] = \
                images[rows + columns + r * columns + c]
    return sheet


# -- what inference.py writes -----------------------------------------------------------------------

def _inputs(source: str, size: int) -> list[tuple[str, np.ndarray]]:
    """(name, uint8 [size, size, 3]) for an image file or a folder of them (centre square)."""
    from cyclegan_tf.evaluate import load_images
    if os.path.isdir(source):
        return load_images(source, size, log=lambda *_: None)
    from cyclegan_tf.data import read_image
    from cyclegan_tf.evaluate import _centre
    image, _ = read_image(source)
    array = np.asarray(image)
    side = min(array.shape[:2])
    square = _centre(array, side, side) if array.shape[0] != array.shape[1] else array
    from PIL import Image
    return [(os.path.basename(source),
             np.asarray(Image.fromarray(square).resize((size, size), Image.LANCZOS)))]


def _photos(source: str) -> list[tuple[str, np.ndarray]]:
    from cyclegan_tf.data import list_image_files, read_image
    paths = list_image_files(source)[0] if os.path.isdir(source) else [source]
    return [(os.path.basename(p), np.asarray(read_image(p)[0])) for p in paths]


def _outputs(source: str, output: str, names: Sequence[str], ext: str) -> list[str]:
    if os.path.isdir(source):
        return [os.path.join(output, os.path.splitext(n)[0] + ext) for n in names]
    return [output]


def run_latent_command(model: str, *, project_only: bool = False, edit: str = "",
                       strength: float = 1.0, animate: bool = False, frames: int = 24,
                       input_path: str = "", output: str = "", steps: int = 300,
                       distance: str = "auto", w_plus: bool = False, align_faces: bool = False,
                       batch: int = 32, log: Callable[[str], None] = print) -> str:
    """inference.py --project / --edit: each input face (a file or a folder; with align_faces,
    every face of ordinary photos, pasted back) projected, then moved along a direction.
    Writes the image (or, with animate, a GIF) and, for --project, the latent as .npy beside
    it. Returns what was written, in words."""
    if not input_path:
        raise ConfigError("--project and --edit need --input: a face image or a folder of them")
    if not os.path.exists(input_path):
        raise DataError(f"--input {input_path} does not exist: give a face image or a folder")
    if os.path.isfile(input_path):
        files.check_outputs([files.Output(output, "image")], inputs=[input_path, model])
    generator = ImageGenerator.load(model)
    _need_styles(generator, "--project" if project_only else "--edit")
    direction = None if project_only else load_direction(model, edit, generator.num_ws)
    if animate and not output.lower().endswith(".gif"):
        raise ConfigError(f"--animate writes an animated GIF: end --output with .gif, not {output}")
    size = int(generator.synthesize(np.zeros([1, generator.num_ws, generator.z_dim],
                                             np.float32)).shape[1])
    measure = make_distance(distance)
    written = []

    def process(face: np.ndarray) -> tuple[np.ndarray, np.ndarray, Projection]:
        """One aligned face of a photo -> its frames (uint8 [F, size, size, 3]), its latent."""
        result = project(generator, face[None], steps, measure, w_plus, log=log)
        if direction is None:
            return result.images, result.ws[0], result
        if animate:
            return generator.synthesize(edit_frames(result.ws[0], direction, strength, frames)), \
                result.ws[0], result
        return generator.synthesize(result.ws + strength * direction[None]), result.ws[0], result

    if align_faces:
        from cyclegan_tf.faces import FaceDetector, FaceLayout, align, paste_back
        layout, detector = FaceLayout.load(model), FaceDetector()
        photos = _photos(input_path)
        paths = _outputs(input_path, output, [n for n, _ in photos],
                         os.path.splitext(output)[1] or ".png")
        files.check_outputs([files.Output(p, "image") for p in paths], inputs=[input_path, model])
        for (name, photo), path in zip(photos, paths):
            found = detector.detect(photo)
            if not found:
                log(f"  {name}: no face found, left out")
                continue
            crop, matrix = align(photo, found[0].landmarks, layout, size)
            images, ws, result = process(crop)
            pasted = np.stack([paste_back(photo, image, matrix) for image in images])
            written.append(_write(pasted, path, ws if project_only else None, result, log))
    else:
        faces = _inputs(input_path, size)
        ext = ".gif" if animate else (os.path.splitext(output)[1] or ".png")
        paths = _outputs(input_path, output, [n for n, _ in faces], ext)
        files.check_outputs([files.Output(p, "image") for p in paths], inputs=[input_path, model])
        for start in range(0, len(faces), batch):  # projections of a batch run together
            chunk = np.stack([face for _, face in faces[start:start + batch]])
            result = project(generator, chunk, steps, measure, w_plus, log=log)
            for i, path in enumerate(paths[start:start + batch]):
                ws = result.ws[i]
                if direction is None:
                    images = result.images[i:i + 1]
                elif animate:
                    images = generator.synthesize(edit_frames(ws, direction, strength, frames))
                else:
                    images = generator.synthesize((ws + strength * direction)[None])
                one = Projection(result.ws[i:i + 1], result.images[i:i + 1],
                                 result.distances[i:i + 1], result.distance_name, [])
                written.append(_write(images, path, ws if project_only else None, one, log))
    if len(written) > 3:
        return f"wrote {len(written)} images into {output}"
    return f"wrote {', '.join(written)}" if written else "no image written"


def _write(images: np.ndarray, path: str, ws: np.ndarray | None, result: Projection,
           log: Callable[[str], None]) -> str:
    from PIL import Image
    from cyclegan_tf.sampling import save_gif
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if path.lower().endswith(".gif"):
        save_gif(images, path)
    else:
        files.save_image(Image.fromarray(images[0]), path)
    if ws is not None:
        _save_npy(ws, os.path.splitext(path)[0] + ".npy")
    log(f"{path}: {result.distance_name} distance {float(result.distances[0]):.4f}")
    return path


def learn_direction_command(model: str, name: str, from_images: str, to_images: str,
                            limit: int = 100, steps: int = 200, distance: str = "auto",
                            log: Callable[[str], None] = print) -> str:
    """inference.py --learn_direction: the first `limit` images of each folder (or tfrecords)."""
    from cyclegan_tf.evaluate import load_images
    if not (from_images and to_images):
        raise ConfigError("--learn_direction needs --from_images and --to_images: folders (or "
                          "tfrecords) of faces without and with the attribute")
    direction_path(model, name)  # a bad name fails before the model loads
    generator = ImageGenerator.load(model)
    _need_styles(generator, "--learn_direction")
    size = int(generator.synthesize(np.zeros([1, generator.num_ws, generator.z_dim],
                                             np.float32)).shape[1])
    sets = [np.stack([a for _, a in load_images(source, size, limit, log)])
            for source in (from_images, to_images)]
    path, record = learn_direction(generator, model, name, *sets, steps=steps,
                                   distance=make_distance(distance), log=log)
    return f"wrote {path} ({json.dumps(record, sort_keys=True)})"


def mixing_grid_command(model: str, output: str, seed: int = 0, truncation: float = 0.7,
                        rows: int = 4, columns: int = 4) -> str:
    from PIL import Image
    files.check_outputs([files.Output(output, "image")], inputs=[model])
    generator = ImageGenerator.load(model)
    files.save_image(Image.fromarray(mixing_grid(generator, rows, columns, seed,
                                                 truncation=truncation)), output)
    return f"wrote {output} (top row and left column: samples; each cell: its row's coarse " \
           "styles with its column's fine ones)"
