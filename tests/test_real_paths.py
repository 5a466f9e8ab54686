"""The real code behind every stand-in the other tests use, run as far as this machine allows
without the internet: TFDS' download-and-prepare, the Keras InceptionV3 weights download, the
TPU strategy. A missing install step must fail here, not on a user's machine."""
from __future__ import annotations

import contextlib
import functools
import http.server
import os
import socket
import subprocess
import sys
import threading
import time
import zipfile

import numpy as np
import pytest
from PIL import Image

from cyclegan_tf import data
from cyclegan_tf.config import ConfigError
from tests.conftest import REPO


@contextlib.contextmanager
def serve_folder(folder: str):
    """An HTTP server on this machine serving folder; yields its base URL."""
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=folder)
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def refusing_url(name: str) -> str:
    """A URL on this machine whose port refuses connections (bound, never listened on)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/{name}"


def write_cycle_gan_archive(path: str, counts=(("trainA", 3), ("trainB", 2), ("testA", 1),
                                               ("testB", 1))) -> None:
    """A zip in the layout of the real CycleGAN archives: horse2zebra/trainA/*.jpg, ..."""
    rng = np.random.default_rng(0)
    with zipfile.ZipFile(path, "w") as archive:
        for split, count in counts:
            for i in range(count):
                image = Image.fromarray(rng.integers(0, 255, (40, 48, 3), np.uint8))
                local = os.path.join(os.path.dirname(path), f"{split}_{i}.jpg")
                image.save(local, quality=90)
                archive.write(local, f"horse2zebra/{split}/n{i:04d}.jpg")
                os.remove(local)


@pytest.fixture
def horse2zebra_url(monkeypatch):
    """Points TFDS' cycle_gan/horse2zebra builder at another URL (the only thing replaced)."""
    from tensorflow_datasets.image_classification import cycle_gan

    def point_at(url: str) -> None:
        monkeypatch.setitem(cycle_gan._DL_URLS, "horse2zebra", url)
    return point_at


def test_tfds_downloads_prepares_and_writes_tfrecords(tmp_path, horse2zebra_url):
    served = tmp_path / "served"
    served.mkdir()
    write_cycle_gan_archive(str(served / "horse2zebra.zip"))
    with serve_folder(str(served)) as base:
        horse2zebra_url(f"{base}/horse2zebra.zip")
        report = data.build_tfrecords_from_tfds("cycle_gan/horse2zebra", "trainA",
                                                str(tmp_path / "horse.tfrecords"),
                                                data_dir=str(tmp_path / "tfds"), image_size=32)
    assert report.written == 3
    images = list(data.iterate_images(str(tmp_path / "horse.tfrecords")))
    assert len(images) == 3 and all(min(image.shape[:2]) == 32 for _, image in images)
    # Prepared once: the other domain is read from data_dir without any network.
    horse2zebra_url(refusing_url("horse2zebra.zip"))
    report = data.build_tfrecords_from_tfds("cycle_gan/horse2zebra", "trainB",
                                            str(tmp_path / "zebra.tfrecords"),
                                            data_dir=str(tmp_path / "tfds"))
    assert report.written == 2


def test_tfds_offline_is_one_clear_error_within_seconds(tmp_path, horse2zebra_url):
    url = refusing_url("horse2zebra.zip")
    horse2zebra_url(url)
    start = time.perf_counter()
    with pytest.raises(data.DataError) as error:
        data.build_tfrecords_from_tfds("cycle_gan/horse2zebra", "trainA",
                                       str(tmp_path / "horse.tfrecords"),
                                       data_dir=str(tmp_path / "tfds"))
    elapsed = time.perf_counter() - start
    message = str(error.value)
    assert elapsed < 15, f"took {elapsed:.0f} s"
    assert url in message and "not reachable" in message and "--data_dir" in message
    assert "manual" in message
    assert not (tmp_path / "horse.tfrecords").exists()


def test_tfds_missing_module_is_named_as_such(tmp_path):
    """As before importlib_resources was declared: a fresh process where it cannot be imported."""
    script = (
        "import sys\n"
        "sys.modules['importlib_resources'] = None  # import now raises ModuleNotFoundError\n"
        "from cyclegan_tf import data\n"
        "try:\n"
        "    data.build_tfrecords_from_tfds('cycle_gan/horse2zebra', 'trainA', "
        f"{str(tmp_path / 'h.tfrecords')!r}, data_dir={str(tmp_path / 'tfds')!r})\n"
        "except data.DataError as e:\n"
        "    print(e)\n")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, env={**os.environ, "PYTHONPATH": REPO,
                                              "TF_CPP_MIN_LOG_LEVEL": "3"})
    message = result.stdout
    assert "'importlib_resources' is missing" in message and "pip install" in message, \
        result.stdout + result.stderr
    assert "internet" not in message


def test_build_data_cli_offline_prints_one_line(tmp_path):
    """The CLI as a user runs it: offline (the real URL cannot be reached from here), one line."""
    script = (
        "import sys, runpy\n"
        "from tensorflow_datasets.image_classification import cycle_gan\n"
        f"cycle_gan._DL_URLS['horse2zebra'] = {refusing_url('horse2zebra.zip')!r}\n"
        f"sys.argv = ['build_data.py', '--tfds', 'cycle_gan/horse2zebra', "
        f"'--data_dir', {str(tmp_path / 'tfds')!r}, "
        f"'--X_output_file', {str(tmp_path / 'h.tfrecords')!r}, "
        f"'--Y_output_file', {str(tmp_path / 'z.tfrecords')!r}]\n"
        f"runpy.run_path({os.path.join(REPO, 'build_data.py')!r}, run_name='__main__')\n")
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=120, cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"})
    assert result.returncode == 2, result.stderr
    assert time.perf_counter() - start < 60
    errors = [line for line in result.stderr.splitlines() if "not reachable" in line]
    assert len(errors) == 1, result.stderr
    assert "Traceback" not in result.stderr


def test_inception_weights_download_and_load_through_keras(tmp_path, monkeypatch):
    """keras.utils.get_file over HTTP, its hash check, and loading the .h5 into InceptionV3 (the
    file is a randomly initialised InceptionV3: the real one is 87 MB and behind the internet)."""
    import hashlib

    import h5py
    import keras
    from keras.src.legacy.saving import legacy_h5_format
    from cyclegan_tf import features as ev

    served = tmp_path / "served"
    served.mkdir()
    weights = served / ev.INCEPTION_FILE
    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                           input_shape=(299, 299, 3))
    with h5py.File(weights, "w") as f:  # the Keras 2 .h5 layout of the published file
        legacy_h5_format.save_weights_to_hdf5_group(f, model)
    with serve_folder(str(served)) as base:
        monkeypatch.setattr(ev, "INCEPTION_URL", f"{base}/{ev.INCEPTION_FILE}")
        monkeypatch.setattr(ev, "INCEPTION_MD5", "0" * 32)
        with pytest.raises(ev.FIDWeightsError, match="downloading the InceptionV3 weights failed"):
            ev.inception_weights_path(cache_dir=str(tmp_path / "bad_hash"))
        monkeypatch.setattr(ev, "INCEPTION_MD5", hashlib.md5(weights.read_bytes()).hexdigest())
        features = ev.keras_inception_features(cache_dir=str(tmp_path / "keras"))
    assert (tmp_path / "keras" / "models" / ev.INCEPTION_FILE).is_file()
    out = features(np.random.default_rng(0).integers(0, 255, (2, 40, 40, 3), np.uint8))
    assert out.shape == (2, 2048) and np.isfinite(out).all()


def test_inception_weights_offline_says_what_to_do(tmp_path, monkeypatch):
    from cyclegan_tf import features as ev
    monkeypatch.setattr(ev, "INCEPTION_URL", refusing_url(ev.INCEPTION_FILE))
    start = time.perf_counter()
    with pytest.raises(ev.FIDWeightsError) as error:
        ev.inception_weights_path(cache_dir=str(tmp_path))
    assert time.perf_counter() - start < 15
    assert "--fid_weights" in str(error.value) and "--nofid" in str(error.value)


def test_tpu_strategy_without_a_tpu_is_a_clear_error():
    from cyclegan_tf.training import make_strategy
    with pytest.raises(ConfigError, match="--strategy tpu"):
        make_strategy("tpu")
