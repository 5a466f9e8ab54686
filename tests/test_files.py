"""Nothing a user owns is ever deleted or overwritten: every writer refuses, before any work and
without changing a byte, an output that is not new and not its own earlier output."""
from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from cyclegan_tf import data, files
from cyclegan_tf.errors import OutputError
from tests.conftest import REPO, run_script


def snapshot(root) -> dict[str, str]:
    """Every file and folder under root with its content hash (the tree's exact state)."""
    state = {}
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            state[os.path.join(folder, name)] = "dir"
        for name in names:
            path = os.path.join(folder, name)
            with open(path, "rb") as f:
                state[path] = hashlib.sha256(f.read()).hexdigest()
    return state


@pytest.fixture
def scratch(tmp_path, monkeypatch):
    """A working folder as a user has one: the README's layout, other models, their own files."""
    work = tmp_path / "work"
    (work / "pretrained" / "other_model").mkdir(parents=True)
    (work / "pretrained" / "other_model" / "saved_model.pb").write_bytes(b"someone else's")
    (work / "notes").mkdir()
    (work / "notes" / "thesis.txt").write_text("three years of work")
    (work / "photo.jpg").write_bytes(b"not even ours")
    monkeypatch.chdir(work)
    return work


def export_cli(run: str, XtoY: str, YtoX: str) -> subprocess.CompletedProcess:
    return run_script("export_graph.py", f"--checkpoint_dir={run}", f"--XtoY_model={XtoY}",
                      f"--YtoX_model={YtoX}", cwd=os.getcwd())


@pytest.mark.parametrize("case", ["user_folder", "run_folder", "dot", "dotdot", "same_twice",
                                  "plain_file", "parent_of_run"])
def test_export_refuses_what_is_not_its_own_and_changes_nothing(case, scratch, copy_run):
    run = copy_run()
    XtoY, YtoX = {
        "user_folder": ("notes", "fine"),            # a bare name goes under pretrained/
        "run_folder": (run, "pretrained/fine"),
        "dot": (".", "fine"),                         # pretrained/. : the folder of other models
        "dotdot": ("..", "fine"),                     # pretrained/.. : the working folder
        "same_twice": ("pretrained/m", "./pretrained/m/"),
        "plain_file": (str(scratch / "photo.jpg"), "fine"),
        "parent_of_run": (os.path.dirname(run), "fine"),
    }[case]
    if case == "user_folder":
        XtoY = str(scratch / "notes")
    before = {**snapshot(scratch), **snapshot(os.path.dirname(run))}
    result = export_cli(run, XtoY, YtoX)
    assert result.returncode == 2, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "Traceback" not in result.stderr, result.stderr
    assert "refusing" in errors[0] or "same path" in errors[0]
    assert {**snapshot(scratch), **snapshot(os.path.dirname(run))} == before


def test_reexport_replaces_its_own_export_and_says_so(trained_run, tmp_path):
    from cyclegan_tf.export import export_run
    a, b = str(tmp_path / "a"), str(tmp_path / "b")
    lines = []
    export_run(trained_run, a, b, log=lines.append)
    export_run(trained_run, a, b, log=lines.append)
    assert lines == [f"exported {a}", f"exported {b}", f"replaced {a}", f"replaced {b}"]
    assert sorted(os.listdir(tmp_path)) == ["a", "b"]  # no temporary folder left behind


def test_sigkill_during_export_leaves_the_old_model_loadable(trained_run, tmp_path):
    from cyclegan_tf.export import export_run
    target = str(tmp_path / "model")
    export_run(trained_run, target, str(tmp_path / "other"), log=lambda _: None)
    script = (f"from cyclegan_tf.export import export_run\n"
              f"export_run({trained_run!r}, {target!r}, {str(tmp_path / 'other')!r})\n")
    env = {**os.environ, "PYTHONPATH": REPO, "TF_CPP_MIN_LOG_LEVEL": "3"}
    rng = np.random.default_rng(0)
    for _ in range(3):
        process = subprocess.Popen([sys.executable, "-c", script], env=env)
        deadline = time.time() + 120
        # Wait until the new export is being written, then kill at a random moment.
        while time.time() < deadline and not any(n.endswith(".incomplete")
                                                 for n in os.listdir(tmp_path)):
            time.sleep(0.01)
        time.sleep(rng.uniform(0, 0.5))
        process.send_signal(signal.SIGKILL)
        process.wait()
        assert files.is_own(target, "saved_model")
        loaded = subprocess.run(
            [sys.executable, "-c", f"import tensorflow as tf; m = tf.saved_model.load({target!r});"
             "print(m.signatures['translate_uint8'](images=tf.zeros([1, 16, 16, 3], tf.uint8))"
             "['images'].shape)"], capture_output=True, text=True, env=env, timeout=120)
        assert loaded.returncode == 0 and "(1, 16, 16, 3)" in loaded.stdout, loaded.stderr


