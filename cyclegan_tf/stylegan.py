"""StyleGAN2 (Karras et al., "Analyzing and Improving the Image Quality of StyleGAN", 2020).

G = synthesis(mapping(z)): the mapping network turns pixel-normalised noise z into a style
vector w (mapping_layers dense layers at 1/100 of the learning rate); the synthesis network
starts from a learned 4x4 constant and, per resolution, runs two 3x3 convolutions whose weights
are modulated by an affine map of w and demodulated (the first one upsampling), each followed
by per-pixel noise of learned strength, and adds an RGB output of each resolution to the
upsampled sum of the ones before (skip outputs). Every layer uses the equalized learning rate:
weights drawn from N(0, 1) and scaled by He's constant at run time.

D is the paper's residual network (or, with d_architecture "orig", the same without the residual
skips, as StyleGAN2-ADA's cifar configuration) with a minibatch standard-deviation
feature at 4x4. Training:
the non-saturating logistic loss, R1 on real images every r1_interval steps (lazy: its weight
times the interval, added to that step's loss; the paper takes it as an extra Adam step instead,
which is why it scales the rates and betas by interval / (interval + 1): folded into the step,
there is no extra step and nothing to scale), style mixing, an optional path-length penalty, the
moving average G_ema that export uses, and a running w_avg for the truncation trick. With
--diff_augment D sees real and generated images through DiffAugment, and R1 is taken on the
augmented reals D scores (DiffAugment-stylegan2's FFHQ and CIFAR setting, ns_r1_DiffAugment;
its low-shot setting and ADA differentiate through the augmentation to the raw reals instead).

Up- and downsampling use the paper's [1, 3, 3, 1] filter: a transposed convolution then that
blur in G (and zeros inserted then the blur for the skip outputs: both put input pixel i at output
2i + 1/2, where bilinear upsampling puts it), blur with stride 2 before a convolution in D (the
paper convolves with stride 2 after the blur at full resolution: the same filter, a quarter of the
arithmetic, but D's 3x3 kernels then see the halved image).
"""
from __future__ import annotations

import math

import keras
import numpy as np
import tensorflow as tf

from cyclegan_tf.config import Config
from cyclegan_tf.cyclegan import DTYPE_POLICIES
from cyclegan_tf.generators import NoiseGAN
from cyclegan_tf.pool import replica_id

SQRT2 = math.sqrt(2.0)
W_AVG_BETA = 0.995  # w_avg tracks the mean w with this decay (the paper's)
PL_INTERVAL = 4  # path-length penalty every this many steps (the paper's)
PL_DECAY = 0.01  # of the running mean path length
STYLED_NOISE_MAPS = 16  # shifted copies of a layer's noise_const that styled noise mixes


