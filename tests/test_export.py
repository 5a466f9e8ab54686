"""Export, reload in plain TensorFlow, inference as a user runs it, and hostile serving input."""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from tests.conftest import run_script
from tests.test_data import _png_header_only


def _encode(image: Image.Image, fmt: str) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt)
    return buffer.getvalue()


def test_saved_model_loads_in_plain_tensorflow_in_a_fresh_process(exported, tmp_path):
    XtoY, _ = exported
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 46, 3), np.uint8))
    (tmp_path / "in.png").write_bytes(_encode(photo, "PNG"))
    (tmp_path / "in.jpg").write_bytes(_encode(photo, "JPEG"))
    script = textwrap.dedent(f"""
        import sys, json, numpy as np, tensorflow as tf
        model = tf.saved_model.load({XtoY!r})
        sigs = model.signatures
        out = {{"signatures": sorted(sigs)}}
        for ext in ("png", "jpg"):
            data = open({str(tmp_path)!r} + "/in." + ext, "rb").read()
            result = sigs["serving_default"](image_bytes=tf.constant([data]))["image_bytes"]
            out[ext] = list(tf.io.decode_image(result[0]).shape) + [result[0].numpy()[:4].hex()]
        u8 = sigs["translate_uint8"](images=tf.zeros([2, 36, 52, 3], tf.uint8))["images"]
        fl = sigs["translate_float"](images=tf.zeros([1, 20, 20, 3]))["images"]
        out["uint8"] = [str(u8.dtype.name)] + list(u8.shape)
        out["float"] = [float(tf.reduce_min(fl)), float(tf.reduce_max(fl))] + list(fl.shape)
        out["cyclegan_tf_imported"] = any(m.startswith("cyclegan_tf") for m in sys.modules)
        print(json.dumps(out))
    """)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            cwd=str(tmp_path), env={**env, "TF_CPP_MIN_LOG_LEVEL": "3"}, timeout=300)
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout.strip().splitlines()[-1])
    assert out["signatures"] == ["serving_default", "translate_float", "translate_uint8"]
    assert out["png"][:3] == [30, 46, 3] and out["png"][3] == "89504e47"  # PNG in, PNG out
    assert out["jpg"][:3] == [30, 46, 3] and out["jpg"][3].startswith("ffd8")  # JPEG in, JPEG out
    assert out["uint8"] == ["uint8", 2, 36, 52, 3]
    assert -1 <= out["float"][0] <= out["float"][1] <= 1 and out["float"][2:] == [1, 20, 20, 3]
    assert out["cyclegan_tf_imported"] is False


def test_exported_model_matches_the_checkpoint(exported, trained_run):
    from cyclegan_tf.translate import ImageTranslator
    image = np.random.default_rng(1).integers(0, 255, (32, 32, 3), np.uint8)
    from_saved_model = ImageTranslator.load(exported[1])(image)
    from_checkpoint = ImageTranslator.load(trained_run, "YtoX")(image)
    assert np.abs(from_saved_model.astype(int) - from_checkpoint).max() <= 1


@pytest.mark.parametrize("case", ["garbage", "empty", "truncated", "huge", "gif", "gray", "rgba",
                                  "one_pixel"])
def test_serving_signature_on_hostile_bytes(exported, case):
    serve = tf.saved_model.load(exported[0]).signatures["serving_default"]
    rng = np.random.default_rng(2)
    photo = Image.fromarray(rng.integers(0, 255, (24, 40, 3), np.uint8))
    payload = {
        "garbage": rng.bytes(500), "empty": b"", "truncated": _encode(photo, "JPEG")[:200],
        "huge": _png_header_only(30000, 30000), "gif": _encode(photo, "GIF"),
        "gray": _encode(photo.convert("L"), "PNG"), "rgba": _encode(photo.convert("RGBA"), "PNG"),
        "one_pixel": _encode(Image.new("RGB", (1, 1), (200, 10, 10)), "PNG"),
    }[case]
    expected_error = {"garbage": "send JPEG or PNG", "empty": "empty image bytes",
                      "truncated": "Invalid JPEG data", "huge": "image too large", "gif": "send JPEG or PNG"}
    if case in expected_error:
        with pytest.raises(tf.errors.InvalidArgumentError, match=expected_error[case]):
            serve(image_bytes=tf.constant([payload]))
    else:  # documented conversions: grayscale and RGBA read as RGB, tiny images upscaled
        result = serve(image_bytes=tf.constant([payload]))["image_bytes"][0]
        decoded = tf.io.decode_png(result)
        height, width = (1, 1) if case == "one_pixel" else (24, 40)
        assert decoded.shape == (height, width, 3)
    # The process that loaded the model carries on serving.
    ok = serve(image_bytes=tf.constant([_encode(photo, "PNG")]))["image_bytes"]
    assert tf.io.decode_png(ok[0]).shape == (24, 40, 3)


