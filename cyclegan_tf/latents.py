"""A StyleGAN's latent space: real faces into it (projection), directions learned from two
labelled folders, edits along them, the edit as an animation, and style-mixing grids.

All of it runs on an exported StyleGAN (its `mapping` and `synthesis` signatures, differentiated
through) or on a run folder's G_ema, through sampling.ImageGenerator.

Projection is the StyleGAN2 projector (Karras et al. 2020, Appendix D): Adam on one latent per
image, with noise added to it that ramps down over the first three quarters, the learning rate
ramped up and then down, and a perceptual distance. The latent is z by default (the mapping's
input, so the styles stay ones the generator was trained on), or the paper's w, or w+ (one w per
layer). The distances:
  "vgg16"   LPIPS-style: unit-normalised VGG16 features of five layers (Keras' ImageNet weights,
            downloaded once into ~/.keras/models), compared at 224 px;
  "pixels"  the fallback that needs no download: mean squared error of the images at full,
            1/2 and 1/4 resolution. It matches colours and shapes, not perceived detail, so
            reconstructions are blurrier in the details: every report names the distance used.

A direction is learned as InterFaceGAN does (a classifier of the two labelled folders labels
generated faces), or from the two folders' projections. An edit is made one of two ways:
  "optimize"   (the default, where the direction has its classifier) each face gets its own
               move: Adam on one w offset, shared by every layer, makes that classifier sure of
               the edit while a pixel distance keeps the image near the unedited face. A face
               then changes only where the attribute needs it: half the pixels' change of a
               move along the direction, flipped and kept as a face more often
               (benchmarks/README.md);
  "direction"  each face moves along the direction until the classifier is sure, at most by
               the strength asked. A face projected in z moves in z where the direction has its
               z form (moved in z, then mapped, whose pixel norm puts it back on z's sphere):
               every step is then a latent of the kind the generator was trained on, where a
               long move in w leaves the mapping's outputs and, in a young generator, breaks
               faces.
Without a classifier (a direction learned from projections) every face moves the strength asked
along the direction.
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
DIRECTION_METHODS = ("classifier", "projections")
CLASSIFIER_SIZE = 64  # the attribute classifier sees faces this size, whatever the model's
CLASSIFIED_SAMPLES = 4000  # generated faces the classifier labels for a direction
SPACES = ("z", "w", "w+")  # where the projector searches
PROJECTION_CANDIDATES = 256  # samples a z projection picks its start from
EDIT_METHODS = ("optimize", "direction")
EDIT_CONFIDENCE = {"optimize": 0.99, "direction": 0.9}  # --confidence's default, by method
REFINE_RATE = 0.01  # Adam's rate for the w+ refinement's offsets
REFINE_WEIGHT = 1.0  # its penalty on the offsets' mean square, against the summed distance
EDIT_STEPS = 60  # Adam steps of an optimised edit
EDIT_LEARNING_RATE = 0.05
EDIT_CLOSENESS = 30.0  # the pixel distance's weight against the hinge (chosen on training faces)


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
    z: np.ndarray | None = None  # space "z" unrefined: each image's z [N, z_dim], on z's sphere

    def one(self, i: int) -> Projection:
        """The i-th image's projection alone."""
        return Projection(self.ws[i:i + 1], self.images[i:i + 1], self.distances[i:i + 1],
                          self.distance_name, [], None if self.z is None else self.z[i:i + 1])


