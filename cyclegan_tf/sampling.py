"""New images from a trained DCGAN / WGAN-GP / StyleGAN: the exported SavedModel, and what
inference.py writes with it (a grid, a folder of PNGs, an animated walk through the noise space).

Signatures of an exported generator (plain TensorFlow calls them without this package):
  serving_default  z: float32 [N, z_dim]             -> images: float32 [N, H, W, 3] in [-1, 1]
  generate_uint8   z: float32 [N, z_dim]             -> images: uint8 [N, H, W, 3]
  sample           seed: int64 [], count: int32 []   -> images: uint8 [count, H, W, 3], the same
                                                        images for the same seed
A StyleGAN's take one more input, truncation: float32 [] (1: none; 0.7 trades variety for
typical faces; 0: the average face), and it has two more, for style mixing and latent editing:
  mapping          z: float32 [N, z_dim], truncation -> w: float32 [N, w_dim]
  synthesis        ws: float32 [N, num_ws, w_dim]    -> images: float32 [N, H, W, 3] in [-1, 1]
(ws[:, i] styles the i-th layer; serving_default(z) == synthesis(mapping(z) repeated num_ws
times); mapping(z, truncation=0) is w_avg). Each exported StyleGAN image gets per-pixel noise
drawn from its own styles (stylegan.StyleLayer.styled_noise), so the same z or ws always gives
the same image.
The generator is the run's moving average G_ema (generators.py).
"""
from __future__ import annotations

import json
import math
import os
from typing import Callable, Sequence

import keras
import numpy as np
import tensorflow as tf
from PIL import Image

from cyclegan_tf import files, portable
from cyclegan_tf.config import GENERATOR_MODELS, Config
from cyclegan_tf.errors import ConfigError, ExportError, OutputError
from cyclegan_tf.export import (METADATA_FILE, restore_latest, run_extra_files,
                                write_assets_extra)

KIND = "generator"  # the metadata's "kind" of a noise -> image SavedModel


def noise(seed: int | tf.Tensor, count: int | tf.Tensor, z_dim: int) -> tf.Tensor:
    """The noise `sample(seed, count)` uses: stateless, so one seed always gives one batch."""
    seed = tf.stack([tf.cast(seed, tf.int64), tf.constant(0, tf.int64)])
    return tf.random.stateless_normal(tf.stack([tf.cast(count, tf.int32), z_dim]), seed)


def load_ema_generator(run_dir: str, step: int | None = None) -> tuple[keras.Model, Config]:
    """The averaged generator G_ema of a DCGAN / WGAN-GP / StyleGAN run folder's latest
    checkpoint (or of its checkpoint of that step)."""
    from cyclegan_tf.gans import model_class  # the models import this module's neighbours
    config = Config.load(run_dir)
    if config.model not in GENERATOR_MODELS:
        raise ExportError(f"{run_dir} is a {config.model} run, not a generator "
                          f"({', '.join(GENERATOR_MODELS)}): export it with "
                          "--XtoY_model/--YtoX_model")
    generator = model_class(config.model).build_generator(config, "G_ema", dtype="float32")
    restore_latest(run_dir, step, G_ema=generator)
    return generator, config


class Sampler(tf.Module):
    """A noise generator wrapped with the signatures listed in this module's docstring."""

    def __init__(self, generator: keras.Model):
        super().__init__(name="sampler")
        self.generator = generator
        self.z_dim = generator.z_dim

    @tf.function
    def generate_float(self, z):
        return {"images": tf.clip_by_value(self.generator(z, training=False), -1.0, 1.0)}

    @tf.function
    def generate_uint8(self, z):
        images = self.generate_float(z)["images"]
        return {"images": tf.cast(tf.round((images + 1.0) * 127.5), tf.uint8)}

    @tf.function
    def sample(self, seed, count):
        tf.debugging.assert_non_negative(count, message="count must be >= 0")
        return self.generate_uint8(noise(seed, count, self.z_dim))

    def signatures(self) -> dict:
        z = tf.TensorSpec([None, self.z_dim], tf.float32, name="z")
        return {
            "serving_default": self.generate_float.get_concrete_function(z),
            "generate_uint8": self.generate_uint8.get_concrete_function(z),
            "sample": self.sample.get_concrete_function(tf.TensorSpec([], tf.int64, name="seed"),
                                                        tf.TensorSpec([], tf.int32, name="count")),
        }


