"""Evaluate a trained model.

A CycleGAN, on test images of X and Y: cycle and identity L1, FID and KID.
  python evaluate.py --checkpoint_dir checkpoints/20170424-1152 \
      --X data/apple2orange/testA --Y data/apple2orange/testB --output_dir eval
  python evaluate.py --XtoY_model pretrained/apple2orange.pb \
      --YtoX_model pretrained/orange2apple.pb --X data/tfrecords/apple_test.tfrecords \
      --Y data/tfrecords/orange_test.tfrecords --nofid
Writes metrics.json, grid_X.png (x, G(x), F(G(x))), grid_Y.png (y, F(y), G(F(y))) and the
translations (XtoY/, YtoX/) into --output_dir.

A generator (DCGAN, WGAN-GP, StyleGAN), against real images: FID and KID of --num samples.
  python evaluate.py --model pretrained/faces --X data/tfrecords/faces.tfrecords --num 500
  python evaluate.py --checkpoint_dir checkpoints/faces --step 2000 --X data/faces/test
  python evaluate.py --model pretrained/faces --X data/tfrecords/faces.tfrecords --num 5000 \
      --sample_sets 8          # the mean of 8 sets and its standard error: to compare two models
Writes metrics.json and samples.png.

Both print the metrics as one JSON line. FID/KID use the network metrics.json names
("feature_network"): with --fid_weights classify_image_graph_def.pb (or the
inception-2015-12-05.tgz it ships in), the standard FID network, comparable with published FID;
without it, Keras' InceptionV3 (downloaded into ~/.keras/models on first use, or given with
--fid_weights FILE.h5), comparable only with other runs of this project; --fid_network face uses
a face network that needs no download (the faces extra), for following a training run offline.
"""
import json
import os
import sys

from absl import flags

from cyclegan_tf import cli, files
from cyclegan_tf import evaluate as evaluation
from cyclegan_tf import features, sampling
from cyclegan_tf.config import ConfigError

flags.DEFINE_string("checkpoint_dir", "", "the run folder train.py wrote (or use the models)")
flags.DEFINE_string("XtoY_model", "", "SavedModel folder for G: X -> Y (export_graph.py)")
flags.DEFINE_string("YtoX_model", "", "SavedModel folder for F: Y -> X (export_graph.py)")
flags.DEFINE_string("model", "", "a generator SavedModel (export_graph.py --generator_model)")
flags.DEFINE_string("X", "", "test images of X (real images for a generator): a folder of "
                             "images, or tfrecords")
flags.DEFINE_string("Y", "", "test images of Y: a folder of images, or tfrecords")
flags.DEFINE_integer("image_size", 0, "if > 0, resize test images to this square first")
flags.DEFINE_integer("limit", 0, "if > 0, use at most this many images of each domain")
flags.DEFINE_integer("num", 500, "generators: samples scored")
flags.DEFINE_integer("seed", 0, "generators: the samples' seed (as inference.py --seed)")
flags.DEFINE_integer("sample_sets", 1, "generators: score this many sets of --num samples "
                                       "(seeds SEED, SEED+1, ...) and report their mean FID/KID "
                                       "with its standard error")
flags.DEFINE_float("truncation", 1.0, "generators: score samples drawn at this truncation, as "
                   "inference.py --truncation draws them (1: none, the usual FID)")
flags.DEFINE_integer("step", None, "generators: score this checkpoint of --checkpoint_dir "
                                   "(default: the latest)")
flags.DEFINE_string("output_dir", "", "where results go (default: CHECKPOINT_DIR/evaluation "
                                      "or evaluation-STEP, or ./evaluation with SavedModels)")
flags.DEFINE_boolean("fid", True, "compute FID and KID (--nofid skips them; CycleGAN only)")
flags.DEFINE_string("fid_weights", "", "the FID network's file: classify_image_graph_def.pb or "
                                       "inception-2015-12-05.tgz (standard FID), or Keras "
                                       "InceptionV3 no-top weights (.h5); default: the Keras "
                                       "cache, downloaded if missing")
