"""build_data and the input pipeline: formats, broken files, schema, errors that name the path."""
from __future__ import annotations

import io
import os
import struct
import zlib

import numpy as np
import pytest
import tensorflow as tf
from PIL import Image

from cyclegan_tf import data
from cyclegan_tf.config import Config, ConfigError
from tests.conftest import run_script


def _rgb(size=(40, 32), seed=0):
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (size[1], size[0], 3),
                                                                 dtype=np.uint8))


def _png_header_only(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height (a decompression bomb's calling card)."""
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    chunk = lambda kind, body: (struct.pack(">I", len(body)) + kind + body  # noqa: E731
                                + struct.pack(">I", zlib.crc32(kind + body)))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 64)) \
        + chunk(b"IEND", b"")


def make_messy_folder(folder) -> tuple[set[str], set[str]]:
    """Good images in every format and mode, plus every kind of bad file. Returns (good, bad)."""
    os.makedirs(folder, exist_ok=True)
    p = lambda name: os.path.join(folder, name)  # noqa: E731
    good = {"photo.jpg", "UPPER.JPEG", "plain.png", "bitmap.bmp", "anim.gif", "modern.webp",
            "cmyk.jpg", "deep16.png", "gray.png", "rgba.png", "palette.gif", "rotated.jpg",
            "naïve name with spaces.png"}
    _rgb().save(p("photo.jpg"), quality=90)
    _rgb(seed=1).save(p("UPPER.JPEG"))
    _rgb(seed=2).save(p("plain.png"))
    _rgb(seed=3).save(p("bitmap.bmp"))
    frames = [_rgb(seed=s) for s in range(3)]
    frames[0].save(p("anim.gif"), save_all=True, append_images=frames[1:], duration=50, loop=0)
    _rgb(seed=4).save(p("modern.webp"))
    _rgb(seed=5).convert("CMYK").save(p("cmyk.jpg"))
    Image.fromarray(np.full((32, 40), 40000, np.uint16)).save(p("deep16.png"))
    _rgb(seed=6).convert("L").save(p("gray.png"))
    rgba = _rgb(seed=7).convert("RGBA")
    rgba.putalpha(128)
    rgba.save(p("rgba.png"))
    _rgb(seed=8).convert("P").save(p("palette.gif"))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display
    _rgb((48, 32), seed=9).save(p("rotated.jpg"), exif=exif.tobytes())
    _rgb(seed=10).save(p("naïve name with spaces.png"))

    bad = {"truncated.jpg", "empty.jpg", "notes.jpg", "tiny.png", "bomb.png", "loop.jpg",
           "readme.txt", "data.csv", "subfolder"}
    buffer = io.BytesIO()
    _rgb((64, 64), seed=11).save(buffer, "JPEG")
    open(p("truncated.jpg"), "wb").write(buffer.getvalue()[:len(buffer.getvalue()) // 2])
    open(p("empty.jpg"), "wb").close()
    open(p("notes.jpg"), "w").write("this is text, not a JPEG")
    Image.new("RGB", (1, 1)).save(p("tiny.png"))
    open(p("bomb.png"), "wb").write(_png_header_only(30000, 30000))
    os.symlink("loop.jpg", p("loop.jpg"))
    open(p("readme.txt"), "w").write("hello")
    open(p("data.csv"), "w").write("a,b")
    os.mkdir(p("subfolder"))
    return good, bad


def test_build_data_writes_every_good_image_and_skips_each_bad_one_with_a_reason(tmp_path):
    good, bad = make_messy_folder(tmp_path / "in")
    output = str(tmp_path / "out" / "x.tfrecords")  # the folder is created
    report = data.build_tfrecords(str(tmp_path / "in"), output, log=lambda *_: None)
    assert report.written == len(good)
    skipped = {os.path.basename(path): reason for path, reason in report.skipped}
    assert set(skipped) == bad
    assert "too large" in skipped["bomb.png"] and "too small" in skipped["tiny.png"]
    assert "empty" in skipped["empty.jpg"] and "not a decodable image" in skipped["notes.jpg"]
    assert "symbolic links" in skipped["loop.jpg"] or "cannot read" in skipped["loop.jpg"]
    assert "not an image file" in skipped["readme.txt"]
    assert f"{len(good)} images written" in report.summary() and "truncated.jpg" in report.summary()

    names = {}
    for name, image in data.iterate_images(output):  # every record decodes in TensorFlow
        names[name] = image
    assert set(names) == good
    assert names["rotated.jpg"].shape == (48, 32, 3)  # EXIF orientation applied
    assert names["deep16.png"].mean() == pytest.approx(40000 / 65535 * 255, abs=1)
    assert np.all(names["rgba.png"] >= 0) and names["gray.png"].shape[-1] == 3
    assert not os.path.exists(output + ".incomplete")


def test_unreadable_file_is_skipped_with_its_reason(tmp_path, monkeypatch):
    folder = tmp_path / "in"
    folder.mkdir()
    _rgb().save(folder / "ok.png")
    _rgb(seed=1).save(folder / "locked.png")
    os.chmod(folder / "locked.png", 0)
    if os.access(folder / "locked.png", os.R_OK):  # root reads anything: simulate the refusal
        real_open = open

        def refusing_open(path, *args, **kwargs):
            if str(path).endswith("locked.png"):
                raise PermissionError(13, "Permission denied", str(path))
            return real_open(path, *args, **kwargs)
        monkeypatch.setattr("builtins.open", refusing_open)
    report = data.build_tfrecords(str(folder), str(tmp_path / "x.tfrecords"), log=lambda *_: None)
    assert report.written == 1
    assert report.skipped == [(str(folder / "locked.png"), "cannot read: Permission denied")]


def test_build_data_cli_reports_counts_and_errors_name_the_path(tmp_path):
    good, bad = make_messy_folder(tmp_path / "x")
    (tmp_path / "y").mkdir()
    _rgb().save(tmp_path / "y" / "one.png")
    result = run_script("build_data.py", f"--X_input_dir={tmp_path / 'x'}",
                        f"--Y_input_dir={tmp_path / 'y'}", f"--X_output_file={tmp_path / 'X.tfr'}",
                        f"--Y_output_file={tmp_path / 'Y.tfr'}", "--image_size=24", "--num_shards=2")
    assert result.returncode == 0, result.stderr
    assert f"{len(good)} images written" in result.stdout
    assert f"{len(bad)} skipped" in result.stdout
    shards = data.resolve_tfrecords(str(tmp_path / "X.tfr"))
    assert [os.path.basename(s) for s in shards] == ["X.tfr-00000-of-00002", "X.tfr-00001-of-00002"]
    assert all(min(image.shape[:2]) == 24 for _, image in data.iterate_images(str(tmp_path / "X.tfr")))

    (tmp_path / "empty").mkdir()
    for missing_or_empty in ("nowhere", "empty"):
        result = run_script("build_data.py", f"--X_input_dir={tmp_path / missing_or_empty}",
                            f"--X_output_file={tmp_path / 'Z.tfr'}")
        assert result.returncode == 2
        assert str(tmp_path / missing_or_empty) in result.stderr
        assert "Traceback" not in result.stderr


def test_old_schema_records_train_and_round_trip(tmp_path):
    """tfrecords written by the classic TF1 build_data (file_name + encoded JPEG only) still load."""
    path = str(tmp_path / "old.tfrecords")
    with tf.io.TFRecordWriter(path) as writer:
        for i in range(3):
            buffer = io.BytesIO()
            _rgb((50, 40), seed=i).save(buffer, "JPEG")
            example = tf.train.Example(features=tf.train.Features(feature={
                "image/file_name": tf.train.Feature(bytes_list=tf.train.BytesList(value=[b"a.jpg"])),
                "image/encoded_image": tf.train.Feature(
                    bytes_list=tf.train.BytesList(value=[buffer.getvalue()])),
            }))
            writer.write(example.SerializeToString())
    batch = next(iter(data.make_dataset(path, image_size=32, batch_size=2)))
    assert batch.shape == (2, 32, 32, 3) and batch.dtype == tf.float32
    assert -1.0 <= float(tf.reduce_min(batch)) and float(tf.reduce_max(batch)) <= 1.0
    plain = next(iter(data.make_dataset(path, image_size=32, batch_size=3, augment=False,
                                        repeat=False)))
    assert plain.shape == (3, 32, 32, 3)


def test_augmentation_differs_between_epochs(demo_data):
    dataset = data.make_dataset(demo_data["X"], image_size=32, batch_size=60, seed=3)
    epochs = iter(dataset)
    first, second = next(epochs).numpy(), next(epochs).numpy()
    assert not np.allclose(np.sort(first.reshape(60, -1).sum(1)),
                           np.sort(second.reshape(60, -1).sum(1)))


@pytest.mark.parametrize("cache", [True, False])
def test_skip_continues_the_stream_where_it_was(demo_data, cache):
    """A resumed run's dataset (skip = images consumed) yields what the uninterrupted one would
    have yielded next: order, crops and flips, across an epoch boundary (60 images)."""
    def batches(skip: int, count: int) -> list[np.ndarray]:
        dataset = data.make_dataset(demo_data["X"], image_size=32, batch_size=4, seed=5,
                                    cache=cache, skip=skip)
        return [b.numpy() for b in dataset.take(count)]
    whole = batches(0, 20)
    np.testing.assert_array_equal(np.stack(batches(56, 4)), np.stack(whole[14:18]))


def test_load_size_equal_to_image_size_only_flips(demo_data):
    """Aligned data (faces) keeps its alignment: no random crop, just mirror images."""
    def views(**kwargs):
        dataset = data.make_dataset(demo_data["X"], image_size=32, batch_size=60, repeat=False,
                                    seed=5, **kwargs)
        return next(iter(dataset)).numpy()

    plain = views(augment=False)
    for load_size, only_flips in ((32, True), (0, False)):
        augmented = views(load_size=load_size)
        same = [np.array_equal(a, p) or np.array_equal(a, p[:, ::-1]) for a, p in zip(augmented, plain)]
        assert all(same) == only_flips, load_size
    flipped = [not np.array_equal(a, p) for a, p in zip(views(load_size=32), plain)]
    assert 10 < sum(flipped) < 50
    with pytest.raises(ConfigError, match="load_size"):
        Config(image_size=32, load_size=30)


def test_corrupt_or_foreign_tfrecords_fail_with_the_path(tmp_path):
    not_records = tmp_path / "photo.tfrecords"
    _rgb().save(not_records, "PNG")
    missing = tmp_path / "missing.tfrecords"
    empty = tmp_path / "empty.tfrecords"
    tf.io.TFRecordWriter(str(empty)).close()
    for path in (not_records, missing, empty):
        with pytest.raises(data.DataError, match=str(path)):
            data.make_dataset(str(path), image_size=32, batch_size=1)


def test_tfds_source_writes_both_domains(tmp_path):
    import tensorflow_datasets as tfds
    with tfds.testing.mock_data(num_examples=4):
        report = data.build_tfrecords_from_tfds("cycle_gan/horse2zebra", "trainA",
                                                str(tmp_path / "horse.tfrecords"), image_size=32)
    assert report.written == 4
    assert len(list(data.iterate_images(str(tmp_path / "horse.tfrecords")))) == 4


def test_tfds_failure_is_a_clear_error(tmp_path):
    with pytest.raises(data.DataError, match="could not load TFDS dataset 'no_such_dataset_xyz'"):
        data.build_tfrecords_from_tfds("no_such_dataset_xyz", "train", str(tmp_path / "o.tfr"))


def test_jitter_moves_scales_and_turns_each_crop_by_its_own_seed():
    """--jitter_*: a similarity transform about the centre, the same for the same seed."""
    from cyclegan_tf.config import Config, ConfigError
    from cyclegan_tf.data import Jitter
    image = np.full((64, 64, 3), -1.0, np.float32)
    image[20:30, 28:36] = 1.0  # a bright patch centred at (24.5, 31.5)
    seed = tf.constant([1, 2], tf.int64)
    u = tf.random.stateless_uniform([4], seed, -1.0, 1.0).numpy()
    moved = Jitter(shift=0.1).apply(tf.constant(image), seed).numpy()
    ys, xs = np.nonzero(moved[..., 0] > 0)
    assert xs.mean() == pytest.approx(31.5 + 6.4 * u[2], abs=0.6)
    assert ys.mean() == pytest.approx(24.5 + 6.4 * u[3], abs=0.6)
    zoomed = Jitter(scale=0.5).apply(tf.constant(image), seed).numpy()
    area = (zoomed[..., 0] > 0).sum() / (image[..., 0] > 0).sum()
    assert area == pytest.approx((1 + 0.5 * u[0]) ** 2, rel=0.15)
    turned = Jitter(degrees=90).apply(tf.constant(image), seed).numpy()
    np.testing.assert_array_equal(turned, Jitter(degrees=90).apply(tf.constant(image), seed).numpy())
    assert not np.array_equal(turned, image) and not Jitter()
    with pytest.raises(ConfigError, match="drop --noaugment"):
        Config(augment=False, jitter_degrees=5)
