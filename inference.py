"""Translate an image (or a folder of images) with an exported model.

  python inference.py --model pretrained/apple2orange --input apple.jpg --output orange.jpg
By default the output keeps the input's size and aspect; --image_size N gives the classic
behaviour (resize to an N x N square first).

Faces in ordinary photos (the faces extra: pip install -e ".[faces]"): every face is found,
aligned as the model's training faces were, translated and blended back; nothing else changes.
  python inference.py --model pretrained/man2woman --input photos/ --output out/ --align_faces

A generator (export_graph.py --generator_model) makes new images instead:
  python inference.py --model pretrained/faces --num 64 --seed 0 --output faces.png  # a grid
  python inference.py --model pretrained/faces --num 64 --output samples/faces/  # 64 PNGs
  python inference.py --model pretrained/faces --interpolate 8 --output walk.gif

A StyleGAN also works in its latent space (pretrained/stylegan: export_graph.py of a --model
stylegan run): project a face, learn a direction from two folders, edit, animate, mix styles.
  python inference.py --model pretrained/stylegan --input face.jpg --project --output fit.png
  python inference.py --model pretrained/stylegan --learn_direction gender \
      --from_images data/men --to_images data/women
  python inference.py --model pretrained/stylegan --input face.jpg --edit gender \
      --output woman.png            # --animate --output swap.gif: the face changing, as a GIF
  python inference.py --model pretrained/stylegan --mix --output mixing.png
"""
from absl import flags

from cyclegan_tf import cli
from cyclegan_tf.errors import ConfigError
from cyclegan_tf.faces import FaceDetector, FaceLayout
from cyclegan_tf.translate import (ImageTranslator, plan_faces, plan_translations,
                                   translate_faces, translate_path)

flags.DEFINE_string("model", "pretrained/apple2orange",
                    "exported SavedModel folder (or a run folder, with --direction)")
flags.DEFINE_string("direction", "XtoY", "with a run folder as --model: XtoY (G) or YtoX (F)")
flags.DEFINE_string("input", "input_sample.jpg", "image file, or a folder of images")
flags.DEFINE_string("output", "output_sample.jpg", "image file, or a folder for a folder input")
flags.DEFINE_integer("image_size", 0, "if > 0, resize to this square first (classic behaviour)")
flags.DEFINE_boolean("align_faces", False, "translate the faces of ordinary photos: find each, "
                     "align it to the model's face layout, translate, paste back")
flags.DEFINE_string("crops", "", "--align_faces: also write each aligned face beside its "
                                 "translation into this folder")
flags.DEFINE_boolean("keep_faceless", False, "--align_faces: copy photos without a face "
                                             "unchanged (default: leave them out, listed)")
flags.DEFINE_integer("num", 0, "generator: write this many new images (a grid, or a folder of "
                     "PNGs for --output DIR/)")
flags.DEFINE_integer("interpolate", 0, "generator: an animated GIF walking smoothly through this "
                     "many random images, and back to the first")
flags.DEFINE_integer("frames", 16, "generator, --interpolate: frames from one image to the next")
flags.DEFINE_integer("seed", 0, "generator: the same seed gives the same images")
flags.DEFINE_float("truncation", 1.0, "generator: noise scaled by this (< 1: more typical, less "
                   "varied images)")
flags.DEFINE_boolean("project", False, "stylegan: find the latent of each --input face; writes "
                     "its reconstruction to --output and the latent beside it (.npy: ws [num_ws, "
                     "w_dim], for the export's synthesis; with --space z and no --refine_steps "
                     "also .z.npy: z)")
flags.DEFINE_string("learn_direction", "", "stylegan: learn the direction NAME from "
                    "--from_images to --to_images (stored as MODEL/directions/NAME.npy, in w, "
                    "and NAME.z.npy, in z, for edits of z projections)")
flags.DEFINE_string("from_images", "", "--learn_direction: faces without the attribute")
flags.DEFINE_string("to_images", "", "--learn_direction: faces with the attribute")
flags.DEFINE_enum("direction_method", "classifier", ["classifier", "projections"],
                  "--learn_direction: a classifier of the two folders labels generated faces "
                  "(InterFaceGAN), or the difference of the folders' projected latents")
flags.DEFINE_boolean("keep_brightness", True, "--learn_direction (classifier): take out of the "
                     "direction what it shares with the faces' brightness, so that an edit "
                     "keeps skin tone and light (--nokeep_brightness for attributes of light)")
flags.DEFINE_integer("limit", 0, "--learn_direction: images read from each folder (0: all for "
                     "the classifier, 100 for projections)")
flags.DEFINE_string("edit", "", "stylegan: change each --input face by the attribute of the "
                    "learned direction NAME")
flags.DEFINE_enum("edit_method", "optimize", ["optimize", "direction"], "--edit: each face's "
                  "own move in w, optimised until the direction's classifier is --confidence "
                  "sure while the face stays near itself; or a move along the direction (in "
                  "z for a z projection, where the direction has its z form), only as far as "
                  "the classifier needs. Both need the classifier (--direction_method "
                  "classifier); without it every face moves --strength along the direction")
flags.DEFINE_float("strength", 3.0, "--edit: how far at most, in lengths of the direction (1: "
                   "the difference it was learned as); negative: the other way")
