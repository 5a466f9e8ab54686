"""tf.distribute: MirroredStrategy over two logical CPUs matches one device on the same global
batch; MultiWorkerMirroredStrategy trains, checkpoints, resumes and exports with two local workers."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf

from tests.conftest import REPO, TINY


def _python(code: str, env: dict | None = None, timeout: float = 400) -> subprocess.CompletedProcess:
    full_env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO, **(env or {})}
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=timeout, env=full_env)


def test_mirrored_on_two_replicas_matches_one_device_with_the_same_global_batch(demo_data, tmp_path):
    code = f"""
        import json, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from cyclegan_tf.config import Config
        from cyclegan_tf.training import train
        from tests.test_training import _scalars
        result = {{}}
        for strategy, batch in (("default", 2), ("mirrored", 1)):  # global batch 2 in both
            run = {str(tmp_path)!r} + "/" + strategy
            config = Config(X={demo_data['X']!r}, Y={demo_data['Y']!r}, checkpoint_dir=run,
                            strategy=strategy, batch_size=batch, max_steps=3, summary_every=1,
                            log_every=1, save_every=3, **{TINY!r})
            lines = []
            train(config, log=lines.append)
            result[strategy] = {{tag: _scalars(run, "loss/" + tag) for tag in
                                ("G/total", "F/total", "D_X/loss", "D_Y/loss", "cycle/forward_x")}}
            result[strategy + "_log"] = lines[0]
            # Adam's moments hold the gradients' scale, which its updates hide: a gradient summed
            # rather than averaged over replicas shows here, not in the losses of three steps.
            reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(run))
            result[strategy + "_moments"] = {{
                f"{{name}} slot {{i}}": float(abs(reader.get_tensor(
                    f"{{name}}_optimizer/_variables/{{i}}/.ATTRIBUTES/VARIABLE_VALUE")).sum())
                for name in ("G", "F", "D_X", "D_Y") for i in (1, 2)}}
        print(json.dumps(result))
    """
    out = _python(code)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert "(2 replica(s)" in result["mirrored_log"] and "(1 replica(s)" in result["default_log"]
    for name, total in result["default_moments"].items():
        assert result["mirrored_moments"][name] == pytest.approx(total, rel=0.05), name
    for tag, values in result["default"].items():
        assert len(values) == 3
        # Same data, same initial weights: only the summation order of the all-reduce differs.
        np.testing.assert_allclose(result["mirrored"][tag], values, rtol=2e-3, atol=2e-4,
                                   err_msg=tag)


def _free_ports(n: int) -> list[int]:
    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def _run_workers(run_dir: str, demo_data, max_steps: int) -> list[subprocess.CompletedProcess]:
    ports = _free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{port}" for port in ports]}
    args = [f"--X={demo_data['X']}", f"--Y={demo_data['Y']}", f"--checkpoint_dir={run_dir}",
            "--strategy=multi_worker", "--image_size=32", "--ngf=8", "--ndf=8", "--n_blocks=1",
            f"--max_steps={max_steps}", "--save_every=2", "--log_every=1", "--summary_every=2",
            "--learning_rate=2e-4"]  # extending a finished run restarts its decay from a rate
    workers = []
    for index in range(2):
        tf_config = json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": REPO, "TF_CONFIG": tf_config}
        workers.append(subprocess.Popen([sys.executable, os.path.join(REPO, "train.py"), *args],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                        text=True, env=env))
    results = []
    for worker in workers:
        out, _ = worker.communicate(timeout=400)
        results.append(subprocess.CompletedProcess(worker.args, worker.returncode, out))
    return results


def test_multi_worker_trains_checkpoints_on_the_chief_resumes_and_exports(demo_data, tmp_path):
    run_dir = str(tmp_path / "run")
    chief, other = _run_workers(run_dir, demo_data, max_steps=4)
    assert chief.returncode == 0, chief.stdout[-3000:]
    assert other.returncode == 0, other.stdout[-3000:]
    assert "(2 replica(s)" in chief.stdout and "done: step 4" in chief.stdout
    assert tf.train.latest_checkpoint(run_dir).endswith("ckpt-4")
    # Only the chief's files remain in the run folder.
    assert not [name for name in os.listdir(run_dir) if name.startswith(".worker")]

    chief, other = _run_workers(run_dir, demo_data, max_steps=6)  # both restart and resume
    assert chief.returncode == 0 and other.returncode == 0, chief.stdout[-3000:]
    assert f"resumed from {run_dir}/ckpt-4 at step 4" in chief.stdout
    assert f"resumed from {run_dir}/ckpt-4 at step 4" in other.stdout
    assert tf.train.latest_checkpoint(run_dir).endswith("ckpt-6")

    from cyclegan_tf.export import export_run
    from cyclegan_tf.translate import ImageTranslator
    XtoY, _ = export_run(run_dir, str(tmp_path / "a2b"), str(tmp_path / "b2a"))
    assert ImageTranslator.load(XtoY)(np.zeros((20, 28, 3), np.uint8)).shape == (20, 28, 3)
