"""The networks FID/KID measure with: the standard FID graph read from its file, and the face
network that ships with mtcnn (the Keras InceptionV3 is in test_evaluate / test_real_paths)."""
from __future__ import annotations

import io
import tarfile

import numpy as np
import pytest
import tensorflow as tf

from cyclegan_tf import features as fe
from cyclegan_tf.config import ConfigError

RNG = np.random.default_rng(0)
KERNEL = RNG.normal(size=(3, 3, 3, 8)).astype(np.float32)


def _trunk(x: tf.Tensor) -> tf.Tensor:
    """A tiny stand-in for Inception between the graph's input and pool_3."""
    x = tf.compat.v1.image.resize_bilinear(x, [29, 29])
    x = (x - 128.0) / 128.0
    return tf.nn.relu(tf.nn.conv2d(x, KERNEL, 1, "SAME"))


BN = dict(mean=0.1, variance=4.0, beta=0.5, gamma=3.0)  # the graph's batch norm constants


def _fid_like_graph() -> bytes:
    """A frozen graph laid out as classify_image_graph_def.pb is: version 8, a JPEG decoder
    feeding ExpandDims (batch 1), the network with BatchNormWithGlobalNormalization (an op removed
    from graphs of version 9 on), pool_3, and a classifier head that reshapes to batch 1.
    (The real 95 MB file is behind the internet.)"""
    graph = tf.Graph()
    with graph.as_default():
        contents = tf.compat.v1.placeholder(tf.string, [], name="DecodeJpeg/contents")
        image = tf.io.decode_jpeg(contents, channels=3, name="DecodeJpeg")
        x = tf.expand_dims(tf.cast(image, tf.float32, name="Cast"), 0, name="ExpandDims")
        tf.identity(_trunk(x), name="trunk")
        for name, value in BN.items():
            tf.constant([value] * 8, name=name)
        tf.constant([1, 8], name="head_shape")
    graph_def = graph.as_graph_def()
    float32 = tf.float32.as_datatype_enum
    bn = graph_def.node.add(name="bn", op="BatchNormWithGlobalNormalization")
    bn.input.extend(["trunk", "mean", "variance", "beta", "gamma"])
    bn.attr["T"].type = float32
    bn.attr["variance_epsilon"].f = 0.001
    bn.attr["scale_after_normalization"].b = True
    pool = graph_def.node.add(name="pool_3", op="AvgPool", input=["bn"])
    pool.attr["T"].type = float32
    pool.attr["ksize"].list.i.extend([1, 29, 29, 1])
    pool.attr["strides"].list.i.extend([1, 1, 1, 1])
    pool.attr["padding"].s = b"VALID"
    pool.attr["data_format"].s = b"NHWC"
    head = graph_def.node.add(name="softmax/logits", op="Reshape", input=["pool_3", "head_shape"])
    head.attr["T"].type = float32
    head.attr["Tshape"].type = tf.int32.as_datatype_enum
    graph_def.versions.producer = 8
    return graph_def.SerializeToString()


def _expected(images: np.ndarray) -> np.ndarray:
    x = _trunk(tf.constant(images, tf.float32))
    x = (x - BN["mean"]) / np.sqrt(BN["variance"] + 0.001) * BN["gamma"] + BN["beta"]
    return tf.reduce_mean(x, axis=[1, 2]).numpy()


def test_fid_graph_features_are_pool_3_of_any_batch_from_pb_or_tgz(tmp_path):
    pb = tmp_path / fe.FID_GRAPH_FILE
    pb.write_bytes(_fid_like_graph())
    tgz = tmp_path / "inception-2015-12-05.tgz"
    with tarfile.open(tgz, "w:gz") as archive:
        archive.add(pb, arcname=f"inception/{fe.FID_GRAPH_FILE}")
    images = RNG.integers(0, 256, (5, 40, 40, 3)).astype(np.uint8)
    expected = _expected(images)
    for path in (pb, tgz):
        network = fe.feature_network("inception", str(path), batch_size=2)
        assert network.name == fe.FID_INCEPTION
        got = network(images)
        assert got.shape == (5, 8)
        np.testing.assert_allclose(got, expected, atol=1e-5)


@pytest.mark.parametrize("case", ["missing", "not_a_graph", "other_graph", "tgz_without_it"])
def test_unusable_fid_graph_files_say_what_to_do(tmp_path, case):
    path = tmp_path / ("inception.tgz" if case == "tgz_without_it" else "graph.pb")
    if case == "not_a_graph":
        path.write_bytes(b"\x00not a protobuf\xff" * 10)
    elif case == "other_graph":
        graph = tf.Graph()
        with graph.as_default():
            tf.constant(1.0, name="something_else")
        path.write_bytes(graph.as_graph_def().SerializeToString())
    elif case == "tgz_without_it":
        other = tmp_path / "readme.txt"
        other.write_text("hello")
        with tarfile.open(path, "w:gz") as archive:
            archive.add(other, arcname="readme.txt")
    with pytest.raises(fe.FIDWeightsError) as error:
        fe.feature_network("inception", str(path))
    assert str(path) in str(error.value) and fe.FID_GRAPH_URL in str(error.value)
    assert isinstance(error.value, ConfigError)  # the scripts end it in one line, exit 2


def test_face_network_runs_offline_and_tells_faces_from_noise():
    """The real mtcnn weights (inside its wheel): features of one image set are closer to a
    second draw of the same kind than to a different kind."""
    from cyclegan_tf import demo
    from cyclegan_tf.evaluate import fid
    network = fe.feature_network("face")
    assert network.name == fe.FACE_ONET
    flat = [np.full((64, 64, 3), v, np.uint8) for v in RNG.integers(60, 200, 40)]
    shapes = [np.asarray(demo.make_image(RNG, "X", 64)) for _ in range(40)]
    a, b = network(np.stack(shapes[:20])), network(np.stack(shapes[20:]))
    assert a.shape == (20, 256) and np.isfinite(a).all()
    assert fid(a, b) < fid(a, network(np.stack(flat[:20])))
    with pytest.raises(ConfigError, match="--fid_weights"):
        fe.feature_network("face", "weights.h5")
    with pytest.raises(ConfigError, match="inception, face"):
        fe.feature_network("vgg")


def test_face_network_without_mtcnn_names_the_install_command(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "mtcnn", None)  # what an uninstalled package looks like
    monkeypatch.setitem(sys.modules, "mtcnn.network.onet", None)
    with pytest.raises(fe.FIDWeightsError, match=r'pip install -e "\.\[faces\]"'):
        fe.feature_network("face")
