"""How fast the episode pipeline delivers meta-batches of Omniglot or of colour images held as uint8.

    python benchmarks/episode_throughput.py
    python benchmarks/episode_throughput.py --images 64 600 --shots 5 --meta-batch 4

`--images CLASSES PER_CLASS` times random uint8 images of `--image-size` and
`--channels` (default: 84x84x3, miniImageNet's 64 training classes of 600
images with the flags above) instead of Omniglot: the pipeline gathers them
and converts them to float32 in [0, 1]. `--dtype float32` holds them as
float32 instead, for comparison.

Last line: `ms_per_meta_batch=<median> episodes_per_s=<...>`.
"""

import argparse
import time

import numpy as np

import tfmeta
from tfmeta.data.locations import DATA_DIR_HELP


def random_images(args):
    """`CLASSES x PER_CLASS` random images as a LabelledData of `args.dtype` (pixels in [0, 1] as float32)."""
    classes, per_class = args.images
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(classes * per_class, *args.image_size, args.channels), dtype=np.uint8)
    if args.dtype == "float32":
        images = images.astype(np.float32) / 255.0
    return tfmeta.data.LabelledData(images, np.repeat(np.arange(classes), per_class))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", help=DATA_DIR_HELP)
    parser.add_argument("--split", default="vinyals-train", choices=tfmeta.data.OMNIGLOT_SPLITS)
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15)
    parser.add_argument("--meta-batch", type=int, default=32)
    parser.add_argument("--batches", type=int, default=200, help="meta-batches to time")
    parser.add_argument("--images", type=int, nargs=2, metavar=("CLASSES", "PER_CLASS"),
                        help="random images instead of Omniglot")
    parser.add_argument("--image-size", type=int, nargs=2, default=(84, 84), metavar=("H", "W"))
    parser.add_argument("--channels", type=int, default=3)
    parser.add_argument("--dtype", choices=("uint8", "float32"), default="uint8", help="how --images are held")
    args = parser.parse_args(argv)

    start = time.perf_counter()
    data = random_images(args) if args.images else tfmeta.data.load_omniglot(args.split, args.data_dir)
    print(f"read {data} ({data.images.nbytes / 2**20:.0f} MiB as {data.images.dtype}) in "
          f"{time.perf_counter() - start:.1f} s")
    stream = tfmeta.data.episodes(
        data, args.ways, args.shots, args.queries, seed=0, meta_batch_size=args.meta_batch
    )
    iterator = iter(stream)
    next(iterator)  # start-up: tracing, filling the prefetch buffer
    times = []
    for _ in range(args.batches):
        start = time.perf_counter()
        next(iterator)
        times.append(time.perf_counter() - start)
    median = float(np.median(times))
    print(f"ms_per_meta_batch={1000 * median:.2f} episodes_per_s={args.meta_batch / np.mean(times):.0f}")


if __name__ == "__main__":
    main()
