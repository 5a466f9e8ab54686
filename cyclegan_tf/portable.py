"""ONNX and LiteRT (TFLite) copies of a generator, written beside its SavedModel.

Both files hold the same computation as the SavedModel's translate_float signature for inputs of
at least 16 px a side (4 to 15 px run, but without the SavedModel's upscaling, so they differ):
  input  "images": float32 [N, H, W, 3] in [-1, 1], NHWC; N, H and W dynamic
  output "translated": float32 [N, H, W, 3] in [-1, 1]
Any height and width: the image is reflection-padded to a multiple of 4 inside the file, then
cropped back, as the SavedModel does. What stays SavedModel-only: the bytes (JPEG/PNG) and uint8
signatures, the upscaling of images under 16 px a side, and the max_pixels check.

The converters run on the generator's own call traced in a tf.function (not on the SavedModel's
serving signature, whose input checks and image decoding they cannot convert): reflection padding
becomes ONNX Pad(mode=reflect) / TFLite MIRROR_PAD, instance norm (Keras GroupNormalization)
becomes plain reshape/mean/variance arithmetic, and only built-in ops are allowed, so an op a
runtime lacks is a conversion error rather than a silently different model.

The converters' and runtimes' packages are an optional extra: pip install -e ".[export]".
Nothing here imports them (or TensorFlow) until a function needs them.
"""
from __future__ import annotations

import importlib
import os
import re
from typing import TYPE_CHECKING, Callable, Sequence

if TYPE_CHECKING:
    import keras
    import numpy as np

PORTABLE_FORMATS = ("onnx", "tflite")
FORMATS = ("saved_model", *PORTABLE_FORMATS)
FILE_NAMES = {"onnx": "model.onnx", "tflite": "model.tflite"}
ONNX_OPSET = 17
INPUT_NAME = "images"
OUTPUT_NAME = "translated"
EXTRA_COMMAND = 'pip install -e ".[export]"'


def parse_formats(text: str | Sequence[str]) -> list[str]:
    """'saved_model,onnx' (or a list) -> ['saved_model', 'onnx']; unknown names are a ConfigError.

    The SavedModel is always written (the portable files live in its folder), so it is added
    when missing; order follows FORMATS and duplicates are dropped.
    """
    from cyclegan_tf.config import ConfigError
    names = text.split(",") if isinstance(text, str) else list(text)
    names = [name.strip().lower() for name in names if name.strip()]
    unknown = [name for name in names if name not in FORMATS]
    if unknown:
        raise ConfigError(f"unknown export format(s) {', '.join(map(repr, unknown))}: "
                          f"choose from {', '.join(FORMATS)} (comma-separated)")
    return [name for name in FORMATS if name in names or name == "saved_model"]


def _require(module: str, purpose: str):
    """Imports an optional dependency, or says which command installs it."""
    try:
        return importlib.import_module(module)
    except ImportError as e:
        from cyclegan_tf.errors import ExportError
        raise ExportError(f"{purpose} needs the optional package {module!r} ({e}): "
                          f"install it with {EXTRA_COMMAND}") from e


def require_formats(formats: str | Sequence[str]) -> list[str]:
    """parse_formats, then checks that the packages the portable formats need are installed, so
    that a missing extra fails before anything is written."""
    names = parse_formats(formats)
    if "onnx" in names:
        _require("tf2onnx", "ONNX export")
        _require("onnx", "ONNX export")
    # LiteRT files are written by TensorFlow's own converter: nothing extra to check.
    return names


def portable_function(generator: "keras.Model"):
    """The generator as a tf.function on any [N, H, W, 3] float batch: padded to a multiple of 4,
    translated, cropped back and clipped to [-1, 1], exactly as translate_float (H, W >= 16)."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32,
                                                name=INPUT_NAME)])
    def translate(images):
        height, width = tf.shape(images)[1], tf.shape(images)[2]
        # (4 - h % 4) % 4, not (-h) % 4: tf2onnx turns a modulo of a negative number into a
        # negative pad (a crop) in ONNX; with non-negative operands all conventions agree.
        pad = [[0, 0], [0, (4 - height % 4) % 4], [0, (4 - width % 4) % 4], [0, 0]]
        padded = tf.pad(images, pad, mode="REFLECT")
        # A pad by computed amounts loses the static channel count, and LiteRT's converter cannot
        # lower a convolution whose input channels are unknown (it would keep tf.Conv2D, a Flex
        # op): a reshape to [N, H', W', 3] restores it with a built-in op (EnsureShape is not).
        padded = tf.reshape(padded, tf.concat([tf.shape(padded)[:3], [3]], axis=0))
        y = generator(padded, training=False)[:, :height, :width]
        return {OUTPUT_NAME: tf.clip_by_value(y, -1.0, 1.0)}

    return translate


def noise_function(generator: "keras.Model"):
    """A DCGAN / WGAN-GP generator as a tf.function: noise "z" [N, z_dim] -> "images" [N, H, W, 3]
    in [-1, 1], as the generator SavedModel's serving_default."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec([None, generator.z_dim], tf.float32, name="z")])
    def generate(z):
        return {"images": tf.clip_by_value(generator(z, training=False), -1.0, 1.0)}

    return generate


