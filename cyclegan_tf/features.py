"""The networks FID and KID measure with: uint8 images [N, H, W, 3] -> features [N, D].

A figure is comparable only with figures from the same network, so every report names it
(FeatureNetwork.name, the metrics' "feature_network"):
  fid-inception-2015-12-05    the standard FID network: the 2015-12-05 Inception graph of the TTUR
                              code, which pytorch-fid and clean-fid also use. Published FID tables
                              use it. Given as its file: --fid_weights classify_image_graph_def.pb,
                              or the inception-2015-12-05.tgz it comes in.
  keras-inceptionv3-imagenet  Keras' ImageNet InceptionV3 (the default, downloaded on first use):
                              other weights, so its figures compare runs of this project with each
                              other, never with published FID.
  mtcnn-onet                  a face network that ships inside the mtcnn wheel (the faces extra):
                              the 256-d features of MTCNN's output network on 48 px faces. Not
                              Inception at all: for following a face model's training on a machine
                              that cannot download either Inception, not for comparison with FID.
"""
from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf

from cyclegan_tf.errors import ConfigError

Features = Callable[[np.ndarray], np.ndarray]  # uint8 [N, H, W, 3] -> float [N, D]

FID_INCEPTION = "fid-inception-2015-12-05"
KERAS_INCEPTION = "keras-inceptionv3-imagenet"
FACE_ONET = "mtcnn-onet"
NETWORKS = ("inception", "face")  # --fid_network: Inception (FID graph or Keras), or the face net

INCEPTION_SIZE = 299
INCEPTION_FILE = "inception_v3_weights_tf_dim_ordering_tf_kernels_notop.h5"
INCEPTION_URL = ("https://storage.googleapis.com/tensorflow/keras-applications/inception_v3/"
                 + INCEPTION_FILE)
INCEPTION_MD5 = "bcbd6486424b2319ff4ef7d526e38f63"  # the hash keras.applications checks
FID_GRAPH_URL = "http://download.tensorflow.org/models/image/imagenet/inception-2015-12-05.tgz"
FID_GRAPH_FILE = "classify_image_graph_def.pb"
FID_GRAPH_INPUT = "ExpandDims:0"  # float RGB in [0, 255], any size: the graph resizes to 299
FID_GRAPH_OUTPUT = "pool_3:0"  # [N, 1, 1, 2048]
ONET_SIZE = 48


class FIDWeightsError(ConfigError):
    """The feature network's weights are missing or unusable; the message says what to do."""


@dataclass(frozen=True)
class FeatureNetwork:
    """name (see the module docstring) and features: uint8 [N, H, W, 3] -> float32 [N, D]."""
    name: str
    features: Features

    def __call__(self, images: np.ndarray) -> np.ndarray:
        return self.features(images)


def _in_batches(embed: Callable[[tf.Tensor], tf.Tensor], batch_size: int) -> Features:
    def features(images: np.ndarray) -> np.ndarray:
        images = np.asarray(images)
        return np.concatenate([embed(tf.constant(images[i:i + batch_size])).numpy()
                               for i in range(0, len(images), batch_size)])
    return features


def feature_network(network: str = "inception", weights: str | None = None,
                    batch_size: int = 32, cache_dir: str | None = None,
                    download: bool = True) -> FeatureNetwork:
    """The network FID/KID use, ready to run; raises FIDWeightsError (saying what to do) before
    any image is processed when it cannot be had.

    network "inception": the FID graph when weights names it (.pb, or the .tgz it ships in),
    else Keras' InceptionV3 from weights (.h5/.keras) or the Keras cache (downloaded if missing
    and download is set). network "face": mtcnn-onet (needs the faces extra).
    """
    if network not in NETWORKS:
        raise ConfigError(f"--fid_network must be one of {', '.join(NETWORKS)}, got {network}")
    if network == "face":
        if weights:
            raise ConfigError("--fid_weights names Inception weights: leave it out with "
                              "--fid_network face (its weights ship inside the mtcnn wheel)")
        return face_features(batch_size)
    if weights and weights.lower().endswith((".pb", ".tgz", ".tar.gz")):
        return fid_inception_features(weights, batch_size)
    return keras_inception_features(weights, batch_size, cache_dir, download)


# -- the FID Inception graph (TTUR, 2015-12-05) ------------------------------------------------------

def _graph_bytes(path: str) -> bytes:
    if not os.path.isfile(path):
        raise FIDWeightsError(f"--fid_weights {path} does not exist: give {FID_GRAPH_FILE} or the "
                              f"archive it ships in ({FID_GRAPH_URL})")
    if path.lower().endswith(".pb"):
        with open(path, "rb") as f:
            return f.read()
    try:
        with tarfile.open(path) as archive:
            member = next((m for m in archive.getmembers()
                           if os.path.basename(m.name) == FID_GRAPH_FILE), None)
            if member is None:
                raise FIDWeightsError(f"{path} holds no {FID_GRAPH_FILE}: give the archive "
                                      f"{FID_GRAPH_URL}, or the .pb itself")
            return archive.extractfile(member).read()
    except (tarfile.TarError, OSError, EOFError) as e:
        raise FIDWeightsError(f"{path} is not a readable .tgz ({e}): download {FID_GRAPH_URL} "
                              "again") from None


