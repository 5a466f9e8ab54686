"""StyleGAN gender edits under several settings, on one set of projections: part (b) of
faces_stylegan.sh, but the 250 + 250 test faces are projected once (the slow part, about ten
minutes on a 2-core CPU) and each setting then costs about a minute, so settings can be compared
on the very same latents (two runs of the projector differ by up to 0.05 in a flipped rate).

  python benchmarks/edit_sweep.py --model DIR SETTING [SETTING ...] [--faces ../shared/data/faces]
      [--work /tmp/edit_sweep] [--judge ../shared/tools/gender_judge.sh]

DIR: an exported StyleGAN with a direction `gender` learned by the classifier method. Its
classifier is what is used: each setting's direction is learned anew with it (seed 0, as
`--learn_direction` does; the saved .npy files are not read), and it decides each face's
strength, as `inference.py --edit` does. SETTING: SPACE:BRIGHTNESS:STRENGTH:CONFIDENCE[:SAMPLES]
  SPACE       opt (the z projection's styles, each face's own move optimised in w: the default
              edit, --edit_method optimize), z (the z projection moved in z along the direction,
              --edit_method direction) or w (the z projection's w moved in w along it, as
              inference.py does with a direction that has no z form; not --space w)
  BRIGHTNESS  kept (the direction less its part along the samples' brightness, the default) or free
  STRENGTH    the cap (men move +STRENGTH at most, women -STRENGTH); CONFIDENCE as --confidence
              (0: every face moves the full STRENGTH; not for opt, whose closeness --closeness sets)
  SAMPLES     generated faces the direction is learned from (default 4000, as --learn_direction)
Prints one JSON line per setting: the judge's flipped rate and face rate per half and overall,
the mean |output - input| (0-255, against the input the projector saw), the mean change of the
faces' centre brightness per half, and the mean strength. The projections are kept in WORK and
reused by later runs.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess

import numpy as np
from PIL import Image

from cyclegan_tf import latents
from cyclegan_tf.sampling import ImageGenerator

HALVES = {"testA": ("female", 1), "testB": ("male", -1)}  # judged gender, the edit's sign


def projections(generator: ImageGenerator, model: str, faces: str, work: str, steps: int = 200
                ) -> dict[str, tuple[list[str], np.ndarray, np.ndarray]]:
    """Per half: the names, the inputs at the model's size, and the z projections (cached in
    work for this model, these faces and projector settings)."""
    distance = latents.make_distance("auto")
    key = [os.path.abspath(model), str(steps), distance.name]
    size = generator.synthesize(np.zeros([1, generator.num_ws, generator.z_dim],
                                         np.float32)).shape[1]
    out = {}
    for half in HALVES:
        inputs = latents._inputs(os.path.join(faces, half), size)
        names, images = [n for n, _ in inputs], np.stack([a for _, a in inputs])
        cache = os.path.join(work, f"projection_{half}.npz")
        cached = np.load(cache) if os.path.exists(cache) else None
        if cached is not None and list(cached["names"]) == names \
                and list(cached["key"]) == key:
            z = cached["z"]
        else:  # in the batches inference.py projects, so the latents are the ones it finds
            z = np.concatenate([latents.project(generator, images[i:i + 32], steps, distance,
                                                "z").z for i in range(0, len(images), 32)])
            np.savez(cache, names=np.array(names), key=np.array(key), z=z)
        out[half] = (names, images, z)
    return out


def centre_brightness(images: np.ndarray) -> float:
    """The mean grey level (0-255) of uint8 faces' central half (what keep_brightness keeps)."""
    return float((latents.face_brightness(images.astype(np.float32) / 127.5 - 1.0).mean() + 1.0)
                 * 127.5)


