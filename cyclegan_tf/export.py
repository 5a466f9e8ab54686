"""SavedModel translators that plain TensorFlow (tf.saved_model.load, TF Serving) can call.

Signatures of every exported direction:
  serving_default  image_bytes: string [N] (JPEG or PNG) -> image_bytes: the translation, same size
                   and format as each input (grayscale/RGBA are read as RGB; alpha is dropped)
  translate_uint8  images: uint8 [N, H, W, 3]            -> images: uint8, same shape
  translate_float  images: float32 [N, H, W, 3] in [-1, 1] -> images: float32, same shape
Any height and width: images are padded to a multiple of 4 (and images under 16 px a side are
upscaled) for the network, then cropped (and scaled) back. Inputs over max_pixels are refused.
"""
from __future__ import annotations

import json
import os

import keras
import tensorflow as tf

from cyclegan_tf.config import Config, ConfigError
from cyclegan_tf.cyclegan import build_generator

DEFAULT_MAX_PIXELS = 4096 * 4096
MIN_SIDE = 16  # the generator's reflection padding needs at least this much image
METADATA_FILE = os.path.join("assets.extra", "cyclegan_tf.json")


class ExportError(RuntimeError):
    """An export or a model load that cannot be done; the message says why."""


def load_generator(run_dir: str, direction: str = "XtoY") -> tuple[keras.Model, Config]:
    """One trained generator (G for XtoY, F for YtoX) from a run folder's latest checkpoint."""
    if direction not in ("XtoY", "YtoX"):
        raise ConfigError(f"direction must be XtoY or YtoX, got {direction!r}")
    config = Config.load(run_dir)
    latest = tf.train.latest_checkpoint(run_dir)
    if latest is None:
        raise ExportError(f"no checkpoint in {run_dir}: train first (train.py writes ckpt-N there)")
    name = "G" if direction == "XtoY" else "F"
    generator = build_generator(config.replace(mixed_precision="off"), name)
    status = tf.train.Checkpoint(**{name: generator}).restore(latest)
    status.expect_partial()
    try:
        status.assert_existing_objects_matched()
    except AssertionError as e:
        raise ExportError(f"{latest} does not hold a generator matching {run_dir}/config.json: "
                          f"{str(e).splitlines()[0]}") from None
    return generator, config


class Translator(tf.Module):
    """A generator wrapped with the input handling that serving needs."""

    def __init__(self, generator: keras.Model, max_pixels: int = DEFAULT_MAX_PIXELS):
        super().__init__(name="translator")
        self.generator = generator
        self.max_pixels = max_pixels

    def _check_size(self, height: tf.Tensor, width: tf.Tensor) -> tf.Operation:
        pixels = tf.cast(height, tf.int64) * tf.cast(width, tf.int64)
        return tf.debugging.assert_less_equal(
            pixels, tf.constant(self.max_pixels, tf.int64),
            message=f"image too large: over max_pixels={self.max_pixels} (set at export)")

    def _translate(self, images: tf.Tensor) -> tf.Tensor:
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        with tf.control_dependencies([
                self._check_size(height, width),
                tf.debugging.assert_positive(tf.minimum(height, width), message="empty image")]):
            small = tf.minimum(height, width) < MIN_SIDE
        scale = tf.cast(MIN_SIDE, tf.float32) / tf.cast(tf.minimum(height, width), tf.float32)
        upscaled = tf.cast(tf.math.ceil(tf.cast(shape[1:3], tf.float32) * scale), tf.int32)
        x = tf.cond(small, lambda: tf.image.resize(images, upscaled, "bicubic"), lambda: images)
        x_height, x_width = tf.shape(x)[1], tf.shape(x)[2]
        pad = [[0, 0], [0, (-x_height) % 4], [0, (-x_width) % 4], [0, 0]]
        y = self.generator(tf.pad(x, pad, mode="REFLECT"), training=False)[:, :x_height, :x_width]
        y = tf.cond(small, lambda: tf.image.resize(y, [height, width], "area"), lambda: y)
        return tf.clip_by_value(y, -1.0, 1.0)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def translate_float(self, images):
        return {"images": self._translate(images)}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def translate_uint8(self, images):
        y = self._translate(tf.cast(images, tf.float32) / 127.5 - 1.0)
        return {"images": tf.cast(tf.round((y + 1.0) * 127.5), tf.uint8)}

    def _translate_bytes(self, encoded: tf.Tensor) -> tf.Tensor:
        length = tf.strings.length(encoded)
        is_jpeg = tf.strings.substr(encoded, 0, 3) == b"\xff\xd8\xff"
        is_png = tf.strings.substr(encoded, 0, 8) == b"\x89PNG\r\n\x1a\n"
        checks = [
            tf.debugging.assert_positive(length, message="empty image bytes"),
            tf.debugging.Assert(tf.logical_or(is_jpeg, is_png),
                                ["unsupported image data: send JPEG or PNG bytes"]),
        ]
        with tf.control_dependencies(checks):
            height, width = tf.cond(is_jpeg, lambda: _jpeg_size(encoded),
                                    lambda: _png_size(encoded))
        with tf.control_dependencies([self._check_size(height, width)]):
            image = tf.io.decode_image(encoded, channels=3, dtype=tf.uint8,
                                       expand_animations=False)
        translated = self.translate_uint8(image[tf.newaxis])["images"][0]
        return tf.cond(is_jpeg, lambda: tf.io.encode_jpeg(translated, quality=95),
                       lambda: tf.io.encode_png(translated))

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="image_bytes")])
    def translate_bytes(self, image_bytes):
        return {"image_bytes": tf.map_fn(self._translate_bytes, image_bytes,
                                         fn_output_signature=tf.string)}


