"""ONNX and LiteRT export (issue #14): export_graph.py --formats, parity with the SavedModel,
clear errors for unknown formats and a missing extra."""
from __future__ import annotations

import os
import sys

import numpy as np
import pytest

from tests.conftest import run_script

TOLERANCE = 1e-3  # max abs difference from the SavedModel's translate_float, images in [-1, 1]
# Square, non-square (multiples of 4), and sizes the files pad to a multiple of 4 themselves.
SHAPES = [(1, 32, 32, 3), (2, 48, 36, 3), (1, 30, 42, 3)]


@pytest.fixture(scope="module")
def portable_export(trained_run, tmp_path_factory):
    """Both directions exported once by the CLI with all three formats."""
    root = tmp_path_factory.mktemp("portable")
    paths = {name: str(root / name) for name in ("day2night", "night2day")}
    result = run_script("export_graph.py", "--checkpoint_dir", trained_run,
                        "--XtoY_model", paths["day2night"], "--YtoX_model", paths["night2day"],
                        "--formats", "saved_model,onnx,tflite")
    assert result.returncode == 0, result.stderr[-3000:]
    return {"root": str(root), "paths": paths, "stdout": result.stdout}


def test_cli_writes_onnx_and_tflite_beside_each_saved_model(portable_export):
    for path in portable_export["paths"].values():
        for name in ("saved_model.pb", "model.onnx", "model.tflite"):
            assert os.path.isfile(os.path.join(path, name)), name
        assert f"exported {os.path.join(path, 'model.onnx')}" in portable_export["stdout"]
        assert f"exported {os.path.join(path, 'model.tflite')}" in portable_export["stdout"]
    assert sorted(os.listdir(portable_export["root"])) == ["day2night", "night2day"]  # no leftovers


def test_default_export_writes_saved_model_only(exported):
    for path in exported:
        assert os.path.isfile(os.path.join(path, "saved_model.pb"))
        assert not os.path.exists(os.path.join(path, "model.onnx"))
        assert not os.path.exists(os.path.join(path, "model.tflite"))


@pytest.mark.parametrize("direction", ["day2night", "night2day"])
def test_onnx_and_litert_match_the_saved_model(portable_export, direction):
    import tensorflow as tf
    from cyclegan_tf import portable
    path = portable_export["paths"][direction]
    translate_float = tf.saved_model.load(path).signatures["translate_float"]
    runners = {"onnxruntime": portable.onnx_runner(os.path.join(path, "model.onnx")),
               "litert": portable.tflite_runner(os.path.join(path, "model.tflite"))}
    rng = np.random.default_rng(14)
    for shape in SHAPES:
        images = rng.uniform(-1, 1, shape).astype(np.float32)
        expected = translate_float(images=tf.constant(images))["images"].numpy()
        for runtime, run in runners.items():
            got = run(images)
            assert got.shape == shape, (runtime, got.shape)
            assert np.abs(got - expected).max() < TOLERANCE, (runtime, shape)


def test_converted_graphs_use_standard_ops_only(portable_export):
    """Reflection padding and instance norm become standard ops, nothing custom or dropped."""
    import onnx
    from ai_edge_litert.interpreter import Interpreter
    path = portable_export["paths"]["day2night"]
    model = onnx.load(os.path.join(path, "model.onnx"))
    assert {opset.domain: opset.version for opset in model.opset_import}.get("", 0) >= 17
    assert {node.domain for node in model.graph.node} <= {"", "ai.onnx"}
    pads = [node for node in model.graph.node if node.op_type == "Pad"]
    assert pads and all(onnx.helper.get_attribute_value(a) == b"reflect"
                        for node in pads for a in node.attribute if a.name == "mode")
    dims = model.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [0, 0, 0, 3]  # N, H, W dynamic; 3 channels
    ops = {op["op_name"] for op in
           Interpreter(model_path=os.path.join(path, "model.tflite"))._get_ops_details()}
    assert "MIRROR_PAD" in ops and not any("FLEX" in op or "CUSTOM" in op for op in ops)