def widths(image_size: int, channel_base: int, most: int) -> dict[int, int]:
    """Channels of each resolution from 4 px up to image_size: min(most, channel_base / r)."""
    sizes = [4 * 2 ** i for i in range(int(math.log2(image_size)) - 1)]
    return {r: max(1, min(most, channel_base // r)) for r in sizes}


def num_ws(image_size: int) -> int:
    """Style vectors synthesis reads: one per convolution and a last one for the final toRGB."""
    return 2 * int(math.log2(image_size)) - 2


def _leaky(x: tf.Tensor) -> tf.Tensor:
    """LeakyReLU(0.2) times sqrt(2): keeps the signal's magnitude (the paper's bias_act)."""
    return tf.nn.leaky_relu(x, 0.2) * tf.cast(SQRT2, x.dtype)


def _blur_kernel(channels: int, gain: float, dtype) -> tf.Tensor:
    """The separable [1, 3, 3, 1] filter as a depthwise kernel [4, 4, channels, 1], sum = gain."""
    f = np.array([1.0, 3.0, 3.0, 1.0])
    f2 = np.outer(f, f)
    f2 = f2 / f2.sum() * gain
    return tf.constant(np.tile(f2[:, :, None, None], [1, 1, channels, 1]), dtype)


def blur(x: tf.Tensor, gain: float = 1.0, stride: int = 1, pad: tuple[int, int] = (1, 2)
         ) -> tf.Tensor:
    """[1, 3, 3, 1] low-pass filter, same size; stride 2: an anti-aliased halving. pad: before
    and after, at stride 1 (which output pixel the filter's centre lands on).
    (A depthwise convolution: 3-8x faster on a CPU than the same filter as sums of shifted
    slices, measured forward + backward at 64 px, batch 32. Always in float32: TF's bfloat16
    depthwise backprop on a CPU took 16x the float32 one, 44 % of a bf16 step; see
    benchmarks/README.md.)"""
    dtype = x.dtype
    kernel = _blur_kernel(x.shape[-1], gain, tf.float32)
    before, after = pad if stride == 1 else (1, 1)
    x = tf.pad(tf.cast(x, tf.float32), [[0, 0], [before, after], [before, after], [0, 0]])
    return tf.cast(tf.nn.depthwise_conv2d(x, kernel, [1, stride, stride, 1], "VALID"), dtype)


class EqualizedDense(keras.layers.Layer):
    """Dense layer with the equalized learning rate: weights N(0, 1 / lr_multiplier) used times
    lr_multiplier / sqrt(fan_in), so Adam moves every layer at the same relative speed."""

    def __init__(self, units: int, lr_multiplier: float = 1.0, bias_init: float = 0.0,
                 activation: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.units, self.lr_multiplier = units, lr_multiplier
        self.bias_init, self.activation = bias_init, activation

    def build(self, input_shape):
        fan_in = int(input_shape[-1])
        self.gain = self.lr_multiplier / math.sqrt(fan_in)
        self.kernel = self.add_weight(
            name="kernel", shape=(fan_in, self.units),
            initializer=keras.initializers.RandomNormal(0.0, 1.0 / self.lr_multiplier))
        self.bias = self.add_weight(
            name="bias", shape=(self.units,),
            initializer=keras.initializers.Constant(self.bias_init / self.lr_multiplier))

    def call(self, x):
        dtype = x.dtype
        y = tf.matmul(x, tf.cast(self.kernel, dtype) * tf.cast(self.gain, dtype))
        y = y + tf.cast(self.bias * self.lr_multiplier, dtype)
        return _leaky(y) if self.activation else y


class EqualizedConv2D(keras.layers.Layer):
    """Convolution with the equalized learning rate (D): bias and leaky ReLU optional;
    down=True halves the resolution with the blur first."""

    def __init__(self, filters: int, kernel_size: int, down: bool = False, activation: bool = True,
                 use_bias: bool = True, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size, self.down = filters, kernel_size, down
        self.activation, self.use_bias = activation, use_bias

    def build(self, input_shape):
        k, fan_in = self.kernel_size, int(input_shape[-1])
        self.gain = 1.0 / math.sqrt(fan_in * k * k)
        self.kernel = self.add_weight(name="kernel", shape=(k, k, fan_in, self.filters),
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0))
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros") \
            if self.use_bias else None

    def call(self, x):
        if self.down:
            x = blur(x, stride=2)
        y = tf.nn.conv2d(x, tf.cast(self.kernel, x.dtype) * tf.cast(self.gain, x.dtype), 1,
                         "SAME")
        if self.bias is not None:
            y = y + tf.cast(self.bias, y.dtype)
        return _leaky(y) if self.activation else y


class ModulatedConv2D(keras.layers.Layer):
    """The StyleGAN2 convolution: weights scaled per image by the style s = A(w) on their input
    channels and, with demodulate, each output channel scaled back to unit expected magnitude.

    Computed without per-image weights: scaling the input by s, convolving with the shared
    weights and scaling each output by d = 1 / sqrt(sum_in s^2 sum_k w^2 + eps) is the same
    arithmetic (the paper's Eq. 1-3), and runs as one ordinary convolution of the whole batch.
    up=True: a stride-2 transposed convolution, then the [1, 3, 3, 1] blur (gain 4).
    """

    def __init__(self, filters: int, kernel_size: int, demodulate: bool = True, up: bool = False,
                 **kwargs):
        super().__init__(**kwargs)
        self.filters, self.kernel_size = filters, kernel_size
        self.demodulate, self.up = demodulate, up

    def build(self, input_shape):
        x_shape, w_shape = input_shape
        k, fan_in = self.kernel_size, int(x_shape[-1])
        self.affine = EqualizedDense(fan_in, bias_init=1.0, dtype=self.dtype_policy, name="affine")
        self.affine.build(w_shape)
        # Without demodulation (toRGB) He's constant goes on the style, as the paper does.
        self.style_gain = 1.0 if self.demodulate else 1.0 / math.sqrt(fan_in * k * k)
        self.kernel = self.add_weight(name="kernel", shape=(k, k, fan_in, self.filters),
                                      initializer=keras.initializers.RandomNormal(0.0, 1.0))

    def call(self, inputs):
        x, w = inputs
        dtype = x.dtype
        styles = self.affine(w) * self.style_gain  # [N, in]
        kernel = tf.cast(self.kernel, dtype)
        x = x * tf.cast(styles, dtype)[:, tf.newaxis, tf.newaxis, :]
        if self.up:
            # The whole transposed output (2h + 1: "SAME" would crop its last row and column,
            # leaving the blur zeros there), then the blur back to 2h, as the paper's upfirdn.
            n, h, wd = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2]
            x = tf.nn.conv2d_transpose(x, tf.transpose(kernel, [0, 1, 3, 2]),
                                       tf.stack([n, 2 * h + 1, 2 * wd + 1, self.filters]), 2,
                                       "VALID")
            x = blur(x, gain=4.0, pad=(1, 1))
        else:
            x = tf.nn.conv2d(x, kernel, 1, "SAME")
        if self.demodulate:  # in float32: a sum of squares over all inputs
            energy = tf.reduce_sum(tf.square(tf.cast(self.kernel, tf.float32)), axis=[0, 1])
            scale = tf.math.rsqrt(tf.matmul(tf.square(tf.cast(styles, tf.float32)), energy) + 1e-8)
            x = x * tf.cast(scale, dtype)[:, tf.newaxis, tf.newaxis, :]
        return x


class StyleLayer(keras.layers.Layer):
    """Modulated 3x3 convolution, per-pixel noise of learned strength, bias, leaky ReLU.

    noise: "random" (training), "styled" (each image its own noise, a function of its style:
    styled_noise; what G_ema's images and export use) or "none"."""

    def __init__(self, filters: int, resolution: int, up: bool = False, **kwargs):
        super().__init__(**kwargs)
        self.filters, self.resolution, self.up = filters, resolution, up
        self.conv = ModulatedConv2D(filters, 3, up=up, dtype=self.dtype_policy, name="conv")

    def build(self, input_shape):
        self.conv.build(input_shape)
        # styled_noise's fixed shifts (distinct, none zero) and mixing projection: constants,
        # the same in every run and numpy version (RandomState's streams are frozen), drawn by
        # their own generator so that no weight's start changes.
        rng = np.random.RandomState(2 * self.resolution + int(self.up))
        shifts = 1 + rng.choice(self.resolution ** 2 - 1, STYLED_NOISE_MAPS - 1, replace=False)
        self.noise_shifts = tuple((int(i) // self.resolution, int(i) % self.resolution)
                                  for i in shifts)
        self.noise_mixing = rng.randn(input_shape[1][-1], STYLED_NOISE_MAPS).astype(np.float32)
        self.noise_strength = self.add_weight(name="noise_strength", shape=(),
                                              initializer="zeros")
        self.noise_const = self.add_weight(
            name="noise_const", shape=(1, self.resolution, self.resolution, 1),
            initializer=keras.initializers.RandomNormal(0.0, 1.0), trainable=False)
        self.bias = self.add_weight(name="bias", shape=(self.filters,), initializer="zeros")

    def call(self, inputs, noise: str = "random", seed: tf.Tensor | None = None,
             w_avg: tf.Tensor | None = None):
        x = self.conv(inputs)
        dtype = x.dtype
        if noise == "random":
            shape = tf.concat([tf.shape(x)[:3], [1]], axis=0)
            image = (tf.random.normal(shape) if seed is None
                     else tf.random.stateless_normal(shape, seed))
            x = x + tf.cast(image * self.noise_strength, dtype)
        elif noise == "styled":
            x = x + tf.cast(self.styled_noise(inputs[1], w_avg) * self.noise_strength, dtype)
        return _leaky(x + tf.cast(self.bias, dtype))

    def styled_noise(self, w: tf.Tensor, w_avg: tf.Tensor) -> tf.Tensor:
        """[N, r, r, 1]: each image's noise, a function of its style w [N, w_dim] alone.

        One stored noise image for every face (the paper's noise_mode="const") is not what G
        trained on: it cost some of our 64 px runs a fifth of their FID and helped none
        (benchmarks/README.md, "Each sample its own noise"). Here the noise is STYLED_NOISE_MAPS
        shifted copies of noise_const, mixed with unit-norm weights taken from w - w_avg by a
        fixed random projection: every pixel is unit normal, as in training; different faces get
        nearly independent noise; and the same w always gets the same noise, a nearby w a nearby
        one (so projections, edits and walks stay smooth, and serving_default(z) is
        synthesis(mapping(z))). w = w_avg gets none."""
        r = self.resolution
        base = tf.cast(self.noise_const[0, :, :, 0], tf.float32)
        maps = tf.stack([base] + [tf.roll(base, shift, [0, 1]) for shift in self.noise_shifts])
        offset = tf.cast(w, tf.float32) - tf.cast(w_avg, tf.float32)
        # No gradient: a projection fits the style and the noise follows it (the weights' slope
        # grows without bound near w_avg, where the w projector starts).
        weights = tf.stop_gradient(
            tf.math.l2_normalize(tf.matmul(offset, self.noise_mixing), axis=-1))
        return tf.reshape(tf.matmul(weights, tf.reshape(maps, [STYLED_NOISE_MAPS, r * r])),
                          [-1, r, r, 1])


class ToRGB(keras.layers.Layer):
    """Modulated 1x1 convolution to RGB, without demodulation, plus bias."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.conv = ModulatedConv2D(3, 1, demodulate=False, dtype=self.dtype_policy, name="conv")

    def build(self, input_shape):
        self.conv.build(input_shape)
        self.bias = self.add_weight(name="bias", shape=(3,), initializer="zeros")

    def call(self, inputs):
        x = self.conv(inputs)
        return x + tf.cast(self.bias, x.dtype)


class MappingNetwork(keras.Model):
    """z [N, z_dim] -> w [N, w_dim]: pixel norm, then `layers` dense layers with leaky ReLU at
    1/100 of the learning rate. Keeps w_avg, the running mean of w, for truncation."""

    def __init__(self, z_dim: int = 512, w_dim: int = 512, layers: int = 8,
                 lr_multiplier: float = 0.01, **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.w_dim = z_dim, w_dim
        self.dense = tuple(EqualizedDense(w_dim, lr_multiplier, activation=True,
                                          dtype=self.dtype_policy, name=f"dense{i}")
                           for i in range(layers))  # a tuple: see models.ResnetGenerator
        # mean: each replica proposes its own update; the mean of them is kept.
        self.w_avg = self.add_weight(name="w_avg", shape=(w_dim,), initializer="zeros",
                                     trainable=False, aggregation="mean")

    def call(self, z, truncation: float | tf.Tensor = 1.0):
        z = tf.cast(z, tf.float32)
        x = z * tf.math.rsqrt(tf.reduce_mean(tf.square(z), axis=1, keepdims=True) + 1e-8)
        x = tf.cast(x, self.compute_dtype)
        for layer in self.dense:
            x = layer(x)
        w = tf.cast(x, tf.float32)
        if isinstance(truncation, (int, float)) and truncation == 1.0:
            return w
        w_avg = tf.cast(self.w_avg, tf.float32)
        return w_avg + tf.cast(truncation, tf.float32) * (w - w_avg)

    def track_w_avg(self, w: tf.Tensor) -> None:
        """w_avg moves toward the batch's mean w (decay W_AVG_BETA)."""
        mean = tf.reduce_mean(tf.cast(w, tf.float32), axis=0)
        self.w_avg.assign(mean + W_AVG_BETA * (tf.cast(self.w_avg, tf.float32) - mean))


class SynthesisNetwork(keras.Model):
    """ws [N, num_ws, w_dim] -> images [N, S, S, 3] (float32, about [-1, 1]; not squashed)."""

    def __init__(self, image_size: int = 64, w_dim: int = 512, channel_base: int = 2048,
                 channel_max: int = 256, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.w_dim = image_size, w_dim
        self.num_ws = num_ws(image_size)
        policy = self.dtype_policy
        self.channels = widths(image_size, channel_base, channel_max)
        self.const = self.add_weight(name="const", shape=(1, 4, 4, self.channels[4]),
                                     initializer=keras.initializers.RandomNormal(0.0, 1.0))
        layers, to_rgb = [StyleLayer(self.channels[4], 4, dtype=policy, name="conv4")], []
        to_rgb.append(ToRGB(dtype=policy, name="torgb4"))
        for r in list(self.channels)[1:]:
            layers.append(StyleLayer(self.channels[r], r, up=True, dtype=policy, name=f"conv{r}_up"))
            layers.append(StyleLayer(self.channels[r], r, dtype=policy, name=f"conv{r}"))
            to_rgb.append(ToRGB(dtype=policy, name=f"torgb{r}"))
        self.layers_ = tuple(layers)  # a tuple: see models.ResnetGenerator
        self.to_rgb = tuple(to_rgb)

    def call(self, ws, noise: str = "random", seed: tf.Tensor | None = None,
             w_avg: tf.Tensor | None = None):
        """noise: StyleLayer's; "styled" needs the mapping's w_avg (StyleGenerator.synthesize)."""
        if noise == "styled" and w_avg is None:
            raise ValueError('noise="styled" needs w_avg: call StyleGenerator.synthesize')
        ws = tf.cast(ws, self.compute_dtype)
        n = tf.shape(ws)[0]
        x = tf.tile(tf.cast(self.const, self.compute_dtype), [n, 1, 1, 1])

        def seed_of(i):  # each layer its own noise, all from the one seed
            return None if seed is None else seed + tf.constant([0, 1], tf.int64) * (i + 1)

        x = self.layers_[0]((x, ws[:, 0]), noise=noise, seed=seed_of(0), w_avg=w_avg)
        rgb = self.to_rgb[0]((x, ws[:, 1]))
        for block, to_rgb in enumerate(self.to_rgb[1:]):
            i = 1 + 2 * block  # ws index of this block's first convolution
            x = self.layers_[i]((x, ws[:, i]), noise=noise, seed=seed_of(i), w_avg=w_avg)
            x = self.layers_[i + 1]((x, ws[:, i + 1]), noise=noise, seed=seed_of(i + 1),
                                    w_avg=w_avg)
            rgb = upsample(rgb) + to_rgb((x, ws[:, i + 2]))
        return tf.cast(rgb, tf.float32)


def upsample(x: tf.Tensor) -> tf.Tensor:
    """Doubles height and width: zeros inserted after each pixel, then the blur (gain 4) padded
    (2, 1), the paper's upfirdn2d. Input pixel i lands on output 2i + 1/2 as in the modulated
    up-convolution, so every resolution's RGB output lines up; inside the border it is bilinear
    upsampling."""
    n, h, w, c = tf.shape(x)[0], tf.shape(x)[1], tf.shape(x)[2], x.shape[-1]
    # Zeros after each column, then after each row, as two 4-D pads: LiteRT has no pad of a 6-D
    # tensor (the one-step [n, h, 1, w, 1, c] form), so --formats tflite failed on a StyleGAN.
    x = tf.pad(tf.reshape(x, [n * h, w, 1, c]), [[0, 0], [0, 0], [0, 1], [0, 0]])
    x = tf.pad(tf.reshape(x, [n, h, 1, 2 * w * c]), [[0, 0], [0, 0], [0, 1], [0, 0]])
    return blur(tf.reshape(x, [n, 2 * h, 2 * w, c]), gain=4.0, pad=(2, 1))


class StyleGenerator(keras.Model):
    """z [N, z_dim] -> images [N, S, S, 3] in about [-1, 1] (float32): synthesis(mapping(z))."""

    def __init__(self, image_size: int = 64, z_dim: int = 512, channel_base: int = 2048,
                 channel_max: int = 256, mapping_layers: int = 8, **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.z_dim = image_size, z_dim
        self.mapping = MappingNetwork(z_dim, z_dim, mapping_layers, dtype=self.dtype_policy,
                                      name="mapping")
        self.synthesis = SynthesisNetwork(image_size, z_dim, channel_base, channel_max,
                                          dtype=self.dtype_policy, name="synthesis")
        self.num_ws = self.synthesis.num_ws

    def broadcast(self, w: tf.Tensor) -> tf.Tensor:
        """w [N, w_dim] -> ws [N, num_ws, w_dim]: the same style for every layer."""
        return tf.tile(w[:, tf.newaxis], [1, self.num_ws, 1])

    def call(self, z, truncation: float | tf.Tensor = 1.0, noise: str = "styled",
             training=False):
        return self.synthesize(self.broadcast(self.mapping(z, truncation=truncation)), noise)

    def synthesize(self, ws: tf.Tensor, noise: str = "styled") -> tf.Tensor:
        """Images of styles ws [N, num_ws, w_dim]; noise as StyleLayer's, by default each
        image's styled noise, so the same ws always make the same image."""
        return self.synthesis(ws, noise=noise, w_avg=self.mapping.w_avg)


class StyleDiscriminator(keras.Model):
    """The paper's residual D: fromRGB, per resolution two 3x3 convolutions (the second after
    an anti-aliased halving) plus a 1x1 skip, added with weight 1/sqrt(2); at 4x4 the minibatch
    standard deviation over groups of mbstd_group images, a 3x3 convolution and two dense
    layers. One logit per image [N]. residual=False drops the skips and their 1/sqrt(2)
    (StyleGAN2-ADA's cifar configuration)."""

    def __init__(self, image_size: int = 64, channel_base: int = 2048, channel_max: int = 256,
                 residual: bool = True, mbstd_group: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.mbstd_group = mbstd_group
        policy = self.dtype_policy
        ch = widths(image_size, channel_base, channel_max)
        self.from_rgb = EqualizedConv2D(ch[image_size], 1, dtype=policy, name="fromrgb")
        blocks = []
        r = image_size
        while r > 4:
            blocks.append((EqualizedConv2D(ch[r], 3, dtype=policy, name=f"b{r}_conv0"),
                           EqualizedConv2D(ch[r // 2], 3, down=True, dtype=policy,
                                           name=f"b{r}_conv1"),
                           EqualizedConv2D(ch[r // 2], 1, down=True, activation=False,
                                           use_bias=False, dtype=policy, name=f"b{r}_skip")
                           if residual else None))
            r //= 2
        self.blocks = tuple(blocks)
        self.conv4 = EqualizedConv2D(ch[4], 3, dtype=policy, name="b4_conv")
        self.dense4 = EqualizedDense(ch[4], activation=True, dtype=policy, name="b4_fc")
        self.out = EqualizedDense(1, dtype=policy, name="b4_out")

    def call(self, x, training=False):
        x = self.from_rgb(tf.cast(x, self.compute_dtype))
        for conv0, conv1, skip in self.blocks:
            y = conv1(conv0(x))
            x = (y + skip(x)) * tf.cast(1.0 / SQRT2, x.dtype) if skip is not None else y
        x = self.conv4(minibatch_stddev(x, self.mbstd_group))
        x = self.dense4(tf.reshape(x, [tf.shape(x)[0], x.shape[1] * x.shape[2] * x.shape[3]]))
        return tf.reshape(tf.cast(self.out(x), tf.float32), [-1])


def minibatch_stddev(x: tf.Tensor, group: int = 4) -> tf.Tensor:
    """x with one more channel: the standard deviation of each feature over a group of images,
    averaged over features and pixels (images i, i + N/G, ... form a group, as in the paper).
    G is the largest divisor of the batch up to group (the paper's min(group, N) where that
    divides N)."""
    n = x.shape[0]
    if n is not None:  # a Python number: XLA needs the tile's multiples at compile time
        g = max(d for d in range(1, max(1, min(group, n)) + 1) if n % d == 0)
    else:
        n = tf.shape(x)[0]
        d = tf.range(1, group + 1)
        g = tf.reduce_max(tf.where(n % d == 0, d, 1))
    h, w, c = x.shape[1], x.shape[2], x.shape[3]
    y = tf.reshape(tf.cast(x, tf.float32), [g, -1, h, w, c])
    y = tf.sqrt(tf.reduce_mean(tf.square(y - tf.reduce_mean(y, axis=0)), axis=0) + 1e-8)
    y = tf.reduce_mean(y, axis=[1, 2, 3])  # [N / G]
    y = tf.tile(tf.reshape(y, [-1, 1, 1, 1]), [g, h, w, 1])
    return tf.concat([x, tf.cast(y, x.dtype)], axis=-1)


def build_style_generator(config: Config, name: str, dtype: str | None = None) -> StyleGenerator:
    """G (or G_ema) for a run's settings, built."""
    generator = StyleGenerator(config.image_size, config.z_dim, config.channel_base, config.ngf,
                               config.mapping_layers, name=name,
                               dtype=dtype or DTYPE_POLICIES[config.mixed_precision])
    generator(tf.zeros([1, config.z_dim]))
    return generator


def r1_penalty(discriminator: keras.Model, real: tf.Tensor) -> tf.Tensor:
    """||grad_x D(x)||^2 on real images, one value per image (Mescheder et al. 2018)."""
    with tf.GradientTape() as tape:
        tape.watch(real)
        total = tf.reduce_sum(discriminator(real, training=True))
    grads = tape.gradient(total, real)
    return tf.reduce_sum(tf.square(grads), axis=[1, 2, 3])


class StyleGAN(NoiseGAN):
    """StyleGAN2's training (see the module docstring) in the NoiseGAN interface the Trainer
    and export use: G, G_ema, D, their Adams, fixed noise, the step."""

    progress_losses = {"G": "G/loss", "D": "D/loss"}

    def __init__(self, config: Config):
        super().__init__(config)
        self.pl_mean = tf.Variable(0.0, trainable=False, name="pl_mean",
                                   aggregation=tf.VariableAggregation.MEAN)
        # The latest R1 value, shown on the steps R1 skips: R1 runs when the step before its
        # increment is a multiple of r1_interval and summaries come at multiples of summary_every
        # after it, so with even intervals a summary never lands on an R1 step. Not checkpointed
        # (the next R1 step restores it).
        self.r1_latest = tf.Variable(0.0, trainable=False, name="r1_latest",
                                     aggregation=tf.VariableAggregation.MEAN)

    @classmethod
    def build_generator(cls, config: Config, name: str, dtype: str | None = None) -> keras.Model:
        return build_style_generator(config, name, dtype)

    @classmethod
    def build_discriminator(cls, config: Config) -> keras.Model:
        D = StyleDiscriminator(config.image_size, config.channel_base, config.ndf,
                               residual=config.d_architecture == "resnet",
                               mbstd_group=config.mbstd_group, name="D",
                               dtype=DTYPE_POLICIES[config.mixed_precision])
        D(tf.zeros([1, config.image_size, config.image_size, 3]))
        return D

    def checkpoint(self, **extra) -> tf.train.Checkpoint:
        return super().checkpoint(pl_mean=self.pl_mean, **extra)

    @property
    def streams(self) -> int:
        return 8  # random draws of each kind per step (noise, mixing, per-pixel noise...)

    def seed(self, stream: int) -> tf.Tensor:
        """A stateless seed keyed by the step, the replica and a stream number (resume-exact)."""
        return tf.stack([tf.constant(5000 + 8 * self.config.seed, tf.int64),
                         replica_id() * 2**32 + self.step * self.streams + stream])

    def mixed_styles(self, count: tf.Tensor, stream: int, track: bool = False) -> tf.Tensor:
        """ws [count, num_ws, w_dim] for new noise: with probability style_mixing the layers
        from a random cutoff on take the style of a second z (the paper's mixing
        regularisation: G cannot assume adjacent styles are correlated)."""
        G = self.G
        w = G.mapping(self.noise(count, stream))
        if track:
            G.mapping.track_w_avg(w)
        ws = G.broadcast(w)
        if not self.config.style_mixing:
            return ws
        u = tf.random.stateless_uniform([2], self.seed(stream))
        cutoff = tf.cast(1 + tf.floor(u[1] * (G.num_ws - 1)), tf.int32)
        cutoff = tf.where(u[0] < self.config.style_mixing, cutoff, G.num_ws)
        other = G.broadcast(G.mapping(self.noise(count, stream + 1)))
        layer = tf.range(G.num_ws)[tf.newaxis, :, tf.newaxis]
        return tf.where(layer < cutoff, ws, other)

    def train_step(self, real: tf.Tensor) -> dict[str, dict[str, tf.Tensor]]:
        c = self.config
        average = tf.nn.compute_average_loss
        count = tf.shape(real)[0]
        G_vars, D_vars = self.G.trainable_variables, self.D.trainable_variables
        lazy_r1 = tf.equal(self.step % c.r1_interval, 0)

        # D: real images up, generated ones down; R1 on the reals every r1_interval steps.
        fake = self.G.synthesis(self.mixed_styles(count, 0), seed=self.seed(2))
        # D sees both through --diff_augment (if any); R1 on what it sees (module docstring).
        seen_real, fake = self.augment(real, False, 0), self.augment(fake, True, 0)
        with tf.GradientTape() as tape:
            score_real = self.D(seen_real, training=True)
            score_fake = self.D(tf.stop_gradient(fake), training=True)
            D_loss = tf.nn.softplus(score_fake) + tf.nn.softplus(-score_real)
            r1 = tf.cond(lazy_r1, lambda: r1_penalty(self.D, seen_real),
                         lambda: tf.zeros_like(score_real))
            D_total = average(D_loss + (c.r1_gamma / 2 * c.r1_interval) * r1)
        self.D_optimizer.apply_gradients(zip(tape.gradient(D_total, D_vars), D_vars))

        # G: the non-saturating loss -log sigmoid(D(G(z))), and the path-length penalty.
        with tf.GradientTape() as tape:
            ws = self.mixed_styles(count, 3, track=True)
            fake = self.augment(self.G.synthesis(ws, seed=self.seed(5)), True, 1)
            G_loss = tf.nn.softplus(-self.D(fake, training=True))
            G_total = average(G_loss)
            if c.pl_weight:
                lazy_pl = tf.equal(self.step % PL_INTERVAL, 0)
                # The running mean is assigned outside the cond: under tf.distribute a
                # synchronised assignment must not sit inside control flow.
                pl, pl_mean = tf.cond(lazy_pl, lambda: self.path_length_penalty(count),
                                      lambda: (tf.constant(0.0), tf.identity(self.pl_mean)))
                G_total += c.pl_weight * PL_INTERVAL * pl
        if c.pl_weight:
            self.pl_mean.assign(pl_mean)
        # Each replica's share of the mean over the global batch (the losses are summed over
        # replicas); the MEAN-aggregated variable keeps total / replicas, which sums back.
        r1_shown = tf.where(lazy_r1, average(r1), self.r1_latest)
        self.r1_latest.assign(r1_shown)
        self.G_optimizer.apply_gradients(zip(tape.gradient(G_total, G_vars), G_vars))
        self.step.assign_add(1)
        return {
            "losses": {"G/loss": G_total, "D/loss": average(D_loss),
                       "D/r1": r1_shown,
                       "D/real_prob": average(tf.sigmoid(score_real)),
                       "D/fake_prob": average(tf.sigmoid(score_fake))},
            "images": {"x": real[:3]},
            "scores": {"D/real": score_real, "D/fake": score_fake},
        }

    def path_length_penalty(self, count: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        """(|J_w^T y| - a)^2 for random image-space directions y, on half a batch, with a the
        running mean of the lengths (the paper's Eq. 4), and the new running mean. Averaged
        over the replica's images (divided by the replicas, so that the global sum is their
        mean)."""
        half = tf.maximum(count // 2, 1)
        ws = self.mixed_styles(half, 6)
        with tf.GradientTape() as tape:
            tape.watch(ws)
            images = self.G.synthesis(ws, seed=self.seed(7))
            size = float(self.config.image_size)
            y = tf.random.stateless_normal(tf.shape(images), self.seed(7) + 1) / size
            total = tf.reduce_sum(images * y)
        grads = tape.gradient(total, ws)
        lengths = tf.sqrt(tf.reduce_mean(tf.reduce_sum(tf.square(grads), axis=2), axis=1))
        mean = tf.stop_gradient(self.pl_mean + PL_DECAY * (tf.reduce_mean(lengths) - self.pl_mean))
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        return tf.reduce_mean(tf.square(lengths - mean)) / replicas, mean

    def update_average(self, average: keras.Model, decay: float) -> None:
        """average's weights average G's (NoiseGAN); its buffers (w_avg, the constant noise) are
        G's own, copied, as the paper does."""
        super().update_average(average, decay)
        for mean, weight in zip(average.non_trainable_weights, self.G.non_trainable_weights):
            mean.assign(tf.cast(weight, mean.dtype))

    def summary_images(self) -> dict[str, tf.Tensor]:
        z = self.fixed_noise[:3]
        return {"G_ema(z_fixed)": tf.clip_by_value(self.G_ema(z), -1.0, 1.0),
                "G(z_fixed)": tf.clip_by_value(self.G(z), -1.0, 1.0)}
