"""Faces in ordinary photos: find them, align them to the layout a model was trained on, and put
the processed face back, so a face model works on a holiday portrait and not only on crops.

  detector = FaceDetector()                           # MTCNN (the faces extra), offline
  layout = FaceLayout.measure(training_crops, detector)   # where its eyes, nose, mouth sit
  for face in detector.detect(photo):                 # every face: box, five landmarks
      crop, matrix = align(photo, face.landmarks, layout, size)
      photo = paste_back(photo, model(crop), matrix)  # only the face region changes

The layout is learned, not assumed: the mean of the five landmarks (eyes, nose, mouth corners)
over the training crops, as fractions of the crop's side. A model trained on CelebA-aligned crops
thus aligns new photos as CelebA does, one trained on UTKFace as UTKFace does. Training measures
it when the data are faces (face_layout.json in the run folder); export copies it into the
SavedModel (assets.extra/face_layout.json); inference --align_faces reads it from there.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import itertools
import json
import os
import sys
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from cyclegan_tf import data, files
from cyclegan_tf.errors import ConfigError, UserError

LAYOUT_FILE = "face_layout.json"
LANDMARKS = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
INSTALL = 'pip install -e ".[faces]"'
MIN_FACE_RATE = 0.5  # a training set where fewer crops hold a face is not a face set


# -- finding faces ---------------------------------------------------------------------------------

def detector_available() -> bool:
    """Whether the faces extra (mtcnn) is installed."""
    return importlib.util.find_spec("mtcnn") is not None


@dataclasses.dataclass(frozen=True)
class Face:
    """One face found in a photo: box (x, y, width, height) in pixels, landmarks [5, 2] (x, y)
    in the order of LANDMARKS, and the detector's confidence."""
    box: tuple[float, float, float, float]
    landmarks: np.ndarray
    score: float

    @property
    def area(self) -> float:
        return self.box[2] * self.box[3]


class FaceDetector:
    """MTCNN (Zhang et al., 2016; the `mtcnn` package, MIT, its weights inside the wheel): faces
    with five landmarks, offline. min_face: the smallest face side it looks for, in pixels."""

    def __init__(self, min_face: int = 20, threshold: float = 0.9):
        self.check_installed()
        from mtcnn import MTCNN
        self._mtcnn = MTCNN()
        self.min_face, self.threshold = min_face, threshold

    @staticmethod
    def check_installed() -> None:
        if not detector_available():
            raise ConfigError(f"face alignment needs the face detector: {INSTALL}")

    def detect(self, image: np.ndarray) -> list[Face]:
        """The faces of a uint8 RGB image [H, W, 3], largest first."""
        image = np.ascontiguousarray(image)
        if min(image.shape[:2]) < 12:  # below MTCNN's smallest window
            return []
        found = self._mtcnn.detect_faces(image, min_face_size=self.min_face)
        faces = [Face(tuple(float(v) for v in f["box"]),
                      np.array([f["keypoints"][k] for k in LANDMARKS], np.float64),
                      float(f["confidence"]))
                 for f in found if f["confidence"] >= self.threshold]
        return sorted(faces, key=lambda face: -face.area)