def test_parse_formats():
    from cyclegan_tf import portable
    from cyclegan_tf.config import ConfigError
    assert portable.parse_formats("saved_model") == ["saved_model"]
    assert portable.parse_formats("tflite, ONNX") == ["saved_model", "onnx", "tflite"]
    with pytest.raises(ConfigError, match="unknown export format.*'torchscript'.*saved_model"):
        portable.parse_formats("onnx,torchscript")


def test_unknown_format_is_a_clear_cli_error(trained_run, tmp_path):
    result = run_script("export_graph.py", "--checkpoint_dir", trained_run,
                        "--XtoY_model", str(tmp_path / "a"), "--YtoX_model", str(tmp_path / "b"),
                        "--formats", "saved_model,pt")
    assert result.returncode == 2
    assert "unknown export format(s) 'pt'" in result.stderr
    assert "Traceback" not in result.stderr
    assert not os.listdir(tmp_path)


def test_missing_extra_names_the_install_command(trained_run, tmp_path, monkeypatch):
    from cyclegan_tf import export, portable
    # None in sys.modules makes `import tf2onnx` raise ImportError, as if it were not installed.
    for module in ("tf2onnx", "onnxruntime", "ai_edge_litert.interpreter"):
        monkeypatch.setitem(sys.modules, module, None)
    with pytest.raises(export.ExportError, match=r'tf2onnx.*pip install -e "\.\[export\]"'):
        export.export_run(trained_run, str(tmp_path / "a"), str(tmp_path / "b"),
                          formats=["saved_model", "onnx"])
    assert not os.listdir(tmp_path)  # failed before writing anything
    with pytest.raises(export.ExportError, match=r'onnxruntime.*pip install -e "\.\[export\]"'):
        portable.onnx_runner("model.onnx")
    with pytest.raises(export.ExportError, match=r'ai_edge_litert.*pip install -e "\.\[export\]"'):
        portable.tflite_runner("model.tflite")


def test_an_op_litert_lacks_is_a_clear_error_naming_it(tmp_path):
    """A 6-D pad has no LiteRT kernel (StyleGAN's upsampling once had one): the converter's pages
    of MLIR become one ExportError naming the op and the formats that still work."""
    import keras
    import tensorflow as tf
    from cyclegan_tf import export, portable

    class SixDimPad(keras.Model):
        z_dim = 4

        def call(self, z):
            x = tf.reshape(z, [-1, 2, 1, 2, 1, 1])
            x = tf.pad(x, [[0, 0], [0, 0], [0, 1], [0, 0], [0, 1], [0, 0]])
            return tf.tile(tf.reshape(x, [-1, 4, 4, 1]), [1, 1, 1, 3])

    with pytest.raises(export.ExportError, match=r"tf\.Pad.*--formats \(e\.g\. saved_model,onnx\)"):
        portable.write_tflite(SixDimPad(), str(tmp_path / "model.tflite"))
    assert not os.listdir(tmp_path)


def test_an_op_onnx_lacks_is_a_clear_error_and_no_file(tmp_path):
    """tf2onnx's Python API only logs a TF op it cannot map and writes the file anyway, which no
    ONNX runtime can then load: the export refuses it, naming the op, and writes nothing."""
    import keras
    import tensorflow as tf
    from cyclegan_tf import export, portable

    class SingularValues(keras.Model):
        z_dim = 4

        def call(self, z):
            s = tf.linalg.svd(tf.reshape(z, [-1, 2, 2]), compute_uv=False)  # ONNX has no Svd
            return tf.tile(tf.reshape(tf.tile(s, [1, 8]), [-1, 4, 4, 1]), [1, 1, 1, 3])

    with pytest.raises(export.ExportError, match=r"Svd.*--formats \(e\.g\. saved_model,tflite\)"):
        portable.write_onnx(SingularValues(), str(tmp_path / "model.onnx"))
    assert not os.listdir(tmp_path)
