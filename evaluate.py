"""Evaluate a trained model on test images of X and Y: cycle and identity L1, FID and KID.

  python evaluate.py --checkpoint_dir checkpoints/20170424-1152 \
      --X data/apple2orange/testA --Y data/apple2orange/testB --output_dir eval
  python evaluate.py --XtoY_model pretrained/apple2orange.pb \
      --YtoX_model pretrained/orange2apple.pb --X data/tfrecords/apple_test.tfrecords \
      --Y data/tfrecords/orange_test.tfrecords --nofid
Writes metrics.json, grid_X.png (x, G(x), F(G(x))), grid_Y.png (y, F(y), G(F(y))) and the
translations (XtoY/, YtoX/) into --output_dir, and prints the metrics as one JSON line.
FID/KID need the Keras InceptionV3 ImageNet weights: downloaded into ~/.keras/models on first use,
or given with --fid_weights; --nofid skips them.
"""
import json
import os
import sys

from absl import flags

from cyclegan_tf import cli, files
from cyclegan_tf import evaluate as evaluation
from cyclegan_tf.config import ConfigError

flags.DEFINE_string("checkpoint_dir", "", "the run folder train.py wrote (or use the two models)")
flags.DEFINE_string("XtoY_model", "", "SavedModel folder for G: X -> Y (export_graph.py)")
flags.DEFINE_string("YtoX_model", "", "SavedModel folder for F: Y -> X (export_graph.py)")
flags.DEFINE_string("X", "", "test images of X: a folder of images, or tfrecords")
flags.DEFINE_string("Y", "", "test images of Y: a folder of images, or tfrecords")
flags.DEFINE_integer("image_size", 0, "if > 0, resize test images to this square first")
flags.DEFINE_integer("limit", 0, "if > 0, use at most this many images of each domain")
flags.DEFINE_string("output_dir", "", "where results go (default: CHECKPOINT_DIR/evaluation, "
                                      "or ./evaluation with SavedModels)")
flags.DEFINE_boolean("fid", True, "compute FID and KID (--nofid skips them)")
flags.DEFINE_string("fid_weights", "", "InceptionV3 no-top weights file (.h5/.keras); "
                                       "default: the Keras cache, downloaded if missing")
flags.DEFINE_integer("batch_size", 16, "images per translation / feature batch")
FLAGS = flags.FLAGS


def _log(message: str) -> None:
    print(message, file=sys.stderr)  # stdout carries only the metrics' JSON line


def main(argv):
    for name in ("X", "Y"):
        if not FLAGS[name].value:
            raise ConfigError(f"--{name} is required: the test images of {name} "
                              "(a folder of images, or tfrecords from build_data.py)")
    # Checked before the slow parts, so a bad output or a missing file fails in seconds.
    output_dir = FLAGS.output_dir or os.path.join(FLAGS.checkpoint_dir or ".", "evaluation")
    inputs = [FLAGS.X, FLAGS.Y, FLAGS.checkpoint_dir, FLAGS.XtoY_model, FLAGS.YtoX_model]
    files.check_outputs([files.Output(output_dir, "folder")], inputs=inputs)
    features = evaluation.inception_features(FLAGS.fid_weights or None) if FLAGS.fid else None
    x_images = evaluation.load_images(FLAGS.X, FLAGS.image_size, FLAGS.limit, _log)
    y_images = evaluation.load_images(FLAGS.Y, FLAGS.image_size, FLAGS.limit, _log)
    G, F = evaluation.load_translators(FLAGS.checkpoint_dir, FLAGS.XtoY_model, FLAGS.YtoX_model)
    metrics = evaluation.evaluate(G, F, x_images, y_images, output_dir, features=features,
                                  compute_fid=FLAGS.fid, batch_size=FLAGS.batch_size, log=_log,
                                  inputs=inputs)
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    cli.run(main)
