"""Translate an image (or a folder of images) with an exported model.

  python inference.py --model pretrained/apple2orange.pb --input apple.jpg --output orange.jpg
By default the output keeps the input's size and aspect; --image_size N gives the classic
behaviour (resize to an N x N square first).
"""
from absl import flags

from cyclegan_tf import cli
from cyclegan_tf.translate import ImageTranslator, plan_translations, translate_path

flags.DEFINE_string("model", "pretrained/apple2orange.pb",
                    "exported SavedModel folder (or a run folder, with --direction)")
flags.DEFINE_string("direction", "XtoY", "with a run folder as --model: XtoY (G) or YtoX (F)")
flags.DEFINE_string("input", "input_sample.jpg", "image file, or a folder of images")
flags.DEFINE_string("output", "output_sample.jpg", "image file, or a folder for a folder input")
flags.DEFINE_integer("image_size", 0, "if > 0, resize to this square first (classic behaviour)")
FLAGS = flags.FLAGS


def main(argv):
    plan_translations(FLAGS.input, FLAGS.output)  # bad outputs refused before the model loads
    translator = ImageTranslator.load(FLAGS.model, FLAGS.direction)
    report = translate_path(translator, FLAGS.input, FLAGS.output, FLAGS.image_size or None)
    if len(report.written) == 1 and not report.skipped:
        print(f"wrote {report.written[0]}")
    return 1 if report.skipped and not report.written else 0


if __name__ == "__main__":
    cli.run(main)