# -- the layout a model was trained on -------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class FaceLayout:
    """Where the five landmarks sit in a model's training crops: [5, 2] (x, y) as fractions of
    the crop's side (0, 0 the top-left corner, 1, 1 the bottom-right)."""
    points: tuple[tuple[float, float], ...]
    measured_on: int = 0  # crops it is the mean of
    source: str = ""  # what they were

    def pixels(self, size: int) -> np.ndarray:
        return np.asarray(self.points, np.float64) * size

    def to_dict(self) -> dict:
        return {"landmarks": list(LANDMARKS), "points": [list(p) for p in self.points],
                "measured_on": self.measured_on, "source": self.source}

    @classmethod
    def from_dict(cls, data: dict) -> "FaceLayout":
        points = np.asarray(data["points"], np.float64)
        if points.shape != (len(LANDMARKS), 2) or not np.isfinite(points).all():
            raise ValueError(f"a face layout has {len(LANDMARKS)} (x, y) points, got {points}")
        return cls(tuple(tuple(float(v) for v in p) for p in points),
                   int(data.get("measured_on", 0)), str(data.get("source", "")))

    @classmethod
    def measure(cls, images: Sequence[np.ndarray], detector: FaceDetector,
                source: str = "") -> "FaceLayout | None":
        """The mean landmark positions of the images' largest faces, or None when fewer than
        half of the images hold one (not a set of face crops)."""
        points = []
        for image in images:
            faces = detector.detect(image)
            if faces:
                height, width = image.shape[:2]
                # Pixel centres, as align() takes landmarks: pixel (i, j) is the point (i + 0.5, j + 0.5).
                points.append((faces[0].landmarks + 0.5) / np.array([width, height]))
        if not images or len(points) < MIN_FACE_RATE * len(images):
            return None
        mean = np.mean(points, axis=0)
        return cls(tuple(tuple(round(float(v), 4) for v in p) for p in mean), len(points), source)

    def save(self, folder: str) -> str:
        path = os.path.join(folder, LAYOUT_FILE)
        with files.atomic_file(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2)
        return path

    @classmethod
    def load(cls, model: str) -> "FaceLayout":
        """The layout stored with a run folder or in an exported SavedModel (or a
        face_layout.json file itself)."""
        for path in (model, os.path.join(model, LAYOUT_FILE),
                     os.path.join(model, "assets.extra", LAYOUT_FILE)):
            if os.path.isfile(path):
                try:
                    with open(path, encoding="utf-8") as f:
                        return cls.from_dict(json.load(f))
                except (OSError, ValueError, KeyError, TypeError) as e:
                    raise ConfigError(f"{path} is not a readable face layout ({e}): measure it "
                                      f"again (python -m cyclegan_tf.faces layout)") from None
        raise ConfigError(
            f"{model} has no face layout ({LAYOUT_FILE}): training measures it when the faces "
            f"extra is installed ({INSTALL}). Measure it from the model's training images with: "
            f"python -m cyclegan_tf.faces layout --images DIR_OR_TFRECORDS --model {model}")


# The default of build_data.py --align_faces: the mean landmarks of 300 UTKFace aligned crops
# (loose crops with hair and chin, as CycleGAN face sets are), as fractions of the side.
STANDARD_LAYOUT = FaceLayout(((0.299, 0.286), (0.682, 0.287), (0.491, 0.520), (0.318, 0.685),
                              (0.657, 0.685)), 300, "UTKFace aligned crops")


def training_view(image: np.ndarray, image_size: int, load_size: int) -> np.ndarray:
    """An image as training sees it on average: the shorter side resized to load_size, then the
    centre image_size square (the mean of the random crops; data.make_dataset)."""
    picture = data.resize_shorter_side(Image.fromarray(image), load_size)
    left, top = (picture.width - image_size) // 2, (picture.height - image_size) // 2
    return np.asarray(picture.crop((left, top, left + image_size, top + image_size)))


def measure_training_layout(images: Iterable[np.ndarray], image_size: int, load_size: int,
                            detector: FaceDetector | None = None, limit: int = 64,
                            screen: int = 8, source: str = "") -> FaceLayout | None:
    """The layout of a training set's crops (as training sees them), or None for a set that is
    not faces. The first `screen` images decide that, so other data cost a second."""
    detector = detector or FaceDetector()
    views = [training_view(image, image_size, load_size)
             for image in itertools.islice(images, limit)]
    if FaceLayout.measure(views[:screen], detector) is None:
        return None
    return FaceLayout.measure(views, detector, source)


# -- aligning a face and putting it back -----------------------------------------------------------

