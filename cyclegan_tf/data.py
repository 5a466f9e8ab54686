"""Images ⇄ tfrecords ⇄ tf.data: every rule about reading, converting and decoding images lives here.

Record schema (that of the classic TF1 build_data.py, so its tfrecords still train):
  image/file_name      bytes  the source file's base name
  image/encoded_image  bytes  JPEG or PNG, 8-bit RGB
  image/height, image/width  int64 (added here; absent from old files, hence optional)
"""
from __future__ import annotations

import contextlib
import dataclasses
import glob
import io
import math
import os
import random
import re
import warnings
from typing import Callable, Iterator, Sequence

import numpy as np
import tensorflow as tf
from PIL import Image, ImageOps, UnidentifiedImageError

from cyclegan_tf import files
from cyclegan_tf.errors import DataError
from cyclegan_tf.progress import Progress

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".webp")
MIN_IMAGE_SIDE = 16  # smaller images carry no usable content for a 70x70 PatchGAN
# Two pixel limits, two costs. Decoding a file costs 3 bytes a pixel, and build_data/evaluate
# shrink what they decode, so big camera photos are fine: the limit only stops decompression bombs
# (30000x30000 headers). Translating runs the generator at full size, hundreds of bytes of
# activations a pixel at ngf=64, so serving and inference need a much smaller budget.
MAX_DECODE_PIXELS = 100_000_000  # default --max_pixels of build_data.py; read_image's limit
MAX_TRANSLATE_PIXELS = 4096 * 4096  # default --max_pixels of export_graph.py (per image served)
CACHE_LIMIT_BYTES = 64 * 2**20  # tfrecords up to this size are decoded once and kept in memory
LOAD_SCALE = 1.12  # augmentation: resize to 1.12x image_size, then random crop (286 for 256)


class BadImage(ValueError):
    """One image file that is skipped; the message is the reason."""


# -- images -----------------------------------------------------------------------------------------

def _to_rgb(image: Image.Image) -> Image.Image:
    """Any PIL mode to 8-bit RGB: transparency over white, 16-bit scaled down, CMYK/palette converted."""
    if image.mode in ("I;16", "I;16B", "I;16L", "I;16N", "I", "F"):
        values = np.asarray(image, dtype=np.float64)
        peak = 65535.0 if image.mode.startswith("I;16") or values.max() > 255 else 255.0
        gray = np.clip(values * (255.0 / peak), 0, 255).round().astype(np.uint8)
        return Image.fromarray(gray, "L").convert("RGB")
    if image.mode == "P" and "transparency" in image.info:
        image = image.convert("RGBA")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La"):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def read_image(path: str, max_pixels: int = MAX_DECODE_PIXELS,
               min_side: int = MIN_IMAGE_SIDE) -> tuple[Image.Image, str]:
    """Opens an image file as 8-bit RGB with its EXIF orientation applied.

    Returns (image, source format). Raises BadImage with a short reason for anything unusable:
    unreadable, not an image, truncated, too large (decompression bomb) or too small.
    """
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with open(path, "rb") as f:
                data = f.read()
            if not data:
                raise BadImage("empty file (0 bytes)")
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > max_pixels:
                raise BadImage(f"too large: {width}x{height} px exceeds max_pixels={max_pixels} "
                               "(a possible decompression bomb)")
            if min(width, height) < min_side:
                raise BadImage(f"too small: {width}x{height} px (need at least {min_side} px a side)")
            source_format = image.format or ""
            image.seek(0)  # animated GIF/WebP: the first frame
            image.load()
            image = ImageOps.exif_transpose(image)
            return _to_rgb(image), source_format
    except BadImage:
        raise
    except Image.DecompressionBombError as e:
        raise BadImage(f"too large: {e}") from None
    except UnidentifiedImageError:
        raise BadImage("not a decodable image (unknown or corrupt format)") from None
    except OSError as e:  # permissions, symlink loops, truncated data
        reason = e.strerror or str(e) or type(e).__name__
        raise BadImage(f"cannot read: {reason}") from None
    except (ValueError, SyntaxError, EOFError) as e:
        raise BadImage(f"corrupt image data: {e}") from None