def test_inference_cli_keeps_size_and_aspect_with_spaces_and_non_ascii_paths(exported, tmp_path):
    folder = tmp_path / "photos à traduire"
    folder.mkdir()
    rng = np.random.default_rng(3)
    Image.fromarray(rng.integers(0, 255, (37, 61, 3), np.uint8)).save(folder / "wide été.jpg")
    Image.fromarray(rng.integers(0, 255, (64, 48, 3), np.uint8)).save(folder / "tall.png")
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really")
    single = run_script("inference.py", f"--model={exported[0]}",
                        f"--input={folder / 'wide été.jpg'}", f"--output={tmp_path / 'out é.jpg'}")
    assert single.returncode == 0, single.stderr
    assert Image.open(tmp_path / "out é.jpg").size == (61, 37)
    square = run_script("inference.py", f"--model={exported[0]}", f"--input={folder / 'tall.png'}",
                        f"--output={tmp_path / 'square.png'}", "--image_size=32")
    assert square.returncode == 0 and Image.open(tmp_path / "square.png").size == (32, 32)
    batch = run_script("inference.py", f"--model={exported[0]}", f"--input={folder}",
                       f"--output={tmp_path / 'out dir'}")
    assert batch.returncode == 0, batch.stderr
    assert "2 images translated" in batch.stdout and "broken.jpg" in batch.stdout
    assert Image.open(tmp_path / "out dir" / "tall.png").size == (48, 64)
    missing = run_script("inference.py", f"--model={tmp_path / 'nope'}", f"--input={folder}",
                         f"--output={tmp_path / 'x'}")
    assert missing.returncode == 2 and "nope" in missing.stderr and "Traceback" not in missing.stderr


def test_export_cli_reads_the_run_settings_and_refuses_contradicting_flags(trained_run, tmp_path):
    ok = run_script("export_graph.py", f"--checkpoint_dir={trained_run}",
                    f"--XtoY_model={tmp_path / 'a2b.pb'}", f"--YtoX_model={tmp_path / 'b2a.pb'}")
    assert ok.returncode == 0, ok.stderr
    metadata = json.loads((tmp_path / "a2b.pb" / "assets.extra" / "cyclegan_tf.json").read_text())
    assert metadata["direction"] == "XtoY" and metadata["config"]["ngf"] == 8
    clash = run_script("export_graph.py", f"--checkpoint_dir={trained_run}", "--ngf=64",
                       f"--XtoY_model={tmp_path / 'c.pb'}", f"--YtoX_model={tmp_path / 'd.pb'}")
    assert clash.returncode == 2 and "--ngf=64 contradicts the run" in clash.stderr


def test_evaluate_cli_on_a_trained_run(trained_run, demo_data, tmp_path):
    result = run_script("evaluate.py", f"--checkpoint_dir={trained_run}", f"--X={demo_data['testA']}",
                        f"--Y={demo_data['testB']}", f"--output_dir={tmp_path / 'eval'}", "--nofid")
    assert result.returncode == 0, result.stderr
    metrics = json.loads(result.stdout.strip().splitlines()[-1])
    assert metrics["num_X"] == 8 and 0 < metrics["cycle_l1_X"] < 0.5
    assert (tmp_path / "eval" / "grid_X.png").exists() and len(os.listdir(tmp_path / "eval" / "XtoY")) == 8


# -- the pixel budget: the size the network runs at, not the input's -----------------------------

@pytest.fixture(scope="module")
def tiny_generator():
    from cyclegan_tf.models import ResnetGenerator
    generator = ResnetGenerator(ngf=4, n_blocks=1)
    generator(tf.zeros([1, 16, 16, 3]))
    return generator