def similarity_transform(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The 2x3 matrix [[a, -b, tx], [b, a, ty]] of the similarity (scale, rotation, shift) that
    maps the source points onto the target points with the least squared error (Umeyama, 1991,
    without reflection)."""
    source, target = np.asarray(source, np.float64), np.asarray(target, np.float64)
    source_mean, target_mean = source.mean(axis=0), target.mean(axis=0)
    s, t = source - source_mean, target - target_mean
    # For points as complex numbers, the best a + ib is sum(conj(s) t) / sum(|s|^2).
    denominator = np.sum(s ** 2)
    if denominator < 1e-12:
        raise ValueError("the source points coincide: no transform is defined")
    a = np.sum(s[:, 0] * t[:, 0] + s[:, 1] * t[:, 1]) / denominator
    b = np.sum(s[:, 0] * t[:, 1] - s[:, 1] * t[:, 0]) / denominator
    rotation = np.array([[a, -b], [b, a]])
    shift = target_mean - rotation @ source_mean
    return np.hstack([rotation, shift[:, None]])


def invert(matrix: np.ndarray) -> np.ndarray:
    """The inverse of a 2x3 affine matrix."""
    full = np.vstack([matrix, [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def _warp(image: Image.Image, matrix: np.ndarray, size: tuple[int, int],
          resample: int = Image.BICUBIC) -> Image.Image:
    """image mapped by matrix (its pixel coordinates to the output's), size (width, height).
    PIL asks for the inverse: for each output pixel, where to read in the input. Coordinates are
    those of pixel centres: pixel (i, j) is the point (i + 0.5, j + 0.5)."""
    inverse = invert(matrix)
    return image.transform(size, Image.AFFINE, data=tuple(inverse.ravel()), resample=resample)


def align(photo: np.ndarray, landmarks: np.ndarray, layout: FaceLayout,
          size: int) -> tuple[np.ndarray, np.ndarray]:
    """The face cropped and rotated as the layout says, size x size, and the 2x3 matrix that
    maps photo coordinates to crop coordinates (paste_back's way home)."""
    matrix = similarity_transform(np.asarray(landmarks) + 0.5, layout.pixels(size))
    crop = _warp(Image.fromarray(photo), matrix, (size, size))
    return np.asarray(crop), matrix


def face_mask(size: int, feather: float = 0.12) -> np.ndarray:
    """float [size, size] in [0, 1]: 1 inside, falling smoothly to 0 at the crop's edges over
    feather * size pixels, so a pasted face has no seam."""
    ramp = np.clip((np.minimum(np.arange(size), np.arange(size)[::-1]) + 0.5)
                   / max(feather * size, 1.0), 0.0, 1.0)
    ramp = ramp * ramp * (3 - 2 * ramp)  # smoothstep
    return np.outer(ramp, ramp)


def paste_back(photo: np.ndarray, crop: np.ndarray, matrix: np.ndarray,
               feather: float = 0.12) -> np.ndarray:
    """The photo with the processed crop warped back where align took it from, blended through
    face_mask. Every pixel outside that mask's footprint keeps its exact value."""
    height, width = photo.shape[:2]
    size = crop.shape[0]
    back = invert(matrix)  # crop -> photo
    corners = np.array([[0, 0, 1], [size, 0, 1], [0, size, 1], [size, size, 1]], np.float64)
    footprint = corners @ back.T
    left, top = np.floor(footprint.min(axis=0)).astype(int) - 1
    right, bottom = np.ceil(footprint.max(axis=0)).astype(int) + 1
    left, top = max(left, 0), max(top, 0)
    right, bottom = min(right, width), min(bottom, height)
    if left >= right or top >= bottom:
        return photo.copy()
    # Warp into the footprint's box only: a face in a 24-megapixel photo costs its own size.
    to_box = np.array([[1.0, 0.0, -left], [0.0, 1.0, -top]])
    box_matrix = to_box @ np.vstack([back, [0.0, 0.0, 1.0]])
    box = (right - left, bottom - top)
    # _warp takes the forward map (source -> output): here crop -> box.
    face = np.asarray(_warp(Image.fromarray(crop), box_matrix, box), np.float64)
    mask = np.asarray(_warp(Image.fromarray(face_mask(size, feather).astype(np.float32), "F"),
                            box_matrix, box, Image.BILINEAR), np.float64)[..., None]
    mask = np.clip(mask, 0.0, 1.0)
    result = photo.copy()
    region = result[top:bottom, left:right].astype(np.float64)
    blended = np.round(region * (1.0 - mask) + face * mask).astype(np.uint8)
    result[top:bottom, left:right] = np.where(mask > 0, blended, result[top:bottom, left:right])
    return result


# -- photos ----------------------------------------------------------------------------------------

@dataclasses.dataclass
class PhotoResult:
    """What process_photo did: the new photo (None when no face was found), each face's box,
    and its aligned crop beside the processed crop (for --crops)."""
    photo: np.ndarray | None
    boxes: list[tuple[float, float, float, float]]
    pairs: list[np.ndarray]


def process_photo(photo: np.ndarray, process: Callable[[np.ndarray], np.ndarray],
                  detector: FaceDetector, layout: FaceLayout, size: int,
                  all_faces: bool = True) -> PhotoResult:
    """Every face of the photo (or the largest) aligned to the layout at size x size, processed
    (a uint8 [size, size, 3] -> uint8 of the same shape callable, e.g. a translator) and pasted
    back at the photo's own resolution."""
    faces = detector.detect(photo)
    if not all_faces:
        faces = faces[:1]
    if not faces:
        return PhotoResult(None, [], [])
    result, pairs = photo, []
    for face in faces:
        crop, matrix = align(photo, face.landmarks, layout, size)
        processed = np.asarray(process(crop))
        result = paste_back(result, processed, matrix)
        pairs.append(np.concatenate([crop, processed], axis=1))
    return PhotoResult(result, [face.box for face in faces], pairs)


def face_cropper(size: int, layout: FaceLayout | None = None, all_faces: bool = False,
                 detector: FaceDetector | None = None) -> Callable[[np.ndarray], list[np.ndarray]]:
    """photo -> its largest face (or every face) aligned to layout at size x size, for
    build_data.py --align_faces; [] when it has none."""
    layout = layout or STANDARD_LAYOUT
    detector = detector or FaceDetector()

    def crops(photo: np.ndarray) -> list[np.ndarray]:
        found = detector.detect(photo)
        return [align(photo, face.landmarks, layout, size)[0]
                for face in (found if all_faces else found[:1])]
    return crops


# -- a model's layout, after the fact ---------------------------------------------------------------

def model_settings(model: str) -> dict:
    """The training settings of a run folder or of a SavedModel this package exported."""
    for path, key in ((os.path.join(model, "config.json"), None),
                      (os.path.join(model, files.SAVED_MODEL_MARKER), "config")):
        if os.path.isfile(path):
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
            return data[key] if key else data
    raise ConfigError(f"{model} is neither a run folder (config.json) nor a model export_graph.py "
                      "wrote")


def training_images(source: str, limit: int) -> list[np.ndarray]:
    """Up to limit images of a folder (sorted; unreadable files passed over) or of tfrecords."""
    if os.path.isdir(source):
        images = []
        for path in data.list_image_files(source)[0]:
            try:
                images.append(np.asarray(data.read_image(path, min_side=1)[0]))
            except data.BadImage:
                continue
            if len(images) >= limit:
                break
        return images
    return [array for _, array in itertools.islice(data.iterate_images(source), limit)]


def measure_model_layout(model: str, images: str, limit: int = 200,
                         log: Callable[[str], None] = print) -> FaceLayout:
    """Measures the face layout of a model's training images (a folder or tfrecords) as its
    training saw them, and stores it with the model (run folder or SavedModel)."""
    settings = model_settings(model)
    size = int(settings["image_size"])
    load_size = data.training_load_size(size, settings.get("augment", True),
                                        int(settings.get("load_size") or 0))
    layout = measure_training_layout(training_images(images, limit), size, load_size,
                                     limit=limit, source=images)
    if layout is None:
        raise ConfigError(f"fewer than half of the first images of {images} hold a face the "
                          "detector finds: give the model's training face crops")
    folder = model if os.path.isfile(os.path.join(model, "config.json")) else os.path.join(
        model, "assets.extra")
    log(f"wrote {layout.save(folder)} (measured on {layout.measured_on} images)")
    return layout


def main(argv: Sequence[str] | None = None) -> None:
    """python -m cyclegan_tf.faces layout --images DIR_OR_TFRECORDS --model RUN_OR_SAVEDMODEL"""
    import argparse
    parser = argparse.ArgumentParser(prog="python -m cyclegan_tf.faces", description=main.__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    layout = commands.add_parser("layout", help="measure and store a model's face layout")
    layout.add_argument("--images", required=True, help="its training images (folder/tfrecords)")
    layout.add_argument("--model", required=True, help="a run folder or an exported SavedModel")
    layout.add_argument("--limit", type=int, default=200, help="images measured")
    args = parser.parse_args(argv)
    try:
        measure_model_layout(args.model, args.images, args.limit)
    except UserError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)


if __name__ == "__main__":
    main()
