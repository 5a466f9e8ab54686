"""cyclegan_tf: CycleGAN for TensorFlow 2 / Keras 3.

The public API, imported lazily so that `import cyclegan_tf` (and the demo data generator) stays
cheap until TensorFlow is needed:

  Config                      the run's settings (cyclegan_tf.config)
  train(config)               train or resume a run (cyclegan_tf.training)
  export_run(run_dir, a, b)   write the two SavedModels of a run (cyclegan_tf.export)
  ImageTranslator.load(path)  translate numpy arrays / PIL images (cyclegan_tf.translate)
  build_tfrecords(...)        image folder -> tfrecords (cyclegan_tf.data)
  evaluate(...)               cycle/identity L1, FID, KID, grids (cyclegan_tf.evaluate)
"""
import importlib

_PUBLIC = {
    "Config": "cyclegan_tf.config",
    "train": "cyclegan_tf.training",
    "export_run": "cyclegan_tf.export",
    "ImageTranslator": "cyclegan_tf.translate",
    "build_tfrecords": "cyclegan_tf.data",
    "evaluate": "cyclegan_tf.evaluate",
}
__all__ = sorted(_PUBLIC)


def __getattr__(name: str):
    if name in _PUBLIC:
        return getattr(importlib.import_module(_PUBLIC[name]), name)
    raise AttributeError(f"module 'cyclegan_tf' has no attribute {name!r}")