def resize_shorter_side(image: Image.Image, size: int) -> Image.Image:
    width, height = image.size
    scale = size / min(width, height)
    new_size = (max(size, round(width * scale)), max(size, round(height * scale)))
    return image.resize(new_size, Image.BICUBIC, reducing_gap=3.0)


def encode_image(image: Image.Image, lossy: bool) -> bytes:
    buffer = io.BytesIO()
    if lossy:
        image.save(buffer, format="JPEG", quality=95)
    else:
        image.save(buffer, format="PNG")
    return buffer.getvalue()


def _decodes_in_tensorflow(encoded: bytes, height: int, width: int) -> bool:
    """The training pipeline's own decoder must accept the bytes we write."""
    try:
        decoded = tf.io.decode_image(encoded, channels=3, expand_animations=False)
    except tf.errors.OpError:
        return False
    return tuple(decoded.shape) == (height, width, 3)


def encode_file_for_record(path: str, image_size: int | None = None,
                           max_pixels: int = MAX_DECODE_PIXELS) -> tuple[bytes, int, int]:
    """The bytes to store for one image file, and their height and width.

    A plain RGB JPEG is stored as it is (no recompression, as the classic tool did); anything that
    had to be converted, rotated or resized is re-encoded, as JPEG if the source was lossy, else PNG.
    """
    image, source_format = read_image(path, max_pixels)
    with open(path, "rb") as f:
        original = f.read()
    unchanged = image_size is None and source_format == "JPEG"
    if unchanged:
        with Image.open(io.BytesIO(original)) as raw:
            unchanged = raw.mode == "RGB" and raw.size == image.size and \
                raw.getexif().get(0x0112, 1) == 1  # no EXIF rotation to apply
    if image_size is not None:
        image = resize_shorter_side(image, image_size)
    encoded = original if unchanged else encode_image(image, lossy=source_format in ("JPEG", "WEBP"))
    width, height = image.size
    if not _decodes_in_tensorflow(encoded, height, width):
        encoded = encode_image(image, lossy=False)
        if not _decodes_in_tensorflow(encoded, height, width):
            raise BadImage("TensorFlow cannot decode it even after re-encoding")
    return encoded, height, width


# -- tfrecords --------------------------------------------------------------------------------------

def make_example(file_name: str, encoded: bytes, height: int, width: int) -> bytes:
    def bytes_feature(value: bytes) -> tf.train.Feature:
        return tf.train.Feature(bytes_list=tf.train.BytesList(value=[value]))

    def int_feature(value: int) -> tf.train.Feature:
        return tf.train.Feature(int64_list=tf.train.Int64List(value=[value]))

    return tf.train.Example(features=tf.train.Features(feature={
        "image/file_name": bytes_feature(file_name.encode("utf-8", "surrogateescape")),
        "image/encoded_image": bytes_feature(encoded),
        "image/height": int_feature(height),
        "image/width": int_feature(width),
    })).SerializeToString()


def shard_paths(output_file: str, num_shards: int) -> list[str]:
    if num_shards == 1:
        return [output_file]
    return [f"{output_file}-{i:05d}-of-{num_shards:05d}" for i in range(num_shards)]


@dataclasses.dataclass
class BuildReport:
    """What build_tfrecords did: records written, and every skipped file with its reason."""

    output_files: list[str]
    written: int = 0
    skipped: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    replaced: list[str] = dataclasses.field(default_factory=list)  # earlier tfrecords of ours

    def summary(self) -> str:
        verb = "replaced" if self.replaced else "written to"
        lines = [f"{self.written} images {verb} {', '.join(self.output_files)}; "
                 f"{len(self.skipped)} skipped"]
        lines += [f"  skipped {path}: {reason}" for path, reason in self.skipped]
        return "\n".join(lines)