def _without_removed_ops(graph_def: tf.compat.v1.GraphDef) -> tf.compat.v1.GraphDef:
    """The 2015 graph normalises with BatchNormWithGlobalNormalization, an op TensorFlow removed
    from graphs of version 9 on (a graph run today has today's version): each one becomes the
    same arithmetic in current ops, (x - mean) * rsqrt(variance + epsilon) * gamma + beta, under
    the node's own name so that its consumers are unchanged."""
    old = tf.compat.v1.GraphDef()
    old.CopyFrom(graph_def)
    new = tf.compat.v1.GraphDef()
    new.versions.CopyFrom(old.versions)
    new.library.CopyFrom(old.library)
    for node in old.node:
        if node.op != "BatchNormWithGlobalNormalization":
            new.node.add().CopyFrom(node)
            continue
        x, mean, variance, beta, gamma = node.input
        dtype = node.attr["T"]
        name = node.name

        def add(op: str, suffix: str, *inputs: str, **attrs) -> str:
            made = new.node.add(name=f"{name}/{suffix}" if suffix else name, op=op)
            made.input.extend(inputs)
            made.attr["T"].CopyFrom(dtype)
            for key, value in attrs.items():
                made.attr[key].CopyFrom(value)
            return made.name

        epsilon = new.node.add(name=f"{name}/epsilon", op="Const")
        epsilon.attr["dtype"].type = dtype.type
        epsilon.attr["value"].tensor.CopyFrom(
            tf.make_tensor_proto(node.attr["variance_epsilon"].f, tf.as_dtype(dtype.type)))
        scale = add("Rsqrt", "rsqrt", add("AddV2", "variance_epsilon", variance, epsilon.name))
        if node.attr["scale_after_normalization"].b:
            scale = add("Mul", "scale", scale, gamma)
        add("AddV2", "", add("Mul", "normalized", add("Sub", "centred", x, mean), scale), beta)
    return new


def fid_inception_features(path: str, batch_size: int = 32) -> FeatureNetwork:
    """The standard FID network from its frozen graph: images go in where the graph's decoded
    JPEG did (float [0, 255], the graph itself resizes to 299 and normalises, as the TTUR code
    feeds it) and the 2048-d pool_3 features come out. Only the part that computes pool_3 runs:
    the graph's JPEG decoder and its batch-1 classifier head are pruned away."""
    graph_def = tf.compat.v1.GraphDef()
    try:
        graph_def.ParseFromString(_graph_bytes(path))
    except Exception as e:  # protobuf's DecodeError and friends
        if isinstance(e, FIDWeightsError):
            raise
        raise FIDWeightsError(f"{path} is not a TensorFlow graph ({e}): give {FID_GRAPH_FILE} "
                              f"from {FID_GRAPH_URL}") from None
    graph_def = _without_removed_ops(graph_def)
    nodes = {node.name for node in graph_def.node}
    if not {FID_GRAPH_INPUT.split(":")[0], FID_GRAPH_OUTPUT.split(":")[0]} <= nodes:
        raise FIDWeightsError(f"{path} is a graph without the {FID_GRAPH_INPUT} / "
                              f"{FID_GRAPH_OUTPUT} tensors of the FID Inception network: give "
                              f"{FID_GRAPH_FILE} from {FID_GRAPH_URL}")

    def pool_3(images: tf.Tensor) -> tf.Tensor:
        tf.graph_util.import_graph_def(graph_def, input_map={FID_GRAPH_INPUT: images}, name="fid")
        return tf.compat.v1.get_default_graph().get_tensor_by_name("fid/" + FID_GRAPH_OUTPUT)

    wrapped = tf.compat.v1.wrap_function(pool_3, [tf.TensorSpec([None, None, None, 3], tf.float32)])
    graph = wrapped.graph
    pruned = wrapped.prune(feeds=graph.inputs[0], fetches=graph.outputs[0])

    def embed(images: tf.Tensor) -> tf.Tensor:
        pool = pruned(tf.cast(images, tf.float32))
        return tf.reshape(pool, [tf.shape(pool)[0], -1])

    return FeatureNetwork(FID_INCEPTION, _in_batches(embed, batch_size))


# -- the face network that ships with mtcnn ---------------------------------------------------------

