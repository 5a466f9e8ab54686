"""DCGAN and WGAN-GP: new images from noise, learnt from one set of images (--X).

The networks are the DCGAN's (Radford et al., 2016) at the sizes of the face-generation article:
G views a z_dim noise vector as a 1x1 image; a transposed convolution makes it 4x4 (64 px) or 5x5
(80 px) with ngf*8 channels, and four stride-2 ones double it to ngf*4, ngf*2, ngf and 3 channels
(batch norm + ReLU between, tanh at the end: images in [-1, 1]). D mirrors G with strided
convolutions and LeakyReLU(0.2). The WGAN-GP critic is the same network without batch norm
(layer norm or none, as Gulrajani et al. require: the gradient penalty is per image).

Both models keep G_ema, a moving average of G's weights, which is what export uses: it gives
smoother, better images than G's latest weights at no training cost. With --diff_augment every
image D sees, real or generated, goes through DiffAugment's random transforms (diffaugment.py;
NoiseGAN.augment, which StyleGAN's step uses too).
"""
from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from cyclegan_tf import losses
from cyclegan_tf.config import GENERATOR_SIZES, Config
from cyclegan_tf.cyclegan import DTYPE_POLICIES
from cyclegan_tf.diffaugment import diff_augment
from cyclegan_tf.layers import conv_init
from cyclegan_tf.models import ConvNormAct
from cyclegan_tf.optimizers import FusedAdam, LinearDecay
from cyclegan_tf.pool import replica_id

FIXED_NOISE = 8  # the noise vectors TensorBoard's samples are made from, the same all run long


def first_side(image_size: int) -> int:
    """The side of the first layer: the image size is it doubled four times (64 -> 4, 80 -> 5)."""
    if image_size not in GENERATOR_SIZES:
        raise ValueError(f"image_size must be one of {GENERATOR_SIZES}, got {image_size}")
    return image_size // 16


class NoiseGenerator(keras.Model):
    """z [N, z_dim] -> images [N, image_size, image_size, 3] in [-1, 1] (float32)."""

    def __init__(self, z_dim: int = 128, image_size: int = 80, ngf: int = 64, **kwargs):
        super().__init__(**kwargs)
        self.z_dim, self.image_size, self.ngf = z_dim, image_size, ngf
        policy = self.dtype_policy
        # A tuple, not a list: see ResnetGenerator (checkpoints must see every layer).
        self.stages = (
            ConvNormAct(ngf * 8, first_side(image_size), 1, padding="valid", norm="batch",
                        transpose=True, dtype=policy),
            ConvNormAct(ngf * 4, 4, 2, norm="batch", transpose=True, dtype=policy),
            ConvNormAct(ngf * 2, 4, 2, norm="batch", transpose=True, dtype=policy),
            ConvNormAct(ngf, 4, 2, norm="batch", transpose=True, dtype=policy),
            ConvNormAct(3, 4, 2, norm=None, activation=None, transpose=True, dtype=policy),
        )

    def call(self, z, training=False):
        x = tf.reshape(z, [-1, 1, 1, self.z_dim])
        for stage in self.stages:
            x = stage(x, training=training)
        return tf.tanh(tf.cast(x, tf.float32))  # float32 images whatever the compute dtype

    def get_config(self):
        return {"z_dim": self.z_dim, "image_size": self.image_size, "ngf": self.ngf}


class NoiseDiscriminator(keras.Model):
    """images -> one logit per image [N]: G mirrored (ndf, ndf*2, ndf*4, ndf*8, then a
    convolution over the last 4x4 or 5x5 map). norm: batch (DCGAN), layer or none (WGAN-GP);
    the first layer has none, as in the DCGAN paper."""

    def __init__(self, image_size: int = 80, ndf: int = 64, norm: str = "batch", **kwargs):
        super().__init__(**kwargs)
        self.image_size, self.ndf, self.norm = image_size, ndf, norm
        policy = self.dtype_policy
        layer_norm = None if norm == "none" else norm
        self.stages = (
            ConvNormAct(ndf, 4, 2, norm=None, activation="leaky_relu", dtype=policy),
            *[ConvNormAct(ndf * k, 4, 2, norm=layer_norm, activation="leaky_relu", dtype=policy)
              for k in (2, 4, 8)],
        )
        self.score = keras.layers.Conv2D(1, first_side(image_size), padding="valid",
                                         kernel_initializer=conv_init(), dtype=policy)

    def call(self, x, training=False):
        for stage in self.stages:
            x = stage(x, training=training)
        return tf.reshape(tf.cast(self.score(x), tf.float32), [-1])

    def get_config(self):
        return {"image_size": self.image_size, "ndf": self.ndf, "norm": self.norm}


