"""Networks, losses and the image pool, in isolation (no training loop)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import losses
from cyclegan_tf.models import PatchDiscriminator, ResnetGenerator
from cyclegan_tf.pool import ImagePool


@pytest.mark.parametrize("norm", ["instance", "batch"])
def test_generator_is_fully_convolutional_on_non_square_images(norm):
    generator = ResnetGenerator(ngf=4, n_blocks=1, norm=norm)
    generator(tf.zeros([1, 32, 32, 3]))
    out = generator(tf.random.uniform([2, 44, 68, 3], -1, 1))
    assert out.shape == (2, 44, 68, 3)
    assert float(tf.reduce_max(tf.abs(out))) <= 1.0  # tanh


def test_generator_layout_follows_the_paper():
    generator = ResnetGenerator(ngf=8, n_blocks=3)
    generator(tf.zeros([1, 32, 32, 3]))
    kernels = [v for v in generator.trainable_variables if "kernel" in v.path]
    shapes = [tuple(k.shape) for k in kernels]
    assert shapes[0] == (7, 7, 3, 8) and shapes[1] == (3, 3, 8, 16) and shapes[2] == (3, 3, 16, 32)
    assert shapes[3:9] == [(3, 3, 32, 32)] * 6  # 3 residual blocks of two convolutions
    assert shapes[-1] == (7, 7, 8, 3)
    assert np.std(kernels[3].numpy()) == pytest.approx(0.02, rel=0.15)  # N(0, 0.02)


def test_input_skip_lets_the_generator_see_overall_colour_and_contrast():
    """The paper's generator cannot tell x from a * x + c (instance norm after a bias-free first
    convolution), so a cycle can never restore them; input_skip gives them a path through."""
    x = tf.random.uniform([2, 32, 32, 3], -0.5, 0.5, seed=1)
    shifted = 0.7 * x + tf.constant([0.2, -0.1, 0.05])
    blind = ResnetGenerator(ngf=4, n_blocks=1)
    np.testing.assert_allclose(blind(shifted), blind(x), atol=1e-3)
    seeing = ResnetGenerator(ngf=4, n_blocks=1, input_skip=True)
    assert float(tf.reduce_mean(tf.abs(seeing(shifted) - seeing(x)))) > 1e-2
    assert seeing.to_rgb.conv.kernel.shape == (7, 7, 4 + 3, 3)  # the last conv sees x too


def test_patch_discriminator_sees_70x70_patches():
    # Inference-mode batch norm is local; instance norm would let the whole image's statistics in.
    discriminator = PatchDiscriminator(ndf=4, norm="batch")
    image = tf.random.normal([1, 128, 128, 3])
    scores = discriminator(image)
    assert scores.shape == (1, 14, 14, 1)  # 128 -> 64 -> 32 -> 16 -> 15 -> 14, as the reference
    with tf.GradientTape() as tape:
        tape.watch(image)
        centre = discriminator(image, training=False)[0, 7, 7, 0]
    influence = tf.reduce_sum(tf.abs(tape.gradient(centre, image)[0]), axis=-1).numpy() > 0
    rows, cols = np.nonzero(influence.any(axis=1))[0], np.nonzero(influence.any(axis=0))[0]
    assert rows.max() - rows.min() + 1 == 70 and cols.max() - cols.min() + 1 == 70


def test_every_network_weight_is_saved_and_restored_with_its_own_checkpoint(tmp_path):
    """Export and inference restore a generator alone: each weight must be reachable from it."""
    for network in (ResnetGenerator(ngf=4, n_blocks=2), PatchDiscriminator(ndf=4)):
        network(tf.random.normal([1, 32, 32, 3]))
        path = tf.train.Checkpoint(net=network).save(str(tmp_path / network.name))
        saved = {name for name, _ in tf.train.list_variables(path) if name.startswith("net/")}
        assert len(saved) == len(network.weights), network.name
        values = [v.numpy() for v in network.weights]
        for v in network.weights:
            v.assign(tf.zeros_like(v))
        tf.train.Checkpoint(net=network).restore(path).assert_consumed()
        for v, value in zip(network.weights, values):
            np.testing.assert_array_equal(v.numpy(), value)


def test_gan_losses_reward_the_right_side():
    real, fake = tf.fill([2, 4, 4, 1], 3.0), tf.fill([2, 4, 4, 1], -3.0)
    for kind in ("lsgan", "vanilla", "wgangp"):
        good = losses.discriminator_loss(kind, real, fake)
        bad = losses.discriminator_loss(kind, fake, real)
        assert good.shape == (2,) and np.all(good.numpy() < bad.numpy()), kind
        assert np.all(losses.generator_loss(kind, real).numpy()
                      < losses.generator_loss(kind, fake).numpy()), kind
    ones, zeros = tf.ones([1, 2, 2, 1]), tf.zeros([1, 2, 2, 1])
    assert float(losses.discriminator_loss("lsgan", ones, zeros)[0]) == 0.0
    assert float(losses.generator_loss("lsgan", zeros)[0]) == 1.0
    assert float(losses.discriminator_loss("vanilla", zeros, zeros)[0]) == pytest.approx(np.log(2))
    assert float(losses.discriminator_loss("wgangp", ones, zeros)[0]) == -1.0
    assert float(losses.l1(ones, -ones)[0]) == 2.0


def test_gradient_penalty_is_zero_for_a_unit_gradient_critic():
    critic = lambda x, training=False: tf.reduce_sum(x, axis=[1, 2, 3]) / 4.0  # noqa: E731
    # d/dx of sum(x)/4 has norm sqrt(16 * 3) / 4 = sqrt(3) on 4x4x3 inputs; scale to norm 1:
    unit = lambda x, training=False: critic(x) / np.sqrt(3.0)  # noqa: E731
    penalty = losses.gradient_penalty(unit, tf.zeros([2, 2, 2, 3]), tf.ones([2, 2, 2, 3]))
    assert penalty.shape == (2,)
    steep = losses.gradient_penalty(lambda x, training=False: 10 * tf.reduce_sum(x, [1, 2, 3]),
                                    tf.zeros([1, 2, 2, 3]), tf.ones([1, 2, 2, 3]))
    assert float(steep[0]) > 1000  # (10 * sqrt(12) - 1)^2


def test_gradient_penalty_of_a_linear_critic_is_known_whatever_epsilon():
    """D(x) = sum(w * x) has gradient w at every point: the penalty is (||w||_2 - 1)^2 for each
    sample. A norm over the whole batch would give (sqrt(batch) ||w|| - 1)^2 instead."""
    w = tf.constant(np.random.default_rng(0).normal(size=(1, 2, 3, 3)), tf.float32)
    critic = lambda x, training=False: tf.reduce_sum(w * x, axis=[1, 2, 3])  # noqa: E731
    rng = np.random.default_rng(1)
    real, fake = (tf.constant(rng.normal(size=(4, 2, 3, 3)), tf.float32) for _ in range(2))
    penalty = losses.gradient_penalty(critic, real, fake).numpy()
    expected = (np.linalg.norm(w.numpy()) - 1.0) ** 2
    assert penalty.shape == (4,)
    np.testing.assert_allclose(penalty, [expected] * 4, rtol=1e-5)
    gp_weight = 10.0  # as the training step weights it
    np.testing.assert_allclose(gp_weight * penalty.mean(), gp_weight * expected, rtol=1e-5)


def test_gradient_penalty_mixes_each_sample_with_one_epsilon():
    """A critic whose gradient norm is exactly 1 on the segment between real and fake, and only
    there: D(x) = -(2 / pi) sum(cos(pi x / 2)) / sqrt(3), real = (pixel 0, pixel 1) = (0, 1),
    fake = (1, 0). At x = real + e (fake - real) = (e, 1 - e) the gradient is
    sin(pi x / 2) / sqrt(3), of squared norm sin(pi e / 2)^2 + cos(pi e / 2)^2 = 1: the penalty is
    0 for any e drawn per sample. An e drawn per pixel (or per value) leaves the segment, where
    sin(pi a / 2)^2 + cos(pi b / 2)^2 != 1 for a != b."""
    critic = lambda x, training=False: -2 / np.pi * tf.reduce_sum(  # noqa: E731
        tf.cos(np.pi * x / 2), axis=[1, 2, 3]) / np.sqrt(3.0)
    batch = 16
    real = tf.concat([tf.zeros([batch, 1, 1, 3]), tf.ones([batch, 1, 1, 3])], axis=2)
    fake = 1.0 - real
    tf.random.set_seed(3)
    penalty = losses.gradient_penalty(critic, real, fake).numpy()
    np.testing.assert_allclose(penalty, np.zeros(batch), atol=1e-8)
    # The same critic does tell mixes apart: off the segment its gradient norm is not 1.
    off_segment = tf.concat([tf.fill([1, 1, 1, 3], 0.3), tf.fill([1, 1, 1, 3], 0.9)], axis=2)
    assert float(losses.gradient_penalty(critic, off_segment, off_segment)[0]) > 1e-3


def test_pool_fills_then_swaps_half_the_time_and_is_checkpointed(tmp_path):
    pool = ImagePool(4, (2, 2, 3))
    query = tf.function(pool.__call__)
    batches = [tf.fill([2, 2, 2, 3], float(i)) for i in range(1, 3)]
    for batch in batches:  # filling: returns the new images unchanged
        np.testing.assert_array_equal(query(batch).numpy(), batch.numpy())
    assert int(pool.count.read_value()) == 4
    returned_old = 0
    for i in range(100):
        new = tf.reshape(tf.constant([100.0 + 2 * i, 101.0 + 2 * i]), [2, 1, 1, 1])
        out = query(tf.tile(new, [1, 2, 2, 3])).numpy()
        returned_old += int(np.sum(out[:, 0, 0, 0] != new.numpy().ravel()))
    assert 70 < returned_old < 130  # about half of 200
    path = tf.train.Checkpoint(pool=pool).save(str(tmp_path / "pool"))
    restored = ImagePool(4, (2, 2, 3))
    tf.train.Checkpoint(pool=restored).restore(path).assert_consumed()
    np.testing.assert_array_equal(restored.images.numpy(), pool.images.numpy())
    assert int(restored.count.read_value()) == 4 + 200  # every image queried: the random stream


def test_pool_size_zero_passes_images_through():
    images = tf.random.normal([3, 2, 2, 3])
    np.testing.assert_array_equal(ImagePool(0, (2, 2, 3))(images).numpy(), images.numpy())


def test_batched_network_calls_equal_separate_calls():
    """The step runs G(x) and G(y) (and D on fake, real, pooled) as one batched call with
    instance norm; that must not change any image's result."""
    from cyclegan_tf.config import Config
    from cyclegan_tf.cyclegan import CycleGAN
    model = CycleGAN(Config(image_size=32, ngf=4, ndf=4, n_blocks=1, pool_size=0))
    a, b, c = (tf.random.normal([1, 32, 32, 3], seed=s) for s in range(3))
    for network in (model.G, model.D_X):
        batched = model._apply(network, a, b, c)
        for x, y in zip((a, b, c), batched):
            np.testing.assert_allclose(network(x, training=True).numpy(), y.numpy(), atol=1e-5)
