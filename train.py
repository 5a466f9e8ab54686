"""Train a CycleGAN on two tfrecords files written by build_data.py.

  python train.py --X data/tfrecords/apple.tfrecords --Y data/tfrecords/orange.tfrecords
  python train.py --load_model 20170602-1936          # resume checkpoints/20170602-1936
Rerunning with the same --checkpoint_dir resumes where the run stopped; its settings come from
its config.json, and flags given again override them (architecture changes are refused).
"""
from absl import flags

from cyclegan_tf import cli
from cyclegan_tf.config import Config
from cyclegan_tf.training import prepare_config, resolve_run_dir, train

D = Config()
# The classic train.py's flags, same names, meanings and defaults.
flags.DEFINE_integer("batch_size", D.batch_size, "images per step per replica")
flags.DEFINE_integer("image_size", D.image_size, "training crop size (multiple of 4)")
flags.DEFINE_bool("use_lsgan", True, "least-squares GAN loss; --nouse_lsgan: the vanilla "
                  "cross-entropy loss (same as --gan_loss vanilla)")
flags.DEFINE_enum("norm", D.norm, ["instance", "batch"], "normalisation layers")
flags.DEFINE_float("lambda1", D.lambda1, "weight of the forward cycle loss (X -> Y -> X)")
flags.DEFINE_float("lambda2", D.lambda2, "weight of the backward cycle loss (Y -> X -> Y)")
flags.DEFINE_float("learning_rate", D.learning_rate, "initial Adam learning rate")
flags.DEFINE_float("beta1", D.beta1, "Adam beta1")
flags.DEFINE_integer("pool_size", D.pool_size, "history of generated images shown to D (0: off)")
flags.DEFINE_integer("ngf", D.ngf, "filters of the generators' first layer")
flags.DEFINE_string("X", D.X, "X tfrecords (a file, a glob, or a sharded base name)")
flags.DEFINE_string("Y", D.Y, "Y tfrecords")
flags.DEFINE_string("load_model", "", "resume checkpoints/NAME (e.g. 20170602-1936)")
# New flags.
flags.DEFINE_string("checkpoint_dir", "", "run folder (default: a new checkpoints/YYYYMMDD-HHMM); "
                    "an existing one is resumed")
flags.DEFINE_float("lambda_identity", D.lambda_identity, "identity loss weight, times lambda of "
                   "the target domain (0: the classic code's behaviour)")
flags.DEFINE_enum("gan_loss", None, ["lsgan", "vanilla", "wgangp"], "GAN objective (default "
                  "lsgan; wgangp adds a gradient penalty of weight --gp_weight)")
flags.DEFINE_float("gp_weight", D.gp_weight, "WGAN-GP gradient penalty weight")
flags.DEFINE_integer("ndf", D.ndf, "filters of the discriminators' first layer")
flags.DEFINE_integer("n_blocks", 0, "residual blocks (0: 6 up to 128 px, 9 above)")
flags.DEFINE_bool("input_skip", D.input_skip, "feed the input image to the generators' last layer "
                  "too, so translations keep its overall colour and contrast (instance norm hides "
                  "them from the paper's generator)")
flags.DEFINE_integer("max_steps", D.max_steps, "stop after this many steps")
flags.DEFINE_integer("decay_steps", 0, "linear lr decay to 0 over the last N steps "
                     "(0: the second half of max_steps)")
flags.DEFINE_bool("augment", D.augment, "resize to --load_size, random crop and flip")
flags.DEFINE_integer("load_size", D.load_size, "augment: resize to this before the random crop "
                     "(0: 1.12 x image_size; image_size: flips only, for aligned faces)")
flags.DEFINE_integer("seed", D.seed, "seed of the data order and augmentation")
flags.DEFINE_integer("save_every", D.save_every, "checkpoint every N steps")
flags.DEFINE_integer("summary_every", D.summary_every, "TensorBoard summaries every N steps")
flags.DEFINE_integer("log_every", D.log_every, "progress line every N steps")
flags.DEFINE_integer("keep_checkpoints", D.keep_checkpoints, "checkpoints kept on disk")
flags.DEFINE_bool("jit_compile", D.jit_compile, "compile the step with XLA")
flags.DEFINE_enum("mixed_precision", D.mixed_precision, ["off", "bf16"], "bf16 compute, float32 "
                  "weights (AVX512-BF16 CPUs, Ampere+ GPUs, TPUs)")
flags.DEFINE_enum("strategy", D.strategy, ["default", "mirrored", "multi_worker", "tpu"],
                  "tf.distribute strategy: one device, all local GPUs, TF_CONFIG machines, TPU")
FLAGS = flags.FLAGS

CONFIG_FLAGS = ["batch_size", "image_size", "norm", "lambda1", "lambda2", "learning_rate", "beta1",
                "pool_size", "ngf", "X", "Y", "lambda_identity", "gp_weight", "ndf", "n_blocks",
                "input_skip", "max_steps", "decay_steps", "augment", "load_size", "seed",
                "save_every", "summary_every", "log_every", "keep_checkpoints", "jit_compile",
                "mixed_precision", "strategy"]


def main(argv):
    gan_loss = FLAGS.gan_loss or ("lsgan" if FLAGS.use_lsgan else "vanilla")
    run_dir = resolve_run_dir(FLAGS.checkpoint_dir, FLAGS.load_model)
    requested = Config(checkpoint_dir=run_dir, gan_loss=gan_loss,
                       **{name: FLAGS[name].value for name in CONFIG_FLAGS})
    explicit = cli.explicit_flags(CONFIG_FLAGS)
    if FLAGS["gan_loss"].present or FLAGS["use_lsgan"].present:
        explicit.add("gan_loss")
    train(prepare_config(requested, explicit))


if __name__ == "__main__":
    cli.run(main)