def _to_uint8(images: tf.Tensor) -> tf.Tensor:
    return tf.cast(tf.round((images + 1.0) * 127.5), tf.uint8)


class StyleSampler(tf.Module):
    """A StyleGAN generator wrapped with the signatures listed in this module's docstring."""

    def __init__(self, generator: keras.Model):
        super().__init__(name="sampler")
        self.generator = generator
        self.z_dim, self.num_ws = generator.z_dim, generator.num_ws

    @tf.function
    def mapping(self, z, truncation):
        return {"w": self.generator.mapping(z, truncation=truncation)}

    @tf.function
    def synthesis(self, ws):
        images = self.generator.synthesize(ws)
        return {"images": tf.clip_by_value(images, -1.0, 1.0)}

    @tf.function
    def generate_float(self, z, truncation):
        w = self.mapping(z, truncation)["w"]
        return self.synthesis(self.generator.broadcast(w))

    @tf.function
    def generate_uint8(self, z, truncation):
        return {"images": _to_uint8(self.generate_float(z, truncation)["images"])}

    @tf.function
    def sample(self, seed, count, truncation):
        tf.debugging.assert_non_negative(count, message="count must be >= 0")
        return self.generate_uint8(noise(seed, count, self.z_dim), truncation)

    def signatures(self) -> dict:
        z = tf.TensorSpec([None, self.z_dim], tf.float32, name="z")
        psi = tf.TensorSpec([], tf.float32, name="truncation")
        ws = tf.TensorSpec([None, self.num_ws, self.z_dim], tf.float32, name="ws")
        return {
            "serving_default": self.generate_float.get_concrete_function(z, psi),
            "generate_uint8": self.generate_uint8.get_concrete_function(z, psi),
            "sample": self.sample.get_concrete_function(tf.TensorSpec([], tf.int64, name="seed"),
                                                        tf.TensorSpec([], tf.int32, name="count"),
                                                        psi),
            "mapping": self.mapping.get_concrete_function(z, psi),
            "synthesis": self.synthesis.get_concrete_function(ws),
        }


def make_sampler(generator: keras.Model) -> tf.Module:
    """The SavedModel wrapper of a generator: a StyleGAN's has the style signatures too."""
    return StyleSampler(generator) if hasattr(generator, "synthesis") else Sampler(generator)


def export_generator_run(run_dir: str, export_dir: str, log: Callable[[str], None] = print,
                         formats: Sequence[str] = ("saved_model",)) -> str:
    """Writes the SavedModel of a DCGAN / WGAN-GP run's G_ema at export_dir, which must be new or
    an earlier export of this package (files.check_outputs: refused before any work), with
    model.onnx / model.tflite in its folder for "onnx" / "tflite" in formats (z in, images out)."""
    portable.require_formats(formats)  # a missing extra fails before anything is written
    replaced = files.check_outputs([files.Output(export_dir, "saved_model")], inputs=[run_dir])
    generator, config = load_ema_generator(run_dir)
    sampler = make_sampler(generator)
    metadata = {"kind": KIND, "model": config.model, "z_dim": config.z_dim,
                **({"num_ws": sampler.num_ws} if isinstance(sampler, StyleSampler) else {}),
                "image_size": config.image_size, "run_dir": os.path.abspath(run_dir),
                "checkpoint": tf.train.latest_checkpoint(run_dir), "config": config.to_dict()}
    # Written beside and swapped in when complete (files.py): a crash leaves the old export.
    with files.atomic_folder(export_dir, kind="saved_model") as tmp_dir:
        tf.saved_model.save(sampler, tmp_dir, signatures=sampler.signatures())
        portable.write_portable(generator, tmp_dir, [f for f in formats if f != "saved_model"])
        write_assets_extra(tmp_dir, metadata, run_extra_files(run_dir))
    log(f"{'replaced' if export_dir in replaced else 'exported'} {export_dir}")
    return export_dir


