"""SavedModel translators that plain TensorFlow (tf.saved_model.load, TF Serving) can call.

Signatures of every exported direction:
  serving_default  image_bytes: string [N] (JPEG or PNG) -> image_bytes: the translation, same size
                   and format as each input (grayscale/RGBA are read as RGB; alpha is dropped)
  translate_uint8  images: uint8 [N, H, W, 3]            -> images: uint8, same shape
  translate_float  images: float32 [N, H, W, 3] in [-1, 1] -> images: float32, same shape
Any height and width: images are padded to a multiple of 4 (and images under 16 px a side are
upscaled) for the network, then cropped (and scaled) back. max_pixels bounds the size the network
processes (processed_size: after that upscale and padding), per image; a larger or empty input is
refused with InvalidArgumentError before anything of its size is decoded or allocated.
"""
from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence

import keras
import tensorflow as tf

from cyclegan_tf import files, portable
from cyclegan_tf.config import Config, ConfigError
from cyclegan_tf.cyclegan import build_generator
from cyclegan_tf.data import MAX_TRANSLATE_PIXELS
from cyclegan_tf.errors import ExportError
from cyclegan_tf.faces import LAYOUT_FILE

MIN_SIDE = 16  # the generator's reflection padding needs at least this much image
METADATA_FILE = files.SAVED_MODEL_MARKER  # the settings of the export, and its marker


def load_generator(run_dir: str, direction: str = "XtoY") -> tuple[keras.Model, Config]:
    """One trained generator (G for XtoY, F for YtoX) from a run folder's latest checkpoint."""
    if direction not in ("XtoY", "YtoX"):
        raise ConfigError(f"direction must be XtoY or YtoX, got {direction!r}")
    config = Config.load(run_dir)
    if config.model != "cyclegan":  # a noise -> image generator: sampling.py exports it
        raise ExportError(f"{run_dir} is a {config.model} run: it makes new images rather than "
                          "translating them. Export it with --generator_model NAME")
    name = "G" if direction == "XtoY" else "F"
    generator = build_generator(config.replace(mixed_precision="off"), name)
    restore_latest(run_dir, **{name: generator})
    return generator, config


def restore_latest(run_dir: str, step: int | None = None, **networks: keras.Model) -> str:
    """Restores the named networks (checkpoint names: G, F, G_ema...) from the run's latest
    checkpoint (or its ckpt-STEP), leaving out the rest of it; returns the checkpoint's path."""
    latest = tf.train.latest_checkpoint(run_dir)
    if latest is None:
        raise ExportError(f"no checkpoint in {run_dir}: train first (train.py writes ckpt-N there)")
    if step is not None:
        kept = tf.train.get_checkpoint_state(run_dir).all_model_checkpoint_paths
        wanted = [path for path in kept if path.endswith(f"ckpt-{step}")]
        if not wanted:
            steps = ", ".join(path.rsplit("-", 1)[-1] for path in kept)
            raise ExportError(f"{run_dir} has no checkpoint of step {step}; it keeps steps {steps} "
                              "(train.py --keep_checkpoints sets how many are kept)")
        latest = wanted[0]
    try:  # restore() itself raises on a shape mismatch, eagerly
        status = tf.train.Checkpoint(**networks).restore(latest)
        status.expect_partial()
        status.assert_existing_objects_matched()
    except (AssertionError, ValueError, tf.errors.OpError) as e:
        raise ExportError(f"{latest} does not hold a generator matching {run_dir}/config.json: "
                          f"{str(e).splitlines()[0]}") from None
    return latest