def face_features(batch_size: int = 256) -> FeatureNetwork:
    """mtcnn-onet: the PReLU'd 256-d fc5 features of MTCNN's output network, the images resized
    to 48 px and normalised as mtcnn does ((x - 127.5) / 128)."""
    try:
        from mtcnn.network.onet import ONet
        from mtcnn.utils.tensorflow import load_weights
    except ImportError:
        raise FIDWeightsError("--fid_network face needs the mtcnn package: "
                              "pip install -e \".[faces]\"") from None
    onet = ONet()
    onet.build()
    onet.set_weights(load_weights("onet.lz4"))
    trunk = ["conv1", "prelu1", "maxpool1", "conv2", "prelu2", "maxpool2", "conv3", "prelu3",
             "maxpool3", "conv4", "prelu4", "permute", "flatten", "fc5", "prelu5"]

    @tf.function(reduce_retracing=True)
    def embed(images: tf.Tensor) -> tf.Tensor:
        x = tf.image.resize(tf.cast(images, tf.float32), (ONET_SIZE, ONET_SIZE), method="area")
        x = (x - 127.5) / 128.0
        for name in trunk:
            x = getattr(onet, name)(x)
        return x

    return FeatureNetwork(FACE_ONET, _in_batches(embed, batch_size))


# -- Keras InceptionV3 (ImageNet) -------------------------------------------------------------------

def _keras_cache_paths() -> list[str]:
    """Where keras.applications keeps the downloaded file: $KERAS_HOME or ~/.keras, and /tmp/.keras
    when the home folder is not writable."""
    home = os.environ.get("KERAS_HOME") or os.path.join(os.path.expanduser("~"), ".keras")
    return [os.path.join(home, "models", INCEPTION_FILE),
            os.path.join("/tmp", ".keras", "models", INCEPTION_FILE)]


def _missing_weights_help(looked_at: Sequence[str]) -> str:
    return ("FID/KID need the Keras InceptionV3 ImageNet weights (no top), which were not found "
            f"(looked at {', '.join(looked_at)}). Download {INCEPTION_URL} and either put it at "
            f"{looked_at[0]} or pass its path with --fid_weights; or pass --nofid to skip FID/KID; "
            "or, offline, --fid_network face for an FD in a face network's features (the faces "
            "extra; comparable only with other runs scored the same way).")


def inception_weights_path(weights: str | None = None, cache_dir: str | None = None,
                           download: bool = True) -> str:
    """The weights file to use: weights if given (it must exist), else the Keras cache copy,
    downloaded there first if download is set and it is missing.

    cache_dir: the Keras home folder to look in (default $KERAS_HOME or ~/.keras).
    """
    if weights and weights != "imagenet":
        if not os.path.isfile(weights):
            raise FIDWeightsError(
                f"--fid_weights {weights} does not exist: give the path of {INCEPTION_FILE} "
                f"(download it from {INCEPTION_URL}), leave --fid_weights empty to use the Keras "
                "cache, or pass --nofid to skip FID/KID")
        return weights
    candidates = ([os.path.join(cache_dir, "models", INCEPTION_FILE)] if cache_dir
                  else _keras_cache_paths())
    for path in candidates:
        if os.path.isfile(path):
            return path
    if not download:
        raise FIDWeightsError(_missing_weights_help(candidates))
    try:
        if cache_dir:  # Keras silently falls back to /tmp/.keras for a folder not yet made
            os.makedirs(cache_dir, exist_ok=True)
        return keras.utils.get_file(INCEPTION_FILE, INCEPTION_URL, cache_subdir="models",
                                    file_hash=INCEPTION_MD5, cache_dir=cache_dir)
    except Exception as e:  # offline, proxy, disk full, bad hash: all end the same way for the user
        raise FIDWeightsError(f"downloading the InceptionV3 weights failed ({e}). "
                              + _missing_weights_help(candidates)) from None


def keras_inception_features(weights: str | None = None, batch_size: int = 32,
                             cache_dir: str | None = None, download: bool = True) -> FeatureNetwork:
    """A callable uint8 [N, H, W, 3] -> float32 [N, 2048]: InceptionV3 average-pool features of the
    images resized to 299 x 299 (bilinear) and scaled by inception_v3.preprocess_input.

    weights: an InceptionV3 no-top weights file (.h5, .weights.h5 or .keras); None or "imagenet"
    uses the Keras cache (see inception_weights_path). Raises FIDWeightsError, saying what to do,
    when the weights cannot be had, before any image is processed.
    """
    path = inception_weights_path(weights, cache_dir, download)
    model = keras.applications.InceptionV3(include_top=False, weights=None, pooling="avg",
                                           input_shape=(INCEPTION_SIZE, INCEPTION_SIZE, 3))
    try:
        model.load_weights(path)
    except Exception as e:  # wrong file type, a with-top or other model, truncated download
        raise FIDWeightsError(
            f"{path} is not usable InceptionV3 no-top weights ({str(e).splitlines()[0]}): "
            f"replace it with {INCEPTION_URL}, or pass --nofid to skip FID/KID") from None

    @tf.function(reduce_retracing=True)
    def embed(images: tf.Tensor) -> tf.Tensor:
        x = tf.image.resize(tf.cast(images, tf.float32), (INCEPTION_SIZE, INCEPTION_SIZE),
                            method="bilinear")
        x = keras.applications.inception_v3.preprocess_input(x)
        return model(x, training=False)

    return FeatureNetwork(KERAS_INCEPTION, _in_batches(embed, batch_size))
