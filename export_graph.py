"""A trained run -> one SavedModel per direction (settings read from the run's config.json).

  python export_graph.py --checkpoint_dir checkpoints/20170424-1152 \
      --XtoY_model apple2orange.pb --YtoX_model orange2apple.pb
  python export_graph.py --checkpoint_dir checkpoints/faces --generator_model faces  # dcgan/wgangp
Bare names are written under pretrained/, as the classic script did; paths are used as given.
"""
import os

from absl import flags

from cyclegan_tf import cli, data, export, portable, sampling
from cyclegan_tf.config import GENERATOR_MODELS, Config

flags.DEFINE_string("checkpoint_dir", "", "the run folder train.py wrote (checkpoints/...)")
flags.DEFINE_string("XtoY_model", "apple2orange.pb", "SavedModel folder for G: X -> Y")
flags.DEFINE_string("YtoX_model", "orange2apple.pb", "SavedModel folder for F: Y -> X")
flags.DEFINE_string("generator_model", "", "a dcgan / wgangp run: its SavedModel folder (noise "
                    "-> images, made with the run's moving-average generator)")
flags.DEFINE_integer("max_pixels", data.MAX_TRANSLATE_PIXELS, "larger inputs are refused")
flags.DEFINE_string("formats", "saved_model", "comma-separated: saved_model,onnx,tflite; onnx and "
                    "tflite add model.onnx / model.tflite inside each SavedModel folder "
                    '(pip install -e ".[export]")')
# The classic script needed these repeated; the run's config.json now says them. Kept so old
# commands still parse; a value that contradicts the run is an error, not a silent mismatch.
flags.DEFINE_integer("image_size", None, "(deprecated, read from the run) checked if given")
flags.DEFINE_integer("ngf", None, "(deprecated, read from the run) checked if given")
flags.DEFINE_string("norm", None, "(deprecated, read from the run) checked if given")
FLAGS = flags.FLAGS


def _output_path(name: str) -> str:
    """A bare name (no folder, trailing slash or not) goes under pretrained/, as it always did."""
    bare = name.rstrip(os.sep)
    if not bare:
        raise export.ExportError(f"empty or root model path {name!r}: give a name, e.g. day2night")
    return bare if os.path.dirname(bare) else os.path.join("pretrained", bare)


def main(argv):
    formats = portable.require_formats(FLAGS.formats)  # bad names / missing extra: fail first
    if not FLAGS.checkpoint_dir:
        raise export.ExportError("--checkpoint_dir is required: the run folder train.py wrote")
    config = Config.load(FLAGS.checkpoint_dir)
    if config.model in GENERATOR_MODELS:
        return _export_generator(config, formats)
    if FLAGS.generator_model:
        raise export.ExportError(f"--generator_model is for dcgan / wgangp runs; "
                                 f"{FLAGS.checkpoint_dir} is a {config.model} run: give "
                                 "--XtoY_model and --YtoX_model")
    for name in ("image_size", "ngf", "norm"):
        given = FLAGS[name].value
        if given is not None and given != getattr(config, name):
            raise export.ExportError(f"--{name}={given} contradicts the run "
                                     f"({name}={getattr(config, name)!r} in its config.json); "
                                     "drop the flag")
    paths = export.export_run(FLAGS.checkpoint_dir, _output_path(FLAGS.XtoY_model),
                              _output_path(FLAGS.YtoX_model), FLAGS.max_pixels, formats=formats)
    _print_portable(paths, formats)


def _print_portable(paths, formats) -> None:
    for path in paths:
        for name in formats:
            if name in portable.FILE_NAMES:
                print(f"exported {os.path.join(path, portable.FILE_NAMES[name])}")


def _export_generator(config: Config, formats: list[str]) -> None:
    """One SavedModel for a DCGAN / WGAN-GP run (sampling.py lists its signatures)."""
    given = [f"--{name}" for name in ("XtoY_model", "YtoX_model", "image_size", "ngf",
                                      "norm") if FLAGS[name].present]
    if given:
        raise export.ExportError(f"{' '.join(given)}: not for a {config.model} run, which exports "
                                 "one SavedModel: give --generator_model NAME only")
    if not FLAGS.generator_model:
        raise export.ExportError(f"{FLAGS.checkpoint_dir} is a {config.model} run: give "
                                 "--generator_model NAME (its SavedModel, under pretrained/)")
    path = sampling.export_generator_run(FLAGS.checkpoint_dir, _output_path(FLAGS.generator_model),
                                         formats=formats)
    _print_portable([path], formats)


if __name__ == "__main__":
    cli.run(main)