def processed_size(height: int, width: int) -> tuple[int, int]:
    """The size the generator runs at for a height x width image: an image under MIN_SIDE px a
    side is first upscaled (aspect kept, sides rounded up) to MIN_SIDE px on its shorter side,
    then both sides are padded up to a multiple of 4. max_pixels bounds this, not the input size:
    a 1 x 16,777,216 image is processed at 16 x 268,435,456."""
    short = min(height, width)
    if 0 < short < MIN_SIDE:
        height, width = -(-height * MIN_SIDE // short), -(-width * MIN_SIDE // short)
    return height + -height % 4, width + -width % 4


def _upscaled_size(height: tf.Tensor, width: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    """processed_size's upscale in graph ops, on int64 sides (exact integers: float32 rounding
    could make the check and the resize disagree by a pixel)."""
    short = tf.maximum(tf.minimum(height, width), 1)
    small = short < MIN_SIDE
    return (tf.where(small, (height * MIN_SIDE + short - 1) // short, height),
            tf.where(small, (width * MIN_SIDE + short - 1) // short, width))


class Translator(tf.Module):
    """A generator wrapped with the input handling that serving needs."""

    def __init__(self, generator: keras.Model, max_pixels: int = MAX_TRANSLATE_PIXELS):
        super().__init__(name="translator")
        self.generator = generator
        self.max_pixels = max_pixels

    def _check_size(self, height: tf.Tensor, width: tf.Tensor) -> list[tf.Operation]:
        """Asserts that a height x width image is not empty and that processed_size(height,
        width) fits max_pixels: the upscale of thin images is what could exhaust memory."""
        height, width = tf.cast(height, tf.int64), tf.cast(width, tf.int64)
        up_height, up_width = _upscaled_size(height, width)
        net_height, net_width = up_height + (-up_height) % 4, up_width + (-up_width) % 4
        return [
            tf.debugging.assert_positive(tf.minimum(height, width), message="empty image"),
            tf.debugging.Assert(net_height * net_width <= self.max_pixels, [
                "image too large: height, width", height, width, "run by the network at",
                net_height, net_width, f"(upscaled to {MIN_SIDE} px a side, padded to a multiple "
                f"of 4), over max_pixels={self.max_pixels} (set at export)"]),
        ]

    def _checked(self, images: tf.Tensor) -> tf.Tensor:
        """images, once _check_size has passed: nothing downstream of it runs on a refused size."""
        shape = tf.shape(images, out_type=tf.int64)
        with tf.control_dependencies(self._check_size(shape[1], shape[2])):
            return tf.identity(images)

    def _translate(self, images: tf.Tensor) -> tf.Tensor:
        """Float images in [-1, 1], already _checked."""
        shape = tf.shape(images)
        height, width = shape[1], shape[2]
        small = tf.minimum(height, width) < MIN_SIDE
        upscaled = tf.cast(tf.stack(_upscaled_size(tf.cast(height, tf.int64),
                                                   tf.cast(width, tf.int64))), tf.int32)
        x = tf.cond(small, lambda: tf.image.resize(images, upscaled, "bicubic"), lambda: images)
        x_height, x_width = tf.shape(x)[1], tf.shape(x)[2]
        pad = [[0, 0], [0, (-x_height) % 4], [0, (-x_width) % 4], [0, 0]]
        y = self.generator(tf.pad(x, pad, mode="REFLECT"), training=False)[:, :x_height, :x_width]
        y = tf.cond(small, lambda: tf.image.resize(y, [height, width], "area"), lambda: y)
        return tf.clip_by_value(y, -1.0, 1.0)

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.float32, name="images")])
    def translate_float(self, images):
        return {"images": self._translate(self._checked(images))}

    @tf.function(input_signature=[tf.TensorSpec([None, None, None, 3], tf.uint8, name="images")])
    def translate_uint8(self, images):
        # Checked before the float copy, which is 4 times the input's size.
        y = self._translate(tf.cast(self._checked(images), tf.float32) / 127.5 - 1.0)
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
        with tf.control_dependencies(self._check_size(height, width)):  # from the header alone
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
    shape = tf.image.extract_jpeg_shape(encoded, output_type=tf.int64)
    return shape[0], shape[1]


def _png_size(encoded: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
    # The IHDR chunk: big-endian width then height at bytes 16-23.
    tf.debugging.assert_greater_equal(tf.strings.length(encoded), 24, message="truncated PNG")
    header = tf.io.decode_raw(tf.strings.substr(encoded, 16, 8), tf.uint8)
    values = tf.cast(header, tf.int64)
    width = values[0] * 2**24 + values[1] * 2**16 + values[2] * 2**8 + values[3]
    height = values[4] * 2**24 + values[5] * 2**16 + values[6] * 2**8 + values[7]
    return height, width  # int64: a header may claim up to 2**32 - 1


def export_translator(generator: keras.Model, export_dir: str, metadata: dict | None = None,
                      max_pixels: int = MAX_TRANSLATE_PIXELS,
                      formats: Sequence[str] = ("saved_model",),
                      extra_files: Sequence[str] = ()) -> str:
    """Writes a SavedModel with the signatures listed in this module's docstring, plus
    model.onnx / model.tflite in its folder for "onnx" / "tflite" in formats (portable.py), and
    copies of extra_files (the run's face layout) in its assets.extra/."""
    translator = Translator(generator, max_pixels)
    signatures = {
        "serving_default": translator.translate_bytes.get_concrete_function(),
        "translate_uint8": translator.translate_uint8.get_concrete_function(),
        "translate_float": translator.translate_float.get_concrete_function(),
    }
    # Written beside and swapped in when complete (files.py): a crash leaves the old export.
    with files.atomic_folder(export_dir, kind="saved_model") as tmp_dir:
        tf.saved_model.save(translator, tmp_dir, signatures=signatures)
        portable.write_portable(generator, tmp_dir, [f for f in formats if f != "saved_model"])
        write_assets_extra(tmp_dir, {**(metadata or {}), "max_pixels": max_pixels}, extra_files)
    return export_dir


def write_assets_extra(saved_model_dir: str, metadata: dict, extra_files: Sequence[str]) -> None:
    """assets.extra/: this package's metadata (the marker of its own exports) and extra files."""
    folder = os.path.join(saved_model_dir, "assets.extra")
    os.makedirs(folder, exist_ok=True)
    for path in extra_files:
        shutil.copyfile(path, os.path.join(folder, os.path.basename(path)))
    with open(os.path.join(saved_model_dir, METADATA_FILE), "w", encoding="utf-8") as f:
        json.dump(metadata, f, indent=2, sort_keys=True)


def run_extra_files(run_dir: str) -> list[str]:
    """What a run folder holds beside its checkpoints that its exports carry (faces.py)."""
    layout = os.path.join(run_dir, LAYOUT_FILE)
    return [layout] if os.path.isfile(layout) else []


def export_run(run_dir: str, XtoY_model: str, YtoX_model: str,
               max_pixels: int = MAX_TRANSLATE_PIXELS,
               formats: Sequence[str] = ("saved_model",),
               log: Callable[[str], None] = print) -> tuple[str, str]:
    """Exports both directions of a trained run, reading its settings from its config.json.

    Each output path must be new or an earlier export of this package, which is replaced
    (files.check_outputs); anything else is refused before any work."""
    portable.require_formats(formats)  # a missing extra fails before anything is written
    outputs = [files.Output(XtoY_model, "saved_model"), files.Output(YtoX_model, "saved_model")]
    replaced = files.check_outputs(outputs, inputs=[run_dir])
    paths = []
    for direction, path in (("XtoY", XtoY_model), ("YtoX", YtoX_model)):
        generator, config = load_generator(run_dir, direction)
        metadata = {"direction": direction, "run_dir": os.path.abspath(run_dir),
                    "checkpoint": tf.train.latest_checkpoint(run_dir), "config": config.to_dict()}
        paths.append(export_translator(generator, path, metadata, max_pixels,
                                       formats=formats, extra_files=run_extra_files(run_dir)))
        log(f"{'replaced' if path in replaced else 'exported'} {path}")
    return paths[0], paths[1]