def _function_for(generator: "keras.Model"):
    """A translator's portable_function, or a noise generator's noise_function."""
    return noise_function(generator) if hasattr(generator, "z_dim") else portable_function(generator)


def write_onnx(generator: "keras.Model", path: str) -> str:
    """Converts the generator with tf2onnx (opset 17) into an ONNX file at path."""
    tf2onnx = _require("tf2onnx", "ONNX export")
    onnx = _require("onnx", "ONNX export")
    from cyclegan_tf.errors import ExportError
    function = _function_for(generator)
    try:
        model, _ = tf2onnx.convert.from_function(function, input_signature=function.input_signature,
                                                 opset=ONNX_OPSET)
    except Exception as e:
        raise ExportError(f"tf2onnx cannot convert this generator ({type(e).__name__}: "
                          f"{str(e).splitlines()[0] if str(e) else ''}); nothing was exported: "
                          f"leave onnx out of --formats (e.g. saved_model,tflite)") from e
    # tf2onnx's Python API keeps a TF op it has no mapping for as a node of that name and only
    # logs it: the file would be written and fail in every ONNX runtime. Refuse it here instead.
    unmapped = sorted({node.op_type for node in model.graph.node
                       if not onnx.defs.has(node.op_type, node.domain)})
    if unmapped:
        raise ExportError(f"ONNX has no op for this generator's TF ops {', '.join(unmapped)} "
                          f"(opset {ONNX_OPSET}); nothing was exported: leave onnx out of "
                          f"--formats (e.g. saved_model,tflite)")
    onnx.save_model(model, path)
    return path


def write_tflite(generator: "keras.Model", path: str) -> str:
    """Converts the generator with TF's own converter into a LiteRT (.tflite) file at path."""
    import tensorflow as tf
    from tensorflow.python.framework.convert_to_constants import (
        convert_variables_to_constants_v2)
    concrete = _function_for(generator).get_concrete_function()
    # Without freezing, the converter keeps Keras 3's variables as READ_VARIABLE ops and the
    # interpreter returns NaN or fails; frozen, the weights become constants.
    frozen = convert_variables_to_constants_v2(concrete)
    converter = tf.lite.TFLiteConverter.from_concrete_functions([frozen], generator)
    # Built-in ops only: a TF op without a LiteRT kernel fails here instead of needing Flex.
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    try:
        content = converter.convert()
    except Exception as e:  # tf.lite's ConverterError: pages of MLIR, the op names inside
        from cyclegan_tf.errors import ExportError
        ops = sorted(set(re.findall(r"'(tf\.\w+)' op is neither a custom op", str(e))))
        raise ExportError(f"LiteRT cannot convert this generator (TF ops without a LiteRT kernel: "
                          f"{', '.join(ops) or str(e).splitlines()[0]}); nothing was exported: "
                          f"leave tflite out of --formats (e.g. saved_model,onnx)") from e
    with open(path, "wb") as f:
        f.write(content)
    return path


def write_portable(generator: "keras.Model", folder: str, formats: Sequence[str]) -> list[str]:
    """Writes FILE_NAMES[format] into folder for each of formats ("onnx", "tflite"; any
    "saved_model" is ignored); returns the paths written, in the order of formats."""
    writers = {"onnx": write_onnx, "tflite": write_tflite}
    paths = []
    for name in require_formats(formats):
        if name in writers:
            paths.append(writers[name](generator, os.path.join(folder, FILE_NAMES[name])))
    return paths


def onnx_runner(path: str, threads: int | None = None) -> Callable[["np.ndarray"], "np.ndarray"]:
    """An onnxruntime session on the CPU as a function of its one input: float32 images
    [N, H, W, 3] -> the same shape (a translator), or noise [N, z_dim] -> images (a generator)."""
    ort = _require("onnxruntime", "Running an ONNX model")
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
    session = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])

    input_name = session.get_inputs()[0].name

    def run(inputs: "np.ndarray") -> "np.ndarray":
        return session.run(None, {input_name: inputs})[0]
    return run


def tflite_runner(path: str, threads: int | None = None) -> Callable[["np.ndarray"], "np.ndarray"]:
    """A LiteRT interpreter as a function: float32 [N, H, W, 3] -> same shape. The interpreter is
    resized (and its tensors reallocated) whenever the input shape changes."""
    litert = _require("ai_edge_litert.interpreter", "Running a LiteRT model")
    interpreter = litert.Interpreter(model_path=path, num_threads=threads)
    interpreter.allocate_tensors()
    input_index = interpreter.get_input_details()[0]["index"]
    output_index = interpreter.get_output_details()[0]["index"]

    def run(images: "np.ndarray") -> "np.ndarray":
        if tuple(interpreter.get_input_details()[0]["shape"]) != images.shape:
            interpreter.resize_tensor_input(input_index, images.shape)
            interpreter.allocate_tensors()
        interpreter.set_tensor(input_index, images)
        interpreter.invoke()
        return interpreter.get_tensor(output_index)
    return run