flags.DEFINE_float("confidence", None, "--edit: how sure the direction's classifier must be of "
                   "the edit (default: 0.99 for --edit_method optimize, 0.9 for direction; 0: "
                   "always the full --strength along the direction)")
flags.DEFINE_boolean("animate", False, "--edit: an animated GIF from the face to the edited face "
                     "and back (--output x.gif, --frames per way)")
flags.DEFINE_boolean("mix", False, "stylegan: a style-mixing grid (--output grid.png)")
flags.DEFINE_integer("steps", 300, "projection: optimisation steps per face")
flags.DEFINE_enum("distance", "auto", ["auto", "vgg16", "pixels"], "projection: perceptual "
                  "distance (auto: VGG16 if its weights are here, else a pixel fallback)")
flags.DEFINE_enum("space", "z", ["z", "w", "w+"], "projection: search the mapping's input z "
                  "(sharper faces from a young model; --edit then moves z), w (the paper's) or "
                  "w+ (one w per layer: closer fits, less reliable edits)")
flags.DEFINE_integer("refine_steps", 0, "projection: then refine it this many steps in w+ "
                     "(e.g. 100): the reconstruction keeps the person far more often, edits of "
                     "it flip less; 0: off")
FLAGS = flags.FLAGS

LATENT_FLAGS = ("project", "learn_direction", "edit", "mix")


def main(argv):
    from cyclegan_tf import sampling
    latent = [f"--{name}" for name in LATENT_FLAGS if FLAGS[name].value]
    if latent:
        if not sampling.is_generator(FLAGS.model):
            raise ConfigError(f"{' '.join(latent)}: only a StyleGAN has a latent space to work in, and "
                              f"{FLAGS.model} is not a StyleGAN (export_graph.py "
                              "--generator_model of a --model stylegan run, or its run folder)")
        if len(latent) > 1:
            raise ConfigError(f"give one of {', '.join(latent)}")
        return _latent_command()
    if sampling.is_generator(FLAGS.model):
        if FLAGS.align_faces or FLAGS.crops or FLAGS.keep_faceless:
            raise ConfigError(f"{FLAGS.model} is a generator: --align_faces, --crops and "
                              "--keep_faceless go with a translation model")
        output = FLAGS.output if FLAGS["output"].present else None
        print(sampling.write_samples(FLAGS.model, output, FLAGS.num, FLAGS.interpolate,
                                     FLAGS.frames, FLAGS.seed, FLAGS.truncation))
        return 0
    if FLAGS.num or FLAGS.interpolate:
        raise ConfigError(f"--num and --interpolate are for generator models (export_graph.py "
                          f"--generator_model); {FLAGS.model} is not one")
    # Bad outputs are refused before the model loads.
    plan_faces(FLAGS.input, FLAGS.output, FLAGS.crops) if FLAGS.align_faces else \
        plan_translations(FLAGS.input, FLAGS.output)
    if FLAGS.align_faces:
        if FLAGS.image_size:
            raise ConfigError("--align_faces crops each face at the model's own size: leave out "
                              "--image_size")
        FaceLayout.load(FLAGS.model)  # a model without a layout fails before it loads
        FaceDetector.check_installed()
    elif FLAGS.crops or FLAGS.keep_faceless:
        raise ConfigError("--crops and --keep_faceless go with --align_faces")
    translator = ImageTranslator.load(FLAGS.model, FLAGS.direction)
    if FLAGS.align_faces:
        report = translate_faces(translator, FLAGS.model, FLAGS.input, FLAGS.output,
                                 FLAGS.crops, FLAGS.keep_faceless)
        return 1 if not report.written else 0
    report = translate_path(translator, FLAGS.input, FLAGS.output, FLAGS.image_size or None)
    if len(report.written) == 1 and not report.skipped:
        print(f"wrote {report.written[0]}")
    return 1 if report.skipped and not report.written else 0


def _latent_command() -> int:
    from cyclegan_tf import latents
    output = FLAGS.output if FLAGS["output"].present else None
    if FLAGS.mix:
        print(latents.mixing_grid_command(FLAGS.model, output or "mixing.png", FLAGS.seed,
                                          FLAGS.truncation if FLAGS["truncation"].present
                                          else 0.7))
    elif FLAGS.learn_direction:
        print(latents.learn_direction_command(FLAGS.model, FLAGS.learn_direction,
                                              FLAGS.from_images, FLAGS.to_images, FLAGS.limit,
                                              FLAGS.direction_method, FLAGS.steps,
                                              FLAGS.distance, FLAGS.space,
                                              FLAGS.keep_brightness))
    else:
        if FLAGS.align_faces:
            FaceDetector.check_installed()
        print(latents.run_latent_command(
            FLAGS.model, project_only=FLAGS.project, edit=FLAGS.edit, strength=FLAGS.strength,
            animate=FLAGS.animate, frames=FLAGS.frames,
            input_path=FLAGS.input if FLAGS["input"].present else "",
            output=output or ("edit.gif" if FLAGS.animate else "projected.png"),
            steps=FLAGS.steps, distance=FLAGS.distance, space=FLAGS.space,
            confidence=FLAGS.confidence, method=FLAGS.edit_method,
            align_faces=FLAGS.align_faces, refine_steps=FLAGS.refine_steps))
    return 0


if __name__ == "__main__":
    cli.run(main)