def build_noise_generator(config: Config, name: str, dtype: str | None = None) -> NoiseGenerator:
    """G (or its average G_ema) for a run's settings, built (its weights exist)."""
    generator = NoiseGenerator(config.z_dim, config.image_size, config.ngf, name=name,
                               dtype=dtype or DTYPE_POLICIES[config.mixed_precision])
    generator(tf.zeros([1, config.z_dim]))
    return generator


class NoiseGAN(tf.Module):
    """What DCGAN and WGAN-GP share: G, G_ema, D, two Adams, the fixed noise, the step, and the
    interface the Trainer uses (see CycleGAN). Create it inside strategy.scope()."""

    inputs = ("X",)
    # TensorBoard: three fixed-noise samples of G_ema and of G, beside three real images.
    image_rows = {"samples": ("G_ema(z_fixed)", "G(z_fixed)", "x")}
    progress_losses: dict[str, str] = {}

    def __init__(self, config: Config, D_updates_per_step: int = 1):
        super().__init__(name=config.model)
        self.config = config
        c = config
        self.G = self.build_generator(c, "G")
        # Averaged in float32: the small (1 - decay) updates would vanish in bf16.
        self.G_ema = self.build_generator(c, "G_ema", dtype="float32")
        self.G_ema.set_weights(self.G.get_weights())
        self.D = self.build_discriminator(c)
        self.schedule = LinearDecay.for_config(c)
        # D's optimizer counts its own updates, n per step: its schedule is stretched to match,
        # so both networks' rates follow the same plan over the run's steps.
        n = D_updates_per_step
        D_schedule = LinearDecay(self.schedule.initial_learning_rate, c.max_steps * n,
                                 c.decay_steps * n)
        self.G_optimizer = self._adam(self.G, self.schedule, "G_optimizer")
        self.D_optimizer = self._adam(self.D, D_schedule, "D_optimizer")
        self.fixed_noise = tf.Variable(
            tf.random.stateless_normal([FIXED_NOISE, c.z_dim], seed=[c.seed, 7]),
            trainable=False, name="fixed_noise")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    @classmethod
    def build_generator(cls, config: Config, name: str, dtype: str | None = None) -> keras.Model:
        """G (or its average G_ema) for a run's settings, built: what export restores."""
        return build_noise_generator(config, name, dtype)

    @classmethod
    def build_discriminator(cls, config: Config) -> keras.Model:
        D = NoiseDiscriminator(config.image_size, config.ndf, config.norm, name="D",
                               dtype=DTYPE_POLICIES[config.mixed_precision])
        D(tf.zeros([1, config.image_size, config.image_size, 3]))
        return D

    def _adam(self, network: keras.Model, schedule, name: str) -> keras.optimizers.Optimizer:
        """Adam for network with the run's betas, its slots built."""
        optimizer = FusedAdam(schedule, beta_1=self.config.beta1, beta_2=self.config.beta2,
                              name=name)
        optimizer.build(network.trainable_variables)  # slots now: spares the step a second trace
        return optimizer

    # -- what the Trainer asks ----------------------------------------------------------------------

    @property
    def batches_per_step(self) -> int:
        """Batches of --X one step consumes (the Trainer reads batch_size times this)."""
        return 1

    def checkpoint(self, **extra: Any) -> tf.train.Checkpoint:
        return tf.train.Checkpoint(step=self.step, G=self.G, G_ema=self.G_ema, D=self.D,
                                   G_optimizer=self.G_optimizer, D_optimizer=self.D_optimizer,
                                   fixed_noise=self.fixed_noise, **extra)

    @property
    def networks(self) -> dict[str, keras.Model]:
        return {"G": self.G, "D": self.D, "G_ema": self.G_ema}

    @property
    def learning_rate(self) -> tf.Tensor:
        return self.schedule(self.G_optimizer.iterations)

    def distributed_step_fn(self, strategy: tf.distribute.Strategy):
        """The tf.function that runs train_step on every replica, sums the averaged losses and
        then updates G_ema (in cross-replica context: one update of the mirrored copies)."""
        replica_step = self.train_step
        if self.config.jit_compile:
            replica_step = tf.function(self.train_step, jit_compile=True)

        @tf.function
        def step(real):
            outputs = strategy.run(replica_step, args=(real,))
            reduced = {name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                       for name, value in outputs["losses"].items()}
            self.update_ema()
            return {**outputs, "losses": reduced}

        return step

    # -- shared pieces of the step ------------------------------------------------------------------

    def train_step(self, real: tf.Tensor) -> dict[str, dict[str, tf.Tensor]]:
        raise NotImplementedError

    def update_ema(self) -> None:
        """G_ema moves toward G (update_average with --ema_decay)."""
        self.update_average(self.G_ema, self.config.ema_decay)

    def update_average(self, average: keras.Model, decay: float) -> None:
        """average = d * average + (1 - d) * G, weights and batch-norm statistics alike. d grows
        from 0.1 to decay over the first steps ((1 + step) / (10 + step), as TF's
        ExponentialMovingAverage does), so that a short run's average is not its random start."""
        step = tf.cast(self.step, tf.float32)
        d = tf.minimum(decay, (1.0 + step) / (10.0 + step))
        for mean, weight in zip(average.weights, self.G.weights):
            mean.assign(d * mean + (1.0 - d) * tf.cast(weight, mean.dtype))

    @property
    def streams(self) -> int:
        """Random draws of each kind per step: one per critic update, plus G's."""
        return self.config.n_critic + 1

    def noise(self, count: tf.Tensor, stream: int) -> tf.Tensor:
        """[count, z_dim] normal noise keyed by the step, the replica and a stream number, so a
        resumed run draws the noise the uninterrupted run would have drawn."""
        seed = tf.stack([tf.constant(1000 + 4 * self.config.seed, tf.int64),
                         replica_id() * 2**32 + self.step * self.streams + stream])
        return tf.random.stateless_normal([count, self.config.z_dim], seed)

    def augment(self, images: tf.Tensor, generated: bool, stream: int) -> tf.Tensor:
        """images as D sees them: through --diff_augment's transforms (unchanged without),
        drawn per step, replica, stream and whether they are real or generated."""
        if not self.config.diff_augment:
            return images
        seed = tf.stack([tf.constant(3000 + 4 * self.config.seed + int(generated), tf.int64),
                         replica_id() * 2**32 + self.step * self.streams + stream])
        return diff_augment(images, self.config.diff_augment, seed)

    def summary_images(self) -> dict[str, tf.Tensor]:
        """The TensorBoard row's fixed-noise samples of G_ema and G, made when a summary is
        written (the Trainer asks), not in every training step."""
        z = self.fixed_noise[:3]
        return {"G_ema(z_fixed)": self.G_ema(z, training=False),
                "G(z_fixed)": self.G(z, training=False)}


