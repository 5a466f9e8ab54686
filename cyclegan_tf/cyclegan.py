"""The CycleGAN: two generators, two discriminators, four Adam optimizers, two image pools, and
the training step that updates them all in one traced graph."""
from __future__ import annotations

from typing import Any

import keras
import tensorflow as tf

from cyclegan_tf import losses
from cyclegan_tf.config import Config
from cyclegan_tf.models import PatchDiscriminator, ResnetGenerator
from cyclegan_tf.optimizers import FusedAdam, LinearDecay
from cyclegan_tf.pool import ImagePool, replica_id

DTYPE_POLICIES = {"off": "float32", "bf16": "mixed_bfloat16"}


def build_generator(config: Config, name: str) -> ResnetGenerator:
    generator = ResnetGenerator(config.ngf, config.n_blocks, config.norm, config.input_skip,
                                name=name, dtype=DTYPE_POLICIES[config.mixed_precision])
    generator(tf.zeros([1, config.image_size, config.image_size, 3]))
    return generator


class CycleGAN(tf.Module):
    """G: X -> Y, F: Y -> X, D_X judges X, D_Y judges Y. Create it inside strategy.scope()."""

    # What the Trainer asks of a model: the settings naming its tfrecords (one batch of each per
    # step, in this order), the losses of its progress line, and its TensorBoard image rows.
    inputs = ("X", "Y")
    progress_losses = {"G": "G/total", "F": "F/total", "D_X": "D_X/loss", "D_Y": "D_Y/loss"}
    image_rows = {"X_to_Y": ("x", "G(x)", "F(G(x))"), "Y_to_X": ("y", "F(y)", "G(F(y))")}

    def __init__(self, config: Config):
        super().__init__(name="cyclegan")
        self.config = config
        size = config.image_size
        self.G = build_generator(config, "G")
        self.F = build_generator(config, "F")
        policy = DTYPE_POLICIES[config.mixed_precision]
        self.D_X = PatchDiscriminator(config.ndf, config.norm, name="D_X", dtype=policy)
        self.D_Y = PatchDiscriminator(config.ndf, config.norm, name="D_Y", dtype=policy)
        for discriminator in (self.D_X, self.D_Y):
            discriminator(tf.zeros([1, size, size, 3]))

        schedule = LinearDecay.for_config(config)

        def adam(network: keras.Model, name: str) -> keras.optimizers.Optimizer:
            optimizer = FusedAdam(schedule, beta_1=config.beta1, name=name)
            # Creating the slots now, outside tf.function, spares the step a second trace.
            optimizer.build(network.trainable_variables)
            return optimizer

        self.G_optimizer = adam(self.G, "G_optimizer")
        self.F_optimizer = adam(self.F, "F_optimizer")
        self.D_X_optimizer = adam(self.D_X, "D_X_optimizer")
        self.D_Y_optimizer = adam(self.D_Y, "D_Y_optimizer")
        self.schedule = schedule
        # Distinct stateless random streams per use (pools, penalty), all set by --seed.
        self.pool_x = ImagePool(config.pool_size, (size, size, 3), seed=4 * config.seed,
                                name="pool_x")
        self.pool_y = ImagePool(config.pool_size, (size, size, 3), seed=4 * config.seed + 1,
                                name="pool_y")
        self.step = tf.Variable(0, dtype=tf.int64, trainable=False, name="step",
                                aggregation=tf.VariableAggregation.ONLY_FIRST_REPLICA)

    def checkpoint(self, **extra: Any) -> tf.train.Checkpoint:
        """Everything needed to resume exactly: networks, optimizers (with the lr's step), pools."""
        return tf.train.Checkpoint(
            step=self.step, G=self.G, F=self.F, D_X=self.D_X, D_Y=self.D_Y,
            G_optimizer=self.G_optimizer, F_optimizer=self.F_optimizer,
            D_X_optimizer=self.D_X_optimizer, D_Y_optimizer=self.D_Y_optimizer,
            pool_x=self.pool_x, pool_y=self.pool_y, **extra)

    @property
    def networks(self) -> dict[str, keras.Model]:
        return {"G": self.G, "F": self.F, "D_X": self.D_X, "D_Y": self.D_Y}

    @property
    def learning_rate(self) -> tf.Tensor:
        return self.schedule(self.G_optimizer.iterations)

    def train_step(self, real_x: tf.Tensor, real_y: tf.Tensor) -> dict[str, dict[str, tf.Tensor]]:
        """One update of G, F, D_X and D_Y on a (per-replica) batch; call it inside strategy.run."""
        c = self.config
        average = tf.nn.compute_average_loss  # over the global batch, as tf.distribute expects
        identity = c.lambda_identity > 0
        with tf.GradientTape(persistent=True) as tape:
            if identity:  # G(y) and F(x) ride along with G(x) and F(y) in one call each
                fake_y, same_y = self._apply(self.G, real_x, real_y)
                fake_x, same_x = self._apply(self.F, real_y, real_x)
            else:
                fake_y, fake_x = self.G(real_x, training=True), self.F(real_y, training=True)
            cycled_x = self.F(fake_y, training=True)
            cycled_y = self.G(fake_x, training=True)

            # The pools return past fakes for the discriminators' losses (no gradient to G, F).
            pooled_fake_y = tf.stop_gradient(self.pool_y(fake_y))
            pooled_fake_x = tf.stop_gradient(self.pool_x(fake_x))
            score_fake_y, score_real_y, score_pooled_y = self._apply(
                self.D_Y, fake_y, real_y, pooled_fake_y)
            score_fake_x, score_real_x, score_pooled_x = self._apply(
                self.D_X, fake_x, real_x, pooled_fake_x)

            G_gan = losses.generator_loss(c.gan_loss, score_fake_y)
            F_gan = losses.generator_loss(c.gan_loss, score_fake_x)
            cycle_forward = c.lambda1 * losses.l1(real_x, cycled_x)
            cycle_backward = c.lambda2 * losses.l1(real_y, cycled_y)
            if identity:
                G_identity = c.lambda_identity * c.lambda2 * losses.l1(real_y, same_y)
                F_identity = c.lambda_identity * c.lambda1 * losses.l1(real_x, same_x)
            else:
                G_identity = F_identity = tf.zeros_like(G_gan)
            # G and F share the cycle terms, so one loss and one gradient serve both.
            generators_loss = average(G_gan + F_gan + cycle_forward + cycle_backward
                                      + G_identity + F_identity)

            D_Y_loss = losses.discriminator_loss(c.gan_loss, score_real_y, score_pooled_y)
            D_X_loss = losses.discriminator_loss(c.gan_loss, score_real_x, score_pooled_x)
            if c.gan_loss == "wgangp":
                # Keyed by the step, so a resumed run draws the epsilons it would have drawn.
                seed = tf.stack([tf.constant(4 * c.seed + 2, tf.int64),
                                 replica_id() * 2**32 + self.step])
                D_Y_loss += c.gp_weight * losses.gradient_penalty(self.D_Y, real_y, pooled_fake_y,
                                                                  seed)
                D_X_loss += c.gp_weight * losses.gradient_penalty(self.D_X, real_x, pooled_fake_x,
                                                                  seed + [0, 2**31])
            discriminators_loss = average(D_X_loss + D_Y_loss)

        G_vars, F_vars = self.G.trainable_variables, self.F.trainable_variables
        grads = tape.gradient(generators_loss, G_vars + F_vars)
        self.G_optimizer.apply_gradients(zip(grads[:len(G_vars)], G_vars))
        self.F_optimizer.apply_gradients(zip(grads[len(G_vars):], F_vars))
        D_X_vars, D_Y_vars = self.D_X.trainable_variables, self.D_Y.trainable_variables
        grads = tape.gradient(discriminators_loss, D_X_vars + D_Y_vars)
        self.D_X_optimizer.apply_gradients(zip(grads[:len(D_X_vars)], D_X_vars))
        self.D_Y_optimizer.apply_gradients(zip(grads[len(D_X_vars):], D_Y_vars))
        del tape
        self.step.assign_add(1)

        scalars = {
            "G/gan": G_gan, "G/identity": G_identity, "G/total": G_gan + G_identity + cycle_forward
            + cycle_backward, "F/gan": F_gan, "F/identity": F_identity,
            "F/total": F_gan + F_identity + cycle_forward + cycle_backward,
            "cycle/forward_x": cycle_forward, "cycle/backward_y": cycle_backward,
            "D_X/loss": D_X_loss, "D_Y/loss": D_Y_loss,
        }
        return {
            "losses": {name: average(value) for name, value in scalars.items()},
            "images": {"x": real_x, "G(x)": fake_y, "F(G(x))": cycled_x,
                       "y": real_y, "F(y)": fake_x, "G(F(y))": cycled_y},
            "scores": {"D_X/real": score_real_x, "D_X/fake": score_pooled_x,
                       "D_Y/real": score_real_y, "D_Y/fake": score_pooled_y},
        }

    def _apply(self, network: keras.Model, *images: tf.Tensor) -> list[tf.Tensor]:
        """network(x) for each x. Instance norm is per image, so one call on the concatenated
        batch gives the same results with fewer, larger convolutions (and a smaller graph to
        trace); batch norm gets separate calls, so that real and generated images never share
        normalisation statistics."""
        if self.config.norm == "batch":
            return [network(x, training=True) for x in images]
        outputs = network(tf.concat(images, axis=0), training=True)
        return tf.split(outputs, [x.shape[0] for x in images], axis=0)

    def distributed_step_fn(self, strategy: tf.distribute.Strategy):
        """The tf.function that runs train_step on every replica and sums the averaged losses."""
        replica_step = self.train_step
        if self.config.jit_compile:
            replica_step = tf.function(self.train_step, jit_compile=True)

        @tf.function
        def step(real_x, real_y):
            outputs = strategy.run(replica_step, args=(real_x, real_y))
            reduced = {name: strategy.reduce(tf.distribute.ReduceOp.SUM, value, axis=None)
                       for name, value in outputs["losses"].items()}
            return {**outputs, "losses": reduced}

        return step
