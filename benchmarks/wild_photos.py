"""Photos framed as people frame them, made from aligned face crops, for benchmarks/faces_wild.sh.

  python benchmarks/wild_photos.py make --crops DIR --photos OUT [--size 320] [--seed 0]
      each crop rotated (within +-20 degrees), scaled to 0.45-0.8 of a size x size frame, put at a
      random place over a varied background (colour gradients, soft blobs, stripes); writes
      OUT/NAME.png and OUT/boxes.json (each face's box in the frame: x0, y0, x1, y1)
  python benchmarks/wild_photos.py outside --photos OUT --outputs DIR
      the mean absolute difference (0-255) between each photo and its translation outside the
      face boxes, over the photos that have a translation, as one JSON line
  python benchmarks/wild_photos.py halves --pairs DIR --out OUT
      the right half of each side-by-side pair inference.py --crops wrote: the translation of
      each aligned face, before it is pasted back
  python benchmarks/wild_photos.py realign --model MODEL --photos DIR --out OUT [--size 64]
      each photo's largest face found again and aligned to MODEL's layout at size x size (the
      framing of the test crops), so the judge reads a photo as it reads a crop
"""
from __future__ import annotations

import argparse
import json
import math
import os

import numpy as np
from PIL import Image, ImageDraw, ImageFilter


def background(rng: np.random.Generator, size: int) -> Image.Image:
    """A varied, photo-like background: a two-colour gradient, soft blobs, sometimes stripes."""
    a, b = rng.integers(0, 256, 3), rng.integers(0, 256, 3)
    angle = rng.uniform(0, 2 * math.pi)
    ys, xs = np.mgrid[0:size, 0:size] / size
    t = np.clip(0.5 + (xs - 0.5) * math.cos(angle) + (ys - 0.5) * math.sin(angle), 0, 1)
    image = Image.fromarray((a * (1 - t[..., None]) + b * t[..., None]).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 9)):
        x, y = (int(v) for v in rng.integers(0, size, 2))
        r = int(rng.integers(size // 12, size // 3))
        draw.ellipse((x - r, y - r, x + r, y + r), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    if rng.random() < 0.4:
        for x in range(0, size, int(rng.integers(12, 40))):
            draw.rectangle((x, 0, x + 4, size), fill=tuple(int(v) for v in rng.integers(0, 256, 3)))
    return image.filter(ImageFilter.GaussianBlur(radius=float(rng.uniform(1, 6))))


def place(crop: Image.Image, rng: np.random.Generator, size: int) -> tuple[Image.Image, list[int]]:
    """The crop rotated and scaled into a new frame; returns the photo and the face box."""
    side = int(round(rng.uniform(0.45, 0.8) * size))
    face = crop.convert("RGB").resize((side, side), Image.BICUBIC)
    angle = rng.uniform(-20, 20)
    rotated = face.rotate(angle, resample=Image.BICUBIC, expand=True)
    mask = Image.new("L", face.size, 255).rotate(angle, resample=Image.BICUBIC, expand=True)
    x = int(rng.integers(0, max(1, size - rotated.width)))
    y = int(rng.integers(0, max(1, size - rotated.height)))
    photo = background(rng, size)
    photo.paste(rotated, (x, y), mask)
    return photo, [x, y, min(size, x + rotated.width), min(size, y + rotated.height)]


def make(crops: str, photos: str, size: int, seed: int) -> None:
    os.makedirs(photos, exist_ok=True)
    rng = np.random.default_rng(seed)
    boxes = {}
    for name in sorted(os.listdir(crops)):
        if not name.lower().endswith((".jpg", ".jpeg", ".png")):
            continue
        photo, box = place(Image.open(os.path.join(crops, name)), rng, size)
        out = os.path.splitext(name)[0] + ".png"
        photo.save(os.path.join(photos, out))
        boxes[out] = box
    with open(os.path.join(photos, "boxes.json"), "w", encoding="utf-8") as f:
        json.dump(boxes, f)


def outside(photos: str, outputs: str) -> dict:
    with open(os.path.join(photos, "boxes.json"), encoding="utf-8") as f:
        boxes = json.load(f)
    total, count, photos_seen, unchanged = 0.0, 0, 0, 0
    for name, (x0, y0, x1, y1) in boxes.items():
        path = os.path.join(outputs, name)
        if not os.path.exists(path):
            continue
        a = np.asarray(Image.open(os.path.join(photos, name)).convert("RGB"), np.float64)
        b = np.asarray(Image.open(path).convert("RGB"), np.float64)
        keep = np.ones(a.shape[:2], bool)
        keep[y0:y1, x0:x1] = False
        diff = np.abs(a - b)[keep]
        total, count = total + diff.sum(), count + diff.size
        photos_seen += 1
        unchanged += int(not diff.any())
    return {"photos": photos_seen, "outside_mean_abs_diff": round(total / max(count, 1), 4),
            "photos_unchanged_outside": unchanged}


def halves(pairs: str, out: str) -> None:
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(pairs)):
        if name.lower().endswith(".png"):
            pair = Image.open(os.path.join(pairs, name))
            pair.crop((pair.width // 2, 0, pair.width, pair.height)).save(os.path.join(out, name))


def realign(model: str, photos: str, out: str, size: int) -> None:
    from cyclegan_tf.faces import FaceDetector, FaceLayout, align
    layout, detector = FaceLayout.load(model), FaceDetector()
    os.makedirs(out, exist_ok=True)
    for name in sorted(os.listdir(photos)):
        if not name.lower().endswith(".png"):
            continue
        photo = np.asarray(Image.open(os.path.join(photos, name)).convert("RGB"))
        faces = detector.detect(photo)
        if faces:  # photos where none is found are left out (the judge counts what is there)
            Image.fromarray(align(photo, faces[0].landmarks, layout, size)[0]).save(
                os.path.join(out, name))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    m = commands.add_parser("make")
    m.add_argument("--crops", required=True)
    m.add_argument("--photos", required=True)
    m.add_argument("--size", type=int, default=320)
    m.add_argument("--seed", type=int, default=0)
    o = commands.add_parser("outside")
    o.add_argument("--photos", required=True)
    o.add_argument("--outputs", required=True)
    h = commands.add_parser("halves")
    h.add_argument("--pairs", required=True)
    h.add_argument("--out", required=True)
    r = commands.add_parser("realign")
    r.add_argument("--model", required=True)
    r.add_argument("--photos", required=True)
    r.add_argument("--out", required=True)
    r.add_argument("--size", type=int, default=64)
    args = parser.parse_args()
    if args.command == "make":
        make(args.crops, args.photos, args.size, args.seed)
    elif args.command == "outside":
        print(json.dumps(outside(args.photos, args.outputs)))
    elif args.command == "halves":
        halves(args.pairs, args.out)
    else:
        realign(args.model, args.photos, args.out, args.size)


if __name__ == "__main__":
    main()
