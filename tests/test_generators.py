"""DCGAN and WGAN-GP: new images from one domain, through the same build_data -> train ->
export_graph -> inference workflow as the CycleGAN (tiny widths: seconds on a CPU)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, run_script

TINY_GEN = dict(image_size=64, ngf=8, ndf=8, batch_size=4, z_dim=16, save_every=100,
                summary_every=2, log_every=1)


@pytest.fixture(scope="module")
def faces(tmp_path_factory):
    """One domain of small images (the demo's trainA at 64 px) and its tfrecords."""
    from cyclegan_tf import data, demo
    root = tmp_path_factory.mktemp("faces")
    folders = demo.make_dataset(str(root / "images"), train_count=16, test_count=1, size=64)
    records = str(root / "faces.tfrecords")
    data.build_tfrecords(folders["trainA"], records, log=lambda *_: None)
    return {"folder": folders["trainA"], "X": records, "root": root}


def gen_config(**overrides):
    from cyclegan_tf.config import Config
    return Config(**{"model": "dcgan", **TINY_GEN, **overrides})


@pytest.mark.parametrize("size", [64, 80])
def test_dcgan_networks_make_and_judge_64_and_80_px_images(size):
    import tensorflow as tf
    from cyclegan_tf.generators import NoiseDiscriminator, NoiseGenerator
    images = NoiseGenerator(z_dim=16, image_size=size, ngf=8)(tf.random.normal([2, 16]))
    assert images.shape == (2, size, size, 3)
    assert float(tf.reduce_min(images)) >= -1 and float(tf.reduce_max(images)) <= 1
    assert NoiseDiscriminator(size, ndf=8)(images).shape == (2,)


def test_sizes_the_architecture_cannot_make_are_refused_naming_the_valid_ones():
    from cyclegan_tf.config import ConfigError
    with pytest.raises(ConfigError, match="64 or 80"):
        gen_config(image_size=48)
    with pytest.raises(ConfigError, match="--Y is for cyclegan"):
        gen_config(Y="other.tfrecords")
    with pytest.raises(ConfigError, match="must not use batch norm"):
        gen_config(model="wgangp", norm="batch")


def test_model_defaults_apply_unless_given_and_old_configs_load_as_cyclegan(tmp_path):
    from cyclegan_tf.config import Config
    dcgan, wgangp = Config(model="dcgan"), Config(model="wgangp")
    assert (dcgan.batch_size, dcgan.image_size, dcgan.learning_rate, dcgan.beta1) == (64, 80, 2e-4, 0.5)
    assert (wgangp.learning_rate, wgangp.beta1, wgangp.beta2, wgangp.norm) == (1e-4, 0.0, 0.9, "layer")
    assert Config(model="wgangp", beta1=0.5).beta1 == 0.5
    old = Config().to_dict()
    for name in ("model", "beta2", "z_dim", "n_critic", "ema_decay"):  # before --model existed
        del old[name]
    (tmp_path / "config.json").write_text(json.dumps(old))
    loaded = Config.load(str(tmp_path))
    assert (loaded.model, loaded.Y, loaded.beta2) == ("cyclegan", old["Y"], 0.999)


def test_wgangp_critic_has_no_batch_norm():
    import keras
    from cyclegan_tf.generators import WGANGP
    model = WGANGP(gen_config(model="wgangp", n_critic=2))
    layers = list(model.D._flatten_layers())
    assert not any(isinstance(layer, keras.layers.BatchNormalization) for layer in layers)
    assert any(isinstance(layer, keras.layers.LayerNormalization) for layer in layers)
    assert model.batches_per_step == 2


def test_wgangp_trains_with_two_critic_updates_per_step_and_finite_losses(faces, tmp_path):
    import tensorflow as tf
    from cyclegan_tf.training import train
    lines = []
    result = train(gen_config(model="wgangp", n_critic=2, X=faces["X"], max_steps=3,
                              diff_augment="translation,cutout",
                              checkpoint_dir=str(tmp_path / "run")), log=lines.append)
    assert result.step == 3  # every step's losses were checked finite (log_every=1)
    assert any("W " in line and "GP " in line for line in lines)
    reader = tf.train.load_checkpoint(result.checkpoint)
    iterations = lambda name: reader.get_tensor(f"{name}/_iterations/.ATTRIBUTES/VARIABLE_VALUE")  # noqa: E731
    assert (iterations("G_optimizer"), iterations("D_optimizer")) == (3, 6)


def test_resumed_generator_run_ends_as_an_uninterrupted_one(faces, tmp_path):
    """Also with --diff_augment: its random transforms are drawn by step, as the noise is."""
    import tensorflow as tf
    from cyclegan_tf.training import train
    quiet = lambda *_: None  # noqa: E731
    run = dict(X=faces["X"], diff_augment="color,translation,cutout")
    whole = train(gen_config(**run, max_steps=4, checkpoint_dir=str(tmp_path / "whole")),
                  log=quiet)
    part = str(tmp_path / "part")
    train(gen_config(**run, max_steps=2, checkpoint_dir=part), log=quiet)
    lines = []
    resumed = train(gen_config(**run, max_steps=4, checkpoint_dir=part), log=lines.append)
    assert resumed.step == 4 and any("resumed from" in line and "step 2" in line for line in lines)
    a, b = tf.train.load_checkpoint(whole.checkpoint), tf.train.load_checkpoint(resumed.checkpoint)
    kept = [k for k in a.get_variable_to_shape_map() if k.startswith(("G_ema/", "fixed_noise"))]
    assert any(k.startswith("G_ema/") for k in kept) and any("fixed_noise" in k for k in kept)
    for key in kept:
        np.testing.assert_allclose(a.get_tensor(key), b.get_tensor(key), atol=1e-5, err_msg=key)


def test_faces_workflow_one_domain_dcgan_export_and_plain_tensorflow(faces, tmp_path):
    records = str(tmp_path / "one.tfrecords")
    done = run_script("build_data.py", "--X_input_dir", faces["folder"], "--X_output_file", records)
    assert done.returncode == 0, done.stderr
    assert not os.path.exists("data/tfrecords/orange.tfrecords")  # no Y flag: no Y written
    run = str(tmp_path / "run")
    done = run_script("train.py", "--model", "dcgan", "--X", records, "--image_size", "64",
                      "--ngf", "8", "--ndf", "8", "--batch_size", "4", "--max_steps", "3",
                      "--checkpoint_dir", run)
    assert done.returncode == 0, done.stderr
    model = str(tmp_path / "faces")
    done = run_script("export_graph.py", "--checkpoint_dir", run, "--generator_model", model,
                      "--formats", "saved_model,onnx,tflite")
    assert done.returncode == 0, done.stderr
    assert sorted(n for n in os.listdir(model) if n.startswith("model.")) == ["model.onnx",
                                                                            "model.tflite"]
    done = run_script("export_graph.py", "--checkpoint_dir", run, "--XtoY_model", model)
    assert done.returncode == 2 and "--generator_model" in done.stderr

    # Plain TensorFlow, in a fresh process that never imports cyclegan_tf.
    check = textwrap.dedent(f"""
        import sys, numpy as np, tensorflow as tf
        assert "cyclegan_tf" not in sys.modules
        m = tf.saved_model.load({model!r})
        a = m.signatures["sample"](seed=tf.constant(3, tf.int64), count=tf.constant(5))["images"]
        b = m.signatures["sample"](seed=tf.constant(3, tf.int64), count=tf.constant(5))["images"]
        c = m.signatures["sample"](seed=tf.constant(4, tf.int64), count=tf.constant(5))["images"]
        assert a.dtype == tf.uint8 and a.shape == (5, 64, 64, 3), a.shape
        assert np.array_equal(a, b) and not np.array_equal(a, c)
        y = m.signatures["serving_default"](z=tf.random.normal([2, 128]))["images"].numpy()
        assert y.shape == (2, 64, 64, 3) and y.min() >= -1 and y.max() <= 1
        assert "cyclegan_tf" not in sys.modules
        print("ok")
    """)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": ""}
    done = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True,
                          cwd=str(tmp_path), env=env, timeout=300)
    assert done.returncode == 0 and "ok" in done.stdout, done.stderr

    # ONNX and LiteRT make the same images from the same noise.
    from cyclegan_tf import portable
    z = np.random.default_rng(0).standard_normal((3, 128)).astype(np.float32)
    expected = tf.saved_model.load(model).signatures["serving_default"](z=tf.constant(z))["images"]
    for runner in (portable.onnx_runner, portable.tflite_runner):
        got = runner(os.path.join(model, portable.FILE_NAMES[
            "onnx" if runner is portable.onnx_runner else "tflite"]))(z)
        assert got.shape == (3, 64, 64, 3)
        assert np.abs(got - expected.numpy()).max() < 1e-3, runner.__name__

    # evaluate.py scores the exported generator and the run's checkpoint alike, with the real
    # offline face network, and names that network in its report; --sample_sets 2 adds a
    # second set of samples (seed 1) to the same first set.
    scores = []
    for source in (["--model", model], ["--checkpoint_dir", run, "--step", "3",
                                        "--sample_sets", "2"]):
        out = str(tmp_path / f"eval{len(scores)}")
        done = run_script("evaluate.py", *source, "--X", records, "--num", "6",
                          "--fid_network", "face", "--output_dir", out)
        assert done.returncode == 0, done.stderr
        scores.append(json.loads(done.stdout.strip().splitlines()[-1]))
        assert os.path.isfile(os.path.join(out, "samples.png"))
    assert scores[0]["feature_network"] == "mtcnn-onet" and scores[0]["num_samples"] == 6
    assert scores[0]["num_real"] == 16 and scores[0]["fid"] > 0
    fid_sets = scores[1]["fid_per_set"]
    assert abs(scores[0]["fid"] - fid_sets[0]) < 1e-3  # the export is the run's G_ema
    assert fid_sets[1] != fid_sets[0] and scores[1]["fid_error"] > 0
    assert abs(scores[1]["fid"] - sum(fid_sets) / 2) < 1e-9
    # --truncation 0: every sample is G(0), as inference.py --truncation 0 draws it.
    out = str(tmp_path / "eval_truncated")
    done = run_script("evaluate.py", "--model", model, "--X", records, "--num", "6",
                      "--truncation", "0", "--fid_network", "face", "--output_dir", out)
    assert done.returncode == 0, done.stderr
    truncated = json.loads(done.stdout.strip().splitlines()[-1])
    assert truncated["truncation"] == 0 and truncated["fid"] != scores[0]["fid"]
    from PIL import Image
    with Image.open(os.path.join(out, "samples.png")) as sheet:
        cells = np.asarray(sheet).reshape(2, 64, 3, 64, 3).swapaxes(1, 2).reshape(6, 64, 64, 3)
    assert all((cell == cells[0]).all() for cell in cells)
    done = run_script("evaluate.py", "--checkpoint_dir", run, "--step", "2", "--X", records,
                      "--fid_network", "face", "--output_dir", str(tmp_path / "eval_step2"))
    assert done.returncode == 2 and "keeps steps 3" in done.stderr
    assert not os.path.exists(tmp_path / "eval_step2")

    gif = str(tmp_path / "walk.gif")
    done = run_script("inference.py", "--model", model, "--interpolate", "3", "--frames", "4",
                      "--output", gif)
    assert done.returncode == 0, done.stderr
    with Image.open(gif) as image:
        assert image.n_frames == 3 * 4 and image.size == (64, 64)


