"""StyleGAN2: its layers against direct computations, its regularisers, the run through train ->
export -> inference (sample, project, learn a direction, edit, animate, mix) at 32 px, tiny
widths (a step traces in about 15 s on 2 cores, so one trained run is shared)."""
from __future__ import annotations

import json
import math
import os
import shutil

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import run_script

TINY_STYLE = dict(model="stylegan", image_size=32, ngf=16, ndf=16, z_dim=16, channel_base=128,
                  mapping_layers=2, batch_size=4, save_every=10, summary_every=5, log_every=5)
STEPS = 20


def style_config(**overrides):
    from cyclegan_tf.config import Config
    return Config(**{**TINY_STYLE, "max_steps": STEPS, **overrides})


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """Two small folders of images and the tfrecords of their union (the demo's day scenes)."""
    from cyclegan_tf import data, demo
    root = tmp_path_factory.mktemp("stylefaces")
    folders = demo.make_dataset(str(root / "images"), train_count=16, test_count=2, size=32)
    records = str(root / "faces.tfrecords")
    data.build_tfrecords(folders["trainA"], records, log=lambda *_: None)
    return {"X": records, "A": folders["trainA"], "B": folders["trainB"],
            "test": folders["testA"], "root": root}


@pytest.fixture(scope="module")
def style_run(faces, tmp_path_factory):
    """A StyleGAN run trained STEPS steps with train.py (path length and DiffAugment on), and
    its export (read-only)."""
    root = tmp_path_factory.mktemp("stylerun")
    run_dir, export_dir = str(root / "run"), str(root / "export")
    flags = [f"--{k}={v}" for k, v in TINY_STYLE.items()]
    result = run_script("train.py", *flags, f"--X={faces['X']}", f"--checkpoint_dir={run_dir}",
                        f"--max_steps={STEPS}", "--pl_weight=2",
                        "--diff_augment=color,translation,cutout")
    assert result.returncode == 0, result.stderr
    result = run_script("export_graph.py", f"--checkpoint_dir={run_dir}",
                        f"--generator_model={export_dir}", "--formats=saved_model,onnx,tflite")
    assert result.returncode == 0, result.stderr
    return {"run": run_dir, "export": export_dir, "root": root}


# -- the networks -----------------------------------------------------------------------------------

@pytest.mark.parametrize("size", [32, 64])
def test_generator_and_discriminator_shapes_at_32_and_64_px(size):
    from cyclegan_tf.stylegan import StyleDiscriminator, StyleGenerator, num_ws
    G = StyleGenerator(size, z_dim=8, channel_base=64, channel_max=8, mapping_layers=2)
    images = G(tf.random.normal([3, 8]))
    assert images.shape == (3, size, size, 3) and images.dtype == tf.float32
    assert G.num_ws == num_ws(size) == 2 * int(math.log2(size)) - 2
    assert G.synthesis(tf.random.normal([2, G.num_ws, 8]), noise="none").shape == (2, size, size, 3)
    assert StyleDiscriminator(size, 64, 8)(images).shape == (3,)