def test_swap_exchanges_folders_atomically(tmp_path):
    target = tmp_path / "out"
    for content in ("old", "new"):
        with files.atomic_folder(str(target)) as tmp:
            (open(os.path.join(tmp, "value"), "w")).write(content)
    assert (target / "value").read_text() == "new"
    assert sorted(os.listdir(tmp_path)) == ["out"]
    with pytest.raises(RuntimeError):  # a failure inside leaves the old output as it was
        with files.atomic_folder(str(target)) as tmp:
            (open(os.path.join(tmp, "value"), "w")).write("broken")
            raise RuntimeError("crash")
    assert (target / "value").read_text() == "new" and sorted(os.listdir(tmp_path)) == ["out"]


def test_inference_refuses_to_overwrite_inputs_or_user_files(exported, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(0)
    for name in ("a.png", "b.jpg"):
        Image.fromarray(rng.integers(0, 255, (20, 24, 3), np.uint8)).save(photos / name)
    mine = tmp_path / "mine"
    mine.mkdir()
    Image.fromarray(rng.integers(0, 255, (20, 24, 3), np.uint8)).save(mine / "a.png")
    before = snapshot(tmp_path)
    for output, expected in ((photos, "is the input"), (photos / "a.png", "is the input"),
                             (mine, "not an image written by this package"),
                             (tmp_path / "out.txt", "unknown image type")):
        source = photos / "a.png" if output in (photos / "a.png", tmp_path / "out.txt") else photos
        result = run_script("inference.py", f"--model={exported[0]}", f"--input={source}",
                            f"--output={output}")
        assert result.returncode == 2 and expected in result.stderr, result.stderr
        assert snapshot(tmp_path) == before
    # Its own earlier translations are replaced: the same command runs twice.
    for _ in range(2):
        result = run_script("inference.py", f"--model={exported[0]}", f"--input={photos}",
                            f"--output={tmp_path / 'translated'}")
        assert result.returncode == 0, result.stderr
    assert sorted(os.listdir(tmp_path / "translated")) == ["a.png", "b.jpg"]
    assert files.is_own(str(tmp_path / "translated" / "b.jpg"), "image")


def test_build_data_refuses_other_files_and_two_domains_in_one_file(tmp_path, demo_data):
    (tmp_path / "notes.txt").write_text("mine")
    before = snapshot(tmp_path)
    same = run_script("build_data.py", f"--X_input_dir={demo_data['testA']}",
                      f"--Y_input_dir={demo_data['testB']}", f"--X_output_file={tmp_path / 'a'}",
                      f"--Y_output_file={tmp_path / 'a'}")
    assert same.returncode == 2 and "same path" in same.stderr, same.stderr
    other = run_script("build_data.py", f"--X_input_dir={demo_data['testA']}",
                       f"--Y_input_dir={demo_data['testB']}",
                       f"--X_output_file={tmp_path / 'notes.txt'}",
                       f"--Y_output_file={tmp_path / 'b'}")
    assert other.returncode == 2 and "not a tfrecords file" in other.stderr, other.stderr
    (tmp_path / "empty").mkdir()
    before = snapshot(tmp_path)
    empty_y = run_script("build_data.py", f"--X_input_dir={demo_data['testA']}",
                         f"--Y_input_dir={tmp_path / 'empty'}", f"--X_output_file={tmp_path / 'x'}",
                         f"--Y_output_file={tmp_path / 'y'}")
    assert empty_y.returncode == 2 and "no image files" in empty_y.stderr, empty_y.stderr
    assert snapshot(tmp_path) == before  # X not written either
    for _ in range(2):  # its own tfrecords are replaced
        report = data.build_tfrecords(demo_data["testA"], str(tmp_path / "x.tfrecords"),
                                      log=lambda _: None)
    assert report.replaced == [str(tmp_path / "x.tfrecords")] and "replaced" in report.summary()


def test_evaluate_refuses_a_user_folder_before_any_work(trained_run, demo_data, tmp_path):
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "paper.tex").write_text("mine")
    before = snapshot(tmp_path)
    result = run_script("evaluate.py", f"--checkpoint_dir={trained_run}", "--nofid",
                        f"--X={demo_data['testA']}", f"--Y={demo_data['testB']}",
                        f"--output_dir={tmp_path / 'results'}")
    assert result.returncode == 2 and "refusing to write" in result.stderr, result.stderr
    assert snapshot(tmp_path) == before


def test_check_outputs_rules(tmp_path):
    with pytest.raises(OutputError, match="current folder"):
        files.check_outputs([files.Output(".", "folder")])
    (tmp_path / "data" / "images").mkdir(parents=True)
    with pytest.raises(OutputError, match="holding an input"):
        files.check_outputs([files.Output(str(tmp_path / "data"), "folder")],
                            inputs=[str(tmp_path / "data" / "images")])
    with pytest.raises(OutputError, match="is an input"):
        files.check_outputs([files.Output(str(tmp_path / "data" / "images"), "folder")],
                            inputs=[str(tmp_path / "data" / "images")])
    assert files.check_outputs([files.Output(str(tmp_path / "new" / "place"), "folder")]) == []
    (tmp_path / "file").write_text("x")
    with pytest.raises(OutputError, match="is a file, not a folder"):
        files.check_outputs([files.Output(str(tmp_path / "file" / "model"), "saved_model")])
