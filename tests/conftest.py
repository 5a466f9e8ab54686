"""Shared, session-wide fixtures: tracing a CycleGAN step is the slow part of every test, so one
tiny run is trained once and reused (read-only) by the tests that need a trained model."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# Small enough for 2 CPU cores, big enough to learn the demo's colour mapping.
TINY = dict(image_size=32, ngf=8, ndf=8, n_blocks=2, pool_size=10)


def tiny_config(**overrides):
    from cyclegan_tf.config import Config
    values = {**TINY, "max_steps": 10, "save_every": 5, "summary_every": 5, "log_every": 5,
              **overrides}
    return Config(**values)


def run_script(script: str, *args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Runs one of the top-level scripts as a user would, in a fresh process."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    return subprocess.run([sys.executable, os.path.join(REPO, script), *args], capture_output=True,
                          text=True, timeout=timeout, env=env, **kwargs)


@pytest.fixture(scope="session")
def demo_data(tmp_path_factory):
    """Synthetic day/night folders and their tfrecords (32 px)."""
    from cyclegan_tf import data, demo
    root = tmp_path_factory.mktemp("demo")
    folders = demo.make_dataset(str(root / "images"), train_count=60, test_count=8, size=32)
    records = {}
    for domain, folder in (("X", folders["trainA"]), ("Y", folders["trainB"])):
        records[domain] = str(root / f"{domain}.tfrecords")
        data.build_tfrecords(folder, records[domain], log=lambda *_: None)
    return {**folders, **records, "root": root}


TRAINED_STEPS = 400


@pytest.fixture(scope="session")
def trained_run(demo_data, tmp_path_factory):
    """A run folder trained for TRAINED_STEPS steps on the demo data. Read-only for tests:
    copy it (copy_run) before training on."""
    from cyclegan_tf.training import train
    # A space and non-ASCII letters in the path: every script must cope with them.
    run_dir = str(tmp_path_factory.mktemp("runs") / "trained run é")
    config = tiny_config(X=demo_data["X"], Y=demo_data["Y"], checkpoint_dir=run_dir,
                         max_steps=TRAINED_STEPS, save_every=200, summary_every=20, log_every=100)
    train(config, log=lambda *_: None)
    return run_dir


@pytest.fixture
def copy_run(trained_run, tmp_path):
    def copy() -> str:
        target = str(tmp_path / "run_copy")
        shutil.copytree(trained_run, target)
        return target
    return copy


@pytest.fixture(scope="session")
def exported(trained_run, tmp_path_factory):
    from cyclegan_tf.export import export_run
    root = tmp_path_factory.mktemp("exported")
    return export_run(trained_run, str(root / "day2night"), str(root / "night2day"))
