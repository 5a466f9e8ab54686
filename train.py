"""Train a CycleGAN on two tfrecords files written by build_data.py (or, with --model dcgan or
wgangp, a generator of new images on one).

  python train.py --X data/tfrecords/apple.tfrecords --Y data/tfrecords/orange.tfrecords
  python train.py --model dcgan --X data/tfrecords/faces.tfrecords --checkpoint_dir checkpoints/faces
  python train.py --load_model 20170602-1936          # resume checkpoints/20170602-1936
Rerunning with the same --checkpoint_dir resumes where the run stopped; its settings come from
its config.json, and flags given again override them (architecture changes are refused).
"""
from absl import flags

from cyclegan_tf import cli
from cyclegan_tf.config import GAN_LOSSES, GENERATOR_MODELS, Config, ConfigError
from cyclegan_tf.training import prepare_config, resolve_run_dir, train

# One flag per setting of the run (cyclegan_tf.config.Config: names, defaults and help), among
# them the classic train.py's: batch_size image_size norm lambda1 lambda2 learning_rate beta1
# pool_size ngf X Y, same names, meanings and defaults.
CONFIG_FLAGS = cli.define_config_flags()
flags.DEFINE_bool("use_lsgan", True, "least-squares GAN loss; --nouse_lsgan: the vanilla "
                  "cross-entropy loss (same as --gan_loss vanilla)")
flags.DEFINE_enum("gan_loss", None, list(GAN_LOSSES), "GAN objective (default lsgan; wgangp "
                  "adds a gradient penalty of weight --gp_weight)")
flags.DEFINE_string("load_model", "", "resume checkpoints/NAME (e.g. 20170602-1936)")
flags.DEFINE_bool("new_data", False, "resume a run with --X/--Y naming other tfrecords than it "
                  "trained on (refused without this flag)")
FLAGS = flags.FLAGS


def main(argv):
    if FLAGS.model in GENERATOR_MODELS and (FLAGS["gan_loss"].present or FLAGS["use_lsgan"].present):
        raise ConfigError(f"--gan_loss and --use_lsgan are CycleGAN settings: --model "
                          f"{FLAGS.model} has its own loss")
    gan_loss = FLAGS.gan_loss or ("lsgan" if FLAGS.use_lsgan else "vanilla")
    settings = {name: FLAGS[name].value for name in CONFIG_FLAGS}
    settings["checkpoint_dir"] = resolve_run_dir(FLAGS.checkpoint_dir, FLAGS.load_model)
    requested = Config(gan_loss=gan_loss, **settings)
    explicit = cli.explicit_flags(CONFIG_FLAGS)
    if FLAGS["gan_loss"].present or FLAGS["use_lsgan"].present:
        explicit.add("gan_loss")
    train(prepare_config(requested, explicit, new_data=FLAGS.new_data))


if __name__ == "__main__":
    cli.run(main)
