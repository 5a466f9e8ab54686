"""Translate images from Python or from the command line, with an exported SavedModel or a run
folder's latest checkpoint."""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Callable, Union

import numpy as np
import tensorflow as tf
from PIL import Image

from cyclegan_tf.data import IMAGE_EXTENSIONS, BadImage, DataError, read_image
from cyclegan_tf.export import (DEFAULT_MAX_PIXELS, METADATA_FILE, ExportError, Translator,
                                load_generator)

ImageLike = Union[np.ndarray, Image.Image]


class ImageTranslator:
    """Callable on a uint8 RGB array ([H, W, 3] or [N, H, W, 3]) or a PIL image; returns the same
    kind. ImageTranslator.load(path) takes a SavedModel folder or a run folder."""

    def __init__(self, translate_uint8: Callable[[tf.Tensor], dict], max_pixels: int,
                 owner: object = None):
        self._translate_uint8 = translate_uint8
        self.max_pixels = max_pixels
        self._owner = owner  # a tf.function method only holds its object weakly

    @classmethod
    def load(cls, path: str, direction: str = "XtoY") -> "ImageTranslator":
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            loaded = tf.saved_model.load(path)
            return cls(loaded.signatures["translate_uint8"], _max_pixels(path), loaded)
        if os.path.isfile(os.path.join(path, "config.json")):
            generator, _ = load_generator(path, direction)
            translator = Translator(generator)
            return cls(translator.translate_uint8, translator.max_pixels, translator)
        raise ExportError(f"{path} is neither an exported SavedModel (export_graph.py) nor a run "
                          "folder with config.json (train.py)")

    def __call__(self, image: ImageLike) -> ImageLike:
        if isinstance(image, Image.Image):
            return Image.fromarray(self(np.asarray(image.convert("RGB"))))
        array = np.asarray(image)
        if array.dtype != np.uint8 or array.shape[-1:] != (3,) or array.ndim not in (3, 4):
            raise ValueError(f"expected uint8 RGB [H, W, 3] or [N, H, W, 3], got {array.dtype} "
                             f"{array.shape}")
        batch = array[np.newaxis] if array.ndim == 3 else array
        out = self._translate_uint8(images=tf.constant(batch))["images"].numpy()
        return out[0] if array.ndim == 3 else out


def _max_pixels(saved_model_dir: str) -> int:
    try:
        with open(os.path.join(saved_model_dir, METADATA_FILE), encoding="utf-8") as f:
            return int(json.load(f)["max_pixels"])
    except (OSError, ValueError, KeyError):
        return DEFAULT_MAX_PIXELS


@dataclasses.dataclass
class TranslateReport:
    written: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)


def _save(image: Image.Image, path: str) -> None:
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    ext = os.path.splitext(path)[1].lower()
    if ext in (".jpg", ".jpeg"):
        image.save(path, quality=95)
    else:
        image.save(path)


def translate_file(translator: ImageTranslator, input_file: str, output_file: str,
                   image_size: int | None = None) -> None:
    """One image file to one image file. image_size: the classic behaviour (a square of that size);
    None keeps the input's size and aspect."""
    image, _ = read_image(input_file, max_pixels=translator.max_pixels, min_side=1)
    if image_size:
        image = image.resize((image_size, image_size), Image.BICUBIC)
    _save(translator(image), output_file)


def translate_path(translator: ImageTranslator, input_path: str, output_path: str,
                   image_size: int | None = None,
                   log: Callable[[str], None] = print) -> TranslateReport:
    """A file to a file, or every image of a folder into a folder (bad files skipped, listed)."""
    report = TranslateReport()
    if os.path.isfile(input_path):
        if os.path.isdir(output_path):
            output_path = os.path.join(output_path, os.path.basename(input_path))
        try:
            translate_file(translator, input_path, output_path, image_size)
        except BadImage as e:
            raise DataError(f"cannot translate {input_path}: {e}") from None
        report.written.append(output_path)
        return report
    if not os.path.isdir(input_path):
        raise DataError(f"input {input_path} does not exist")
    if os.path.isfile(output_path):
        raise DataError(f"input {input_path} is a folder, so --output must be a folder, "
                        f"but {output_path} is a file")
    names = sorted(n for n in os.listdir(input_path)
                   if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
    if not names:
        raise DataError(f"no image files in {input_path}")
    for name in names:
        source, target = os.path.join(input_path, name), os.path.join(output_path, name)
        try:
            translate_file(translator, source, target, image_size)
            report.written.append(target)
        except (BadImage, tf.errors.InvalidArgumentError) as e:
            report.skipped.append((source, getattr(e, "message", str(e)).strip()))
    log(f"{len(report.written)} images translated into {output_path}; {len(report.skipped)} skipped")
    for path, reason in report.skipped:
        log(f"  skipped {path}: {reason}")
    return report
