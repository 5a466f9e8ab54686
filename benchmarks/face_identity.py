#!/usr/bin/env python3
"""How far each output face is from its input face as a person: dlib's face-recognition distance.

  bash benchmarks/face_identity.sh INPUTS OUTPUTS [--floor_size 64]   # files paired by name

dlib's ResNet face descriptor (128-d; Davis King's models, released into the public domain and
shipped by the PyPI package face_recognition_models, so it runs offline) puts photos of one person
within Euclidean distance 0.6 of each other and different people beyond it (99.38 % on LFW). Each
image is upscaled to 256 px; dlib's 5 landmarks are found inside the face box (HOG's largest face;
where it finds none, the input's box, or the aligned crops' usual box), and the descriptor is read
from the 150 px chip dlib aligns with them. Prints one JSON line:
  {"pairs": N, "inputs_with_a_face_found": n, "person_distance": mean, "median": m,
   "same_person_rate": share under 0.6,
   "floor": {"person_distance": ..., "same_person_rate": ...},
   "strangers": {"person_distance": ..., "same_person_rate": ...}}
floor: each input against itself shrunk to --floor_size px and back (what the outputs' resolution
alone costs); strangers: each input against the next one in name order (another person; UTKFace
names start with age_gender_race, so usually someone of the same age, gender and race).
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


def summary(distances: list[float]) -> dict:
    return {"person_distance": round(statistics.mean(distances), 4),
            "same_person_rate": round(sum(d < THRESHOLD for d in distances) / len(distances), 4)}


class Identity:
    def __init__(self):
        self.detector = dlib.get_frontal_face_detector()
        self.landmarks = dlib.shape_predictor(
            face_recognition_models.pose_predictor_five_point_model_location())
        self.network = dlib.face_recognition_model_v1(
            face_recognition_models.face_recognition_model_location())

    @staticmethod
    def load(path: str, through: int = 0) -> np.ndarray:
        image = Image.open(path).convert("RGB")
        if through:  # the floor: shrunk to `through` px first
            image = image.resize((through, through), Image.LANCZOS)
        return np.asarray(image.resize((SIZE, SIZE), Image.BICUBIC))

    def box(self, image: np.ndarray, otherwise: dlib.rectangle | None = None
            ) -> tuple[dlib.rectangle, bool]:
        """The largest face HOG finds (and True), else `otherwise` or the crops' box (False)."""
        found = self.detector(image, 0)
        if found:
            return max(found, key=lambda r: r.area()), True
        if otherwise is None:
            otherwise = dlib.rectangle(*(round(v * SIZE) for v in FALLBACK_BOX))
        return otherwise, False

    def descriptor(self, image: np.ndarray, box: dlib.rectangle) -> np.ndarray:
        return np.array(self.network.compute_face_descriptor(image, self.landmarks(image, box)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("inputs")
    parser.add_argument("outputs")
    parser.add_argument("--floor_size", type=int, default=64,
                        help="the floor: inputs shrunk to this many px and back (0: none)")
    args = parser.parse_args()
    inputs, outputs = images_by_stem(args.inputs), images_by_stem(args.outputs)
    stems = [stem for stem in inputs if stem in outputs]
    if not stems:
        print(f"no file of {args.outputs} has the name of one in {args.inputs}", file=sys.stderr)
        return 2
    identity = Identity()
    distances, floor, originals, found = [], [], [], 0
    for stem in stems:
        image = identity.load(inputs[stem])
        box, detected = identity.box(image)
        found += detected
        original = identity.descriptor(image, box)
        originals.append(original)
        output = identity.load(outputs[stem])
        distances.append(float(np.linalg.norm(
            original - identity.descriptor(output, identity.box(output, box)[0]))))
        if args.floor_size:
            small = identity.load(inputs[stem], through=args.floor_size)
            floor.append(float(np.linalg.norm(
                original - identity.descriptor(small, identity.box(small, box)[0]))))
    strangers = [float(np.linalg.norm(originals[i] - originals[i + 1]))
                 for i in range(len(originals) - 1)]
    print(json.dumps({
        "pairs": len(stems), "inputs_with_a_face_found": found, **summary(distances),
        "median": round(statistics.median(distances), 4),
        "floor": summary(floor) if floor else None,
        "strangers": summary(strangers) if strangers else None}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
