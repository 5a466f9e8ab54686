"""The built-in demo: a synthetic two-domain image set that needs no download.

X ("day") and Y ("night") show the same kind of scene, a sky gradient with a few shapes, in two
styles: warm, bright colours in X; cool, dark colours in Y. A CycleGAN learns the mapping in a few
hundred CPU steps at 64 px, and the blue-minus-red balance of the images measures its progress.

  python -m cyclegan_tf.demo make_data --output_dir data/demo
  python -m cyclegan_tf.demo sheet --inputs data/demo/testA --outputs samples/demo --out demo.png
"""
from __future__ import annotations

import argparse
import colorsys
import os
from typing import Sequence

import numpy as np
from PIL import Image, ImageDraw

from cyclegan_tf import files
from cyclegan_tf.errors import UserError
from cyclegan_tf.grids import contact_sheet

STYLES = {
    # hue range of shapes (degrees), lightness of shapes, sky colours top -> bottom
    "X": {"hues": (0, 60), "lightness": (0.45, 0.65), "sky": ((250, 215, 150), (255, 245, 215))},
    # Shapes darker than the sky in both styles: the mapping keeps each pixel's place in the
    # brightness order, so a translation that keeps the shapes is the easy one to learn.
    "Y": {"hues": (180, 250), "lightness": (0.08, 0.22), "sky": ((40, 60, 120), (80, 105, 170))},
}


def make_image(rng: np.random.Generator, domain: str, size: int = 64) -> Image.Image:
    style = STYLES[domain]
    top, bottom = (np.array(c, np.float32) for c in style["sky"])
    ramp = np.linspace(0.0, 1.0, size, dtype=np.float32)[:, None, None]
    sky = top + (bottom - top) * ramp
    image = Image.fromarray(np.broadcast_to(sky, (size, size, 3)).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    for _ in range(rng.integers(3, 7)):
        hue = rng.uniform(*style["hues"]) / 360.0
        rgb = colorsys.hls_to_rgb(hue, rng.uniform(*style["lightness"]), rng.uniform(0.6, 1.0))
        color = tuple(int(255 * c) for c in rgb)
        x0, y0 = rng.integers(-size // 8, size, 2)
        w, h = rng.integers(size // 8, size // 2, 2)
        box = (int(x0), int(y0), int(x0 + w), int(y0 + h))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=color)
    return image


def make_dataset(output_dir: str, train_count: int = 200, test_count: int = 20, size: int = 64,
                 seed: int = 0) -> dict[str, str]:
    """Writes trainA/trainB/testA/testB folders of PNGs (the CycleGAN folder convention).

    output_dir must be new or an earlier demo data set, which is then replaced (files.py)."""
    files.check_outputs([files.Output(output_dir, "folder")])
    rng = np.random.default_rng(seed)
    folders = {}
    with files.atomic_folder(output_dir) as tmp:
        for split, count in (("train", train_count), ("test", test_count)):
            for domain, letter in (("X", "A"), ("Y", "B")):
                os.makedirs(os.path.join(tmp, f"{split}{letter}"))
                for i in range(count):
                    make_image(rng, domain, size).save(
                        os.path.join(tmp, f"{split}{letter}", f"{i:04d}.png"))
                folders[f"{split}{letter}"] = os.path.join(output_dir, f"{split}{letter}")
    return folders


def blue_minus_red(images: np.ndarray) -> float:
    """Mean of (B - R) in [-1, 1] units: negative for X (warm), positive for Y (cool)."""
    images = np.asarray(images, np.float32)
    if images.max() > 1.5:  # uint8
        images = images / 127.5 - 1.0
    return float(np.mean(images[..., 2] - images[..., 0]))


def shape_agreement(inputs: np.ndarray, outputs: np.ndarray) -> float:
    """How well translations keep the shapes: the mean, over image pairs, of the correlation
    between their edge maps (brightness gradients). 1: the same edges; about 0: unrelated."""
    def edges(image: np.ndarray) -> np.ndarray:
        gray = np.asarray(image, np.float32).mean(axis=-1)
        return (np.abs(np.diff(gray, axis=1))[:-1] + np.abs(np.diff(gray, axis=0))[:, :-1]).ravel()
    return float(np.mean([np.corrcoef(edges(a), edges(b))[0, 1] for a, b in zip(inputs, outputs)]))


def sheet_from_folders(folders: Sequence[str], out: str, limit: int = 4, cell: int = 256,
                       labels: Sequence[str] = ()) -> str:
    """Same-named images from each folder as the columns of one PNG (inputs, translations...),
    each shown cell px wide, under a header naming the columns (default: the folder names)."""
    names = sorted(n for n in os.listdir(folders[0]) if not n.startswith("."))[:limit]
    rows = [[Image.open(os.path.join(folder, name)) for folder in folders] for name in names]
    files.check_outputs([files.Output(out, "image")], inputs=folders)
    labels = list(labels) or [os.path.basename(os.path.normpath(f)) for f in folders]
    return files.save_image(contact_sheet(rows, cell, labels), out)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m cyclegan_tf.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("make_data", help="write the synthetic image folders")
    make.add_argument("--output_dir", default="data/demo")
    make.add_argument("--train_count", type=int, default=200)
    make.add_argument("--test_count", type=int, default=20)
    make.add_argument("--size", type=int, default=64)
    make.add_argument("--seed", type=int, default=0)
    sheet = commands.add_parser("sheet", help="one PNG: inputs and translations side by side")
    sheet.add_argument("--inputs", required=True)
    sheet.add_argument("--outputs", required=True, nargs="+")
    sheet.add_argument("--out", required=True)
    sheet.add_argument("--labels", default="", help="column titles, comma-separated")
    sheet.add_argument("--rows", type=int, default=4)
    sheet.add_argument("--cell", type=int, default=256, help="width of each image in the sheet")
    args = parser.parse_args(argv)
    try:
        if args.command == "make_data":
            folders = make_dataset(args.output_dir, args.train_count, args.test_count, args.size,
                                   args.seed)
            print("wrote " + ", ".join(f"{v} ({args.train_count if 'train' in k else args.test_count})"
                                       for k, v in folders.items()))
        else:
            labels = [label for label in args.labels.split(",") if label]
            print("wrote " + sheet_from_folders([args.inputs, *args.outputs], args.out,
                                                args.rows, args.cell, labels))
    except UserError as e:
        parser.exit(2, f"error: {e}\n")


if __name__ == "__main__":
    main()