def _bce(logits: tf.Tensor, label: float) -> tf.Tensor:
    return tf.nn.sigmoid_cross_entropy_with_logits(tf.fill(tf.shape(logits), label), logits)


class DCGAN(NoiseGAN):
    """The DCGAN: D learns real (1) from generated (0) by cross-entropy; G the non-saturating
    loss -log D(G(z)). One update of each per step, from the same batch of generated images."""

    progress_losses = {"G": "G/loss", "D": "D/loss"}

    def train_step(self, real: tf.Tensor) -> dict[str, dict[str, tf.Tensor]]:
        average = tf.nn.compute_average_loss  # over the global batch, as tf.distribute expects
        z = self.noise(tf.shape(real)[0], 0)
        with tf.GradientTape(persistent=True) as tape:
            fake = self.G(z, training=True)
            # Separate calls: real and generated images never share batch-norm statistics.
            score_real = self.D(self.augment(real, False, 0), training=True)
            score_fake = self.D(self.augment(fake, True, 0), training=True)
            D_loss = _bce(score_real, 1.0) + _bce(score_fake, 0.0)
            G_loss = _bce(score_fake, 1.0)
            D_total, G_total = average(D_loss), average(G_loss)
        G_vars, D_vars = self.G.trainable_variables, self.D.trainable_variables
        self.G_optimizer.apply_gradients(zip(tape.gradient(G_total, G_vars), G_vars))
        self.D_optimizer.apply_gradients(zip(tape.gradient(D_total, D_vars), D_vars))
        del tape
        self.step.assign_add(1)
        return {
            "losses": {"G/loss": G_total, "D/loss": D_total,
                       "D/real_prob": average(tf.sigmoid(score_real)),
                       "D/fake_prob": average(tf.sigmoid(score_fake))},
            "images": {"x": real[:3]},
            "scores": {"D/real": score_real, "D/fake": score_fake},
        }