def test_serving_refuses_a_thin_png_by_the_size_it_would_be_upscaled_to(tiny_generator):
    """1 x 16,777,216 is exactly the default budget, but the network would run it at
    16 x 268,435,456: refused from the header, before decoding anything."""
    import resource
    import time
    from cyclegan_tf.export import Translator
    translator = Translator(tiny_generator)  # its tf.functions hold it weakly
    serve = translator.translate_bytes
    serve(tf.constant([_encode(Image.new("RGB", (20, 18)), "PNG")]))  # traced outside the timing
    for width, height in ((1, 16_777_216), (16_777_216, 1)):
        peak_before, start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter()
        with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
            serve(tf.constant([_png_header_only(width, height)]))
        assert time.perf_counter() - start < 5
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024
        assert grown_mb < 200  # the decoded image alone would be 50 MB, its upscale 12.9 GB


@pytest.mark.parametrize("dtype", [tf.uint8, tf.float32])
def test_tensor_signatures_refuse_before_allocating_the_upscaled_image(tiny_generator, dtype):
    import resource
    from cyclegan_tf.export import Translator
    translator = Translator(tiny_generator, max_pixels=1_000_000)
    translate = (translator.translate_uint8 if dtype == tf.uint8 else translator.translate_float)
    images = tf.zeros([1, 1, 300_000, 3], dtype)  # 0.3 Mpx in, 16 x 4.8 M = 77 Mpx in the network
    peak_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
        translate(images=images)
    assert (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak_before) / 1024 < 300
    with pytest.raises(tf.errors.InvalidArgumentError, match="empty image"):
        translate(images=tf.zeros([1, 0, 5, 3], dtype))


@pytest.mark.parametrize("height, width", [(1, 1), (5, 37), (18, 30)])
def test_max_pixels_is_exactly_the_processed_size(tiny_generator, height, width):
    from cyclegan_tf.export import Translator, processed_size
    net_height, net_width = processed_size(height, width)
    assert net_height % 4 == net_width % 4 == 0 and min(net_height, net_width) >= 16
    images = tf.zeros([1, height, width, 3], tf.uint8)
    fits = Translator(tiny_generator, max_pixels=net_height * net_width)
    assert fits.translate_uint8(images=images)["images"].shape == (1, height, width, 3)
    over = Translator(tiny_generator, max_pixels=net_height * net_width - 1)
    with pytest.raises(tf.errors.InvalidArgumentError, match="image too large"):
        over.translate_uint8(images=images)


def test_translate_file_applies_the_same_rule(tiny_generator, tmp_path):
    from cyclegan_tf.data import BadImage
    from cyclegan_tf.export import Translator
    from cyclegan_tf.translate import ImageTranslator, translate_file
    Image.new("RGB", (3000, 2)).save(tmp_path / "thin.png")  # 6000 px in, 24000 x 16 run
    translator = Translator(tiny_generator, max_pixels=100_000)
    images = ImageTranslator(translator.translate_uint8, translator.max_pixels, translator)
    with pytest.raises(BadImage, match="too large: 3000x2 px runs the network at 24000x16"):
        translate_file(images, str(tmp_path / "thin.png"), str(tmp_path / "out.png"))
    translate_file(images, str(tmp_path / "thin.png"), str(tmp_path / "out.png"), image_size=64)
    assert Image.open(tmp_path / "out.png").size == (64, 64)


def test_export_of_a_run_whose_settings_do_not_fit_its_checkpoint_is_one_line(copy_run, tmp_path):
    run_dir = copy_run()
    path = os.path.join(run_dir, "config.json")
    settings = json.load(open(path))
    json.dump({**settings, "ngf": 4}, open(path, "w"))  # the checkpoint holds ngf 8 networks
    result = run_script("export_graph.py", f"--checkpoint_dir={run_dir}",
                        f"--XtoY_model={tmp_path / 'a'}", f"--YtoX_model={tmp_path / 'b'}")
    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().splitlines() == [line for line in result.stderr.splitlines()
                                                  if line.startswith("error: ")]
    assert "does not hold a generator matching" in result.stderr
    assert not (tmp_path / "a").exists()
