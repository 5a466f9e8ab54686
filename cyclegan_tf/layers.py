"""Building blocks shared by the generator and the discriminator."""
from __future__ import annotations

import keras
import tensorflow as tf


def conv_init() -> keras.initializers.Initializer:
    """N(0, 0.02), the CycleGAN paper's initialisation for every convolution."""
    return keras.initializers.RandomNormal(mean=0.0, stddev=0.02)


def make_norm(norm: str, dtype=None) -> keras.layers.Layer:
    """Instance norm is GroupNormalization with one group per channel (Keras' own, no addons);
    layer norm normalises each image as a whole; batch norm is synchronized so that it stays correct across replicas under tf.distribute."""
    if norm == "instance":
        return keras.layers.GroupNormalization(groups=-1, epsilon=1e-5, dtype=dtype)
    if norm == "batch":
        return keras.layers.BatchNormalization(synchronized=True, epsilon=1e-5, momentum=0.9,
                                               dtype=dtype)
    if norm == "layer":  # over each image's height, width and channels (WGAN-GP's critic)
        return keras.layers.LayerNormalization(axis=[1, 2, 3], epsilon=1e-5, dtype=dtype)
    raise ValueError(f"unknown norm {norm!r}: use 'instance', 'batch' or 'layer'")


class ReflectionPad2D(keras.layers.Layer):
    """Pads height and width by mirroring the border, which avoids dark frames at the edges."""

    def __init__(self, padding: int, **kwargs):
        super().__init__(**kwargs)
        self.padding = padding

    def call(self, x):
        p = self.padding
        return tf.pad(x, [[0, 0], [p, p], [p, p], [0, 0]], mode="REFLECT")

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        grow = lambda d: None if d is None else d + 2 * self.padding  # noqa: E731
        return (n, grow(h), grow(w), c)

    def get_config(self):
        return {**super().get_config(), "padding": self.padding}