def prepare_outputs(output_files: Sequence[str], inputs: Sequence[str] = ()) -> list[str]:
    """Refuses outputs that are not new or earlier tfrecords (files.check_outputs), before any
    work; makes their folders. Returns those that will be replaced, stale shards included."""
    outputs = list(output_files) + stale_shards(output_files)
    replaced = files.check_outputs([files.Output(p, "tfrecords") for p in outputs], inputs)
    for path in output_files:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    return replaced


def stale_shards(output_files: Sequence[str]) -> list[str]:
    """Files of an earlier build of the same name with another --num_shards (NAME, or
    NAME-?????-of-?????): left in place, a glob or the base name would read them with the new."""
    earlier = set()
    for base in {re.sub(r"-\d{5}-of-\d{5}$", "", p) for p in output_files}:
        earlier |= {base, *glob.glob(glob.escape(base) + "-?????-of-?????")}
    return sorted(p for p in earlier if os.path.isfile(p) and p not in output_files)


class _AtomicShardWriters:
    """Writes shards to temporary files and renames them into place only when all are complete,
    so an interrupted build never leaves a valid-looking partial file or destroys an old one."""

    def __init__(self, paths: Sequence[str]):
        self.paths = list(paths)
        self.tmp_paths = [files.temporary_path(p) for p in self.paths]
        self.writers = [tf.io.TFRecordWriter(p) for p in self.tmp_paths]
        self.count = 0

    def write(self, record: bytes) -> None:
        self.writers[self.count % len(self.writers)].write(record)
        self.count += 1

    def commit(self) -> None:
        for writer in self.writers:
            writer.close()
        for tmp, path in zip(self.tmp_paths, self.paths):
            os.replace(tmp, path)
        for path in stale_shards(self.paths):  # checked as ours by prepare_outputs
            os.remove(path)

    def abort(self) -> None:
        for writer, tmp in zip(self.writers, self.tmp_paths):
            writer.close()
            if os.path.exists(tmp):
                os.remove(tmp)

    def __enter__(self) -> "_AtomicShardWriters":
        return self

    def __exit__(self, error_type, error, traceback) -> None:
        """Commits a block that ends normally; any exception (or Ctrl+C) aborts it."""
        if error_type is None:
            self.commit()
        else:
            self.abort()


def list_image_files(input_dir: str) -> tuple[list[str], list[tuple[str, str]]]:
    """Image files in input_dir (sorted) and the other entries with why they are not used."""
    if not os.path.exists(input_dir):
        raise DataError(f"input folder {input_dir} does not exist")
    if not os.path.isdir(input_dir):
        raise DataError(f"{input_dir} is not a folder; give the folder that holds the images")
    try:
        names = sorted(os.listdir(input_dir))
    except OSError as e:
        raise DataError(f"cannot list input folder {input_dir}: {e.strerror or e}") from None
    images, others = [], []
    for name in names:
        path = os.path.join(input_dir, name)
        if os.path.isdir(path):
            others.append((path, "a folder (sub-folders are not read)"))
        elif os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
            images.append(path)
        else:
            others.append((path, "not an image file (extension not in "
                                 f"{', '.join(IMAGE_EXTENSIONS)})"))
    return images, others