def project(generator: ImageGenerator, targets: np.ndarray, steps: int = 300,
            distance=None, space: str = "z", learning_rate: float | None = None,
            noise_ramp: float = 0.75, initial_noise: float = 0.05, seed: int = 0,
            refine_steps: int = 0,
            log: Callable[[str], None] | None = None) -> Projection:
    """The latent whose images match targets (uint8 [N, H, W, 3] at the model's size), all N at
    once (Adam treats each element alone, so this is N independent projections).

    space "w": the paper's, one w from w_avg; "w+": one w per layer, closer fits that edit less
    reliably; "z": the mapping's input, so that w stays among those the generator was trained
    on, from the nearest of PROJECTION_CANDIDATES samples. A young generator (hours on a CPU)
    makes blurred faces for most w that its mapping never produced, so "w" then fits the pixels
    more closely with a blurred face; "z" gives a sharper one, and that is what edits need.

    refine_steps > 0 then refines the result in w+ (`refine`): the reconstruction keeps the
    person far more often, and edits of it flip less (benchmarks/README.md)."""
    _need_styles(generator, "projection")
    if space not in SPACES:
        raise ConfigError(f"--space must be one of {SPACES}, got {space!r}")
    if refine_steps < 0:
        raise ConfigError(f"--refine_steps must be >= 0, got {refine_steps}")
    distance = distance or make_distance()
    target = tf.convert_to_tensor(np.asarray(targets, np.float32) / 127.5 - 1.0)
    count, num_ws = target.shape[0], generator.num_ws
    if space == "z":
        start = _nearest_samples(generator, target, seed)
        # z's elements are unit normal: a milder noise than the paper's on w (whose scale is
        # the spread of the whole vector), and the setting measured in benchmarks/README.md.
        noise_std = 1.0
    else:
        w_avg, noise_std = w_statistics(generator)
        start = np.tile(w_avg[None, None], [count, num_ws if space == "w+" else 1, 1])
    latent = tf.Variable(start.astype(np.float32))
    if learning_rate is None:
        learning_rate = 0.05 if space == "z" else 0.1
    optimizer = keras.optimizers.Adam(learning_rate, beta_1=0.9, beta_2=0.999)
    optimizer.build([latent])

    def styles(value: tf.Tensor) -> tf.Tensor:
        """The latent as styles [count, num_ws, w_dim]."""
        if space == "z":
            value = generator.mapping(z=on_sphere(value[:, 0]),
                                      truncation=tf.constant(1.0))["w"][:, None]
        return tf.broadcast_to(value, [count, num_ws, value.shape[-1]])

    @tf.function
    def step(lr, noise_scale, seed_pair):
        latent_noise = tf.random.stateless_normal(tf.shape(latent), seed_pair) * noise_scale
        with tf.GradientTape() as tape:
            images = generator.synthesis(ws=styles(latent + latent_noise))["images"]
            dist = distance(images, target)
            total = tf.reduce_sum(dist)
        optimizer.learning_rate.assign(lr)
        optimizer.apply_gradients([(tape.gradient(total, latent), latent)])
        return dist

    history = []
    for i in range(steps):
        t = i / max(steps, 1)
        noise_scale = noise_std * initial_noise * max(0.0, 1.0 - t / noise_ramp) ** 2
        ramp = min(1.0, (1.0 - t) / 0.25)
        ramp = (0.5 - 0.5 * math.cos(ramp * math.pi)) * min(1.0, t / 0.05)
        dist = step(tf.constant(learning_rate * ramp, tf.float32),
                    tf.constant(noise_scale, tf.float32), tf.constant([seed, i], tf.int64))
        if i % 10 == 0 or i == steps - 1:
            history.append(float(tf.reduce_mean(dist)))
            if log and (i % 100 == 0 or i == steps - 1):
                log(f"projection step {i + 1}/{steps}: {distance.name} distance "
                    f"{history[-1]:.4f}")
    ws = styles(tf.convert_to_tensor(latent)).numpy()
    z = on_sphere(latent[:, 0]).numpy() if space == "z" else None
    if refine_steps:
        ws = refine(generator, ws, target, refine_steps, distance, log)
        z = None  # the refined styles are no z's: edits move them in w
    images = generator.synthesize(ws)
    final = distance(tf.convert_to_tensor(images, tf.float32) / 127.5 - 1.0, target).numpy()
    return Projection(ws, images, final, distance.name, history, z)


def refine(generator: ImageGenerator, ws: np.ndarray, target: tf.Tensor, steps: int, distance,
           log: Callable[[str], None] | None = None) -> np.ndarray:
    """ws [N, num_ws, w_dim] plus one offset per layer, fitted by Adam to target ([-1, 1]),
    the offsets' mean square penalised (REFINE_WEIGHT): a projection's details, which its single
    w cannot reach, without wandering far from the styles it found (the distortion–editability
    trade-off of Tov et al. 2021: the closer the fit, the less an edit moves the face)."""
    base = tf.constant(ws, tf.float32)
    offset = tf.Variable(tf.zeros_like(base))
    optimizer = keras.optimizers.Adam(REFINE_RATE)
    optimizer.build([offset])

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            dist = distance(generator.synthesis(ws=base + offset)["images"], target)
            penalty = tf.reduce_mean(tf.square(offset), axis=[1, 2])
            total = tf.reduce_sum(dist + REFINE_WEIGHT * penalty)
        optimizer.apply_gradients([(tape.gradient(total, offset), offset)])
        return dist

    for i in range(steps):
        dist = step()
        if log and (i % 100 == 0 or i == steps - 1):
            log(f"refinement step {i + 1}/{steps}: {distance.name} distance "
                f"{float(tf.reduce_mean(dist)):.4f}")
    return (base + offset).numpy()


def on_sphere(z: tf.Tensor) -> tf.Tensor:
    """z [N, z_dim] scaled to the sphere (radius sqrt(z_dim)) that normal z lives near and
    that the mapping's pixel norm puts every z on."""
    z = tf.convert_to_tensor(z, tf.float32)
    return z * tf.math.rsqrt(tf.reduce_mean(tf.square(z), -1, keepdims=True) + 1e-8)


