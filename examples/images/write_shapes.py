"""Writes a small image-folder dataset: 10 classes of 20 drawings each (a filled shape of one colour per class, at a
random position and size on a 32x32 canvas), as PNG files in DIR/<class>/. docs/images.md trains on it.

    python examples/images/write_shapes.py shapes
"""

import argparse
import pathlib

import numpy as np
from PIL import Image, ImageDraw

SHAPES = ("ellipse", "rectangle", "triangle", "cross", "ring")
COLOURS = {"red": (220, 40, 40), "blue": (40, 60, 220)}


def draw(shape, colour, rng, size=32):
    image = Image.new("RGB", (size, size), (245, 245, 245))
    pen = ImageDraw.Draw(image)
    side = int(rng.integers(12, 28))
    x, y = (int(v) for v in rng.integers(0, size - side, 2))
    box = (x, y, x + side, y + side)
    if shape == "ellipse":
        pen.ellipse(box, fill=colour)
    elif shape == "rectangle":
        pen.rectangle(box, fill=colour)
    elif shape == "triangle":
        pen.polygon([(x, y + side), (x + side, y + side), (x + side // 2, y)], fill=colour)
    elif shape == "cross":
        pen.line([box[:2], box[2:]], fill=colour, width=4)
        pen.line([(x, y + side), (x + side, y)], fill=colour, width=4)
    else:
        pen.ellipse(box, outline=colour, width=4)
    return image


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("folder")
    parser.add_argument("--per-class", type=int, default=20)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    for shape in SHAPES:
        for name, colour in COLOURS.items():
            folder = pathlib.Path(args.folder) / f"{name}-{shape}"
            folder.mkdir(parents=True, exist_ok=True)
            for i in range(args.per_class):
                draw(shape, colour, rng).save(folder / f"{i:02d}.png")
    print(f"wrote {len(SHAPES) * len(COLOURS)} classes of {args.per_class} images to {args.folder}")


if __name__ == "__main__":
    main()