def build_tfrecords(input_dir: str, output_file: str, image_size: int | None = None,
                    num_shards: int = 1, seed: int = 0, max_pixels: int = MAX_DECODE_PIXELS,
                    log: Callable[[str], None] | None = None,
                    crop_faces: Callable[[np.ndarray], list[np.ndarray]] | None = None
                    ) -> BuildReport:
    """Converts every usable image of input_dir into tfrecords (shuffled with seed). Progress
    goes to log every 1000 files (None: a bar on a terminal, else lines on stderr).
    crop_faces: photos in, aligned face crops out (faces.face_cropper): each crop is a record
    (NAME_face0.png, ...), and a photo without a face is skipped with that reason."""
    if num_shards < 1:
        raise DataError(f"num_shards must be >= 1, got {num_shards}")
    images, others = list_image_files(input_dir)
    if not images:
        raise DataError(f"no image files in {input_dir} (looked for {', '.join(IMAGE_EXTENSIONS)}"
                        f"; found {len(others)} other entries)")
    random.Random(seed).shuffle(images)
    report = BuildReport(shard_paths(output_file, num_shards), skipped=list(others))
    report.replaced = prepare_outputs(report.output_files, inputs=[input_dir])
    progress = Progress(len(images), unit="image", every=1000, log=log)
    with _AtomicShardWriters(report.output_files) as writers:
        for path in images:
            try:
                records = (_face_records(path, crop_faces, max_pixels) if crop_faces else
                           [(os.path.basename(path),
                             *encode_file_for_record(path, image_size, max_pixels))])
            except BadImage as e:
                report.skipped.append((path, str(e)))
            else:
                for name, encoded, height, width in records:
                    writers.write(make_example(name, encoded, height, width))
            progress.update()
        progress.close()
        if writers.count == 0:
            raise DataError(f"none of the {len(images)} image files in {input_dir} could be used:\n"
                            + "\n".join(f"  {p}: {r}" for p, r in report.skipped))
    report.written = writers.count
    return report


def _face_records(path: str, crop_faces: Callable[[np.ndarray], list[np.ndarray]],
                  max_pixels: int) -> list[tuple[str, bytes, int, int]]:
    image, _ = read_image(path, max_pixels)
    crops = crop_faces(np.asarray(image))
    if not crops:
        raise BadImage("no face found")
    stem = os.path.splitext(os.path.basename(path))[0]
    return [(f"{stem}_face{i}.png", encode_image(Image.fromarray(crop), lossy=False),
             *crop.shape[:2]) for i, crop in enumerate(crops)]


def build_tfrecords_from_tfds(name: str, split: str, output_file: str, data_dir: str | None = None,
                              image_size: int | None = None, num_shards: int = 1) -> BuildReport:
    """Writes one split of a TensorFlow Datasets image set (e.g. cycle_gan/horse2zebra, trainA).

    The first use downloads and prepares the set under data_dir (TFDS' default:
    ~/tensorflow_datasets); later uses read the prepared copy without the network.
    """
    try:
        import tensorflow_datasets as tfds  # only this path needs it; keeps plain imports light
        with _tfds_fails_fast():
            dataset = tfds.load(name, split=split, data_dir=data_dir, shuffle_files=False)
    except Exception as e:  # noqa: BLE001 - every failure becomes one message saying what to do
        raise DataError(_tfds_failure(name, split, data_dir, e)) from None
    report = BuildReport(shard_paths(output_file, num_shards))
    report.replaced = prepare_outputs(report.output_files)
    with _AtomicShardWriters(report.output_files) as writers:
        for i, example in enumerate(tfds.as_numpy(dataset)):
            image = Image.fromarray(np.asarray(example["image"]).astype(np.uint8)).convert("RGB")
            if image_size is not None:
                image = resize_shorter_side(image, image_size)
            name_i = example.get("image/filename", f"{split}_{i:06d}.jpg".encode())
            if isinstance(name_i, bytes):
                name_i = name_i.decode("utf-8", "replace")
            writers.write(make_example(str(name_i), encode_image(image, lossy=True),
                                       image.height, image.width))
        if writers.count == 0:
            raise DataError(f"TFDS dataset {name!r} split {split!r} is empty")
    report.written = writers.count
    return report


# TFDS retries a download that cannot connect ten times with exponential backoff: offline, the
# user waited 3.5 minutes before any message. Two attempts ride out a blip and fail in seconds.
TFDS_DOWNLOAD_ATTEMPTS = 2


