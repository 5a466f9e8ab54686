"""--diff_augment: each transform against what it should do to known images, its gradient, and
the models' use of it (drawn per step, the same on a replay, off by default)."""
from __future__ import annotations

import numpy as np
import pytest
import tensorflow as tf

SEED = tf.constant([7, 11], tf.int64)


def numbered(count: int = 8, size: int = 16) -> tf.Tensor:
    """Images whose every pixel and channel is a different positive value (in [-1, 1])."""
    values = np.arange(1, count * size * size * 3 + 1, dtype=np.float32)
    return tf.constant(values.reshape(count, size, size, 3) / values.size)


def test_translation_moves_each_image_by_whole_pixels_within_an_eighth_zeros_moved_in():
    from cyclegan_tf.diffaugment import translation
    images = numbered(count=32)
    moved = translation(images, SEED).numpy()
    shifts = set()
    for image, out in zip(images.numpy(), moved):
        found = None
        for dy in range(-2, 3):  # 0.125 * 16 = 2 pixels each way
            for dx in range(-2, 3):
                expected = np.zeros_like(image)
                ys, xs = slice(max(dy, 0), 16 + min(dy, 0)), slice(max(dx, 0), 16 + min(dx, 0))
                expected[ys, xs] = image[max(-dy, 0):16 - max(dy, 0), max(-dx, 0):16 - max(dx, 0)]
                if np.array_equal(out, expected):
                    found = (dy, dx)
        assert found is not None, "not a shift of the input by at most 2 pixels"
        shifts.add(found)
    assert len(shifts) > 5  # each image its own shift
    np.testing.assert_array_equal(translation(images, SEED).numpy(), moved)  # stateless
    assert not np.array_equal(translation(images, SEED + 1).numpy(), moved)


def test_cutout_blanks_one_square_of_half_the_side_clipped_at_the_edges():
    from cyclegan_tf.diffaugment import cutout
    images = numbered(count=32)
    out = cutout(images, SEED).numpy()
    sides = set()
    for image, result in zip(images.numpy(), out):
        blank = np.all(result == 0, axis=-1)
        np.testing.assert_array_equal(result[~blank], image[~blank])  # the rest untouched
        rows, cols = np.nonzero(blank.any(axis=1))[0], np.nonzero(blank.any(axis=0))[0]
        # One rectangle: every pixel between its first and last row and column is blank.
        assert blank[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and blank.sum() == len(rows) * len(cols)
        assert len(rows) <= 8 and len(cols) <= 8  # half the side at most
        sides.add((len(rows), len(cols)))
    assert (8, 8) in sides and len(sides) > 1  # whole squares inside, clipped ones at the edges


def test_color_shifts_a_grey_image_by_one_brightness_per_image_within_a_half():
    from cyclegan_tf.diffaugment import color
    grey = tf.fill([64, 8, 8, 3], 0.1)  # saturation and contrast leave a flat grey image alone
    out = color(grey, SEED).numpy()
    change = out - 0.1
    np.testing.assert_allclose(change, change[:, :1, :1, :1] * np.ones_like(change), atol=1e-6)
    assert np.all(np.abs(change) <= 0.5) and change.std() > 0.2  # U(-0.5, 0.5)


def test_every_transform_passes_a_gradient_to_the_images():
    from cyclegan_tf.diffaugment import diff_augment
    images = numbered()
    weights = tf.random.stateless_normal(images.shape, [1, 2])
    with tf.GradientTape() as tape:
        tape.watch(images)
        total = tf.reduce_sum(diff_augment(images, "color,translation,cutout", SEED) * weights)
    grads = tape.gradient(total, images).numpy()
    assert np.isfinite(grads).all() and (np.abs(grads) > 0).mean() > 0.3


def test_models_augment_what_D_sees_per_step_and_not_without_the_flag():
    from cyclegan_tf.config import Config
    from cyclegan_tf.generators import DCGAN
    tiny = dict(model="dcgan", image_size=64, ngf=8, ndf=8, batch_size=4, z_dim=16)
    images = tf.random.stateless_uniform([4, 64, 64, 3], [3, 4], -1.0, 1.0)
    plain = DCGAN(Config(**tiny))
    assert plain.augment(images, False, 0) is images
    model = DCGAN(Config(**tiny, diff_augment="translation,cutout"))
    first = model.augment(images, False, 0).numpy()
    assert not np.array_equal(first, images.numpy())
    np.testing.assert_array_equal(model.augment(images, False, 0).numpy(), first)  # a replay
    assert not np.array_equal(model.augment(images, True, 0).numpy(), first)  # generated: others
    model.step.assign_add(1)
    assert not np.array_equal(model.augment(images, False, 0).numpy(), first)  # the next step


@pytest.mark.parametrize("policy, message", [
    ("colour", "comma-separated list of color, translation, cutout"),
    ("color,color", "without spaces or repeats"),
    ("color, cutout", "without spaces or repeats"),
])
def test_unknown_augmentations_are_refused_naming_the_valid_ones(policy, message):
    from cyclegan_tf.config import Config, ConfigError
    with pytest.raises(ConfigError, match=message):
        Config(model="dcgan", image_size=64, diff_augment=policy)


def test_diff_augment_on_a_cyclegan_is_refused():
    from cyclegan_tf.config import Config, ConfigError
    with pytest.raises(ConfigError, match="for the face generators"):
        Config(diff_augment="color")