def test_minibatch_stddev_matches_a_direct_computation():
    """Images i, i + N/G, ... form a group of G, the largest divisor of N up to the group asked
    for; the same whether the batch size is known when tracing or not."""
    from cyclegan_tf.stylegan import minibatch_stddev
    x = np.random.default_rng(0).normal(size=[6, 2, 2, 3]).astype(np.float32)
    for group, g in ((2, 2), (3, 3), (4, 3), (5, 3), (32, 6)):
        unknown_batch = tf.function(lambda x: minibatch_stddev(x, group),
                                    input_signature=[tf.TensorSpec([None, 2, 2, 3])])
        for y in (minibatch_stddev(tf.constant(x), group).numpy(), unknown_batch(x).numpy()):
            assert y.shape == (6, 2, 2, 4) and np.array_equal(y[..., :3], x)
            for i in range(6):
                members = x[i % (6 // g)::6 // g]
                assert len(members) == g
                np.testing.assert_allclose(y[i, ..., 3], np.mean(np.std(members, axis=0)),
                                           rtol=1e-4)


def test_discriminator_without_residual_skips_is_the_cifar_d():
    """--d_architecture orig: the same convolutions without the 1x1 skips and their 1/sqrt(2);
    --mbstd_group reaches the minibatch standard deviation."""
    from cyclegan_tf.config import ConfigError
    from cyclegan_tf.stylegan import StyleGAN, minibatch_stddev
    names, images = {}, tf.random.normal([8, 32, 32, 3])
    for arch in ("resnet", "orig"):
        D = StyleGAN.build_discriminator(style_config(image_size=32, d_architecture=arch,
                                                      mbstd_group=8))
        names[arch] = {w.path.split("/", 1)[1] for w in D.trainable_weights}
    assert names["resnet"] - names["orig"] == {f"b{r}_skip/kernel" for r in (32, 16, 8)}
    assert names["orig"] < names["resnet"]

    x = D.from_rgb(images)
    for conv0, conv1, _ in D.blocks:
        x = conv1(conv0(x))
    x = D.dense4(tf.reshape(D.conv4(minibatch_stddev(x, 8)), [8, -1]))
    np.testing.assert_allclose(D(images).numpy(), tf.reshape(D.out(x), [-1]).numpy(), atol=1e-5)
    D.mbstd_group = 4
    assert not np.allclose(D(images).numpy(), tf.reshape(D.out(x), [-1]).numpy(), atol=1e-5)
    with pytest.raises(ConfigError, match="d_architecture"):
        style_config(d_architecture="skip")


def test_modulated_demodulated_convolution_matches_per_image_weights():
    """The paper's Eq. 1-3 computed directly: w'_ijk = s_i w_ijk, w''= w' / sqrt(sum w'^2)."""
    from cyclegan_tf.stylegan import ModulatedConv2D
    layer = ModulatedConv2D(5, 3)
    x, w = tf.random.normal([2, 6, 6, 4]), tf.random.normal([2, 7])
    y = layer((x, w))
    styles = layer.affine(w).numpy()
    kernel = layer.kernel.numpy()
    for n in range(2):
        modulated = kernel * styles[n][None, None, :, None]
        demodulated = modulated / np.sqrt(np.sum(modulated ** 2, axis=(0, 1, 2)) + 1e-8)
        direct = tf.nn.conv2d(x[n:n + 1], demodulated, 1, "SAME")
        np.testing.assert_allclose(y[n:n + 1].numpy(), direct.numpy(), atol=1e-4)


def test_both_upsamplings_put_each_pixel_where_bilinear_upsampling_does():
    """The skip outputs' upsampling and the modulated up-convolution (with a centre-tap identity
    kernel and unit styles) agree with bilinear x2 inside the border: every resolution's RGB
    lands on the same place (a shift here misaligns the coarse and fine outputs)."""
    from cyclegan_tf.stylegan import ModulatedConv2D, upsample
    x = tf.random.normal([2, 6, 5, 3])
    bilinear = tf.image.resize(x, [12, 10], "bilinear")[:, 1:-1, 1:-1]
    np.testing.assert_allclose(upsample(x)[:, 1:-1, 1:-1].numpy(), bilinear.numpy(), atol=1e-5)

    layer = ModulatedConv2D(3, 3, demodulate=False, up=True)
    layer((x, tf.zeros([2, 4])))
    layer.affine.kernel.assign(tf.zeros_like(layer.affine.kernel))
    layer.affine.bias.assign(tf.fill([3], 1.0 / layer.style_gain))  # styles = 1
    identity = np.zeros(layer.kernel.shape, np.float32)
    identity[1, 1] = np.eye(3)
    layer.kernel.assign(identity)
    y = layer((x, tf.zeros([2, 4])))
    np.testing.assert_allclose(y[:, 1:-1, 1:-1].numpy(), bilinear.numpy(), atol=1e-5)


def test_up_convolution_is_the_papers_arithmetic_up_to_the_edges():
    """Each input pixel adds its 3x3 kernel at twice its place (a stride-2 transposed
    convolution, all 2H + 1 rows), then the [1, 3, 3, 1] filter (gain 4) padded by one each side,
    as the reference's upfirdn2d: the last rows and columns too, not only the inside."""
    from cyclegan_tf.stylegan import ModulatedConv2D
    layer = ModulatedConv2D(2, 3, demodulate=False, up=True)
    x, w = tf.random.normal([1, 4, 5, 3]), tf.random.normal([1, 6])
    y = layer((x, w)).numpy()[0]
    scaled = x.numpy()[0] * (layer.affine(w).numpy()[0] * layer.style_gain)
    kernel = layer.kernel.numpy()
    full = np.zeros([9, 11, 2])
    for i in range(4):
        for j in range(5):
            full[2 * i:2 * i + 3, 2 * j:2 * j + 3] += np.einsum("c,abcf->abf", scaled[i, j], kernel)
    f = np.array([1.0, 3.0, 3.0, 1.0]) / 4.0  # gain 2 per axis
    padded = np.pad(full, [(1, 1), (1, 1), (0, 0)])
    direct = np.zeros([8, 10, 2])
    for a in range(4):
        for b in range(4):
            direct += f[a] * f[b] * padded[a:a + 8, b:b + 10]
    assert y.shape == direct.shape
    np.testing.assert_allclose(y, direct, atol=1e-4)


def test_equalized_learning_rate_scales_weights_by_he_constant_and_lr_multiplier():
    from cyclegan_tf.stylegan import EqualizedDense
    layer = EqualizedDense(3, lr_multiplier=0.01)
    x = tf.random.normal([2, 50])
    y = layer(x)
    # Stored weights are N(0, 1 / lr_mul); used, they are scaled by lr_mul / sqrt(fan_in).
    assert 50 < float(np.std(layer.kernel.numpy())) < 200
    np.testing.assert_allclose(y.numpy(), x.numpy() @ (layer.kernel.numpy() * 0.01 / math.sqrt(50)),
                               atol=1e-5)
    layer.bias.assign([1.0, 2.0, 3.0])
    np.testing.assert_allclose(layer(tf.zeros([1, 50])).numpy(), [[0.01, 0.02, 0.03]], atol=1e-7)


def test_r1_penalty_is_the_squared_gradient_norm_of_a_known_discriminator():
    from cyclegan_tf.stylegan import r1_penalty
    a = tf.reshape(tf.range(1, 13, dtype=tf.float32), [1, 2, 2, 3]) / 10

    def D(x, training=False):  # D(x) = sum(a * x)^2 / 2: gradient (sum a x) a
        return 0.5 * tf.square(tf.reduce_sum(a * x, axis=[1, 2, 3]))

    x = tf.random.normal([3, 2, 2, 3])
    expected = (tf.reduce_sum(a * x, axis=[1, 2, 3]) ** 2) * tf.reduce_sum(a * a)
    np.testing.assert_allclose(r1_penalty(D, x).numpy(), expected.numpy(), rtol=1e-5)


def test_truncation_zero_gives_the_average_w_image():
    from cyclegan_tf.stylegan import StyleGenerator
    G = StyleGenerator(32, z_dim=8, channel_base=64, channel_max=8, mapping_layers=2)
    G(tf.zeros([1, 8]))
    G.mapping.w_avg.assign(tf.random.normal([8]))
    images = G(tf.random.normal([3, 8]), truncation=0.0)
    average = G.synthesize(G.broadcast(G.mapping.w_avg[tf.newaxis]))
    np.testing.assert_allclose(images.numpy(), np.repeat(average.numpy(), 3, axis=0), atol=1e-5)


def test_sizes_that_are_not_powers_of_two_are_refused_naming_a_valid_one():
    from cyclegan_tf.config import ConfigError
    with pytest.raises(ConfigError, match="power of two.*--image_size 64"):
        style_config(image_size=80)
    with pytest.raises(ConfigError, match="demodulation"):
        style_config(norm="batch")
    c = style_config()
    assert c.r1_gamma == pytest.approx(0.0002 * 32 ** 2 / 4)  # the StyleGAN2-ADA heuristic


def test_lazy_r1_runs_every_interval_folded_into_the_step():
    from cyclegan_tf.stylegan import StyleGAN, r1_penalty
    model = StyleGAN(style_config(r1_interval=2))
    # No extra Adam step for R1, so no interval / (interval + 1) scaling of rates and betas.
    for optimizer in (model.D_optimizer, model.G_optimizer):
        assert optimizer.beta_2 == pytest.approx(0.99)
        assert float(optimizer.learning_rate) == pytest.approx(2.5e-3)
    step = model.distributed_step_fn(tf.distribute.get_strategy())
    real = tf.random.uniform([4, 32, 32, 3], -1, 1)
    first = float(tf.reduce_mean(r1_penalty(model.D, real)))  # D before its first update
    r1 = [float(step(real)["losses"]["D/r1"]) for _ in range(3)]
    # Shown as the mean squared gradient norm; the step between R1 steps shows the latest one
    # (summaries rarely land on an R1 step), and the next R1 step measures the updated D.
    assert r1[0] == pytest.approx(first, rel=1e-4)
    assert r1[1] == r1[0] and r1[2] > 0 and r1[2] != r1[0]
    assert float(tf.norm(model.G.mapping.w_avg)) > 0  # tracked while training
    np.testing.assert_array_equal(model.G_ema.mapping.w_avg.numpy(), model.G.mapping.w_avg.numpy())


def test_step_compiles_with_xla():
    """--jit_compile: the minibatch standard deviation's group must be a compile-time constant
    inside R1's cond (it was computed with tf.where and XLA refused the step); DiffAugment's
    gathers and integer draws compile too."""
    from cyclegan_tf.stylegan import StyleGAN
    model = StyleGAN(style_config(r1_interval=2, jit_compile=True,
                                  diff_augment="color,translation,cutout"))
    step = model.distributed_step_fn(tf.distribute.get_strategy())
    real = tf.random.uniform([4, 32, 32, 3], -1, 1)
    losses = [step(real)["losses"] for _ in range(2)]
    assert float(losses[0]["D/r1"]) > 0 and float(losses[1]["D/r1"]) == float(losses[0]["D/r1"])
    assert all(np.isfinite(float(value)) for value in losses[1].values())


# -- the workflow -----------------------------------------------------------------------------------

def test_trained_run_resumes_and_exports_mapping_and_synthesis_that_compose(style_run, faces,
                                                                            tmp_path):
    run = str(tmp_path / "run")
    shutil.copytree(style_run["run"], run)
    config = json.load(open(os.path.join(run, "config.json")))
    assert config["model"] == "stylegan" and config["pl_weight"] == 2
    assert config["diff_augment"] == "color,translation,cutout"  # saved
    result = run_script("train.py", f"--checkpoint_dir={run}", f"--max_steps={STEPS + 5}",
                        "--learning_rate=0.002")
    assert result.returncode == 0, result.stderr
    assert f"resumed from {run}/ckpt-{STEPS} at step {STEPS}" in result.stdout
    assert os.path.exists(os.path.join(run, f"ckpt-{STEPS + 5}.index"))
    resumed = json.load(open(os.path.join(run, "config.json")))
    assert resumed["diff_augment"] == "color,translation,cutout" and resumed["max_steps"] == STEPS + 5

    # Plain TF, no import of this package: z -> w -> images is serving_default.
    loaded = tf.saved_model.load(style_run["export"])
    z = tf.random.normal([2, 16])
    psi = tf.constant(0.7)
    w = loaded.signatures["mapping"](z=z, truncation=psi)["w"]
    ws = tf.tile(w[:, None], [1, 2 * 5 - 2, 1])
    composed = loaded.signatures["synthesis"](ws=ws)["images"]
    direct = loaded.signatures["serving_default"](z=z, truncation=psi)["images"]
    np.testing.assert_allclose(composed.numpy(), direct.numpy(), atol=1e-5)
    sample = loaded.signatures["sample"](seed=tf.constant(3, tf.int64), count=tf.constant(2),
                                         truncation=tf.constant(1.0))["images"]
    assert sample.dtype == tf.uint8 and sample.shape == (2, 32, 32, 3)

    # ONNX and LiteRT make serving_default's images (truncation 1) from the same z.
    from cyclegan_tf import portable
    expected = loaded.signatures["serving_default"](z=z, truncation=tf.constant(1.0))["images"]
    for name, runner in (("onnx", portable.onnx_runner), ("tflite", portable.tflite_runner)):
        got = runner(os.path.join(style_run["export"], portable.FILE_NAMES[name]))(z.numpy())
        assert got.shape == (2, 32, 32, 3)
        assert np.abs(got - expected.numpy()).max() < 1e-3, name


def test_projection_lowers_its_distance_in_every_space(style_run, faces):
    from cyclegan_tf import latents
    from cyclegan_tf.evaluate import load_images
    from cyclegan_tf.sampling import ImageGenerator
    generator = ImageGenerator.load(style_run["export"])
    targets = np.stack([a for _, a in load_images(faces["test"], 32, 2, lambda *_: None)])
    for space in ("z", "w", "w+"):
        result = latents.project(generator, targets, steps=40, space=space,
                                 distance=latents.PixelDistance())
        assert result.distance_name == "pixels"
        assert result.history[-1] < 0.8 * result.history[0], space
        assert result.ws.shape == (2, generator.num_ws, 16)
        assert result.images.shape == (2, 32, 32, 3)
    # z starts from the nearest candidate sample: given a candidate's image, that candidate.
    from cyclegan_tf.sampling import noise
    candidates = noise(7919, latents.PROJECTION_CANDIDATES, 16)
    pick = tf.constant([5, 77])
    w = generator.mapping(z=tf.gather(candidates, pick), truncation=tf.constant(1.0))["w"]
    images = generator.synthesis(ws=tf.repeat(w[:, None], generator.num_ws, axis=1))["images"]
    start = latents._nearest_samples(generator, images, seed=0)
    np.testing.assert_array_equal(start[:, 0], tf.gather(candidates, pick).numpy())


def test_refinement_fits_closer_in_w_plus_from_the_projection(style_run, faces):
    from cyclegan_tf import latents
    from cyclegan_tf.config import ConfigError
    from cyclegan_tf.evaluate import load_images
    from cyclegan_tf.sampling import ImageGenerator
    generator = ImageGenerator.load(style_run["export"])
    targets = np.stack([a for _, a in load_images(faces["test"], 32, 2, lambda *_: None)])
    distance = latents.PixelDistance()
    plain = latents.project(generator, targets, steps=20, distance=distance)
    refined = latents.project(generator, targets, steps=20, distance=distance, refine_steps=30)
    assert plain.history == refined.history  # the same projection, then refined
    assert np.all(refined.distances < plain.distances)
    # One style per layer now, no longer one z's: edits of it move in w.
    assert refined.z is None and plain.z is not None
    assert np.abs(refined.ws - refined.ws[:, :1]).max() > 0
    np.testing.assert_array_equal(generator.synthesize(refined.ws), refined.images)
    with pytest.raises(ConfigError, match="--refine_steps must be >= 0"):
        latents.project(generator, targets, steps=1, distance=distance, refine_steps=-1)


def test_each_face_moves_until_the_classifier_is_sure(style_run):
    from cyclegan_tf import latents
    from cyclegan_tf.sampling import ImageGenerator
    generator = ImageGenerator.load(style_run["export"])
    ws = np.zeros([3, generator.num_ws, 16], np.float32)
    direction = np.ones([generator.num_ws, 16], np.float32)

    calls = []

    def classifier(images, training):
        """Face 0: sure at once; face 1: ever surer, from the 8th try; face 2: never."""
        assert images.shape == (3, latents.CLASSIFIER_SIZE, latents.CLASSIFIER_SIZE, 3)
        calls.append(1)
        return tf.constant([[5.0], [2.0 * len(calls) - 12.0], [-5.0]])

    strengths = latents.edit_strengths(generator, ws, direction, 3.0, classifier, 0.9, tries=12)
    np.testing.assert_allclose(strengths, [0.25, 2.0, 3.0])
    calls.clear()
    strengths = latents.edit_strengths(generator, ws, direction, -3.0, classifier, 0.9, tries=12)
    np.testing.assert_allclose(strengths, [-3.0, -0.25, -0.25])  # lacking it is the goal now


def test_optimized_edit_moves_each_face_until_the_classifier_is_sure_within_the_cap(style_run):
    """One w offset per face, the same for every layer, raising the classifier's score (lowering
    it for a negative strength), never longer than |strength| direction lengths; a face the
    classifier is already sure of, and strength 0, stay as they are."""
    from cyclegan_tf import latents
    from cyclegan_tf.sampling import ImageGenerator, noise
    generator = ImageGenerator.load(style_run["export"])
    w = generator.mapping(z=noise(3, 3, 16), truncation=tf.constant(1.0))["w"]
    ws = np.repeat(w.numpy()[:, None], generator.num_ws, axis=1)

    def redness(images, training):  # differentiable: the red channel's mean, scaled
        assert images.shape[1:] == (latents.CLASSIFIER_SIZE, latents.CLASSIFIER_SIZE, 3)
        return 40.0 * tf.reduce_mean(images[..., :1], axis=[1, 2])

    def score(styles):
        images = generator.synthesis(ws=tf.constant(styles))["images"]
        return latents.attribute_logits(redness, images)

    for strength in (3.0, -3.0):
        ends, moved = latents.optimized_edit(generator, ws, redness, strength, 2.0,
                                             confidence=0.99, steps=20)
        offsets = ends - ws
        np.testing.assert_allclose(offsets, np.repeat(offsets[:, :1], generator.num_ws, 1),
                                   atol=1e-6)
        lengths = np.linalg.norm(offsets[:, 0], axis=-1)
        assert np.all(lengths <= 6.0 + 1e-4)
        np.testing.assert_allclose(moved, np.sign(strength) * lengths / 2.0, rtol=1e-5)
        before, after = np.sign(strength) * score(ws), np.sign(strength) * score(ends)
        unsure = before < math.log(0.99 / 0.01)
        assert 0 < unsure.sum() < 3  # these seeds: some of each, either way
        assert np.all(after[unsure] > before[unsure]) and np.all(lengths[unsure] > 0)
        np.testing.assert_array_equal(ends[~unsure], ws[~unsure])  # sure already: left alone

    # Each face's own cap: none of the three is this sure, and each is pushed to its cap.
    _, moved = latents.optimized_edit(generator, ws, redness, 0.01, 2.0, confidence=1 - 1e-6,
                                      steps=5)
    np.testing.assert_allclose(moved, 0.01, rtol=1e-4)
    # Unheld, each unsure face reaches the confidence; the pixel distance holds it nearer.
    unsure = score(ws) < math.log(0.99 / 0.01)
    free, _ = latents.optimized_edit(generator, ws, redness, 3.0, 2.0, steps=20, closeness=0.0)
    held, _ = latents.optimized_edit(generator, ws, redness, 3.0, 2.0, steps=20, closeness=1e3)
    assert np.all(score(free)[unsure] >= math.log(0.99 / 0.01))
    change = [np.abs(generator.synthesize(styles).astype(float)
                     - generator.synthesize(ws)).mean() for styles in (free, held)]
    assert change[1] < 0.5 * change[0]
    sure = lambda images, training: tf.fill([len(images), 1], 10.0)  # noqa: E731
    for classifier, strength in ((sure, 3.0), (redness, 0.0)):
        ends, moved = latents.optimized_edit(generator, ws, classifier, strength, 2.0, steps=5)
        np.testing.assert_array_equal(ends, ws)
        np.testing.assert_array_equal(moved, 0.0)


def test_classifier_input_is_area_resizing_with_a_gradient_and_frames_blend_end_to_end():
    from cyclegan_tf import latents
    for size in (32, 128):
        images = tf.random.stateless_uniform([2, size, size, 3], [1, size], -1.0, 1.0)
        np.testing.assert_allclose(
            latents.classifier_input(images),
            tf.image.resize(images, [latents.CLASSIFIER_SIZE] * 2, "area"), atol=1e-6)
        with tf.GradientTape() as tape:
            tape.watch(images)
            total = tf.reduce_sum(latents.classifier_input(images))
        assert tape.gradient(total, images) is not None
    start, end = np.zeros([3, 4], np.float32), np.ones([3, 4], np.float32)
    frames = latents.blend_frames(start, end, 5)
    assert frames.shape == (8, 3, 4)  # there and back
    np.testing.assert_array_equal(frames[0], start)
    np.testing.assert_array_equal(frames[4], end)
    assert np.all(np.diff(frames[:5, 0, 0]) > 0)


def test_classifier_direction_pairs_each_latent_with_its_label_and_edits_in_z(style_run):
    """The direction is the top quarter's mean latent minus the bottom quarter's, in w and in
    z, with each sample's label from its own image (chunks of 4 here); keeping brightness
    takes out its part along the samples' brightness direction. A z edit is the mapping of the
    moved z, and strength 0 the face itself."""
    from cyclegan_tf import latents
    from cyclegan_tf.sampling import ImageGenerator, noise
    generator = ImageGenerator.load(style_run["export"])
    scores = np.array([3.0, -1.0, 0.5, 2.0, -3.0, 1.0, -2.0, 0.0], np.float32)
    served = []

    def classifier(images, training):  # the samples' scores, in the order they are drawn
        served.append(len(images))
        start = sum(served[:-1])
        return tf.constant(scores[start:start + len(images), None])

    w_direction, z_direction, positive = latents.classifier_direction(
        generator, classifier, samples=8, chunk=4, keep_brightness=False)
    z = np.concatenate([noise(0, 4, 16).numpy(), noise(4, 4, 16).numpy()])
    w = generator.mapping(z=tf.constant(z), truncation=tf.constant(1.0))["w"].numpy()
    top, bottom = [0, 3], [4, 6]  # quarters of 8: the two highest and the two lowest scores
    np.testing.assert_allclose(z_direction, z[top].mean(0) - z[bottom].mean(0), atol=1e-6)
    np.testing.assert_allclose(w_direction[3], w[top].mean(0) - w[bottom].mean(0), atol=1e-5)
    assert w_direction.shape == (generator.num_ws, 16) and positive == 0.5

    served.clear()
    kept_w, kept_z, _ = latents.classifier_direction(generator, classifier, samples=8, chunk=4)
    images = generator.synthesis(ws=tf.repeat(tf.constant(w)[:, None], generator.num_ws, 1))
    light = np.argsort(tf.reduce_mean(images["images"][:, 8:24, 8:24], [1, 2, 3]).numpy())
    for kept, full, latent in ((kept_z, z_direction, z), (kept_w[0], w_direction[0], w)):
        brighter = latent[light[-2:]].mean(0) - latent[light[:2]].mean(0)
        assert abs(np.dot(kept, brighter)) < 1e-4 * np.dot(full, full)  # none of it left
        np.testing.assert_allclose(full - kept, np.dot(full, brighter) / np.dot(
            brighter, brighter) * brighter, atol=1e-5)  # and nothing else taken out

    styles = latents.edited_styles(generator, z[:2], z_direction, np.array([0.0, 2.0]))
    moved = z[1] + 2.0 * z_direction
    expected = generator.mapping(z=tf.constant(np.stack([z[0], moved])),
                                 truncation=tf.constant(1.0))["w"].numpy()
    np.testing.assert_allclose(styles[:, 0], expected, atol=1e-5)
    np.testing.assert_array_equal(styles[0, 0], styles[0, -1])  # one w for every layer
    frames = latents.edit_frames(generator, z[1], z_direction, 2.0, frames=5)
    assert frames.shape == (8, generator.num_ws, 16)  # there and back
    np.testing.assert_allclose(frames[4], styles[1], atol=1e-5)


def test_direction_edit_animation_and_mixing_from_the_command_line(style_run, faces, tmp_path):
    export = str(tmp_path / "export")
    shutil.copytree(style_run["export"], export)
    face = os.path.join(faces["test"], sorted(os.listdir(faces["test"]))[0])
    common = [f"--model={export}", "--steps=20", "--distance=pixels"]
    for name, method, space in (("night", "classifier", "z"), ("night", "projections", "w"),
                                ("day", "classifier", "z")):
        result = run_script("inference.py", *common, f"--learn_direction={name}", "--limit=4",
                            f"--direction_method={method}", f"--from_images={faces['A']}",
                            f"--to_images={faces['B']}", f"--space={space}")
        assert result.returncode == 0, result.stderr
        direction = np.load(os.path.join(export, "directions", f"{name}.npy"))
        assert direction.shape == (8, 16) and np.abs(direction).sum() > 0
        record = json.load(open(os.path.join(export, "directions", f"{name}.json")))
        assert record["method"] == method
        # Only a classifier's direction keeps its classifier, which edits ask how far to go;
        # a z form exists where it was learned (not from w projections: an old one goes).
        has_classifier = os.path.exists(os.path.join(export, "directions", f"{name}.keras"))
        assert has_classifier == (method == "classifier")
        z_form = os.path.join(export, "directions", f"{name}.z.npy")
        assert os.path.exists(z_form) == (space == "z")
    assert np.load(os.path.join(export, "directions", "day.z.npy")).shape == (16,)

    from PIL import Image
    projected, edited = str(tmp_path / "fit.png"), str(tmp_path / "zero.png")
    assert run_script("inference.py", *common, f"--input={face}", "--project",
                      f"--output={projected}").returncode == 0
    ws, z = np.load(str(tmp_path / "fit.npy")), np.load(str(tmp_path / "fit.z.npy"))
    assert ws.shape == (8, 16) and z.shape == (16,)
    # The z written is the projection's: plain serving_default(z) draws the reconstruction.
    from cyclegan_tf.sampling import ImageGenerator
    drawn = ImageGenerator.load(export).generate(z[None])
    assert np.abs(drawn.astype(float) - np.asarray(Image.open(projected), float)).max() <= 2
    result = run_script("inference.py", *common, f"--input={face}", "--edit=day",
                        "--edit_method=direction", "--strength=0", f"--output={edited}")
    assert result.returncode == 0, result.stderr
    assert "editing in z along 'day'" in result.stdout
    # Strength 0 is the reconstruction (the same projection: same seed, same steps).
    np.testing.assert_array_equal(np.asarray(Image.open(edited)), np.asarray(Image.open(projected)))
    # Refined in w+: the styles written redraw it, and there is no z to write; an edit of it
    # moves in w, and at strength 0 is that reconstruction.
    refined = str(tmp_path / "refined.png")
    assert run_script("inference.py", *common, f"--input={face}", "--project", "--refine_steps=10",
                      f"--output={refined}").returncode == 0
    assert not os.path.exists(str(tmp_path / "refined.z.npy"))
    drawn = ImageGenerator.load(export).synthesize(np.load(str(tmp_path / "refined.npy"))[None])
    np.testing.assert_array_equal(drawn[0], np.asarray(Image.open(refined)))
    result = run_script("inference.py", *common, f"--input={face}", "--edit=day", "--strength=0",
                        "--edit_method=direction", "--refine_steps=10", f"--output={edited}")
    assert result.returncode == 0, result.stderr
    assert "editing in w along 'day' (refined projections are no z's)" in result.stdout
    np.testing.assert_array_equal(np.asarray(Image.open(edited)), np.asarray(Image.open(refined)))

    gif = str(tmp_path / "edit.gif")
    result = run_script("inference.py", *common, f"--input={face}", "--edit=day", "--animate",
                        "--frames=4", f"--output={gif}")
    assert result.returncode == 0, result.stderr
    assert "each face's move in w optimised until the classifier is 0.99 sure" in result.stdout
    assert Image.open(gif).n_frames == 4 + 2  # there and back

    grid = str(tmp_path / "mix.png")
    assert run_script("inference.py", f"--model={export}", "--mix",
                      f"--output={grid}").returncode == 0
    assert Image.open(grid).size == (5 * 32, 5 * 32)

    result = run_script("inference.py", *common, f"--input={face}", "--edit=missing")
    assert result.returncode == 2 and "learn it with --learn_direction missing" in result.stderr
    assert "(known: day, night)" in result.stderr  # not their z forms
    result = run_script("inference.py", *common, f"--input={face}", "--edit=night",
                        f"--output={tmp_path / 'night.png'}")
    assert result.returncode == 0, result.stderr
    assert "direction 'night' has no z form" in result.stdout  # learned from w projections
    result = run_script("inference.py", *common, "--learn_direction=day.z", f"--from_images={face}",
                        f"--to_images={face}")
    assert result.returncode == 2 and "a plain name such as 'gender'" in result.stderr

    # Ordinary photos: each face found, aligned, edited and put back; a photo without one is
    # reported and left out. The real detector (the faces extra, installed by CI).
    from cyclegan_tf.faces import FaceLayout
    from tests.conftest import REPO
    FaceLayout(((0.30, 0.29), (0.68, 0.29), (0.49, 0.52), (0.32, 0.69), (0.66, 0.69))).save(
        os.path.join(export, "assets.extra"))
    photos = tmp_path / "photos"
    photos.mkdir()
    shutil.copy(os.path.join(REPO, "tests", "data", "astronaut.jpg"), photos / "astronaut.jpg")
    Image.fromarray(np.full((64, 64, 3), 128, np.uint8)).save(photos / "grey.png")
    result = run_script("inference.py", *common, f"--input={photos}", "--edit=day",
                        "--align_faces", "--strength=3", f"--output={tmp_path / 'edited'}")
    assert result.returncode == 0, result.stderr
    assert "grey.png: no face found, left out" in result.stdout
    assert "has no classifier" not in result.stdout  # it moved as far as the classifier needed
    photo = np.asarray(Image.open(photos / "astronaut.jpg").convert("RGB"))
    edited = np.asarray(Image.open(tmp_path / "edited" / "astronaut.png"))
    assert edited.shape == photo.shape
    assert sorted(os.listdir(tmp_path / "edited")) == ["astronaut.png"]
    np.testing.assert_array_equal(edited[:, 440:], photo[:, 440:])  # the flag: untouched
    assert np.abs(edited.astype(int) - photo).mean() > 0.5  # the face: the generator's


def test_project_on_a_cyclegan_model_is_a_clear_error(trained_run, tmp_path):
    result = run_script("inference.py", f"--model={trained_run}", "--input=x.jpg", "--project")
    assert result.returncode == 2
    assert "only a StyleGAN has a latent space" in result.stderr
    assert "Traceback" not in result.stderr


def test_mirrored_bf16_training_with_both_regularisers(faces, tmp_path):
    """Two replicas (logical CPUs), bf16, R1 and path length: the step every strategy runs."""
    import subprocess
    import sys
    import textwrap
    from tests.conftest import REPO
    code = f"""
        import tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from cyclegan_tf.config import Config
        from cyclegan_tf.training import Trainer
        config = Config(**{{**{TINY_STYLE!r}, "max_steps": 3, "save_every": 3}},
                        X={faces['X']!r}, checkpoint_dir={str(tmp_path / 'run')!r},
                        strategy="mirrored", mixed_precision="bf16", r1_interval=2, pl_weight=2.0)
        trainer = Trainer(config, log=print)
        print("result", trainer.run().step)
        w_avg = trainer.model.G.mapping.w_avg
        copies = trainer.strategy.experimental_local_results(w_avg.value)  # the tf.Variable
        print("replicas", len(copies), float(tf.reduce_max(tf.abs(copies[0] - copies[1]))))
        print("pl_mean", float(tf.convert_to_tensor(trainer.model.pl_mean)))
        # Steps 3 (no R1: the latest shown), 4 (R1), 5 (no R1): summed over the two replicas,
        # the value held must equal the one measured.
        step_fn = trainer.model.distributed_step_fn(trainer.strategy)
        print("r1", *[float(step_fn(next(trainer.batches[0]))["losses"]["D/r1"]) for _ in range(3)])
    """
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                            text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "(2 replica(s)" in result.stdout and "result 3" in result.stdout
    replicas = [line for line in result.stdout.splitlines() if line.startswith("replicas")][0]
    assert replicas.split()[1:] == ["2", "0.0"]
    pl_mean = float([l for l in result.stdout.splitlines() if l.startswith("pl_mean")][0].split()[1])
    assert pl_mean > 0
    r1 = [float(v) for v in [l for l in result.stdout.splitlines() if l.startswith("r1")][0].split()[1:]]
    assert r1[0] > 0 and r1[1] > 0 and r1[2] == pytest.approx(r1[1], rel=1e-5)


def test_styled_noise_is_each_images_own_unit_normal_and_smooth_in_its_style():
    from cyclegan_tf.stylegan import StyleGenerator
    G = StyleGenerator(32, z_dim=32, channel_base=64, channel_max=8, mapping_layers=2)
    G(tf.zeros([1, 32]))
    w_avg = G.mapping.w_avg
    w_avg.assign(tf.random.normal([32]))
    layer = G.synthesis.layers_[-1]  # 32 px
    w = w_avg + tf.random.normal([64, 32])
    noise = layer.styled_noise(w, w_avg).numpy()
    assert noise.shape == (64, 32, 32, 1)
    assert abs(noise.mean()) < 0.1 and abs(noise.std() - 1.0) < 0.1  # as in training
    # the image's own: the same w alone, outside its batch, gets the same noise
    np.testing.assert_allclose(layer.styled_noise(w[5:6], w_avg).numpy(), noise[5:6], atol=1e-5)
    # other faces get nearly independent noise (one stored noise image would correlate 1)
    correlation = np.corrcoef(noise.reshape(64, -1))[np.triu_indices(64, 1)]
    assert np.abs(correlation).mean() < 0.3
    # a nearby w gets a nearby noise: projections and edits stay smooth
    near = layer.styled_noise(w[:1] + 1e-3 * tf.random.normal([1, 32]), w_avg).numpy()
    assert np.abs(near - noise[:1]).max() < 0.05
    # the average face gets none
    assert np.abs(layer.styled_noise(w_avg[tf.newaxis], w_avg).numpy()).max() == 0.0