def _nearest_samples(generator: ImageGenerator, target: tf.Tensor, seed: int) -> np.ndarray:
    """z [N, 1, z_dim]: for each target, the candidate sample closest to it in pixels at 16 px
    (cheap and blind to detail: it finds the pose, colours and light to start from)."""
    z = noise(seed + 7919, PROJECTION_CANDIDATES, generator.z_dim)
    w = generator.mapping(z=z, truncation=tf.constant(1.0))["w"]
    small = []
    for start in range(0, PROJECTION_CANDIDATES, 64):
        images = generator.synthesis(ws=tf.repeat(w[start:start + 64, None], generator.num_ws,
                                                  axis=1))["images"]
        small.append(tf.reshape(tf.image.resize(images, [16, 16], "area"), [len(images), -1]))
    candidates = tf.concat(small, 0)
    targets = tf.reshape(tf.image.resize(target, [16, 16], "area"), [target.shape[0], -1])
    squared = (tf.reduce_sum(tf.square(targets), 1, keepdims=True)
               - 2.0 * tf.matmul(targets, candidates, transpose_b=True)
               + tf.reduce_sum(tf.square(candidates), 1)[None])
    return tf.gather(z, tf.argmin(squared, axis=1)).numpy()[:, None]


# -- directions -------------------------------------------------------------------------------------

def direction_path(model: str, name: str) -> str:
    if not name or os.sep in name or "." in name:  # name.z.npy is name's z form
        raise ConfigError(f"--learn_direction / --edit take a plain name such as 'gender', got "
                          f"{name!r}")
    return os.path.join(model, "directions", f"{name}.npy")