@contextlib.contextmanager
def _tfds_fails_fast() -> Iterator[None]:
    from tensorflow_datasets.core.download import downloader
    saved = downloader.MAX_RETRIES
    downloader.MAX_RETRIES = TFDS_DOWNLOAD_ATTEMPTS - 1
    try:
        yield
    finally:
        downloader.MAX_RETRIES = saved


def _tfds_failure(name: str, split: str, data_dir: str | None, error: Exception) -> str:
    """What went wrong loading a TFDS set, by its real cause, and what to do about it."""
    where = f"TFDS dataset {name!r} split {split!r}"
    causes = [error]
    while (earlier := causes[-1].__cause__ or causes[-1].__context__) and earlier not in causes:
        causes.append(earlier)
    for cause in causes:
        if isinstance(cause, ImportError):
            module = cause.name or str(cause)
            return (f"could not load {where}: the Python module {module!r} is missing. Reinstall "
                    f"this package (pip install -e .) or run: pip install {module}")
    for cause in causes:
        if _is_network_error(cause):
            url = getattr(getattr(cause, "request", None), "url", None) or _first_url(str(cause))
            folder = data_dir or "~/tensorflow_datasets"
            return (f"could not load {where}: cannot download it ({url or 'its source'} is not "
                    f"reachable: {_short(cause)}). Connect to the internet and rerun, or pass "
                    f"--data_dir with a copy TFDS has already prepared (it looks in {folder}), or "
                    f"download the archive by hand into {folder}/downloads/manual/.")
    first = _short(error)
    if "not found" in first.lower() or "unknown split" in first.lower():
        return (f"could not load {where}: {first}. Check the name (e.g. cycle_gan/horse2zebra) "
                "and the split (e.g. trainA, trainB, testA, testB).")
    return f"could not load {where} (data_dir={data_dir!r}): {first}"


def _is_network_error(error: BaseException) -> bool:
    import requests
    return isinstance(error, (requests.ConnectionError, requests.Timeout, ConnectionError,
                              TimeoutError))


def _first_url(text: str) -> str | None:
    match = re.search(r"https?://\S+|host='[^']+'", text)
    return match.group(0).rstrip(").,:'") if match else None