def parse(setting: str) -> tuple[str, str, float, float, int]:
    """SPACE:BRIGHTNESS:STRENGTH:CONFIDENCE[:SAMPLES], checked."""
    fields = setting.split(":")
    try:
        if len(fields) not in (4, 5) or fields[0] not in ("opt", "z", "w") \
                or fields[1] not in ("kept", "free"):
            raise ValueError
        samples = int(fields[4]) if len(fields) == 5 else latents.CLASSIFIED_SAMPLES
        strength, confidence = float(fields[2]), float(fields[3])
        if not 0 <= confidence < 1 or samples < 4 or (fields[0] == "opt" and confidence == 0):
            raise ValueError
    except ValueError:
        raise SystemExit(f"bad setting {setting!r}: SPACE:BRIGHTNESS:STRENGTH:CONFIDENCE[:SAMPLES]"
                         ", e.g. opt:kept:3:0.99 (space opt|z|w, opt with a confidence above "
                         "0, brightness kept|free, confidence in "
                         "[0, 1))") from None
    return fields[0], fields[1], strength, confidence, samples


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument("--faces", default="../shared/data/faces")
    parser.add_argument("--work", default="/tmp/edit_sweep")
    parser.add_argument("--judge", default="../shared/tools/gender_judge.sh")
    parser.add_argument("--closeness", type=float, default=latents.EDIT_CLOSENESS,
                        help="opt settings: the pixel distance's weight (optimized_edit's)")
    parser.add_argument("settings", nargs="+")
    args = parser.parse_args()
    settings = [parse(setting) for setting in args.settings]  # before the slow part
    os.makedirs(args.work, exist_ok=True)
    generator = ImageGenerator.load(args.model)
    classifier = latents.load_classifier(args.model, "gender")
    if classifier is None:
        raise SystemExit(f"{args.model} has no classifier direction 'gender': learn one with "
                         "inference.py --learn_direction gender (the classifier method)")
    data = projections(generator, args.model, args.faces, args.work)
    images = sum(len(names) for names, _, _ in data.values())
    directions = {}
    for setting, (space, brightness, strength, confidence, samples) in zip(args.settings,
                                                                           settings):
        key = (brightness, samples)
        if key not in directions:
            directions[key] = latents.classifier_direction(
                generator, classifier, samples, keep_brightness=brightness == "kept")[:2]
        w_direction, z_direction = directions[key]
        result = {"setting": setting, "edit_space": space, "brightness": brightness,
                  **({"closeness": args.closeness} if space == "opt" else {}),
                  "max_strength": strength, "confidence": confidence,
                  "direction_samples": samples}
        flipped = faces = 0.0
        distances, strengths = [], []
        for half, (gender, sign) in HALVES.items():
            names, inputs, z = data[half]
            latent, along = z, z_direction
            if space != "z":  # the projection's styles, moved in w
                latent = latents.edited_styles(generator, z, z_direction, np.zeros(len(z)))
                along = w_direction
            if space == "opt":
                styles, chosen = latents.optimized_edit(
                    generator, latent, classifier, sign * strength,
                    float(np.linalg.norm(w_direction[0])), confidence, closeness=args.closeness)
            else:
                chosen = np.full(len(z), sign * strength, np.float32) if confidence <= 0 else \
                    latents.edit_strengths(generator, latent, along, sign * strength,
                                           classifier, confidence)
                styles = latents.edited_styles(generator, latent, along, chosen)
            edited = generator.synthesize(styles)
            folder = os.path.join(args.work, setting.replace(":", "_"), half)
            shutil.rmtree(folder, ignore_errors=True)  # only this run's faces are judged
            os.makedirs(folder)
            for name, image in zip(names, edited):
                Image.fromarray(image).save(
                    os.path.join(folder, os.path.splitext(name)[0] + ".png"))
            judged = json.loads(subprocess.run(
                ["bash", args.judge, folder, "--expect", gender, "--detect"], check=True,
                capture_output=True, text=True).stdout.strip().splitlines()[-1])
            result[f"flipped_{half}_to_{gender}"] = judged["expected_rate"]
            result[f"face_rate_{half}"] = judged["face_rate"]
            result[f"centre_brightness_change_{half}"] = round(
                centre_brightness(edited) - centre_brightness(inputs), 1)
            flipped += judged["expected_rate"] * len(names) / images
            faces += judged["face_rate"] * len(names) / images
            distances.append(np.abs(edited.astype(float) - inputs).mean(axis=(1, 2, 3)))
            strengths.append(np.abs(chosen))
        result.update(flipped=round(flipped, 4), face_rate=round(faces, 4),
                      input_mean_abs_diff=round(float(np.concatenate(distances).mean()), 2),
                      mean_strength=round(float(np.concatenate(strengths).mean()), 3))
        print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()
