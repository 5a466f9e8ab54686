"""evaluate: the FID/KID formulas, the missing-weights error, and a whole evaluation with stand-in
translators and a stand-in feature extractor (no model is trained, nothing is downloaded)."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import scipy.linalg
from PIL import Image

from cyclegan_tf import data, demo
from cyclegan_tf import evaluate as ev
from cyclegan_tf import features as fe
from cyclegan_tf.config import ConfigError
from cyclegan_tf.export import METADATA_FILE, ExportError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def gaussians(seed=0, n=200, d=8):
    rng = np.random.default_rng(seed)
    a = rng.normal(size=(n, d)) @ rng.normal(size=(d, d))  # correlated dimensions
    b = rng.normal(size=(n, d)) @ rng.normal(size=(d, d)) * 0.7 + 0.5
    return a, b


def tiny_features(images: np.ndarray) -> np.ndarray:
    """Stand-in for InceptionV3: mean colour of a 4 x 4 grid of blocks (48-d)."""
    x = np.asarray(images, np.float32) / 255.0
    n, h, w, _ = x.shape
    return x.reshape(n, 4, h // 4, 4, w // 4, 3).mean(axis=(2, 4)).reshape(n, -1)


def identity(images: np.ndarray) -> np.ndarray:
    return images.copy()


def swap_red_blue(images: np.ndarray) -> np.ndarray:
    return images[..., ::-1].copy()  # its own inverse: a perfect cycle, a poor identity


def demo_images(domain, count, size=32, seed=0):
    rng = np.random.default_rng(seed)
    return [(f"{domain}{i:02d}.jpg", np.asarray(demo.make_image(rng, domain, size)))
            for i in range(count)]


# -- formulas ---------------------------------------------------------------------------------------

def test_fid_matches_scipy_sqrtm():
    a, b = gaussians()
    mu_a, mu_b = a.mean(0), b.mean(0)
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    covmean = scipy.linalg.sqrtm(s_a @ s_b).real
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(s_a + s_b - 2 * covmean)
    assert ev.fid(a, b) == pytest.approx(expected, rel=1e-6)
    assert ev.fid(b, a) == pytest.approx(expected, rel=1e-6)


def test_sqrtm_psd_matches_scipy():
    a, _ = gaussians()
    s = np.cov(a, rowvar=False)
    root = ev.sqrtm_psd(s)
    np.testing.assert_allclose(root, scipy.linalg.sqrtm(s).real, atol=1e-8)
    np.testing.assert_allclose(root @ root, s, atol=1e-8)


def test_fid_of_identical_sets_is_zero():
    a, _ = gaussians()
    assert ev.fid(a, a) == pytest.approx(0.0, abs=1e-8)
    # Fewer samples than dimensions (the usual case with 2048-d features): singular covariances.
    few = np.random.default_rng(1).normal(size=(10, 32))
    assert ev.fid(few, few) == pytest.approx(0.0, abs=1e-6)
    assert ev.fid(few, few + 1.0) == pytest.approx(32.0, rel=1e-6)  # only the means differ


def naive_kid(x, y):
    d, m = x.shape[1], len(x)

    def k(u, v):
        return (float(np.dot(u, v)) / d + 1) ** 3

    xx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    yy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j) / (m * (m - 1))
    xy = sum(k(x[i], y[j]) for i in range(m) for j in range(m)) / (m * m)
    return xx + yy - 2 * xy


def test_kid_matches_naive_computation():
    rng = np.random.default_rng(2)
    x, y = rng.normal(size=(20, 5)), rng.normal(size=(20, 5)) + 0.3
    # One subset of all 20: a permutation of each set, which the estimator does not see.
    assert ev.kid(x, y, n_subsets=1) == pytest.approx(naive_kid(x, y), rel=1e-9)
    assert ev.kid(x, y, n_subsets=5, subset_size=20) == pytest.approx(naive_kid(x, y), rel=1e-9)
    # Subsets smaller than the sets: each value is the naive KID of the chosen rows.
    assert len(ev.kid_subsets(x, y, n_subsets=7, subset_size=8)) == 7


def test_kid_near_zero_for_one_distribution_and_positive_for_shifted():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(300, 8)), rng.normal(size=(300, 8))
    same = ev.kid(a, b, n_subsets=20, subset_size=100)
    shifted = ev.kid(a, b + 1.0, n_subsets=20, subset_size=100)
    assert abs(same) < 0.02
    assert shifted > 0.2
    assert shifted > 20 * abs(same)


def test_metrics_need_two_images():
    with pytest.raises(data.DataError, match="at least 2"):
        ev.fid(np.zeros((1, 4)), np.zeros((5, 4)))


# -- FID weights ------------------------------------------------------------------------------------

def test_missing_fid_weights_file_says_what_to_do(tmp_path):
    missing = str(tmp_path / "nowhere" / "inception.h5")
    with pytest.raises(fe.FIDWeightsError) as error:
        fe.keras_inception_features(missing)
    message = str(error.value)
    assert missing in message and fe.INCEPTION_URL in message and "--nofid" in message
    assert isinstance(error.value, ConfigError)  # so the scripts end it in one line, exit 2


def test_weights_missing_from_cache_without_download(tmp_path):
    with pytest.raises(fe.FIDWeightsError) as error:
        fe.inception_weights_path(cache_dir=str(tmp_path), download=False)
    message = str(error.value)
    assert os.path.join(str(tmp_path), "models", fe.INCEPTION_FILE) in message
    assert fe.INCEPTION_URL in message and "--fid_weights" in message and "--nofid" in message
    assert "--fid_network face" in message  # the offline way to an FD, where a download cannot run


def test_cached_weights_file_is_found(tmp_path):
    cached = tmp_path / "models" / fe.INCEPTION_FILE
    cached.parent.mkdir()
    cached.write_bytes(b"")
    assert fe.inception_weights_path(cache_dir=str(tmp_path), download=False) == str(cached)


def test_evaluate_fails_on_missing_weights_before_any_work(tmp_path):
    out = tmp_path / "eval"
    with pytest.raises(fe.FIDWeightsError):
        ev.evaluate(identity, identity, demo_images("X", 2), demo_images("Y", 2), str(out),
                    fid_weights=str(tmp_path / "missing.h5"))
    assert not out.exists()


def test_cli_reports_missing_weights(tmp_path):
    folder = tmp_path / "x"
    folder.mkdir()
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "evaluate.py"), f"--X={folder}", f"--Y={folder}",
         f"--checkpoint_dir={tmp_path / 'run'}", f"--fid_weights={tmp_path / 'missing.h5'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2, result.stderr
    assert "missing.h5 does not exist" in result.stderr and "--nofid" in result.stderr
    # Sample sets are a generator's; a CycleGAN run is told so before anything loads.
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "evaluate.py"), f"--X={folder}", f"--Y={folder}",
         f"--checkpoint_dir={tmp_path / 'run'}", "--sample_sets=8",
         f"--fid_weights={tmp_path / 'missing.h5'}"],  # a regression fails fast, offline
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2 and "--sample_sets scores a generator" in result.stderr, \
        result.stderr
    result = subprocess.run(
        [sys.executable, os.path.join(REPO, "evaluate.py"), f"--X={folder}", f"--Y={folder}",
         f"--checkpoint_dir={tmp_path / 'run'}", "--truncation=0.7",
         f"--fid_weights={tmp_path / 'missing.h5'}"],
        capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2 and "a CycleGAN has no truncation" in result.stderr, \
        result.stderr


# -- images and models ------------------------------------------------------------------------------

def test_load_images_from_folder_and_tfrecords(tmp_path):
    folder = tmp_path / "testA"
    folder.mkdir()
    for name, array in demo_images("X", 3, size=40):
        Image.fromarray(array).save(folder / name.replace(".jpg", ".png"))
    (folder / "broken.png").write_bytes(b"not an image")
    logged = []
    images = ev.load_images(str(folder), log=logged.append)
    assert [n for n, _ in images] == ["X00.png", "X01.png", "X02.png"]
    assert images[0][1].shape == (40, 40, 3) and images[0][1].dtype == np.uint8
    assert any("broken.png" in line for line in logged)
    assert [a.shape for _, a in ev.load_images(str(folder), image_size=32, limit=2)] == \
        [(32, 32, 3)] * 2

    records = str(tmp_path / "x.tfrecords")
    data.build_tfrecords(str(folder), records, log=lambda _: None)
    from_records = ev.load_images(records, image_size=32)
    assert sorted(n for n, _ in from_records) == ["X00.png", "X01.png", "X02.png"]
    assert len(ev.load_images(records, limit=1)) == 1

    with pytest.raises(data.DataError, match="not found"):
        ev.load_images(str(tmp_path / "nothing"))


def test_model_flags_are_checked(tmp_path):
    with pytest.raises(ConfigError, match="not both"):
        ev.load_translators(str(tmp_path), XtoY_model="a", YtoX_model="b")
    with pytest.raises(ConfigError, match="--YtoX_model"):
        ev.load_translators(XtoY_model="a")
    swapped = tmp_path / "g"
    (swapped / "assets.extra").mkdir(parents=True)
    (swapped / METADATA_FILE).write_text(json.dumps({"direction": "YtoX"}))
    with pytest.raises(ExportError, match="swap"):
        ev.load_translators(XtoY_model=str(swapped), YtoX_model=str(swapped))


# -- a whole evaluation -----------------------------------------------------------------------------

def test_evaluate_with_stand_ins(tmp_path):
    xs = demo_images("X", 4) + [("big.jpg", np.asarray(demo.make_image(
        np.random.default_rng(9), "X", 48)))]  # another size: batched apart
    ys = demo_images("Y", 4, seed=1)
    out = tmp_path / "eval"
    logged = []
    metrics = ev.evaluate(identity, identity, xs, ys, str(out), features=tiny_features,
                          batch_size=3, n_kid_subsets=5, log=logged.append)

    assert {"num_X", "num_Y", "cycle_l1_X", "cycle_l1_Y", "identity_l1_G", "identity_l1_F",
            "fid_XtoY", "fid_YtoX", "fid_X_Y", "kid_XtoY", "kid_YtoX", "kid_X_Y",
            "kid_XtoY_std"} <= set(metrics)
    assert (metrics["num_X"], metrics["num_Y"]) == (5, 4)
    for key in ("cycle_l1_X", "cycle_l1_Y", "identity_l1_G", "identity_l1_F"):
        assert metrics[key] == 0.0
    assert metrics["fid_XtoY"] == pytest.approx(metrics["fid_X_Y"])  # G(X) is X
    assert metrics["fid_X_Y"] > 0.01  # the stand-in features tell day from night
    assert json.loads((out / "metrics.json").read_text()) == pytest.approx(metrics)

    assert sorted(os.listdir(out / "XtoY")) == ["X00.png", "X01.png", "X02.png", "X03.png",
                                                "big.png"]
    assert sorted(os.listdir(out / "YtoX")) == ["Y00.png", "Y01.png", "Y02.png", "Y03.png"]
    np.testing.assert_array_equal(np.asarray(Image.open(out / "XtoY" / "X01.png")), xs[1][1])
    with Image.open(out / "grid_X.png") as grid_x, Image.open(out / "grid_Y.png") as grid_y:
        assert grid_x.size == (3 * 48, 5 * 48)  # x, G(x), F(G(x)); a row per image
        assert grid_y.size == (3 * 32, 4 * 32)


def test_kid_spread_is_reported_only_when_subsets_can_differ(tmp_path):
    xs, ys = demo_images("X", 6), demo_images("Y", 5, seed=1)
    # 5 and 6 images, subsets of 1000: every subset is the whole set, every value the same.
    few = ev.evaluate(identity, identity, xs, ys, str(tmp_path / "few"), features=tiny_features,
                      n_kid_subsets=10, log=lambda _: None)
    assert few["kid_XtoY_std"] is None and few["kid_X_Y_std"] is None
    assert "with 6 X and 5 Y images a subset is a whole set" in few["kid_std_note"]
    saved = json.loads((tmp_path / "few" / "metrics.json").read_text())
    assert saved["kid_YtoX_std"] is None and saved["kid_std_note"] == few["kid_std_note"]
    # Subsets of 3: they differ, and so do their KIDs.
    spread = ev.evaluate(identity, identity, xs, ys, str(tmp_path / "spread"),
                         features=tiny_features, n_kid_subsets=10, kid_subset_size=3,
                         log=lambda _: None)
    assert "kid_std_note" not in spread
    assert spread["kid_X_Y_std"] > 0 and spread["kid_XtoY_std"] > 0


class ColourGenerator:
    """Stand-in for sampling.ImageGenerator: each z draws a flat 16 x 16 image of one colour;
    truncation scales z, as sampling.ImageGenerator.generate does for a DCGAN."""
    z_dim = 3

    def generate(self, z, batch_size, truncation=1.0):
        colours = 255 / (1 + np.exp(-2 * truncation * np.asarray(z)))
        shape = (len(colours), 16, 16, 3)
        return np.broadcast_to(colours[:, None, None, :], shape).astype(np.uint8)


def test_generator_sample_sets_are_the_single_sets_averaged(tmp_path):
    real = [a for _, a in demo_images("X", 12, size=32)]  # another size: centred and resized
    featurised = []

    def counted_features(images):
        featurised.append(len(images))
        return tiny_features(images)

    score = lambda out, **kw: ev.evaluate_generator(  # noqa: E731
        ColourGenerator(), real, str(tmp_path / out), num=20, features=counted_features,
        n_kid_subsets=5, kid_subset_size=6, log=lambda _: None, **kw)
    single = [score(f"seed{seed}", seed=seed) for seed in (4, 5, 6)]
    assert len({m["fid"] for m in single}) == 3  # each seed draws other samples
    featurised.clear()
    sets = score("sets", seed=4, sample_sets=3)
    assert sum(featurised) == 12 + 3 * 20  # the real images' features once, each set's once
    assert sets["sample_sets"] == 3 and sets["seed"] == 4 and sets["num_samples"] == 20
    for name in ("fid", "kid"):
        values = [m[name] for m in single]
        assert sets[f"{name}_per_set"] == pytest.approx(values)
        assert sets[name] == pytest.approx(np.mean(values))
        assert sets[f"{name}_error"] == pytest.approx(np.std(values, ddof=1) / np.sqrt(3))
    assert json.loads((tmp_path / "sets" / "metrics.json").read_text()) == sets
    with Image.open(tmp_path / "sets" / "samples.png") as grid, \
            Image.open(tmp_path / "seed4" / "samples.png") as first:
        np.testing.assert_array_equal(np.asarray(grid), np.asarray(first))  # the first set's
    assert "sample_sets" not in single[0]  # one set: the figures as before
    with pytest.raises(ConfigError, match="--sample_sets >= 1"):
        score("none", sample_sets=0)
    assert not os.path.exists(tmp_path / "none")
    # Truncated samples are other samples, nearer the typical one: at 0 all the same grey.
    assert "truncation" not in single[0]
    half = score("half", seed=4, truncation=0.5)
    assert half["truncation"] == 0.5 and half["fid"] != single[0]["fid"]
    score("zero", seed=4, truncation=0.0)
    with Image.open(tmp_path / "zero" / "samples.png") as grid:
        np.testing.assert_array_equal(np.unique(np.asarray(grid)), [127])  # 255 sigmoid(0)
    with pytest.raises(ConfigError, match="--truncation must be >= 0"):
        score("negative", truncation=-0.5)
    assert not os.path.exists(tmp_path / "negative")


def test_evaluate_colour_swap_cycles_but_is_no_identity(tmp_path):
    xs, ys = demo_images("X", 3), np.stack([a for _, a in demo_images("Y", 3, seed=1)])
    metrics = ev.evaluate(swap_red_blue, swap_red_blue, xs, ys, str(tmp_path),
                          compute_fid=False, log=lambda _: None)
    assert metrics["cycle_l1_X"] == 0.0 and metrics["cycle_l1_Y"] == 0.0
    assert metrics["identity_l1_G"] > 0.05 and metrics["identity_l1_F"] > 0.05
    assert not any(key.startswith(("fid", "kid")) for key in metrics)
    assert sorted(os.listdir(tmp_path / "YtoX")) == ["00000.png", "00001.png", "00002.png"]


def test_evaluate_rejects_a_translator_that_changes_shape(tmp_path):
    with pytest.raises(ValueError, match="G \\(XtoY\\)"):
        ev.evaluate(lambda images: images[:, :16], identity, demo_images("X", 2),
                    demo_images("Y", 2), str(tmp_path), compute_fid=False, log=lambda _: None)