def _short(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return (text[0] if text else type(error).__name__)[:300]


# -- tf.data ----------------------------------------------------------------------------------------

def resolve_tfrecords(pattern: str) -> list[str]:
    """The files behind --X/--Y: a file, a glob, or a sharded base name (NAME-?????-of-?????)."""
    if not pattern:
        raise DataError("no tfrecords given: pass the file written by build_data.py")
    if os.path.isfile(pattern):
        return [pattern]
    files = sorted(glob.glob(pattern)) or sorted(glob.glob(glob.escape(pattern) + "-?????-of-?????"))
    files = [f for f in files if os.path.isfile(f)]
    if not files:
        raise DataError(f"tfrecords {pattern} not found: make it with build_data.py "
                        "(--X_output_file/--Y_output_file), or fix the path")
    return files


def check_tfrecords(files: Sequence[str]) -> None:
    """Reads the first record of each file, so a wrong or corrupt file fails now, by name."""
    for path in files:
        try:
            first = next(iter(tf.data.TFRecordDataset(path).take(1)), None)
            if first is None:
                raise DataError(f"tfrecords file {path} is empty: rebuild it with build_data.py")
            features = tf.io.parse_single_example(first, _FEATURES)
            tf.io.decode_image(features["image/encoded_image"], channels=3,
                               expand_animations=False)
        except tf.errors.OpError as e:
            raise DataError(f"{path} is not a readable image tfrecords file ({e.message.strip()}): "
                            "rebuild it with build_data.py") from None


_FEATURES = {
    "image/encoded_image": tf.io.FixedLenFeature([], tf.string),
    "image/file_name": tf.io.FixedLenFeature([], tf.string, default_value=""),
    "image/height": tf.io.FixedLenFeature([], tf.int64, default_value=0),
    "image/width": tf.io.FixedLenFeature([], tf.int64, default_value=0),
}


def decode_record(record: tf.Tensor) -> tf.Tensor:
    features = tf.io.parse_single_example(record, _FEATURES)
    image = tf.io.decode_image(features["image/encoded_image"], channels=3, expand_animations=False)
    image.set_shape([None, None, 3])
    return image


def resize_shorter_side_tf(image: tf.Tensor, size: int) -> tf.Tensor:
    """uint8 [H, W, 3] -> uint8 with the shorter side equal to size (aspect kept)."""
    shape = tf.cast(tf.shape(image)[:2], tf.float32)
    scale = size / tf.reduce_min(shape)
    new_shape = tf.maximum(tf.cast(tf.round(shape * scale), tf.int32), size)
    resized = tf.image.resize(image, new_shape, method="bicubic", antialias=True)
    return tf.cast(tf.clip_by_value(tf.round(resized), 0, 255), tf.uint8)


def to_float(image: tf.Tensor) -> tf.Tensor:
    """uint8 [0, 255] -> float32 [-1, 1], the generators' range."""
    return tf.cast(image, tf.float32) / 127.5 - 1.0


def to_uint8(image: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.clip_by_value(tf.round((image + 1.0) * 127.5), 0, 255), tf.uint8)


def _total_bytes(files: Sequence[str]) -> int:
    return sum(os.path.getsize(f) for f in files)


def training_load_size(image_size: int, augment: bool, load_size: int = 0) -> int:
    """The side training resizes images to before cropping image_size: load_size (0: 1.12 x
    image_size) with augment, image_size without."""
    if not augment:
        return image_size
    return load_size or round(image_size * LOAD_SCALE)


@dataclasses.dataclass(frozen=True)
class Jitter:
    """A random similarity transform about the image centre, drawn per image: scale 1 +- scale,
    a shift of up to +-shift of the side on each axis, a rotation of up to +-degrees. The
    corners it uncovers are filled by reflection, as keras.layers.RandomRotation does."""

    scale: float = 0.0
    shift: float = 0.0
    degrees: float = 0.0

    def __bool__(self) -> bool:
        return bool(self.scale or self.shift or self.degrees)

    def apply(self, image: tf.Tensor, seed: tf.Tensor) -> tf.Tensor:
        """image: float32 [H, W, C]; seed: a stateless [2] int64 seed (one seed, one transform)."""
        u = tf.random.stateless_uniform([4], seed, -1.0, 1.0)
        size = tf.cast(tf.shape(image)[:2], tf.float32)
        scale = 1.0 + self.scale * u[0]
        angle = math.radians(self.degrees) * u[1]
        shift_x, shift_y = self.shift * size[1] * u[2], self.shift * size[0] * u[3]
        # The transform maps output pixels to input pixels: the inverse of "scale and rotate
        # about the centre c, then shift": input = R(-angle) (output - c - shift) / scale + c.
        cx, cy = (size[1] - 1.0) / 2.0, (size[0] - 1.0) / 2.0
        a0, a1 = tf.cos(angle) / scale, tf.sin(angle) / scale
        b0, b1 = -a1, a0
        ox, oy = cx + shift_x, cy + shift_y
        transform = tf.stack([a0, a1, cx - a0 * ox - a1 * oy,
                              b0, b1, cy - b0 * ox - b1 * oy, 0.0, 0.0])[tf.newaxis]
        moved = tf.raw_ops.ImageProjectiveTransformV3(
            images=image[tf.newaxis], transforms=transform,
            output_shape=tf.shape(image)[:2], fill_value=0.0, interpolation="BILINEAR",
            fill_mode="REFLECT")[0]
        return tf.ensure_shape(moved, image.shape)


def make_dataset(pattern: str, image_size: int, batch_size: int, augment: bool = True,
                 seed: int = 0, repeat: bool = True, cache: bool | None = None,
                 load_size: int = 0,
                 input_context: tf.distribute.InputContext | None = None,
                 skip: int = 0, jitter: Jitter | None = None) -> tf.data.Dataset:
    """Batches of float32 [batch, image_size, image_size, 3] in [-1, 1] from tfrecords.

    Training view (augment): shorter side resized to load_size (0: 1.12 x image_size), random crop,
    random flip, fresh every epoch; load_size == image_size keeps aligned data (faces) aligned;
    jitter: a mild random scale / shift / rotation of each crop on top (aligned faces: so that the
    model tolerates the small alignment errors of faces found in photos). Otherwise: shorter side to image_size, centre crop. Decoding and resizing are done once and
    cached in memory when the files are small. Under tf.distribute each input pipeline
    reads its own files (or records, when there are fewer files than pipelines).
    The images (order, crops, flips) are a function of seed and of their position in the stream
    alone; skip: the number of images already consumed, so a resumed run goes on where it was.
    """
    files = resolve_tfrecords(pattern)
    check_tfrecords(files)
    load_size = training_load_size(image_size, augment, load_size)
    if cache is None:
        cache = _total_bytes(files) <= CACHE_LIMIT_BYTES
    options = tf.data.Options()
    options.deterministic = True
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.OFF

    records = tf.data.Dataset.from_tensor_slices(files)
    shard_records = False
    if input_context is not None and input_context.num_input_pipelines > 1:
        if len(files) >= input_context.num_input_pipelines:
            records = records.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)
        else:
            shard_records = True
    records = records.interleave(tf.data.TFRecordDataset, cycle_length=min(len(files), 8),
                                 num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if shard_records:
        records = records.shard(input_context.num_input_pipelines, input_context.input_pipeline_id)

    def decode_and_resize(record: tf.Tensor) -> tf.Tensor:
        return resize_shorter_side_tf(decode_record(record), load_size)

    if cache:
        images = records.map(decode_and_resize, num_parallel_calls=tf.data.AUTOTUNE).cache()
        if repeat:
            images = images.shuffle(1000, seed=seed, reshuffle_each_iteration=True).repeat()
        images = images.skip(skip)
    else:
        if repeat:
            records = records.shuffle(1000, seed=seed, reshuffle_each_iteration=True).repeat()
        records = records.skip(skip)  # before decoding: skipped records cost only their reading
        images = records.map(decode_and_resize, num_parallel_calls=tf.data.AUTOTUNE)

    def crop_and_flip(index: tf.Tensor, image: tf.Tensor) -> tf.Tensor:
        if augment:
            crop_seed = tf.stack([tf.cast(seed, tf.int64), index])
            image = tf.image.stateless_random_crop(image, [image_size, image_size, 3], crop_seed)
            image = tf.image.stateless_random_flip_left_right(image, crop_seed + 1)
            if jitter:
                return jitter.apply(to_float(image), crop_seed + 2)
        else:
            image = tf.image.resize_with_crop_or_pad(image, image_size, image_size)
        return to_float(image)

    dataset = (images.enumerate(start=skip)
               .map(crop_and_flip, num_parallel_calls=tf.data.AUTOTUNE)
               .batch(batch_size, drop_remainder=repeat)  # per replica, as tf.distribute expects
               .prefetch(tf.data.AUTOTUNE))
    return dataset.with_options(options)


def iterate_images(pattern: str) -> Iterator[tuple[str, np.ndarray]]:
    """(file name, uint8 RGB array) for every record, in file order (for evaluation and tests)."""
    for path in resolve_tfrecords(pattern):
        for record in tf.data.TFRecordDataset(path):
            features = tf.io.parse_single_example(record, _FEATURES)
            image = tf.io.decode_image(features["image/encoded_image"], channels=3,
                                       expand_animations=False)
            yield features["image/file_name"].numpy().decode("utf-8", "replace"), image.numpy()