def learn_direction(generator: ImageGenerator, model: str, name: str,
                    from_images: np.ndarray, to_images: np.ndarray,
                    method: str = "classifier", steps: int = 200, distance=None,
                    space: str = "z", batch: int = 32, samples: int = CLASSIFIED_SAMPLES,
                    keep_brightness: bool = True,
                    log: Callable[[str], None] = print) -> tuple[str, dict]:
    """Learns the direction from from_images (without the attribute) to to_images (with it)
    and stores it as model/directions/name.npy ([num_ws, w_dim], in w), name.z.npy ([z_dim],
    the same in z, where it is known: for edits of z projections) and name.json saying how it
    was made. Returns the path and that record.

    method "classifier" (InterFaceGAN's way, Shen et al. 2020): a small CNN learns the
    attribute from the two sets (uint8 [N, 64, 64, 3]), labels `samples` generated faces, and
    the direction is the mean latent of the quarter it is surest have the attribute minus that
    of the quarter surest lack it. The generator's own faces carry the labels, so no real face
    has to be projected, and thousands of samples average out what is not the attribute; with
    keep_brightness, what the direction shares with the samples' brightness is taken out.
    method "projections": both sets (at the model's size) projected, the difference of their
    mean latents. Cheap in images, but a few hundred projections leave much noise in 512
    dimensions, and the projector's blur weakens fine cues such as gender.
    Strength 1 moves a face by the difference either way."""
    _need_styles(generator, "--learn_direction")
    if method not in DIRECTION_METHODS:
        raise ConfigError(f"--direction_method must be one of {DIRECTION_METHODS}, got {method!r}")
    path = direction_path(model, name)
    for label, images in (("--from_images", from_images), ("--to_images", to_images)):
        if len(images) < 2:
            raise DataError(f"{label} has {len(images)} readable image(s): a direction needs at "
                            "least 2 of each kind (hundreds for a useful one)")
    record = {"name": name, "method": method, "from_images": len(from_images),
              "to_images": len(to_images)}
    if method == "classifier":
        classifier, accuracy = train_classifier(from_images, to_images, log=log)
        direction, z_direction, to_fraction = classifier_direction(
            generator, classifier, samples, keep_brightness=keep_brightness)
        record.update(classifier_held_out_accuracy=round(accuracy, 4), samples=samples,
                      samples_with_attribute=round(to_fraction, 4),
                      keep_brightness=keep_brightness)
    else:
        distance = distance or make_distance()
        record.update(distance=distance.name, steps=steps, space=space)
        means, z_means = [], []
        for label, images in (("from", from_images), ("to", to_images)):
            ws, zs, dists = [], [], []
            for start in range(0, len(images), batch):
                log(f"projecting the '{label}' images {start + 1}-"
                    f"{min(start + batch, len(images))} of {len(images)}")
                result = project(generator, images[start:start + batch], steps, distance,
                                 space)
                ws.append(result.ws)
                zs.append(result.z)
                dists.append(result.distances)
            means.append(np.concatenate(ws).mean(axis=0))
            if space == "z":
                z_means.append(np.concatenate(zs).mean(axis=0))
            record[f"{label}_mean_distance"] = float(np.concatenate(dists).mean())
        direction = (means[1] - means[0]).astype(np.float32)
        z_direction = z_means[1] - z_means[0] if z_means else None
    record["norm"] = float(np.linalg.norm(direction[0]))
    if z_direction is not None:
        record["z_norm"] = float(np.linalg.norm(z_direction))
    # Each file renamed into place, the .npy last: a new .npy always has its own classifier
    # and z form beside it (a crash before it leaves the old .npy, which a rerun replaces).
    folder = os.path.dirname(path)
    os.makedirs(folder, exist_ok=True)
    saved = path[:-4] + ".keras"
    if method == "classifier":  # edits ask it how far each face has to move
        tmp = os.path.join(folder, f".{name}.tmp.keras")
        classifier.save(tmp)
        os.replace(tmp, saved)
    elif os.path.exists(saved):  # the classifier of an earlier direction of that name
        os.remove(saved)
    tmp = os.path.join(folder, f".{name}.json.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(record, f, indent=2, sort_keys=True)
    os.replace(tmp, path[:-4] + ".json")
    if z_direction is not None:
        _save_npy(z_direction.astype(np.float32), path[:-4] + ".z.npy")
    elif os.path.exists(path[:-4] + ".z.npy"):  # an earlier direction's, learned in z
        os.remove(path[:-4] + ".z.npy")
    _save_npy(direction.astype(np.float32), path)
    return path, record


def attribute_classifier() -> keras.Model:
    """A small CNN: a CLASSIFIER_SIZE face in [-1, 1] -> the logit of having the attribute."""
    layers = keras.layers
    blocks = [layer for width in (32, 64, 128, 256)
              for layer in (layers.Conv2D(width, 3, 2, "same"), layers.BatchNormalization(),
                            layers.LeakyReLU(0.2))]
    return keras.Sequential([keras.Input((CLASSIFIER_SIZE, CLASSIFIER_SIZE, 3)),
                             layers.RandomFlip("horizontal"), *blocks,
                             layers.GlobalAveragePooling2D(), layers.Dropout(0.3),
                             layers.Dense(1)], name="attribute_classifier")


def train_classifier(without: np.ndarray, with_: np.ndarray, epochs: int = 8, seed: int = 0,
                     log: Callable[[str], None] = print) -> tuple[keras.Model, float]:
    """The classifier trained on both sets (uint8 at CLASSIFIER_SIZE; label 1: with_), a tenth
    of each held out; returns it and its accuracy on what it did not see."""
    order = [np.random.default_rng(seed + i).permutation(len(s))
             for i, s in enumerate((without, with_))]
    held = [max(1, len(s) // 10) for s in (without, with_)]
    split = [(s[o[h:]], s[o[:h]]) for s, o, h in zip((without, with_), order, held)]
    x = np.concatenate([split[0][0], split[1][0]]).astype(np.float32) / 127.5 - 1.0
    y = np.concatenate([np.zeros(len(split[0][0])), np.ones(len(split[1][0]))])
    x_held = np.concatenate([split[0][1], split[1][1]]).astype(np.float32) / 127.5 - 1.0
    y_held = np.concatenate([np.zeros(held[0]), np.ones(held[1])])
    classifier = attribute_classifier()
    classifier.compile(keras.optimizers.Adam(1e-3),
                       keras.losses.BinaryCrossentropy(from_logits=True))
    log(f"training the attribute classifier on {len(x)} faces ({epochs} epochs)")
    classifier.fit(x, y, batch_size=64, epochs=epochs, shuffle=True, verbose=0)
    logits = classifier.predict(x_held, batch_size=256, verbose=0)[:, 0]
    accuracy = float(np.mean((logits > 0) == (y_held > 0.5)))
    log(f"classifier accuracy on {len(x_held)} held-out faces: {accuracy:.3f}")
    return classifier, accuracy


def classifier_input(images: tf.Tensor) -> tf.Tensor:
    """A model's images [N, S, S, 3] (S a power of two) at CLASSIFIER_SIZE, differentiably: the
    mean of each block (what area resizing computes, which has no gradient), or each pixel
    repeated."""
    size = images.shape[1]
    if size > CLASSIFIER_SIZE:
        return tf.nn.avg_pool2d(images, size // CLASSIFIER_SIZE, size // CLASSIFIER_SIZE, "VALID")
    if size < CLASSIFIER_SIZE:
        return tf.image.resize(images, [CLASSIFIER_SIZE] * 2, "nearest")
    return images


def attribute_logits(classifier: keras.Model, images: tf.Tensor) -> np.ndarray:
    """The classifier's logits [N] for a model's images [N, S, S, 3] in [-1, 1]."""
    return np.asarray(classifier(classifier_input(images), training=False))[:, 0]


def classifier_direction(generator: ImageGenerator, classifier: keras.Model,
                         samples: int = CLASSIFIED_SAMPLES, fraction: float = 0.25,
                         seed: int = 0, chunk: int = 250, keep_brightness: bool = True
                         ) -> tuple[np.ndarray, np.ndarray, float]:
    """The mean latent of the `fraction` of samples the classifier scores highest minus that of
    the fraction it scores lowest, in w ([num_ws, w_dim]) and in z ([z_dim]); and the fraction
    it calls positive.

    keep_brightness: less its part along the samples' brightness direction (the same
    difference, of the faces' mean brightness), as InterFaceGAN's conditional edits take one
    attribute out of another. An attribute that goes with lighter or darker faces among the
    samples (gender does in this generator) would otherwise change skin tone and light too."""
    zs, ws, logits, light = [], [], [], []
    for start in range(0, samples, chunk):
        z = noise(seed + start, min(chunk, samples - start), generator.z_dim)
        w = generator.mapping(z=z, truncation=tf.constant(1.0))["w"]
        images = generator.synthesis(ws=tf.repeat(w[:, None], generator.num_ws, axis=1))
        logits.append(attribute_logits(classifier, images["images"]))
        light.append(face_brightness(images["images"]))
        zs.append(z.numpy())
        ws.append(w.numpy())
    zs, ws, logits, light = (np.concatenate(a) for a in (zs, ws, logits, light))
    count = max(1, int(round(samples * fraction)))

    def difference(latents: np.ndarray, scores: np.ndarray) -> np.ndarray:
        order = np.argsort(scores)
        return latents[order[-count:]].mean(axis=0) - latents[order[:count]].mean(axis=0)

    w_direction, z_direction = difference(ws, logits), difference(zs, logits)
    if keep_brightness:
        w_direction, z_direction = (
            without(direction, difference(latents, light))
            for direction, latents in ((w_direction, ws), (z_direction, zs)))
    return (np.repeat(w_direction[None], generator.num_ws, axis=0), z_direction,
            float(np.mean(logits > 0)))


def face_brightness(images: tf.Tensor) -> np.ndarray:
    """[N]: the mean of each image's central half (where an aligned face is), in [-1, 1]."""
    h, w = images.shape[1] // 4, images.shape[2] // 4
    return np.asarray(tf.reduce_mean(images[:, h:-h, w:-w], axis=[1, 2, 3]))


def without(direction: np.ndarray, other: np.ndarray) -> np.ndarray:
    """direction less its projection on other: orthogonal to it."""
    return direction - np.dot(direction, other) / np.dot(other, other) * other


def _save_npy(array: np.ndarray, path: str) -> None:
    """Written beside and renamed: a crash never leaves half a file."""
    tmp = os.path.join(os.path.dirname(path) or ".", f".{os.path.basename(path)}.tmp")
    with open(tmp, "wb") as f:
        np.save(f, array)
    os.replace(tmp, path)


def load_direction(model: str, name: str, num_ws: int) -> np.ndarray:
    """model/directions/name.npy, checked against the model; a clear error naming the known
    directions when there is none of that name."""
    path = direction_path(model, name)
    if not os.path.isfile(path):
        folder = os.path.dirname(path)
        known = sorted(n[:-4] for n in os.listdir(folder)
                       if n.endswith(".npy") and not n.endswith(".z.npy")) \
            if os.path.isdir(folder) else []
        raise ConfigError(f"no direction {name!r} in {folder} (known: {', '.join(known) or 'none'}"
                          f"): learn it with --learn_direction {name} --from_images A "
                          "--to_images B")
    direction = np.load(path)
    if direction.shape[0] != num_ws:
        raise ConfigError(f"{path} was learned for another model ({direction.shape[0]} styles, "
                          f"this one has {num_ws})")
    return direction


def load_z_direction(model: str, name: str, z_dim: int) -> np.ndarray | None:
    """The direction's z form ([z_dim]), or None where it was learned without one."""
    path = direction_path(model, name)[:-4] + ".z.npy"
    if not os.path.isfile(path):
        return None
    direction = np.load(path)
    if direction.shape != (z_dim,):
        raise ConfigError(f"{path} was learned for another model (z of {direction.shape}, this "
                          f"one has {z_dim})")
    return direction


def load_classifier(model: str, name: str) -> keras.Model | None:
    """The classifier a direction was learned with (method "classifier"), or None."""
    path = direction_path(model, name)[:-4] + ".keras"
    return keras.models.load_model(path, compile=False) if os.path.isfile(path) else None


def edited_styles(generator: ImageGenerator, latents: np.ndarray, direction: np.ndarray,
                  strengths: np.ndarray) -> np.ndarray:
    """Styles [N, num_ws, w_dim] of latents moved along direction by strengths [N]: w's
    ([N, num_ws, w_dim], direction [num_ws, w_dim]) move in w; z's ([N, z_dim], direction
    [z_dim]) move in z and through the mapping, whose pixel norm puts them back on z's sphere."""
    strengths = np.asarray(strengths, np.float32).reshape([-1] + [1] * (latents.ndim - 1))
    moved = (latents + strengths * direction[None]).astype(np.float32)
    if latents.ndim == 3:
        return moved
    w = generator.mapping(z=tf.constant(moved), truncation=tf.constant(1.0))["w"].numpy()
    return np.repeat(w[:, None], generator.num_ws, axis=1)


def edit_strengths(generator: ImageGenerator, latents: np.ndarray, direction: np.ndarray,
                   strength: float, classifier: keras.Model, confidence: float = 0.9,
                   tries: int = 12) -> np.ndarray:
    """Per face of latents (w's or z's, as edited_styles), the smallest of `tries` even steps
    up to strength at which the classifier is `confidence` sure that the edited face has the
    attribute (strength > 0) or lacks it (< 0); strength itself where it never is. Faces differ
    in how far they must move: one fixed strength over-edits some (artefacts) and under-edits
    others."""
    chosen = np.full(len(latents), strength, np.float32)
    if strength == 0:
        return chosen
    pending = np.ones(len(latents), bool)
    for k in range(1, tries + 1):
        s = strength * k / tries
        images = generator.synthesis(ws=tf.constant(edited_styles(
            generator, latents, direction, np.full(len(latents), s))))
        sure = 1.0 / (1.0 + np.exp(-attribute_logits(classifier, images["images"])))
        sure = sure if strength > 0 else 1.0 - sure
        done = pending & (sure >= confidence)
        chosen[done] = s
        pending &= ~done
        if not pending.any():
            break
    return chosen


def optimized_edit(generator: ImageGenerator, ws: np.ndarray,
                   classifier: Callable[..., tf.Tensor], strength: float,
                   direction_length: float, confidence: float = EDIT_CONFIDENCE["optimize"],
                   steps: int = EDIT_STEPS, closeness: float = EDIT_CLOSENESS,
                   learning_rate: float = EDIT_LEARNING_RATE) -> tuple[np.ndarray, np.ndarray]:
    """Styles [N, num_ws, w_dim]: each face of ws moved by its own w offset (one for every
    layer) that Adam chooses to make the classifier `confidence` sure the face has the
    attribute (strength > 0) or lacks it (< 0), against closeness times the pixel distance to
    the unedited image; the offset at most |strength| direction_lengths long. Also each face's
    move in direction lengths, signed as strength.

    Where edit_strengths tries points on one line, this finds each face its own path: the
    classifier's gradient points at what that face lacks, and the distance keeps the rest. Its
    loss is a hinge: a face the classifier is already sure of is only held near itself.
    classifier: a Keras model, or any callable (images, training) -> logits [N, 1]."""
    ws = tf.convert_to_tensor(ws, tf.float32)
    limit = abs(strength) * direction_length
    if limit == 0:
        return ws.numpy(), np.zeros(len(ws), np.float32)
    sign = 1.0 if strength > 0 else -1.0
    margin = math.log(confidence / (1.0 - confidence))
    distance = PixelDistance()
    offset = tf.Variable(tf.zeros([ws.shape[0], 1, ws.shape[2]]))
    # The first step's images: the very pixels that later steps compute at offset 0.
    image_shape = generator.synthesis(ws=ws[:1])["images"].shape[1:]
    unedited = tf.Variable(tf.zeros([ws.shape[0], *image_shape]))
    optimizer = keras.optimizers.Adam(learning_rate)
    optimizer.build([offset])

    @tf.function
    def step(first):
        with tf.GradientTape() as tape:
            images = generator.synthesis(ws=ws + offset)["images"]
            reference = unedited + first * (tf.stop_gradient(images) - unedited)
            logits = sign * tf.convert_to_tensor(
                classifier(classifier_input(images), training=False))[:, 0]
            loss = tf.reduce_sum(tf.nn.relu(margin - logits)
                                 + closeness * distance(images, reference))
        # Adam would blow a rounding difference up into a full step: the exact reference
        # leaves a face the classifier is already sure of exactly where it is.
        optimizer.apply_gradients([(tape.gradient(loss, offset), offset)])
        offset.assign(tf.clip_by_norm(offset, limit, axes=[1, 2]))
        unedited.assign(reference)

    for i in range(steps):
        step(tf.constant(float(i == 0)))
    moved = offset.numpy()
    return (ws + moved).numpy(), sign * np.linalg.norm(moved[:, 0], axis=-1) / direction_length


def _eased(frames: int) -> np.ndarray:
    """frames points from 0 to 1 with a smooth start and stop."""
    return (0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, frames))).astype(np.float32)


def _there_and_back(forward: np.ndarray) -> np.ndarray:
    return np.concatenate([forward, forward[-2:0:-1]])


def edit_frames(generator: ImageGenerator, latent: np.ndarray, direction: np.ndarray,
                strength: float, frames: int) -> np.ndarray:
    """Styles of one face's latent (a w [num_ws, w_dim] or a z [z_dim]) moved along direction,
    from strength 0 to strength in frames steps, eased in and out, then back: a looping
    animation."""
    return _there_and_back(edited_styles(generator, np.repeat(latent[None], frames, axis=0),
                                         direction, strength * _eased(frames)))


def blend_frames(start: np.ndarray, end: np.ndarray, frames: int) -> np.ndarray:
    """Styles from start to end ([num_ws, w_dim] each; an optimised edit) in frames steps,
    eased, then back: the same animation for an edit that is no line through the direction."""
    t = _eased(frames)[:, None, None]
    return _there_and_back(start[None] + t * (end - start)[None])


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


def _photo_paths(source: str) -> list[str]:
    from cyclegan_tf.data import list_image_files
    return list_image_files(source)[0] if os.path.isdir(source) else [source]


def _read_photo(path: str) -> np.ndarray:
    from cyclegan_tf.data import read_image
    return np.asarray(read_image(path)[0])


def _outputs(source: str, output: str, names: Sequence[str], ext: str) -> list[str]:
    if os.path.isdir(source):
        return [os.path.join(output, os.path.splitext(n)[0] + ext) for n in names]
    return [output]


def run_latent_command(model: str, *, project_only: bool = False, edit: str = "",
                       strength: float = 3.0, animate: bool = False, frames: int = 24,
                       input_path: str = "", output: str = "", steps: int = 300,
                       distance: str = "auto", space: str = "z",
                       confidence: float | None = None, method: str = "optimize",
                       align_faces: bool = False, batch: int = 32, refine_steps: int = 0,
                       log: Callable[[str], None] = print) -> str:
    """inference.py --project / --edit: each input face (a file or a folder; with align_faces,
    the largest face of each ordinary photo, pasted back) projected, then edited (the module's
    doc): where the direction has its classifier and confidence > 0, only as far as that
    classifier needs to be `confidence` sure of the edit (EDIT_CONFIDENCE by method, when None),
    at most `strength` direction lengths; otherwise moved along the direction by `strength`.
    refine_steps > 0 refines each projection in w+ (project). Writes the image (or, with
    animate, a GIF) and, for --project, the latent as .npy beside it. Returns what was written,
    in words."""
    if not input_path:
        raise ConfigError("--project and --edit need --input: a face image or a folder of them")
    if method not in EDIT_METHODS:
        raise ConfigError(f"--edit_method must be one of {EDIT_METHODS}, got {method!r}")
    if confidence is None:
        confidence = EDIT_CONFIDENCE[method]
    if not 0 <= confidence < 1:
        raise ConfigError(f"--confidence is a probability the edit must reach, in [0, 1) (0: "
                          f"always the full --strength), got {confidence}")
    if not os.path.exists(input_path):
        raise DataError(f"--input {input_path} does not exist: give a face image or a folder")
    if os.path.isfile(input_path):
        files.check_outputs([files.Output(output, "image")], inputs=[input_path, model])
    generator = ImageGenerator.load(model)
    _need_styles(generator, "--project" if project_only else "--edit")
    direction = None if project_only else load_direction(model, edit, generator.num_ws)
    classifier = None if project_only or confidence <= 0 else load_classifier(model, edit)
    if direction is not None and confidence > 0 and classifier is None:
        log(f"direction {edit!r} has no classifier (learned from projections): every face moves "
            f"by the strength {strength}")
    optimize = method == "optimize" and classifier is not None
    if direction is not None and method == "optimize" and confidence <= 0:
        log("--confidence 0: the optimised edit needs a confidence to reach, so every face "
            f"moves the full strength {strength} along the direction")
    z_direction = None if project_only or optimize or space != "z" or refine_steps else \
        load_z_direction(model, edit, generator.z_dim)
    if optimize:
        log(f"editing along {edit!r}: each face's move in w optimised until the classifier is "
            f"{confidence} sure")
    elif direction is not None and refine_steps:
        log(f"editing in w along {edit!r} (refined projections are no z's)")
    elif direction is not None and space == "z" and z_direction is None:
        log(f"direction {edit!r} has no z form (learned from w projections, or before z "
            "edits): these z projections are edited in w; relearn it to edit them in z")
    elif direction is not None:
        log(f"editing in {'z' if z_direction is not None else 'w'} along {edit!r}")
    if animate and os.path.isfile(input_path) and not output.lower().endswith(".gif"):
        raise ConfigError(f"--animate writes an animated GIF: end --output with .gif, not {output}")
    size = int(generator.synthesize(np.zeros([1, generator.num_ws, generator.z_dim],
                                             np.float32)).shape[1])
    measure = make_distance(distance)
    written = []

    def outputs(result: Projection) -> list[tuple[np.ndarray, str]]:
        """Each projected face's frames (its reconstruction, or its edit, or the edit animated)
        and a note for the log."""
        count = len(result.ws)
        if direction is None:
            return [(result.images[i:i + 1], "") for i in range(count)]
        if optimize:
            ends, moved = optimized_edit(generator, result.ws, classifier, strength,
                                         float(np.linalg.norm(direction[0])), confidence)
            notes = [f", strength {s:.2f}" for s in moved]
            if animate:
                return [(generator.synthesize(blend_frames(start, end, frames)), note)
                        for start, end, note in zip(result.ws, ends, notes)]
            edited = generator.synthesize(ends)
            return [(edited[i:i + 1], notes[i]) for i in range(count)]
        # A z projection moves in z where the direction is known there (see the module's doc).
        latents, along = (result.z, z_direction) if z_direction is not None else \
            (result.ws, direction)
        strengths = np.full(count, strength, np.float32) if classifier is None else \
            edit_strengths(generator, latents, along, strength, classifier, confidence)
        notes = [f", strength {s:.2f}" for s in strengths]
        if animate:
            return [(generator.synthesize(edit_frames(generator, latent, along, s, frames)),
                     note) for latent, s, note in zip(latents, strengths, notes)]
        edited = generator.synthesize(edited_styles(generator, latents, along, strengths))
        return [(edited[i:i + 1], notes[i]) for i in range(count)]

    ext = ".gif" if animate else (os.path.splitext(output)[1] or ".png")
    if align_faces:
        from cyclegan_tf.data import BadImage
        from cyclegan_tf.faces import FaceDetector, FaceLayout, align, paste_back
        layout, detector = FaceLayout.load(model), FaceDetector()
        sources = _photo_paths(input_path)
        paths = _outputs(input_path, output, [os.path.basename(p) for p in sources], ext)
        files.check_outputs([files.Output(p, "image") for p in paths], inputs=[input_path, model])
        for start in range(0, len(sources), batch):  # the faces of a batch projected together
            found = []  # (photo, its aligned face, the warp back, where it goes)
            for source, path in zip(sources[start:start + batch], paths[start:start + batch]):
                try:
                    photo = _read_photo(source)
                except BadImage as e:
                    if len(sources) == 1:
                        raise DataError(f"cannot read {source}: {e}") from None
                    log(f"  {os.path.basename(source)}: skipped, {e}")
                    continue
                faces = detector.detect(photo)
                if not faces:
                    log(f"  {os.path.basename(source)}: no face found, left out")
                    continue
                found.append((photo, *align(photo, faces[0].landmarks, layout, size), path))
            if not found:
                continue
            result = project(generator, np.stack([crop for _, crop, _, _ in found]), steps,
                             measure, space, refine_steps=refine_steps, log=log)
            for i, ((photo, _, matrix, path), (images, note)) in enumerate(
                    zip(found, outputs(result))):
                pasted = np.stack([paste_back(photo, image, matrix) for image in images])
                written.append(_write(pasted, path, result.one(i), log, note,
                                      save_latent=project_only))
    else:
        faces = _inputs(input_path, size)
        paths = _outputs(input_path, output, [n for n, _ in faces], ext)
        files.check_outputs([files.Output(p, "image") for p in paths], inputs=[input_path, model])
        for start in range(0, len(faces), batch):  # projections of a batch run together
            chunk = np.stack([face for _, face in faces[start:start + batch]])
            result = project(generator, chunk, steps, measure, space,
                             refine_steps=refine_steps, log=log)
            for i, (path, (images, note)) in enumerate(zip(paths[start:start + batch],
                                                           outputs(result))):
                written.append(_write(images, path, result.one(i), log, note,
                                      save_latent=project_only))
    if len(written) > 3:
        return f"wrote {len(written)} images into {output}"
    return f"wrote {', '.join(written)}" if written else "no image written"


def _write(images: np.ndarray, path: str, result: Projection, log: Callable[[str], None],
           note: str = "", save_latent: bool = False) -> str:
    """The image (or GIF) and, with save_latent, the projection beside it: its ws as .npy
    ([num_ws, w_dim], for synthesis) and, for a z projection, its z as .z.npy ([z_dim], for
    serving_default and sample-style use)."""
    from PIL import Image
    from cyclegan_tf.sampling import save_gif
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if path.lower().endswith(".gif"):
        save_gif(images, path)
    else:
        files.save_image(Image.fromarray(images[0]), path)
    if save_latent:
        stem = os.path.splitext(path)[0]
        _save_npy(result.ws[0], stem + ".npy")
        if result.z is not None:
            _save_npy(result.z[0], stem + ".z.npy")
    log(f"{path}: {result.distance_name} distance {float(result.distances[0]):.4f}{note}")
    return path


def learn_direction_command(model: str, name: str, from_images: str, to_images: str,
                            limit: int = 0, method: str = "classifier", steps: int = 200,
                            distance: str = "auto", space: str = "z",
                            keep_brightness: bool = True,
                            log: Callable[[str], None] = print) -> str:
    """inference.py --learn_direction: the first `limit` images of each folder (or tfrecords);
    0: every image for the classifier, 100 for projections."""
    from cyclegan_tf.evaluate import load_images
    if not (from_images and to_images):
        raise ConfigError("--learn_direction needs --from_images and --to_images: folders (or "
                          "tfrecords) of faces without and with the attribute")
    if method not in DIRECTION_METHODS:
        raise ConfigError(f"--direction_method must be one of {DIRECTION_METHODS}, got {method!r}")
    direction_path(model, name)  # a bad name fails before the model loads
    generator = ImageGenerator.load(model)
    _need_styles(generator, "--learn_direction")
    size = CLASSIFIER_SIZE if method == "classifier" else int(generator.synthesize(
        np.zeros([1, generator.num_ws, generator.z_dim], np.float32)).shape[1])
    limit = limit or (0 if method == "classifier" else 100)
    sets = []
    for source in (from_images, to_images):
        images = [a for _, a in load_images(source, size, limit, log)]
        sets.append(np.stack(images) if images else np.zeros([0, size, size, 3], np.uint8))
    measure = make_distance(distance) if method == "projections" else None
    path, record = learn_direction(generator, model, name, *sets, method=method, steps=steps,
                                   distance=measure, space=space,
                                   keep_brightness=keep_brightness, log=log)
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