class WGANGP(NoiseGAN):
    """WGAN-GP (Gulrajani et al., 2017): the critic D is updated n_critic times per G update on
    D(fake) - D(real) + gp_weight * (||grad D(x_hat)|| - 1)^2, each time on a new real batch and
    new noise; G then minimises -D(G(z)). One step reads n_critic batches of --X."""

    progress_losses = {"G": "G/loss", "W": "critic/wasserstein", "GP": "critic/penalty"}

    def __init__(self, config: Config):
        super().__init__(config, D_updates_per_step=config.n_critic)

    @property
    def batches_per_step(self) -> int:
        return self.config.n_critic

    def train_step(self, real: tf.Tensor) -> dict[str, dict[str, tf.Tensor]]:
        c = self.config
        average = tf.nn.compute_average_loss
        D_vars, G_vars = self.D.trainable_variables, self.G.trainable_variables
        # Unrolled (n_critic is a setting): optimizer updates inside a graph loop would not run
        # under every tf.distribute strategy.
        for i, real_i in enumerate(tf.split(real, c.n_critic, axis=0)):
            count = tf.shape(real_i)[0]
            fake = tf.stop_gradient(self.G(self.noise(count, i), training=True))
            seen_real, fake = self.augment(real_i, False, i), self.augment(fake, True, i)
            seed = tf.stack([tf.constant(4 * c.seed + 2, tf.int64),
                             replica_id() * 2**32 + self.step * self.streams + i])
            with tf.GradientTape() as tape:
                # One pass over both: the critic keeps no batch statistics (batch norm is
                # refused for wgangp), so this is the two passes in one, with larger matmuls.
                scores = self.D(tf.concat([seen_real, fake], axis=0), training=True)
                score_real, score_fake = tf.split(scores, 2)
                wasserstein = score_real - score_fake  # the critic's estimate, per image
                penalty = losses.gradient_penalty(self.D, seen_real, fake, seed)
                D_total = average(-wasserstein + c.gp_weight * penalty)
            self.D_optimizer.apply_gradients(zip(tape.gradient(D_total, D_vars), D_vars))
        with tf.GradientTape() as tape:
            fake = self.augment(self.G(self.noise(count, c.n_critic), training=True), True,
                                c.n_critic)
            score = self.D(fake, training=True)
            G_total = average(-score)
        self.G_optimizer.apply_gradients(zip(tape.gradient(G_total, G_vars), G_vars))
        self.step.assign_add(1)
        return {
            "losses": {"G/loss": G_total, "critic/loss": D_total,
                       "critic/wasserstein": average(wasserstein),
                       "critic/penalty": average(penalty)},
            "images": {"x": real_i[:3]},
            "scores": {"critic/real": score_real, "critic/fake": score_fake},
        }
