"""Differentiable augmentation (Zhao et al., "Differentiable Augmentation for Data-Efficient GAN
Training", 2020): every image D sees, real or generated, in D's step and in G's, is randomly
recoloured, shifted and partly blanked by ops that pass gradients to G.

A discriminator trained long on a few thousand faces learns those faces (it scores held-out real
faces far below the training ones) and stops teaching G what a face is; seeing each training face
in ever new variants it cannot memorise them. Since generated images go through the same
transforms, G is not pushed to make the transforms themselves (as it would be if only the real
images were augmented). The policies and magnitudes are the paper's (its TensorFlow code), on
images in [-1, 1]:
  color: brightness + U(-0.5, 0.5), saturation x U(0, 2), contrast x U(0.5, 1.5);
  translation: an integer shift of up to 1/8 of each side, the vacated pixels 0;
  cutout: a square of half the side set to 0, centred anywhere in the image.
Random draws are stateless, from a seed the caller keys by the step (a resumed run sees the
augmentations the uninterrupted one would have). Off by default: on 5000 faces in two CPU hours
all three made the StyleGAN worse, not better (benchmarks/README.md); the gain is for longer runs
on smaller sets.
"""
from __future__ import annotations

import tensorflow as tf

TRANSLATION = 0.125  # of the side
CUTOUT = 0.5  # of the side


def diff_augment(images: tf.Tensor, policy: str, seed: tf.Tensor) -> tf.Tensor:
    """images [N, H, W, C] in [-1, 1] (float) transformed by each augmentation of policy
    ("color,translation,cutout", config.DIFF_AUGMENTATIONS) in turn, each image with its own
    random parameters drawn from seed (a stateless seed, shape [2])."""
    for i, name in enumerate(filter(None, policy.split(","))):
        images = {"color": color, "translation": translation, "cutout": cutout}[name](
            images, _fold(seed, i))
    return images


def _fold(seed: tf.Tensor, stream: int) -> tf.Tensor:
    """A seed of its own for each stream: independent draws from one seed."""
    return tf.random.experimental.stateless_fold_in(seed, stream)


def _uniform(images: tf.Tensor, seed: tf.Tensor, index: int, low: float, high: float
             ) -> tf.Tensor:
    """One U(low, high) per image, shaped [N, 1, 1, 1], from the index-th stream of seed."""
    shape = [tf.shape(images)[0], 1, 1, 1]
    return tf.random.stateless_uniform(shape, _fold(seed, index), low, high, images.dtype)


def color(images: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
    """Brightness, then saturation, then contrast, each by a random amount per image."""
    images = images + _uniform(images, seed, 0, -0.5, 0.5)
    grey = tf.reduce_mean(images, axis=3, keepdims=True)
    images = (images - grey) * _uniform(images, seed, 1, 0.0, 2.0) + grey
    mean = tf.reduce_mean(images, axis=[1, 2, 3], keepdims=True)
    return (images - mean) * _uniform(images, seed, 2, 0.5, 1.5) + mean


def translation(images: tf.Tensor, seed: tf.Tensor, ratio: float = TRANSLATION) -> tf.Tensor:
    """Each image moved by whole pixels, up to ratio of its height and width, zeros moved in."""
    height, width = tf.shape(images)[1], tf.shape(images)[2]
    for axis, side, stream in ((1, height, 0), (2, width, 1)):
        most = tf.cast(tf.cast(side, tf.float32) * ratio + 0.5, tf.int32)
        shift = tf.random.stateless_uniform([tf.shape(images)[0], 1], _fold(seed, stream),
                                            -most, most + 1, tf.int32)  # [N, 1]
        # Output pixel i reads input i - shift: an index of the input padded by one zero on
        # each side, clipped onto those zeros where it falls outside.
        source = tf.clip_by_value(tf.range(side)[tf.newaxis] - shift + 1, 0, side + 1)  # [N, side]
        padding = [[0, 0]] * 4
        padding[axis] = [1, 1]
        images = tf.gather(tf.pad(images, padding), source, axis=axis, batch_dims=1)
    return images


def cutout(images: tf.Tensor, seed: tf.Tensor, ratio: float = CUTOUT) -> tf.Tensor:
    """A square of ratio times the side set to 0 in each image, its centre anywhere in it (the
    square clipped at the edges)."""
    shape = tf.shape(images)
    masks = []
    for side, stream in ((shape[1], 0), (shape[2], 1)):
        size = tf.cast(tf.cast(side, tf.float32) * ratio + 0.5, tf.int32)
        start = tf.random.stateless_uniform([shape[0], 1], _fold(seed, stream), 0,
                                            side + 1 - size % 2, tf.int32) - size // 2
        position = tf.range(side)[tf.newaxis]
        masks.append((position >= start) & (position < start + size))  # [N, side]
    inside = masks[0][:, :, tf.newaxis] & masks[1][:, tf.newaxis, :]
    return images * tf.cast(~inside, images.dtype)[..., tf.newaxis]
