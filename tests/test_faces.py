"""Faces in ordinary photos (faces.py): the alignment geometry, the paste-back, the real MTCNN
detector on a public-domain portrait, and the layout's way from training to inference."""
from __future__ import annotations

import json
import math
import os

import numpy as np
import pytest
from PIL import Image

from cyclegan_tf import faces
from cyclegan_tf.config import ConfigError
from tests.conftest import REPO, run_script

ASTRONAUT = os.path.join(REPO, "tests", "data", "astronaut.jpg")  # NASA, public domain
LAYOUT = faces.FaceLayout(((0.30, 0.29), (0.68, 0.29), (0.49, 0.52), (0.32, 0.69), (0.66, 0.69)))


def smooth_image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A photo-like image without sharp edges (a small noise image upscaled)."""
    small = np.random.default_rng(seed).integers(0, 256, (height // 16, width // 16, 3), np.uint8)
    return np.asarray(Image.fromarray(small).resize((width, height), Image.BICUBIC))


@pytest.fixture(scope="module")
def detector():
    return faces.FaceDetector()


@pytest.fixture(scope="module")
def astronaut():
    return np.asarray(Image.open(ASTRONAUT).convert("RGB"))


def test_similarity_transform_recovers_scale_rotation_and_shift():
    source = LAYOUT.pixels(100)
    scale, angle, shift = 1.7, math.radians(23), np.array([12.5, -40.0])
    rotation = scale * np.array([[math.cos(angle), -math.sin(angle)],
                                 [math.sin(angle), math.cos(angle)]])
    target = source @ rotation.T + shift
    matrix = faces.similarity_transform(source, target)
    np.testing.assert_allclose(matrix[:, :2], rotation, atol=1e-9)
    np.testing.assert_allclose(matrix[:, 2], shift, atol=1e-9)
    noisy = target + np.random.default_rng(0).normal(0, 0.5, target.shape)
    fitted = faces.similarity_transform(source, noisy)  # least squares: close, not exact
    assert abs(np.hypot(*fitted[:, 0]) - scale) < 0.02
    np.testing.assert_allclose(faces.invert(matrix) @ np.append(target[0], 1), source[0],
                               atol=1e-9)


def test_align_and_paste_back_return_the_face_region_and_nothing_else():
    photo = smooth_image(240, 320)
    # A face of ~80 px at 15 degrees, aligned into a 128 px crop (as a 64-256 px model would).
    angle = math.radians(15)
    rotation = 0.8 * np.array([[math.cos(angle), -math.sin(angle)],
                               [math.sin(angle), math.cos(angle)]])
    landmarks = LAYOUT.pixels(100) @ rotation.T + np.array([150, 60])
    crop, matrix = faces.align(photo, landmarks, LAYOUT, 128)
    assert crop.shape == (128, 128, 3)
    # The landmarks land where the layout puts them.
    moved = np.c_[landmarks + 0.5, np.ones(5)] @ matrix.T
    np.testing.assert_allclose(moved, LAYOUT.pixels(128), atol=1e-6)

    same = faces.paste_back(photo, crop, matrix)
    changed = np.any(same != photo, axis=-1)
    diff = np.abs(same.astype(int) - photo.astype(int))
    inner = np.c_[LAYOUT.pixels(128).mean(axis=0)[None] + 0.0, [[1.0]]] @ faces.invert(matrix).T
    cx, cy = np.round(inner[0]).astype(int)
    assert diff[cy - 20:cy + 20, cx - 20:cx + 20].mean() < 2.0  # interpolation error only

    white = faces.paste_back(photo, np.full_like(crop, 255), matrix)
    touched = np.any(white != photo, axis=-1)
    ys, xs = np.nonzero(touched)
    # Outside the crop's footprint, every pixel keeps its exact value.
    corners = np.array([[0, 0, 1], [128, 0, 1], [0, 128, 1], [128, 128, 1]]) @ faces.invert(matrix).T
    assert xs.min() >= corners[:, 0].min() - 1 and xs.max() <= corners[:, 0].max() + 1
    assert ys.min() >= corners[:, 1].min() - 1 and ys.max() <= corners[:, 1].max() + 1
    footprint_area = (128 / 0.8 * 100 / 128) ** 2  # the crop's side in photo pixels, squared
    assert touched.sum() <= footprint_area * 1.05
    assert not np.any(changed & ~touched)
    # The soft mask: full strength in the middle, fading towards the crop's edges.
    assert np.all(white[cy, cx] == 255)
    mask = faces.face_mask(128)
    assert mask[64, 64] == 1.0 and mask[0, 64] < 0.05 and 0 < mask[8, 64] < 1


def test_detector_finds_the_astronaut_and_no_face_in_noise(detector, astronaut):
    found = detector.detect(astronaut)
    assert len(found) == 1 and found[0].score > 0.95
    left_eye, right_eye, nose, mouth_left, mouth_right = found[0].landmarks
    assert left_eye[0] < right_eye[0] and mouth_left[0] < mouth_right[0]
    assert max(left_eye[1], right_eye[1]) < nose[1] < min(mouth_left[1], mouth_right[1])
    assert detector.detect(smooth_image(200, 200)) == []
    assert detector.detect(np.zeros((8, 8, 3), np.uint8)) == []  # under MTCNN's window


def test_photo_with_two_faces_has_both_translated_and_no_face_gives_none(detector, astronaut):
    two = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)  # the portrait and its mirror
    result = faces.process_photo(two, lambda crop: 255 - crop, detector, LAYOUT, 64)
    assert len(result.boxes) == 2 and len(result.pairs) == 2
    assert result.pairs[0].shape == (64, 128, 3)  # aligned face | processed face
    changed = np.any(result.photo != two, axis=-1)
    for x, y, w, h in result.boxes:  # each face changed...
        assert changed[int(y + h / 2), int(x + w / 2)]
    assert not changed[:, :20].any() and not changed[-40:].any()  # ...the rest did not
    assert faces.process_photo(smooth_image(128, 128), lambda c: c, detector, LAYOUT, 64).photo \
        is None


def test_layout_is_measured_from_faces_and_not_from_other_images(detector, astronaut):
    crops = []
    for dx in (-3, 0, 3):  # the portrait, aligned a little differently each time
        face = detector.detect(astronaut)[0]
        crop, _ = faces.align(astronaut, face.landmarks + [dx, 0], LAYOUT, 96)
        crops.append(crop)
    layout = faces.FaceLayout.measure(crops, detector)
    assert layout is not None and layout.measured_on == 3
    np.testing.assert_allclose(layout.points, LAYOUT.points, atol=0.06)
    assert faces.FaceLayout.measure([smooth_image(96, 96, s) for s in range(3)], detector) is None
    # Measured and applied in the same pixel convention: a crop aligned to its own layout stays.
    own = faces.FaceLayout.measure(crops[:1], detector)
    _, matrix = faces.align(crops[0], detector.detect(crops[0])[0].landmarks, own, 96)
    np.testing.assert_allclose(matrix, [[1, 0, 0], [0, 1, 0]], atol=0.02)  # not half a pixel
    again = faces.FaceLayout.from_dict(json.loads(json.dumps(layout.to_dict())))
    assert again == layout


def test_missing_extra_names_the_install_command(monkeypatch):
    monkeypatch.setattr(faces, "detector_available", lambda: False)
    with pytest.raises(ConfigError, match=r'pip install -e "\.\[faces\]"'):
        faces.FaceDetector()


def test_layout_goes_from_training_to_export_to_inference(tmp_path, detector, astronaut):
    """The real path: build_data --align_faces on photos -> train (measures the layout) ->
    export (copies it) -> inference --align_faces on photos with two faces and with none."""
    photos = tmp_path / "portraits"
    photos.mkdir()
    for i, (scale, angle) in enumerate([(1.0, 0), (0.8, 10), (0.7, -15), (0.9, 5), (0.75, -5)]):
        face = Image.fromarray(astronaut).resize((int(256 * scale),) * 2, Image.BICUBIC)
        frame = Image.fromarray(smooth_image(320, 320, seed=i))
        frame.paste(face.rotate(angle, Image.BICUBIC), (20 + 10 * i, 30))
        frame.save(photos / f"{i}.png")
    Image.fromarray(smooth_image(160, 160, seed=9)).save(photos / "landscape.png")
    records, records_b = str(tmp_path / "faces.tfrecords"), str(tmp_path / "faces_b.tfrecords")
    done = run_script("build_data.py", "--X_input_dir", str(photos), "--Y_input_dir",
                      str(photos), "--X_output_file", records, "--Y_output_file", records_b,
                      "--align_faces", "--image_size", "64")
    assert done.returncode == 0, done.stderr
    assert "5 images written" in done.stdout and "landscape.png: no face found" in done.stdout
    from cyclegan_tf import data
    crops = [array for _, array in data.iterate_images(records)]
    assert len(crops) == 5 and all(c.shape == (64, 64, 3) for c in crops)
    for crop in crops:  # upright, where the default layout puts the landmarks
        found = detector.detect(np.asarray(Image.fromarray(crop).resize((128, 128))))
        np.testing.assert_allclose(found[0].landmarks / 128, faces.STANDARD_LAYOUT.points,
                                   atol=0.08)
    run = str(tmp_path / "run")
    done = run_script("train.py", "--X", records, "--Y", records_b,
                      "--image_size", "64", "--load_size", "64", "--ngf", "4", "--ndf", "4",
                      "--n_blocks", "1", "--max_steps", "1", "--checkpoint_dir", run)
    assert done.returncode == 0, done.stderr
    assert "face layout of the training crops" in done.stdout + done.stderr
    stored = faces.FaceLayout.load(run)
    np.testing.assert_allclose(stored.points, faces.STANDARD_LAYOUT.points, atol=0.06)
    model = str(tmp_path / "m2w")
    done = run_script("export_graph.py", "--checkpoint_dir", run, "--XtoY_model", model,
                      "--YtoX_model", str(tmp_path / "w2m"))
    assert done.returncode == 0, done.stderr
    assert faces.FaceLayout.load(model) == stored  # in assets.extra/

    photos = tmp_path / "photos"
    photos.mkdir()
    two = np.concatenate([astronaut, astronaut[:, ::-1]], axis=1)
    Image.fromarray(two).save(photos / "two.png")
    Image.fromarray(smooth_image(120, 160)).save(photos / "none.png")
    out, pairs = tmp_path / "out", tmp_path / "pairs"
    done = run_script("inference.py", "--model", model, "--input", str(photos), "--output",
                      str(out), "--align_faces", "--crops", str(pairs))
    assert done.returncode == 0, done.stderr
    assert "2 faces translated in 1 photos" in done.stdout
    assert "none.png" in done.stdout and not (out / "none.png").exists()
    assert sorted(n for n in os.listdir(pairs) if not n.startswith(".")) == [
        "two_face0.png", "two_face1.png"]
    result = np.asarray(Image.open(out / "two.png"))
    assert result.shape == two.shape
    assert np.array_equal(result[:, :20], two[:, :20])  # far from the faces: the exact pixels
    done = run_script("inference.py", "--model", model, "--input", str(photos), "--output",
                      str(tmp_path / "out2"), "--align_faces", "--keep_faceless")
    assert done.returncode == 0, done.stderr
    kept = np.asarray(Image.open(tmp_path / "out2" / "none.png"))
    assert np.array_equal(kept, np.asarray(Image.open(photos / "none.png")))

    os.remove(os.path.join(model, "assets.extra", faces.LAYOUT_FILE))
    done = run_script("inference.py", "--model", model, "--input", str(photos), "--output",
                      str(tmp_path / "out3"), "--align_faces")
    assert done.returncode == 2 and "python -m cyclegan_tf.faces layout" in done.stderr
    assert not (tmp_path / "out3").exists()


def test_build_data_align_faces_needs_a_crop_size_and_goes_with_its_flags(tmp_path):
    out = str(tmp_path / "x.tfrecords")
    done = run_script("build_data.py", "--X_input_dir", os.path.dirname(ASTRONAUT),
                      "--X_output_file", out, "--align_faces")
    assert done.returncode == 2 and "--image_size" in done.stderr
    done = run_script("build_data.py", "--X_input_dir", os.path.dirname(ASTRONAUT),
                      "--X_output_file", out, "--all_faces")
    assert done.returncode == 2 and "go with --align_faces" in done.stderr
    assert not os.path.exists(out)
