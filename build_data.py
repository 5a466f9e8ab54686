"""Image folders (or a TensorFlow Datasets set) -> tfrecords for train.py.

  python build_data.py --X_input_dir data/apple2orange/trainA --Y_input_dir data/apple2orange/trainB \
      --X_output_file data/tfrecords/apple.tfrecords --Y_output_file data/tfrecords/orange.tfrecords
  python build_data.py --tfds cycle_gan/horse2zebra --X_output_file data/tfrecords/horse.tfrecords \
      --Y_output_file data/tfrecords/zebra.tfrecords
  python build_data.py --X_input_dir faces/ --X_output_file data/tfrecords/faces.tfrecords
Given X flags and no Y flag, only X is written (one domain: train.py --model dcgan / wgangp).
Ordinary photos -> aligned face crops (the faces extra), the largest face of each (or all):
  python build_data.py --X_input_dir photos/men --X_output_file data/tfrecords/men.tfrecords \
      --align_faces --image_size 128 [--all_faces] [--face_layout pretrained/man2woman]
"""
from absl import flags

from cyclegan_tf import cli, data, faces
from cyclegan_tf.errors import ConfigError

flags.DEFINE_string("X_input_dir", "data/apple2orange/trainA", "folder of domain X images")
flags.DEFINE_string("Y_input_dir", "data/apple2orange/trainB", "folder of domain Y images")
flags.DEFINE_string("X_output_file", "data/tfrecords/apple.tfrecords", "X tfrecords to write")
flags.DEFINE_string("Y_output_file", "data/tfrecords/orange.tfrecords", "Y tfrecords to write")
flags.DEFINE_integer("image_size", 0, "if > 0, resize each image's shorter side to this at build "
                     "time (smaller files, faster input); 0 keeps the original size")
flags.DEFINE_integer("num_shards", 1, "files per domain (NAME-00000-of-0000N); >1 lets each "
                     "tf.distribute worker read its own")
flags.DEFINE_integer("seed", 0, "seed of the record order shuffle")
flags.DEFINE_integer("max_pixels", data.MAX_DECODE_PIXELS, "larger images are skipped")
flags.DEFINE_string("tfds", "", "read a TensorFlow Datasets set instead of folders, e.g. "
                    "cycle_gan/horse2zebra (downloads on first use)")
flags.DEFINE_string("tfds_X_split", "trainA", "TFDS split for X")
flags.DEFINE_string("tfds_Y_split", "trainB", "TFDS split for Y")
flags.DEFINE_boolean("align_faces", False, "photos in, aligned face crops out (the faces extra): "
                     "the largest face of each photo, at --image_size, aligned to --face_layout")
flags.DEFINE_boolean("all_faces", False, "--align_faces: every face of each photo")
flags.DEFINE_string("face_layout", "", "--align_faces: align as this model (run folder or "
                                       "SavedModel) or face_layout.json was trained; default: "
                                       "the layout of UTKFace's aligned crops")
flags.DEFINE_string("data_dir", None, "TFDS data folder (default ~/tensorflow_datasets)")
FLAGS = flags.FLAGS


def domains() -> list[str]:
    """X and Y, as the classic script; only X when X flags are given and no Y flag is."""
    given = lambda domain: any(FLAGS[f"{domain}_{name}"].present  # noqa: E731
                               for name in ("input_dir", "output_file"))
    return ["X", "Y"] if given("Y") or not given("X") else ["X"]


def main(argv):
    size = FLAGS.image_size or None
    written = domains()
    inputs = [] if FLAGS.tfds else [FLAGS[f"{d}_input_dir"].value for d in written]
    outputs = [path for d in written
               for path in data.shard_paths(FLAGS[f"{d}_output_file"].value, FLAGS.num_shards)]
    data.prepare_outputs(outputs, inputs)  # refused before any work, every domain at once
    for folder in inputs:  # a missing or empty folder fails before the first domain is written
        if not data.list_image_files(folder)[0]:
            raise data.DataError(f"no image files in {folder} (looked for "
                                 f"{', '.join(data.IMAGE_EXTENSIONS)})")
    crop_faces = None
    if FLAGS.align_faces:
        if FLAGS.tfds or not size:
            raise ConfigError("--align_faces reads image folders and needs --image_size (the "
                              "side of the face crops)")
        layout = faces.FaceLayout.load(FLAGS.face_layout) if FLAGS.face_layout else None
        crop_faces = faces.face_cropper(size, layout, FLAGS.all_faces)
    elif FLAGS.all_faces or FLAGS.face_layout:
        raise ConfigError("--all_faces and --face_layout go with --align_faces")
    for domain in written:
        output = FLAGS[f"{domain}_output_file"].value
        if FLAGS.tfds:
            report = data.build_tfrecords_from_tfds(
                FLAGS.tfds, FLAGS[f"tfds_{domain}_split"].value, output, FLAGS.data_dir, size,
                FLAGS.num_shards)
        else:
            report = data.build_tfrecords(FLAGS[f"{domain}_input_dir"].value, output, size,
                                          FLAGS.num_shards, FLAGS.seed, FLAGS.max_pixels,
                                          crop_faces=crop_faces)
        print(report.summary())


if __name__ == "__main__":
    cli.run(main)