def test_inference_writes_a_grid_or_a_folder_and_says_what_to_pass(faces, tmp_path):
    from cyclegan_tf import sampling
    from cyclegan_tf.training import train
    run = str(tmp_path / "run")
    train(gen_config(X=faces["X"], max_steps=1, checkpoint_dir=run), log=lambda *_: None)
    model = sampling.export_generator_run(run, str(tmp_path / "model"), log=lambda *_: None)
    grid = str(tmp_path / "grid.png")
    done = run_script("inference.py", "--model", model, "--num", "6", "--truncation", "0.5",
                      "--output", grid)
    assert done.returncode == 0, done.stderr
    from PIL import Image
    assert Image.open(grid).size == (3 * 64, 2 * 64)
    done = run_script("inference.py", "--model", model, "--num", "2", "--output",
                      str(tmp_path / "pngs") + "/")
    assert done.returncode == 0 and sorted(os.listdir(tmp_path / "pngs")) == ["0000.png", "0001.png"]
    done = run_script("inference.py", "--model", model)
    assert done.returncode == 2 and "--num" in done.stderr and "--interpolate" in done.stderr


def test_clear_errors_for_a_missing_X_and_a_generator_flag_on_a_cyclegan_run(tmp_path):
    from cyclegan_tf.config import Config
    run = str(tmp_path / "run")
    done = run_script("train.py", "--model", "dcgan", "--X", str(tmp_path / "missing.tfrecords"),
                      "--checkpoint_dir", run)
    assert done.returncode == 2 and "missing.tfrecords not found" in done.stderr
    assert not os.path.exists(run)
    cyclegan = tmp_path / "cyclegan"
    cyclegan.mkdir()
    Config(image_size=32).save(str(cyclegan))
    done = run_script("export_graph.py", "--checkpoint_dir", str(cyclegan), "--generator_model",
                      str(tmp_path / "g"))
    assert done.returncode == 2 and "dcgan / wgangp" in done.stderr
