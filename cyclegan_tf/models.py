"""The networks of the paper, as Keras subclassed models (channels last, images in [-1, 1])."""
from __future__ import annotations

import keras
import tensorflow as tf

from cyclegan_tf.layers import ReflectionPad2D, conv_init, make_norm


class ConvNormAct(keras.layers.Layer):
    """Convolution (optionally transposed), normalisation, activation: the papers' c/d/u/C units."""

    def __init__(self, filters: int, kernel_size: int, strides: int = 1, padding: str = "same",
                 norm: str | None = "instance", activation: str | None = "relu",
                 transpose: bool = False, reflect: int = 0, **kwargs):
        super().__init__(**kwargs)
        self.pad = ReflectionPad2D(reflect, dtype=self.dtype_policy) if reflect else None
        conv = keras.layers.Conv2DTranspose if transpose else keras.layers.Conv2D
        # A norm with a learned offset makes the convolution's bias redundant.
        self.conv = conv(filters, kernel_size, strides, padding=padding, use_bias=norm is None,
                         kernel_initializer=conv_init(), dtype=self.dtype_policy)
        self.norm = make_norm(norm, dtype=self.dtype_policy) if norm else None
        if activation == "leaky_relu":
            self.act = keras.layers.LeakyReLU(0.2, dtype=self.dtype_policy)
        elif activation:
            self.act = keras.layers.Activation(activation, dtype=self.dtype_policy)
        else:
            self.act = None

    def call(self, x, training=False):
        if self.pad is not None:
            x = self.pad(x)
        x = self.conv(x)
        if self.norm is not None:
            x = self.norm(x, training=training)
        return self.act(x) if self.act is not None else x


class ResidualBlock(keras.layers.Layer):
    """Two reflection-padded 3x3 convolutions with the same number of filters, plus the input."""

    def __init__(self, filters: int, norm: str = "instance", **kwargs):
        super().__init__(**kwargs)
        self.conv1 = ConvNormAct(filters, 3, padding="valid", norm=norm, reflect=1,
                                 dtype=self.dtype_policy)
        self.conv2 = ConvNormAct(filters, 3, padding="valid", norm=norm, activation=None,
                                 reflect=1, dtype=self.dtype_policy)

    def call(self, x, training=False):
        return x + self.conv2(self.conv1(x, training=training), training=training)


class ResnetGenerator(keras.Model):
    """c7s1-ngf, d2ngf, d4ngf, n_blocks x R4ngf, u2ngf, ungf, c7s1-3 + tanh (Johnson et al.).

    Fully convolutional: translates any height and width that are multiples of 4.

    Instance norm after the first convolution makes this network blind to the input's overall
    colour and contrast: G(a * x + c) == G(x) for any colour c and a > 0, so F(G(x)) can only guess
    them back. input_skip=True also feeds the input image to the last convolution, a linear path
    that carries them through (faces benchmark: cycle L1 0.13 -> 0.05, README).
    """

    def __init__(self, ngf: int = 64, n_blocks: int = 9, norm: str = "instance",
                 input_skip: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.ngf, self.n_blocks, self.norm, self.input_skip = ngf, n_blocks, norm, input_skip
        policy = self.dtype_policy
        # A tuple, not a list: Keras 3 wraps lists in a TrackedList that tf.train.Checkpoint does
        # not see, so a generator-only restore (export, inference) would silently miss them.
        self.stages = (
            ConvNormAct(ngf, 7, padding="valid", norm=norm, reflect=3, dtype=policy),
            ConvNormAct(ngf * 2, 3, strides=2, norm=norm, dtype=policy),
            ConvNormAct(ngf * 4, 3, strides=2, norm=norm, dtype=policy),
            *[ResidualBlock(ngf * 4, norm=norm, dtype=policy) for _ in range(n_blocks)],
            ConvNormAct(ngf * 2, 3, strides=2, norm=norm, transpose=True, dtype=policy),
            ConvNormAct(ngf, 3, strides=2, norm=norm, transpose=True, dtype=policy),
        )
        self.to_rgb = ConvNormAct(3, 7, padding="valid", norm=None, activation=None, reflect=3,
                                  dtype=policy)

    def call(self, images, training=False):
        x = images
        for stage in self.stages:
            x = stage(x, training=training)
        if self.input_skip:
            x = tf.concat([x, tf.cast(images, x.dtype)], axis=-1)
        # tanh in float32 whatever the compute dtype: outputs are images, compared in losses.
        return tf.tanh(tf.cast(self.to_rgb(x, training=training), tf.float32))

    def get_config(self):
        return {"ngf": self.ngf, "n_blocks": self.n_blocks, "norm": self.norm,
                "input_skip": self.input_skip}


class PatchDiscriminator(keras.Model):
    """The 70x70 PatchGAN: C64 (no norm), C128, C256, C512 (stride 1), then a 1-channel map of
    real/fake scores (logits), one per overlapping 70x70 patch."""

    def __init__(self, ndf: int = 64, norm: str = "instance", **kwargs):
        super().__init__(**kwargs)
        self.ndf, self.norm = ndf, norm
        policy = self.dtype_policy

        def c(filters, strides, use_norm=True):
            # Zero padding 1 then a valid 4x4 convolution, exactly as the reference PatchGAN.
            return [keras.layers.ZeroPadding2D(1, dtype=policy),
                    ConvNormAct(filters, 4, strides, padding="valid",
                                norm=norm if use_norm else None, activation="leaky_relu",
                                dtype=policy)]

        self.stages = (*c(ndf, 2, use_norm=False), *c(ndf * 2, 2), *c(ndf * 4, 2), *c(ndf * 8, 1),
                       keras.layers.ZeroPadding2D(1, dtype=policy),
                       keras.layers.Conv2D(1, 4, padding="valid", kernel_initializer=conv_init(),
                                           dtype=policy))  # a tuple: see ResnetGenerator

    def call(self, x, training=False):
        for stage in self.stages:
            x = stage(x, training=training) if isinstance(stage, ConvNormAct) else stage(x)
        return tf.cast(x, tf.float32)

    def get_config(self):
        return {"ndf": self.ndf, "norm": self.norm}
