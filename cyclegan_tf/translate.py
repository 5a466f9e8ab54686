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

from cyclegan_tf import faces, files
from cyclegan_tf.data import (IMAGE_EXTENSIONS, MAX_TRANSLATE_PIXELS, BadImage, DataError,
                              read_image)
from cyclegan_tf.errors import OutputError
from cyclegan_tf.export import (METADATA_FILE, ExportError, Translator, load_generator,
                                processed_size)
from cyclegan_tf.progress import Progress

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
        return MAX_TRANSLATE_PIXELS


@dataclasses.dataclass
class TranslateReport:
    written: list[str] = dataclasses.field(default_factory=list)
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    faceless: list[str] = dataclasses.field(default_factory=list)  # --align_faces: no face found
    faces: int = 0  # --align_faces: faces translated


def translate_file(translator: ImageTranslator, input_file: str, output_file: str,
                   image_size: int | None = None) -> None:
    """One image file to one image file. image_size: the classic behaviour (a square of that size);
    None keeps the input's size and aspect."""
    image, _ = read_image(input_file, max_pixels=translator.max_pixels, min_side=1)
    if image_size:
        image = image.resize((image_size, image_size), Image.BICUBIC)
    height, width = processed_size(image.height, image.width)  # the translator's own rule
    if height * width > translator.max_pixels:
        raise BadImage(f"too large: {image.width}x{image.height} px runs the network at "
                       f"{width}x{height} (small images are upscaled), over "
                       f"max_pixels={translator.max_pixels}")
    files.save_image(translator(image), output_file)


def plan_translations(input_path: str, output_path: str) -> list[tuple[str, str]]:
    """(source, target) pairs: a file to a file (or into an existing folder), or every image of
    a folder into a folder of the same names. Checked before any work (files.check_outputs): an
    existing target must be an earlier translation of ours, never an input or a user's file."""
    if os.path.isfile(input_path):
        target = output_path
        if os.path.isdir(output_path):
            target = os.path.join(output_path, os.path.basename(input_path))
        pairs = [(input_path, target)]
    elif os.path.isdir(input_path):
        if os.path.isfile(output_path):
            raise DataError(f"input {input_path} is a folder, so --output must be a folder, "
                            f"but {output_path} is a file")
        names = sorted(n for n in os.listdir(input_path)
                       if os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)
        if not names:
            raise DataError(f"no image files in {input_path}")
        pairs = [(os.path.join(input_path, n), os.path.join(output_path, n)) for n in names]
    else:
        raise DataError(f"input {input_path} does not exist")
    if os.path.realpath(input_path) == os.path.realpath(output_path):
        raise OutputError(f"--output {output_path} is the input: the translations would overwrite "
                          "your originals. Give another --output")
    for _, target in pairs:
        if os.path.splitext(target)[1].lower() not in IMAGE_EXTENSIONS:
            raise OutputError(f"cannot write {target}: unknown image type; end the name with one "
                              f"of {', '.join(IMAGE_EXTENSIONS)}")
    files.check_outputs([files.Output(target, "image") for _, target in pairs],
                        inputs=[input_path, *(source for source, _ in pairs)])
    return pairs


def translate_path(translator: ImageTranslator, input_path: str, output_path: str,
                   image_size: int | None = None,
                   log: Callable[[str], None] = print) -> TranslateReport:
    """A file to a file, or every image of a folder into a folder (bad files skipped, listed)."""
    pairs = plan_translations(input_path, output_path)
    report = TranslateReport()
    if os.path.isfile(input_path):
        try:
            translate_file(translator, *pairs[0], image_size)
        except BadImage as e:
            raise DataError(f"cannot translate {input_path}: {e}") from None
        report.written.append(pairs[0][1])
        return report
    progress = Progress(len(pairs), unit="image", every=100)
    for source, target in pairs:
        try:
            translate_file(translator, source, target, image_size)
            report.written.append(target)
        except (BadImage, tf.errors.InvalidArgumentError) as e:
            report.skipped.append((source, getattr(e, "message", str(e)).strip()))
        progress.update()
    progress.close()
    log(f"{len(report.written)} images translated into {output_path}; {len(report.skipped)} skipped")
    for path, reason in report.skipped:
        log(f"  skipped {path}: {reason}")
    return report


def plan_faces(input_path: str, output_path: str, crops_dir: str = "") -> list[tuple[str, str]]:
    """plan_translations, and the --crops folder checked too (before any model loads)."""
    pairs = plan_translations(input_path, output_path)
    if crops_dir:
        files.check_outputs([files.Output(crops_dir, "folder")],
                            inputs=[input_path, output_path])
    return pairs


def translate_faces(translator: ImageTranslator, model: str, input_path: str, output_path: str,
                    crops_dir: str = "", keep_faceless: bool = False,
                    detector: "faces.FaceDetector | None" = None,
                    log: Callable[[str], None] = print) -> TranslateReport:
    """inference --align_faces: in each photo (a file, or every image of a folder) every face is
    found, aligned to the layout the model was trained on, translated, and blended back at the
    photo's own resolution; the rest of the photo keeps its exact pixels. A photo without a face
    is listed and left out, or copied unchanged with keep_faceless. crops_dir: also write each
    aligned face beside its translation (NAME_face0.png, ...).
    model: the run folder or SavedModel translator came from (its face layout and image size)."""
    pairs = plan_faces(input_path, output_path, crops_dir)
    layout = faces.FaceLayout.load(model)  # a model without one fails before any photo
    size = int(faces.model_settings(model)["image_size"])
    detector = detector or faces.FaceDetector()
    report, crops = TranslateReport(), {}
    progress = Progress(len(pairs), unit="photo", every=100)
    for source, target in pairs:
        try:
            # Only the face crops go through the network: any photo the decoder takes will do.
            image, _ = read_image(source, min_side=1)
        except BadImage as e:
            report.skipped.append((source, str(e)))
            continue
        result = faces.process_photo(np.asarray(image), translator, detector, layout, size)
        if result.photo is None:
            report.faceless.append(source)
            if keep_faceless:
                files.save_image(image, target)
                report.written.append(target)
        else:
            files.save_image(Image.fromarray(result.photo), target)
            report.written.append(target)
            report.faces += len(result.boxes)
            stem = os.path.splitext(os.path.basename(source))[0]
            if any(name.startswith(f"{stem}_face") for name in crops):  # a.jpg beside a.png
                stem = os.path.basename(source).replace(".", "_")
            crops.update({f"{stem}_face{i}.png": pair for i, pair in enumerate(result.pairs)})
        progress.update()
    progress.close()
    if crops_dir:
        with files.atomic_folder(crops_dir) as folder:
            for name, pair in crops.items():
                Image.fromarray(pair).save(os.path.join(folder, name))
    photos = len(report.written) - (len(report.faceless) if keep_faceless else 0)
    log(f"{report.faces} faces translated in {photos} photos into {output_path}")
    if report.faceless:
        what = "copied unchanged" if keep_faceless else "left out (--keep_faceless copies them)"
        log(f"{len(report.faceless)} photos without a face found, {what}:")
        for path in report.faceless:
            log(f"  {path}")
    for path, reason in report.skipped:
        log(f"  skipped {path}: {reason}")
    return report
