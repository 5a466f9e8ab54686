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
    # Each image its own shift, every one from -2 to 2 on each axis drawn (32 images).
    assert {dy for dy, _ in shifts} == {dx for _, dx in shifts} == set(range(-2, 3))
    np.testing.assert_array_equal(translation(images, SEED).numpy(), moved)  # stateless
    assert not np.array_equal(translation(images, SEED + 1).numpy(), moved)


def test_cutout_blanks_one_square_of_half_the_side_clipped_at_the_edges():
    from cyclegan_tf.diffaugment import cutout
    images = numbered(count=32)
    sides = set()
    for image, result in zip(tf.concat([images] * 4, 0).numpy(), cutout(
            tf.concat([images] * 4, 0), SEED).numpy()):
        blank = np.all(result == 0, axis=-1)
        np.testing.assert_array_equal(result[~blank], image[~blank])  # the rest untouched
        rows, cols = np.nonzero(blank.any(axis=1))[0], np.nonzero(blank.any(axis=0))[0]
        # One rectangle: every pixel between its first and last row and column is blank.
        assert blank[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1].all() and blank.sum() == len(rows) * len(cols)
        assert len(rows) <= 8 and len(cols) <= 8  # half the side at most
        sides.add((len(rows), len(cols)))
    # Whole squares inside, clipped ones at the edges: the centre anywhere in the image, so at
    # least half the square stays in it (4 to 8 rows and columns).
    assert {rows for rows, _ in sides} == {cols for _, cols in sides} == set(range(4, 9))


def test_color_is_brightness_then_saturation_then_contrast_with_the_papers_ranges():
    from cyclegan_tf.diffaugment import _uniform, color
    images = numbered(count=64) * 2 - 1
    x = images.numpy()
    brightness, saturation, contrast = (_uniform(images, SEED, i, low, high).numpy() for i, (low, high)
                                        in enumerate([(-0.5, 0.5), (0.0, 2.0), (0.5, 1.5)]))
    for draw, (low, high) in zip((brightness, saturation, contrast), [(-0.5, 0.5), (0, 2), (0.5, 1.5)]):
        assert draw.min() >= low and draw.max() <= high and draw.max() - draw.min() > (high - low) / 2
    x = x + brightness
    grey = x.mean(axis=3, keepdims=True)
    x = (x - grey) * saturation + grey
    mean = x.mean(axis=(1, 2, 3), keepdims=True)
    np.testing.assert_allclose(color(images, SEED).numpy(), (x - mean) * contrast + mean, atol=1e-5)


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
    ("colour", "no augmentation 'colour'; pass a comma-separated list of color, translation, cutout"),
    ("color, cutout", "no augmentation ' cutout'.* without spaces"),
    ("color,color", "names an augmentation twice"),
])
def test_unknown_augmentations_are_refused_naming_the_valid_ones(policy, message):
    from cyclegan_tf.config import Config, ConfigError
    with pytest.raises(ConfigError, match=message):
        Config(model="dcgan", image_size=64, diff_augment=policy)


def test_diff_augment_on_a_cyclegan_is_refused():
    from cyclegan_tf.config import Config, ConfigError
    with pytest.raises(ConfigError, match="for the face generators"):
        Config(diff_augment="color")


@pytest.mark.parametrize("model, n_critic", [("dcgan", 5), ("wgangp", 2), ("stylegan", 5)])
def test_every_image_D_sees_in_a_step_is_augmented(model, n_critic, monkeypatch):
    """One eager step of each model, NoiseGAN.augment recording what it was given: D's step
    sees augmented real and generated images, G's step augmented generated ones."""
    from cyclegan_tf import gans
    from cyclegan_tf.config import Config
    from cyclegan_tf.generators import NoiseGAN
    seen = []
    original = NoiseGAN.augment

    def augment(self, images, generated, stream):
        seen.append((generated, stream))
        return original(self, images, generated, stream)

    monkeypatch.setattr(NoiseGAN, "augment", augment)
    size = 32 if model == "stylegan" else 64
    tiny = dict(ngf=8, ndf=8, z_dim=16, batch_size=4, n_critic=n_critic) | (
        dict(channel_base=64, mapping_layers=1) if model == "stylegan" else {})
    gan = gans.build_model(Config(model=model, image_size=size, diff_augment="cutout", **tiny))
    images = tf.random.stateless_uniform([4 * gan.batches_per_step, size, size, 3], [1, 1], -1, 1)
    gan.train_step(images)
    expected = {"dcgan": [(False, 0), (True, 0)],
                "wgangp": [(False, 0), (True, 0), (False, 1), (True, 1), (True, 2)],
                "stylegan": [(False, 0), (True, 0), (True, 1)]}[model]
    assert seen == expected