flags.DEFINE_enum("fid_network", "inception", list(features.NETWORKS),
                  "inception (FID) or face (MTCNN's face network: offline, not FID)")
flags.DEFINE_integer("batch_size", 16, "images per translation / feature batch")
FLAGS = flags.FLAGS


def _log(message: str) -> None:
    print(message, file=sys.stderr)  # stdout carries only the metrics' JSON line


def main(argv):
    run = FLAGS.checkpoint_dir
    if FLAGS.model and not sampling.is_generator(FLAGS.model):
        raise ConfigError(f"--model {FLAGS.model} is not a generator that export_graph.py "
                          "--generator_model wrote (a CycleGAN's two SavedModels go in "
                          "--XtoY_model and --YtoX_model)")
    generator = bool(FLAGS.model or (run and sampling.is_generator(run)))
    needed = ("X",) if generator else ("X", "Y")
    for name in needed:
        if not FLAGS[name].value:
            raise ConfigError(f"--{name} is required: the {'real' if generator else 'test'} "
                              f"images of {name} (a folder of images, or tfrecords)")
    if FLAGS.sample_sets != 1 and not generator:
        raise ConfigError("--sample_sets scores a generator's samples (--model or a generator "
                          "run's --checkpoint_dir); a CycleGAN is scored on its test images once")
    if generator and (FLAGS.num < 2 or FLAGS.sample_sets < 1):
        raise ConfigError(f"--num must be >= 2 and --sample_sets >= 1, got {FLAGS.num} and "
                          f"{FLAGS.sample_sets}")
    if generator and FLAGS.truncation < 0:
        raise ConfigError(f"--truncation must be >= 0 (1: none), got {FLAGS.truncation}")
    if generator and not FLAGS.fid:
        raise ConfigError("a generator is scored by FID and KID: leave out --nofid")
    if FLAGS["truncation"].present and not generator:
        raise ConfigError("--truncation scores a generator's samples (--model or a generator "
                          "run's --checkpoint_dir); a CycleGAN has no truncation")
    if FLAGS.step is not None and not (run and generator):
        raise ConfigError("--step picks a checkpoint of a generator run (dcgan, wgangp, "
                          "stylegan): give its --checkpoint_dir"
                          f"{'; ' + run + ' is a CycleGAN run' if run else ''}")
    # Checked before the slow parts, so a bad output or a missing file fails in seconds.
    name = "evaluation" if FLAGS.step is None else f"evaluation-{FLAGS.step}"
    output_dir = FLAGS.output_dir or os.path.join(run or ".", name)
    inputs = [FLAGS.X, FLAGS.Y, run, FLAGS.XtoY_model, FLAGS.YtoX_model, FLAGS.model]
    files.check_outputs([files.Output(output_dir, "folder")], inputs=inputs)
    network = (features.feature_network(FLAGS.fid_network, FLAGS.fid_weights or None)
               if FLAGS.fid else None)
    x_images = evaluation.load_images(FLAGS.X, FLAGS.image_size, FLAGS.limit, _log)
    if generator:
        model = sampling.ImageGenerator.load(FLAGS.model or run, FLAGS.step)
        metrics = evaluation.evaluate_generator(
            model, x_images, output_dir, num=FLAGS.num, seed=FLAGS.seed,
            sample_sets=FLAGS.sample_sets, truncation=FLAGS.truncation, features=network,
            batch_size=FLAGS.batch_size, log=_log, inputs=inputs)
    else:
        y_images = evaluation.load_images(FLAGS.Y, FLAGS.image_size, FLAGS.limit, _log)
        G, F = evaluation.load_translators(run, FLAGS.XtoY_model, FLAGS.YtoX_model)
        metrics = evaluation.evaluate(G, F, x_images, y_images, output_dir, features=network,
                                      compute_fid=FLAGS.fid, batch_size=FLAGS.batch_size,
                                      log=_log, inputs=inputs)
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    cli.run(main)
