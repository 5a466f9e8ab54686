"""Training: it learns, resumes exactly, and survives interruption and bad settings."""
from __future__ import annotations

import glob
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf.config import Config, ConfigError
from cyclegan_tf.cyclegan import CycleGAN
from cyclegan_tf.demo import blue_minus_red, shape_agreement
from cyclegan_tf.training import (TrainingError, prepare_config, resolve_run_dir, run_lock,
                                  train)
from tests.conftest import REPO, TRAINED_STEPS, run_script, tiny_config


def _scalars(run_dir: str, tag: str) -> list[float]:
    values = []
    for path in sorted(glob.glob(os.path.join(run_dir, "events.out.tfevents.*"))):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values.append(float(tf.make_ndarray(value.tensor)))
    return values


def _images(folder: str) -> np.ndarray:
    from PIL import Image
    return np.stack([np.asarray(Image.open(os.path.join(folder, n)))
                     for n in sorted(os.listdir(folder))])


def test_short_run_losses_fall_and_G_moves_x_toward_Y(trained_run, demo_data):
    cycle = np.add(_scalars(trained_run, "loss/cycle/forward_x"),
                   _scalars(trained_run, "loss/cycle/backward_y"))
    generators = _scalars(trained_run, "loss/G/total")
    assert len(cycle) == len(generators) == TRAINED_STEPS // 20
    # Single-image losses are noisy: compare the first summaries with the mean of the last five.
    assert np.mean(cycle[-5:]) < 0.8 * np.mean(cycle[:2])
    assert np.mean(generators[-5:]) < 0.8 * np.mean(generators[:2])
    assert {"loss/G/gan", "loss/F/identity", "loss/D_Y/loss", "learning_rate"} <= set(
        tag for path in glob.glob(os.path.join(trained_run, "events*"))
        for e in tf.compat.v1.train.summary_iterator(path) for tag in [v.tag for v in e.summary.value])

    from cyclegan_tf.translate import ImageTranslator
    G = ImageTranslator.load(trained_run, "XtoY")
    x, y = _images(demo_data["testA"]), _images(demo_data["testB"])
    before, after, target = blue_minus_red(x), blue_minus_red(G(x)), blue_minus_red(y)
    # The demo's X is warm (B - R < 0), Y cool (> 0): G(x) must cross most of the way.
    assert before < -0.4 and target > 0.4
    assert after - before > 0.6 * (target - before), (before, after, target)
    # ...keeping the shapes where they are (edges of x and G(x) agree; x and y are unrelated).
    kept, unrelated = shape_agreement(x, G(x)), shape_agreement(x, y)
    assert kept > 0.15 and abs(unrelated) < 0.05, (kept, unrelated)


