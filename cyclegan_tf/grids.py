"""Pictures made of pictures: contact sheets (evaluation grids, the demo's before/after sheet)."""
from __future__ import annotations

from typing import Sequence

from PIL import Image, ImageDraw


def contact_sheet(rows: Sequence[Sequence[Image.Image]], cell: int = 0,
                  labels: Sequence[str] = ()) -> Image.Image:
    """Rows of images side by side (each row e.g. x, G(x), F(G(x))), every image scaled to a
    cell x cell square; labels, if given, name the columns in a header line."""
    cell = cell or max(im.width for row in rows for im in row)
    columns = max(map(len, rows))
    header = 18 if labels else 0
    sheet = Image.new("RGB", (cell * columns, header + cell * len(rows)), "white")
    draw = ImageDraw.Draw(sheet)
    for c, label in enumerate(labels):
        draw.text((c * cell + 4, 3), label, fill="black")
    for r, row in enumerate(rows):
        for c, im in enumerate(row):
            resample = Image.NEAREST if cell >= im.width else Image.BICUBIC  # crisp pixels
            sheet.paste(im.convert("RGB").resize((cell, cell), resample),
                        (c * cell, header + r * cell))
    return sheet