# -- using an exported generator (inference.py) -----------------------------------------------------

def is_generator(path: str) -> bool:
    """Whether path is a generator SavedModel of this package or a DCGAN / WGAN-GP run folder."""
    try:
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            with open(os.path.join(path, METADATA_FILE), encoding="utf-8") as f:
                return json.load(f).get("kind") == KIND
        if os.path.isfile(os.path.join(path, "config.json")):
            return Config.load(path).model in GENERATOR_MODELS
    except (OSError, ValueError):
        return False
    return False


class ImageGenerator:
    """generate(z) -> uint8 [N, H, W, 3] with a generator SavedModel or a run folder's G_ema.

    styled: a StyleGAN's, whose functions take a truncation and which also has mapping(z,
    truncation) -> {"w"} and synthesis(ws) -> {"images"} (latents.py uses them)."""

    def __init__(self, generate_uint8: Callable[..., dict], z_dim: int, owner: object = None,
                 mapping: Callable[..., dict] | None = None,
                 synthesis: Callable[..., dict] | None = None, num_ws: int = 0):
        self._generate_uint8 = generate_uint8
        self.z_dim = z_dim
        self._owner = owner  # a tf.function method only holds its object weakly
        self.mapping, self.synthesis, self.num_ws = mapping, synthesis, num_ws
        self.styled = synthesis is not None

    @classmethod
    def load(cls, path: str, step: int | None = None) -> "ImageGenerator":
        """From a generator SavedModel, or a run folder (its latest checkpoint, or that step's)."""
        if os.path.isfile(os.path.join(path, "saved_model.pb")):
            if step is not None:
                raise ConfigError(f"{path} is an exported model, a single generator: --step "
                                  "picks a checkpoint of a run folder (--checkpoint_dir)")
            loaded = tf.saved_model.load(path)
            signatures = loaded.signatures
            z_dim = signatures["generate_uint8"].structured_input_signature[1]["z"].shape[1]
            if "synthesis" not in signatures:
                return cls(signatures["generate_uint8"], z_dim, loaded)
            synthesis = signatures["synthesis"]
            return cls(signatures["generate_uint8"], z_dim, loaded, signatures["mapping"],
                       synthesis, int(synthesis.structured_input_signature[1]["ws"].shape[1]))
        generator, _ = load_ema_generator(path, step)
        sampler = make_sampler(generator)
        if not isinstance(sampler, StyleSampler):
            return cls(sampler.generate_uint8, sampler.z_dim, sampler)
        return cls(sampler.generate_uint8, sampler.z_dim, sampler, sampler.mapping,
                   sampler.synthesis, sampler.num_ws)

    def generate(self, z: np.ndarray | tf.Tensor, batch: int = 64,
                 truncation: float = 1.0) -> np.ndarray:
        """uint8 images of noise z; truncation < 1: a StyleGAN pulls w toward w_avg, the
        others scale z (both trade variety for typical images)."""
        z = tf.convert_to_tensor(z, tf.float32)
        extra = {"truncation": tf.constant(truncation, tf.float32)} if self.styled else {}
        if not self.styled:
            z = z * truncation
        return np.concatenate([self._generate_uint8(z=z[i:i + batch], **extra)["images"].numpy()
                               for i in range(0, int(z.shape[0]), batch)])

    def synthesize(self, ws: np.ndarray | tf.Tensor, batch: int = 64) -> np.ndarray:
        """StyleGAN: uint8 images of styles ws [N, num_ws, w_dim]."""
        ws = tf.convert_to_tensor(ws, tf.float32)
        return np.concatenate([_to_uint8(self.synthesis(ws=ws[i:i + batch])["images"]).numpy()
                               for i in range(0, int(ws.shape[0]), batch)])


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation from a (t=0) to b (t=1): normal noise lives near a sphere, and a
    straight line between two points would cut through its less likely inside."""
    cos = np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b))
    omega = math.acos(float(np.clip(cos, -1.0, 1.0)))
    if omega < 1e-6:
        return (1.0 - t) * a + t * b
    return (math.sin((1.0 - t) * omega) * a + math.sin(t * omega) * b) / math.sin(omega)


def walk(keys: np.ndarray, frames: int) -> np.ndarray:
    """A closed loop through the key vectors: frames steps from each to the next (the last
    back to the first), len(keys) * frames vectors in all."""
    count = len(keys)
    return np.stack([slerp(keys[k], keys[(k + 1) % count], f / frames)
                     for k in range(count) for f in range(frames)])


def grid(images: np.ndarray, columns: int = 0) -> Image.Image:
    """uint8 [N, H, W, 3] -> one picture, columns (default: a near square) wide."""
    count, height, width, _ = images.shape
    columns = columns or math.ceil(math.sqrt(count))
    rows = math.ceil(count / columns)
    sheet = np.zeros((rows * height, columns * width, 3), np.uint8)
    for i, image in enumerate(images):
        r, c = divmod(i, columns)
        sheet[r * height:(r + 1) * height, c * width:(c + 1) * width] = image
    return Image.fromarray(sheet)


def is_folder_output(path: str) -> bool:
    """--output DIR/ (or an existing folder): one PNG per image rather than a grid."""
    return path.endswith(("/", os.sep)) or os.path.isdir(path)


def check_sample_outputs(output: str, count: int) -> list[str]:
    """The files a grid, a folder of count PNGs or a GIF will be written to, checked (files.py
    rules) before the model loads."""
    if is_folder_output(output):
        paths = [os.path.join(output, f"{i:04d}.png") for i in range(count)]
    else:
        ext = os.path.splitext(output)[1].lower()
        if ext not in (".png", ".jpg", ".jpeg", ".webp", ".gif"):
            raise OutputError(f"cannot write {output}: end the name with .png, .jpg, .webp (or "
                              ".gif for --interpolate), or with / for a folder of PNGs")
        paths = [output]
    files.check_outputs([files.Output(p, "image") for p in paths])
    return paths


def save_gif(frames: np.ndarray, path: str, duration_ms: int = 80) -> str:
    """An endlessly looping animated GIF, written atomically and marked as this package's."""
    images = [Image.fromarray(frame) for frame in frames]
    with files.atomic_file(path) as tmp:
        images[0].save(tmp, format="GIF", save_all=True, append_images=images[1:],
                       duration=duration_ms, loop=0, **files.image_save_options(path))
    return path