def test_resume_restores_step_lr_optimizer_and_pool(copy_run):
    run_dir = copy_run()
    config = Config.load(run_dir)
    with tf.device("/cpu:0"):
        model = CycleGAN(config)
    model.checkpoint().restore(tf.train.latest_checkpoint(run_dir)).assert_consumed()
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(run_dir))
    assert int(model.step.numpy()) == TRAINED_STEPS
    assert int(model.G_optimizer.iterations.numpy()) == TRAINED_STEPS
    assert float(model.learning_rate) == pytest.approx(
        config.learning_rate * (1 - (TRAINED_STEPS - config.max_steps // 2) / (config.max_steps // 2)))
    keys = [k for k in reader.get_variable_to_shape_map() if k.startswith("D_Y_optimizer/")
            and "VARIABLE_VALUE" in k and reader.get_variable_to_shape_map()[k]]
    assert keys, "optimizer slots are in the checkpoint"
    slots = {v.path: v.numpy() for v in model.D_Y_optimizer.variables}
    assert any(np.abs(s).sum() > 0 for s in slots.values())
    assert int(model.pool_y.count.read_value()) == TRAINED_STEPS * config.batch_size  # images seen
    assert np.abs(model.pool_y.images.numpy()).sum() > 0

    # Training on: resumes from the step it stopped at, extended by an explicit --max_steps.
    messages = []
    resumed = prepare_config(tiny_config(checkpoint_dir=run_dir, max_steps=TRAINED_STEPS + 10),
                             explicit={"max_steps", "learning_rate"})
    assert resumed.X == config.X and resumed.max_steps == TRAINED_STEPS + 10
    result = train(resumed, log=messages.append)
    assert f"resumed from {run_dir}/ckpt-{TRAINED_STEPS} at step {TRAINED_STEPS}" in messages[0]
    assert result.step == TRAINED_STEPS + 10 and result.checkpoint.endswith(f"ckpt-{TRAINED_STEPS + 10}")


def test_an_interrupted_and_resumed_run_equals_an_uninterrupted_one(demo_data, tmp_path):
    """0 -> 6 in one go against 0 -> 3, SIGTERM, then 3 -> 6 in a new model restored from the
    checkpoint: the same data order, crops, pool choices, learning rate and Adam state, so the
    same losses at every step and the same final weights, slots and pools."""
    def run(name: str, stop_at: int | None) -> str:
        run_dir = str(tmp_path / name)
        config = tiny_config(X=demo_data["X"], Y=demo_data["Y"], checkpoint_dir=run_dir,
                             max_steps=6, pool_size=2, save_every=100, summary_every=1)

        def interrupt(step: int) -> None:
            if step == stop_at:
                os.kill(os.getpid(), signal.SIGTERM)  # as a scheduler would: save and exit
        result = train(config, log=lambda *_: None, step_callback=interrupt)
        if stop_at is not None:
            assert (result.stopped_by, result.step) == ("SIGTERM", stop_at)
            assert train(prepare_config(config), log=lambda *_: None).step == 6
        return run_dir

    whole, resumed = run("whole", None), run("resumed", 3)
    for tag in ("G/total", "F/total", "D_X/loss", "D_Y/loss"):
        np.testing.assert_allclose(_scalars(resumed, "loss/" + tag), _scalars(whole, "loss/" + tag),
                                   rtol=1e-5, err_msg=tag)
    expected = tf.train.load_checkpoint(tf.train.latest_checkpoint(whole))
    actual = tf.train.load_checkpoint(tf.train.latest_checkpoint(resumed))
    names = [n for n in expected.get_variable_to_shape_map()
             if "VARIABLE_VALUE" in n and not n.startswith("save_counter")]  # saves made: 1 vs 2
    assert len(names) > 50 and any(n.startswith("pool_y/") for n in names)
    for name in names:
        np.testing.assert_allclose(actual.get_tensor(name), expected.get_tensor(name),
                                   rtol=1e-5, atol=1e-7, err_msg=name)


def test_resume_with_other_architecture_names_the_mismatch(copy_run):
    run_dir = copy_run()
    with pytest.raises(ConfigError, match=r"ngf: saved 8, requested 16"):
        prepare_config(tiny_config(checkpoint_dir=run_dir, ngf=16), explicit={"ngf"})
    with pytest.raises(ConfigError, match=r"input_skip: saved False, requested True"):
        prepare_config(tiny_config(checkpoint_dir=run_dir, input_skip=True), explicit={"input_skip"})
    result = run_script("train.py", f"--checkpoint_dir={run_dir}", "--norm=batch")
    assert result.returncode == 2 and "norm: saved 'instance', requested 'batch'" in result.stderr
    assert "Traceback" not in result.stderr


def test_runs_saved_before_input_skip_existed_resume_as_the_papers_network(copy_run):
    run_dir = copy_run()
    path = os.path.join(run_dir, "config.json")
    with open(path) as f:
        saved = json.load(f)
    del saved["input_skip"]
    with open(path, "w") as f:
        json.dump(saved, f)
    assert prepare_config(tiny_config(checkpoint_dir=run_dir)).input_skip is False


def test_checkpoint_without_config_that_does_not_fit_fails_clearly(copy_run, demo_data):
    run_dir = copy_run()
    os.remove(os.path.join(run_dir, "config.json"))
    with pytest.raises(TrainingError, match="cannot resume from .*ckpt-"):
        train(tiny_config(checkpoint_dir=run_dir, ngf=4, X=demo_data["X"], Y=demo_data["Y"]),
              log=print)
    assert not os.path.exists(os.path.join(run_dir, "config.json"))  # nothing written


def test_a_refused_resume_leaves_the_stored_settings_unchanged(copy_run, demo_data):
    run_dir = copy_run()
    path = os.path.join(run_dir, "config.json")
    with open(path) as f:
        saved = json.load(f)
    with open(path, "w") as f:  # as if saved by a version without input_skip: restore must fail
        json.dump({**saved, "ngf": 4}, f)
    before = open(path).read()
    with pytest.raises(TrainingError, match="cannot resume"):
        train(prepare_config(tiny_config(checkpoint_dir=run_dir, max_steps=500,
                                         X=demo_data["X"], Y=demo_data["Y"]),
                             explicit={"max_steps", "learning_rate"}), log=lambda _: None)
    assert open(path).read() == before


def test_a_failed_start_leaves_no_folder_behind(tmp_path, demo_data, monkeypatch):
    monkeypatch.chdir(tmp_path)
    missing = run_script("train.py", "--X=wrong.tfrecords", f"--Y={demo_data['Y']}", cwd=tmp_path)
    assert missing.returncode == 2 and "wrong.tfrecords not found" in missing.stderr
    assert not (tmp_path / "checkpoints").exists() or not os.listdir(tmp_path / "checkpoints")
    # A start that fails after the folder is made (here: building the model) removes it.
    def broken(config):
        raise MemoryError("no memory for the model")
    monkeypatch.setattr("cyclegan_tf.cyclegan.CycleGAN.__init__", lambda self, config: broken(config))
    with pytest.raises(MemoryError):
        train(tiny_config(X=demo_data["X"], Y=demo_data["Y"], checkpoint_dir=str(tmp_path / "r")),
              log=lambda _: None)
    assert not (tmp_path / "r").exists()


def test_runs_started_in_the_same_second_get_their_own_folders(tmp_path, monkeypatch):
    from cyclegan_tf.training import new_run_dir
    monkeypatch.chdir(tmp_path)
    folders = {new_run_dir() for _ in range(3)}
    assert len(folders) == 3 and all(os.path.isdir(f) for f in folders)
    assert resolve_run_dir() == ""  # no folder named by the minute, to be resumed by accident


def test_resuming_on_other_data_is_refused_unless_asked(copy_run, demo_data, tmp_path):
    run_dir = copy_run()
    other = str(tmp_path / "other.tfrecords")
    shutil.copy(demo_data["X"], other)
    requested = tiny_config(checkpoint_dir=run_dir, X=other, Y=demo_data["Y"])
    with pytest.raises(ConfigError, match=r"trained on other data: --X .*other.tfrecords.*--new_data"):
        prepare_config(requested, explicit={"X"})
    assert prepare_config(requested, explicit={"X"}, new_data=True).X == other
    assert prepare_config(requested, explicit={"Y"}).X == demo_data["X"]  # same Y: fine


def test_second_trainer_on_the_same_folder_is_refused(tmp_path, demo_data):
    with run_lock(str(tmp_path)):
        with pytest.raises(TrainingError, match=f"another trainer \\(pid {os.getpid()}\\) is using"):
            train(tiny_config(checkpoint_dir=str(tmp_path), X=demo_data["X"], Y=demo_data["Y"]))


def test_unwritable_checkpoint_folder_is_a_clear_error(tmp_path, demo_data):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    with pytest.raises(TrainingError, match="cannot write to checkpoint folder"):
        train(tiny_config(checkpoint_dir=str(blocker / "run"), X=demo_data["X"], Y=demo_data["Y"]))


def test_nan_stops_training_and_keeps_the_last_good_checkpoint(copy_run, demo_data):
    run_dir = copy_run()
    before = tf.train.latest_checkpoint(run_dir)
    # An absurd learning rate poisons the weights within a few steps.
    config = prepare_config(tiny_config(checkpoint_dir=run_dir, max_steps=TRAINED_STEPS + 20,
                                        learning_rate=1e30, log_every=1),
                            explicit={"max_steps", "learning_rate", "log_every"})
    with pytest.raises(TrainingError, match="NaN/Inf .* last good checkpoint .*ckpt-400 is intact"):
        train(config, log=lambda *_: None)
    assert tf.train.latest_checkpoint(run_dir) == before
    assert all(np.isfinite(tf.train.load_checkpoint(before).get_tensor(k)).all()
               for k in tf.train.list_variables(before) and
               [n for n, _ in tf.train.list_variables(before) if n.startswith("G/")])


def test_disk_full_during_save_is_a_clear_error_and_keeps_the_previous_checkpoint(
        copy_run, monkeypatch):
    run_dir = copy_run()
    before = tf.train.latest_checkpoint(run_dir)

    def full(self, *args, **kwargs):
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(tf.train.CheckpointManager, "save", full)
    config = prepare_config(tiny_config(checkpoint_dir=run_dir, max_steps=TRAINED_STEPS + 2),
                            explicit={"max_steps", "learning_rate"})
    with pytest.raises(TrainingError, match="No space left on device. The previous checkpoint"):
        train(config, log=lambda *_: None)
    assert tf.train.latest_checkpoint(run_dir) == before


def _start_trainer(run_dir: str, demo_data, max_steps: int, save_every: int) -> subprocess.Popen:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO}
    args = [sys.executable, os.path.join(REPO, "train.py"), f"--X={demo_data['X']}",
            f"--Y={demo_data['Y']}", f"--checkpoint_dir={run_dir}", "--image_size=32", "--ngf=4",
            "--ndf=4", "--n_blocks=1", "--pool_size=5", f"--max_steps={max_steps}",
            f"--save_every={save_every}", "--log_every=1", "--summary_every=1000"]
    return subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=env)


def _wait_for_step(process: subprocess.Popen, step: int, lines: list[str]) -> None:
    for line in process.stdout:
        lines.append(line)
        if line.startswith(f"step {step}/"):
            return
    raise AssertionError("trainer ended early:\n" + "".join(lines[-20:]))


def test_sigterm_and_ctrl_c_save_and_exit_cleanly_then_resume(tmp_path, demo_data):
    run_dir, stopped = str(tmp_path / "run"), 0
    for signum in (signal.SIGTERM, signal.SIGINT):
        process = _start_trainer(run_dir, demo_data, max_steps=10_000, save_every=1000)
        lines: list[str] = []
        _wait_for_step(process, stopped + 3, lines)
        process.send_signal(signum)
        out, _ = process.communicate(timeout=120)
        assert process.returncode == 0, out
        if stopped:
            assert any(line.startswith(f"resumed from {run_dir}/ckpt-{stopped} ") for line in lines)
        stopped_now = int(tf.train.latest_checkpoint(run_dir).rsplit("-", 1)[1])
        assert stopped_now >= stopped + 3
        assert f"{signum.name}: saved {run_dir}/ckpt-{stopped_now}" in "".join(lines) + out
        stopped = stopped_now


def _wait_for_start(process: subprocess.Popen, lines: list[str]) -> int:
    """The step a (re)started trainer begins at, from its first log line."""
    for line in process.stdout:
        lines.append(line)
        if line.startswith("training ") and " from step " in line:
            return int(line.split(" from step ")[1].split()[0])
    raise AssertionError("trainer ended before starting:\n" + "".join(lines[-20:]))


def test_sigkill_at_random_moments_never_loses_more_than_save_every(tmp_path, demo_data):
    """Kills the trainer five times at random moments (mid-step, mid-save); every restart resumes
    from the newest complete checkpoint, with step, optimizer and pool state consistent."""
    run_dir, save_every = str(tmp_path / "run"), 2
    rng = np.random.default_rng(0)
    saved = 0
    for kill in range(5):
        process = _start_trainer(run_dir, demo_data, max_steps=100_000, save_every=save_every)
        lines: list[str] = []
        assert _wait_for_start(process, lines) == saved  # the newest complete checkpoint
        target = saved + int(rng.integers(2, 6))
        _wait_for_step(process, target, lines)
        time.sleep(float(rng.uniform(0, 0.3)))  # somewhere in a later step or a save
        process.kill()
        process.wait()
        latest = tf.train.latest_checkpoint(run_dir)
        reader = tf.train.load_checkpoint(latest)  # the newest is complete and readable
        saved = int(reader.get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
        assert saved == int(latest.rsplit("-", 1)[1]) and saved >= target - save_every
        assert int(reader.get_tensor(
            "G_optimizer/_iterations/.ATTRIBUTES/VARIABLE_VALUE")) == saved
    final = _start_trainer(run_dir, demo_data, max_steps=saved + 2, save_every=save_every)
    out, _ = final.communicate(timeout=180)
    assert final.returncode == 0, out
    assert f"resumed from {run_dir}/ckpt-{saved} at step {saved}" in out
    assert f"done: step {saved + 2}" in out


@pytest.mark.parametrize("gan_loss", ["vanilla", "wgangp"])
def test_every_gan_loss_trains_in_the_traced_step(gan_loss):
    """lsgan is covered by the shared run; the others (WGAN-GP's penalty nests a tape) here."""
    model = CycleGAN(tiny_config(gan_loss=gan_loss, n_blocks=1, ngf=4, ndf=4))
    step = model.distributed_step_fn(tf.distribute.get_strategy())
    images = tf.random.uniform([1, 32, 32, 3], -1, 1, seed=0)
    before = [v.numpy() for v in model.D_Y.trainable_variables]
    for _ in range(2):
        losses = step(images, -images)["losses"]
    assert all(np.isfinite(float(v)) for v in losses.values())
    assert int(model.step.numpy()) == 2
    assert any(not np.allclose(b, v.numpy()) for b, v in zip(before, model.D_Y.trainable_variables))


def test_tfrecords_corrupt_mid_file_stops_training_with_the_path(copy_run, demo_data, tmp_path):
    run_dir = copy_run()
    truncated = str(tmp_path / "truncated X.tfrecords")
    data = open(demo_data["X"], "rb").read()
    open(truncated, "wb").write(data[:len(data) * 2 // 3])  # the first records stay readable
    config = prepare_config(tiny_config(checkpoint_dir=run_dir, X=truncated,
                                        max_steps=TRAINED_STEPS + 200),
                            explicit={"X", "max_steps", "learning_rate"}, new_data=True)
    from cyclegan_tf.data import DataError
    with pytest.raises(DataError, match="corrupt record while reading .*truncated X.tfrecords"):
        train(config, log=lambda *_: None)


def test_a_cli_error_is_one_line_without_tensorflows_start_up_noise(tmp_path):
    env_without_quiet = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "--X=missing.tfr"],
                            capture_output=True, text=True, cwd=tmp_path, timeout=120,
                            env={**env_without_quiet, "PYTHONPATH": REPO})
    assert result.returncode == 2
    assert result.stderr.splitlines() == ["error: tfrecords missing.tfr not found: make it with "
                                          "build_data.py (--X_output_file/--Y_output_file), or "
                                          "fix the path"], result.stderr
    verbose = subprocess.run([sys.executable, os.path.join(REPO, "train.py"), "--X=missing.tfr",
                              "--verbosity=1"], capture_output=True, text=True, cwd=tmp_path,
                             timeout=120, env={**env_without_quiet, "PYTHONPATH": REPO})
    assert "Traceback" in verbose.stderr and len(verbose.stderr.splitlines()) > 5
