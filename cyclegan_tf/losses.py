"""GAN, cycle and identity losses. Each returns one value per example (shape [batch]) so that the
training step can average over the global batch the way tf.distribute expects."""
from __future__ import annotations

from typing import Callable

import tensorflow as tf


def _mean_per_example(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_mean(tf.reshape(x, [tf.shape(x)[0], -1]), axis=1)


def l1(a: tf.Tensor, b: tf.Tensor) -> tf.Tensor:
    return _mean_per_example(tf.abs(a - b))


def discriminator_loss(kind: str, real: tf.Tensor, fake: tf.Tensor) -> tf.Tensor:
    """D's loss from its logits on real and on generated images (without WGAN-GP's penalty)."""
    if kind == "lsgan":
        return 0.5 * (_mean_per_example(tf.square(real - 1.0)) + _mean_per_example(tf.square(fake)))
    if kind == "vanilla":
        bce = tf.nn.sigmoid_cross_entropy_with_logits
        return 0.5 * (_mean_per_example(bce(tf.ones_like(real), real))
                      + _mean_per_example(bce(tf.zeros_like(fake), fake)))
    if kind == "wgangp":
        return _mean_per_example(fake) - _mean_per_example(real)
    raise ValueError(f"unknown GAN loss {kind!r}")


def generator_loss(kind: str, fake: tf.Tensor) -> tf.Tensor:
    """The generator's adversarial loss from D's logits on its images."""
    if kind == "lsgan":
        return _mean_per_example(tf.square(fake - 1.0))
    if kind == "vanilla":
        return _mean_per_example(tf.nn.sigmoid_cross_entropy_with_logits(tf.ones_like(fake), fake))
    if kind == "wgangp":
        return -_mean_per_example(fake)
    raise ValueError(f"unknown GAN loss {kind!r}")


def gradient_penalty(discriminator: Callable[..., tf.Tensor], real: tf.Tensor,
                     fake: tf.Tensor, seed: tf.Tensor | None = None) -> tf.Tensor:
    """WGAN-GP (Gulrajani et al.): (||grad D(x_hat)|| - 1)^2 at random points between real and fake,
    one per sample. seed: a stateless [2] int64 seed for the mixing weights (None: tf.random)."""
    shape = [tf.shape(real)[0], 1, 1, 1]
    if seed is None:
        alpha = tf.random.uniform(shape, dtype=real.dtype)
    else:
        alpha = tf.random.stateless_uniform(shape, seed, dtype=real.dtype)
    between = real + alpha * (fake - real)
    with tf.GradientTape() as tape:
        tape.watch(between)
        scores = discriminator(between, training=True)
    grads = tape.gradient(scores, between)
    norms = tf.sqrt(tf.reduce_sum(tf.square(grads), axis=[1, 2, 3]) + 1e-12)
    return tf.square(norms - 1.0)