def _jpeg_size(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    shape = tf.image.extract_jpeg_shape(encoded)
    return shape[0], shape[1]


def _png_size(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    # The IHDR chunk: big-endian width then height at bytes 16-23.
    tf.debugging.assert_greater_equal(tf.strings.length(encoded), 24, message="truncated PNG")
    header = tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8)
    values = tf.cast(header, tf.int64)
    width = values[0] * 2**24 + values[1] * 2**16 + values[2] * 2**8 + values[3]
    height = values[4] * 2**24 + values[5] * 2**16 + values[6] * 2**8 + values[7]
    return tf.cast(height, tf.int32), tf.cast(width, tf.int32)


def export_translator(generator: keras.Model, export_dir: str, metadata: dict | None = None,
                      max_pixels: int = DEFAULT_MAX_PIXELS) -> str:
    """Writes a SavedModel with the signatures listed in this module's docstring."""
    translator = Translator(generator, max_pixels)
    signatures = {
        "serving_default": translator.translate_bytes.get_concrete_function(),
        "translate_uint8": translator.translate_uint8.get_concrete_function(),
        "translate_float": translator.translate_float.get_concrete_function(),
    }
    tmp_dir = export_dir.rstrip("/") + ".incomplete"
    if os.path.exists(tmp_dir):
        tf.io.gfile.rmtree(tmp_dir)
    tf.saved_model.save(translator, tmp_dir, signatures=signatures)
    os.makedirs(os.path.join(tmp_dir, "assets.extra"), exist_ok=True)
    with open(os.path.join(tmp_dir, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump({**(metadata or {}), "max_pixels": max_pixels}, f, indent=2, sort_keys=True)
    if os.path.exists(export_dir):  # replaced only once the new one is complete
        tf.io.gfile.rmtree(export_dir)
    os.replace(tmp_dir, export_dir)
    return export_dir


def export_run(run_dir: str, XtoY_model: str, YtoX_model: str,
               max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[str, str]:
    """Exports both directions of a trained run, reading its settings from its config.json."""
    paths = []
    for direction, path in (("XtoY", XtoY_model), ("YtoX", YtoX_model)):
        generator, config = load_generator(run_dir, direction)
        metadata = {"direction": direction, "run_dir": os.path.abspath(run_dir),
                    "checkpoint": tf.train.latest_checkpoint(run_dir), "config": config.to_dict()}
        parent = os.path.dirname(os.path.abspath(path))
        os.makedirs(parent, exist_ok=True)
        paths.append(export_translator(generator, path, metadata, max_pixels))
    return paths[0], paths[1]