def write_samples(model: str, output: str | None, num: int = 0, interpolate: int = 0,
                  frames: int = 16, seed: int = 0, truncation: float = 1.0) -> str:
    """New images from a generator model: num images as a grid (output.png) or a folder of PNGs
    (output ending in /), or an animated GIF walking through `interpolate` images. Outputs are
    checked before the model loads. Returns what was written, in words."""
    if num < 1 and interpolate < 1:
        raise ConfigError(f"{model} makes new images: pass --num N (a grid, or N PNGs with "
                          "--output DIR/) or --interpolate K (an animated GIF through K images)")
    if num and interpolate:
        raise ConfigError("give --num (images) or --interpolate (a GIF), not both")
    if truncation <= 0 or frames < 1:
        raise ConfigError("--truncation must be > 0 and --frames >= 1")
    output = output or ("faces.gif" if interpolate else "faces.png")
    if interpolate and not output.lower().endswith(".gif"):
        raise ConfigError(f"--interpolate writes an animated GIF: end --output with .gif, not "
                          f"{output}")
    paths = check_sample_outputs(output, num)  # refused before the model loads
    generator = ImageGenerator.load(model)
    count = interpolate or num
    z = noise(seed, count, generator.z_dim).numpy()
    if interpolate:
        images = generator.generate(walk(z, frames), truncation=truncation)
        save_gif(images, output)
        return f"wrote {output} ({len(images)} frames)"
    if is_folder_output(output):
        for image, path in zip(generator.generate(z, truncation=truncation), paths):
            files.save_image(Image.fromarray(image), path)
        return f"wrote {len(paths)} images into {output}"
    files.save_image(grid(generator.generate(z, truncation=truncation)), output)
    return f"wrote {output} ({count} images)"
