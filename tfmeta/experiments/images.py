"""Meta-training and cross-domain evaluation on image datasets: `--dataset images:DIR` or `tfds:NAME[/CONFIG]`."""

import time

import tfmeta
from tfmeta.baselines import pixel_nearest_prototype
from tfmeta.data import images as image_data
from tfmeta.data.augmentation import random_flips, random_shifts
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval, model_predictor
from tfmeta.experiments import reporting
from tfmeta.experiments.config import compile_for_training
from tfmeta.experiments.omniglot import build_learner, run_name

DEFAULT_IMAGE_SIZE = (84, 84)  # miniImageNet's, when a dataset's images have no single size
MIN_IMAGE_SIDE = 16  # the backbones halve the size four times
RESIZE = "bilinear with antialiasing (tf.image.resize(image, size, antialias=True)), rounded to uint8"


def is_image_dataset(dataset):
    """True for the `images:DIR` and `tfds:NAME[/CONFIG]` values of `--dataset`."""
    return isinstance(dataset, str) and dataset.startswith(("images:", "tfds:"))


def image_shape(config):
    """`(height, width, channels)` of a run: `--image-size` and `--channels`, else the TFDS dataset's own
    fixed size (e.g. 32x32 for cifar100), else `DEFAULT_IMAGE_SIZE`, and 3 channels."""
    channels = config.channels or 3
    if config.image_size:
        return (*config.image_size, channels)
    if config.dataset.startswith("tfds:"):
        features = image_data.tfds_builder(config.dataset[len("tfds:"):], config.data_dir).info.features
        shape = features["image"].shape if "image" in features else (None, None)
        if all(isinstance(side, int) for side in shape[:2]):
            return (*shape[:2], channels)
    return (*DEFAULT_IMAGE_SIZE, channels)


def load_splits(dataset, image_size, channels, class_split, seed, data_dir=None):
    """`{"train", "validation", "test"}` parts of an image dataset: by the class-split file or shipped
    split `class_split`, else seeded class fractions (`tfmeta.data.images.split_classes`)."""
    try:
        data = image_data.load_images(dataset, image_size, channels, data_dir)
        if class_split:
            return image_data.apply_class_split(data, image_data.read_class_split(class_split))
        return image_data.split_classes(data, seed=seed)
    except (ValueError, MemoryError) as error:
        raise SystemExit(f"tfmeta: {error}") from None


def build_image_model(config, example_shape, pixel_mean, pixel_std):
    """The configured learner on colour-image backbones, the training images' per-channel normalization
    inside: Finn et al.'s miniImageNet CNN (32 filters) for MAML; the 64-filter conv4 or ResNet-12
    (`config.backbone`) embedding for the metric learners."""
    if min(example_shape[:2]) < MIN_IMAGE_SIDE:
        raise SystemExit(f"tfmeta train: images of {example_shape[0]}x{example_shape[1]} are too small for the "
                         f"backbones' four 2x2 poolings; use --image-size of at least {MIN_IMAGE_SIDE} "
                         f"{MIN_IMAGE_SIDE}")

    def normalized(backbone):
        return tfmeta.models.with_pixel_normalization(backbone, pixel_mean, pixel_std)

    def embedding():
        if config.backbone == "resnet12":
            return normalized(tfmeta.models.resnet12_embedding(example_shape))
        return normalized(tfmeta.models.conv4_embedding(example_shape, filters=64))

    return build_learner(
        config, backbone=lambda: normalized(tfmeta.models.miniimagenet_cnn(config.ways, input_shape=example_shape)),
        embedding=embedding)


def accuracies_with_baseline(predict, data, ways, shots, queries, num_episodes, seed=0, shuffle=True):
    """`(accuracies of predict, accuracies of the raw-pixel nearest-prototype baseline)` on the same
    fixed, seeded episodes of `data`."""
    def episodes():
        return tfmeta.data.evaluation_episodes(data, ways, shots, queries, num_episodes, seed=seed, shuffle=shuffle,
                                               meta_batch_size=tfmeta.data.fitting_meta_batch_size(num_episodes))

    model_accuracies = episode_accuracies(predict, episodes(), num_episodes)
    baseline = episode_accuracies(lambda sx, sy, qx: pixel_nearest_prototype(sx, sy, qx, ways), episodes(),
                                  num_episodes, verbose=0)
    return model_accuracies, baseline


def augmentation(config):
    """`--image-augmentation`, by default crop-flip for the metric learners and none for MAML (Finn et al.
    trained without; its inner loop adapts to the support images as they are)."""
    return config.image_augmentation or ("none" if config.algorithm == "maml" else "crop-flip")


def crop_and_flip(stream, image_size, seed, start):
    """Training images shifted by up to 1/8 of their side with zero fill (a random crop of the image padded
    by that much, as the standard CIFAR padding of 4 on 32) and mirrored with probability 1/2."""
    max_shift = max(1, min(image_size) // 8)
    return random_flips(random_shifts(stream, max_shift, seed, start), seed, start)


def client_preprocessing(results):
    """model.json's record of what a client does before sending images (the rest runs in the graph)."""
    height, width, channels = results["image_shape"]
    return {"image_size": [height, width], "channels": channels, "resize": RESIZE,
            "pixels": "float32 in [0, 1]: uint8 values / 255"}


def input_convention(results):
    """model.json's `input_convention` of a model trained on an image dataset (from its results.json)."""
    height, width, channels = results["image_shape"]
    return (f"pixels float32 in [0, 1] (uint8 values / 255; uint8 tensors and values outside [0, 1] are refused), "
            f"{height}x{width}x{channels} ({'RGB' if channels == 3 else 'grayscale'}), resized as in training: "
            f"{RESIZE}; the per-channel normalization runs inside the served graph (preprocessing)")


def check_split_ways(splits, train_ways, ways, dataset):
    """Exits with one line naming the part of the class split that has fewer classes than its episodes' ways,
    and what to change."""
    counts = "/".join(str(data.num_classes) for data in splits.values())
    for part, needed in (("train", train_ways), ("validation", ways), ("test", ways)):
        if splits[part].num_classes < needed:
            raise SystemExit(
                f"tfmeta train: {dataset}: the {part} part of the class split has {splits[part].num_classes} classes "
                f"(train/validation/test {counts}), fewer than the {needed} ways of its episodes; use --ways (and "
                f"--train-ways) of at most {splits[part].num_classes}, or a --class-split file that gives each part "
                f"at least {needed} classes (docs/images.md#small-datasets)")


def checked_validation_episodes(splits, test_shape, train, config):
    """The fixed validation episodes of `splits["validation"]`, once the training stream `train(0)` and the test
    episodes' shape are known to be drawable; what is not stops the run with the dataset named."""
    try:
        val = tfmeta.data.evaluation_episodes(
            splits["validation"], *test_shape, config.val_episodes,
            meta_batch_size=tfmeta.data.fitting_meta_batch_size(config.val_episodes))
        train(0)
        tfmeta.data.check_episode_shape(splits["test"], *test_shape)
    except ValueError as error:
        raise SystemExit(f"tfmeta train: {config.dataset}: {error}") from None
    return val


def train_and_evaluate_images(config):
    """Meta-trains the configured learner on an image dataset and tests it on its test classes.

    The dataset is split by class (`--class-split`, or seeded fractions);
    validation after each epoch on fixed episodes of the validation classes,
    the test on `config.test_episodes` fixed episodes of the test classes,
    with the raw-pixel nearest-prototype baseline on the same episodes.
    Writes the run's files to `config.output_dir` and returns the results.
    """
    start = time.time()
    try:
        height, width, channels = image_shape(config)
    except ValueError as error:  # a TFDS name that does not exist
        raise SystemExit(f"tfmeta train: {error}") from None
    splits = load_splits(config.dataset, (height, width), channels, config.class_split, config.seed,
                         config.data_dir)
    print(f"{config.dataset} at {height}x{width}x{channels}, train/validation/test: "
          f"{'/'.join(str(d.num_classes) for d in splits.values())} classes, "
          f"{'/'.join(str(len(d)) for d in splits.values())} images, read in {time.time() - start:.1f} s")
    classes = {part: list(data.class_names) for part, data in splits.items()}
    for part, names in classes.items():
        print(f"{part} classes ({config.split}): {', '.join(names)}")
    mean, std = tfmeta.models.pixel_statistics(splits["train"].images)
    model = build_image_model(config, (height, width, channels), mean, std)
    check_split_ways(splits, config.train_ways or config.ways, config.ways, config.dataset)
    test_shape = (config.ways, config.shots, config.queries)
    train_shape = (config.train_ways or config.ways, config.shots, config.train_queries or config.queries)

    def train(meta_batch):  # the training stream from meta-batch `meta_batch` on
        stream = tfmeta.data.episodes(splits["train"], *train_shape, seed=config.seed,
                                      meta_batch_size=config.meta_batch, start=meta_batch * config.meta_batch)
        if augmentation(config) == "crop-flip":
            stream = crop_and_flip(stream, (height, width), config.seed, start=meta_batch)
        return stream

    val = checked_validation_episodes(splits, test_shape, train, config)
    compile_for_training(model, config)
    files = reporting.RunFiles(config.output_dir)
    model, history, train_seconds, selected_epochs = reporting.fit(model, train, val, config, files)

    print(f"Testing on {config.test_episodes} fixed episodes of the test classes:")
    accuracies, baseline = accuracies_with_baseline(model_predictor(model), splits["test"], *test_shape,
                                                    config.test_episodes)
    mean_accuracy, half_width = mean_confidence_interval(accuracies)
    baseline_mean, baseline_half_width = mean_confidence_interval(baseline)
    name = run_name(config)
    results = {
        "algorithm": name, "dataset": config.dataset, "split": config.split, "classes": classes,
        "ways": config.ways, "shots": config.shots, "accuracy": mean_accuracy, "ci95": half_width,
        "test_episodes": len(accuracies), "image_shape": [height, width, channels],
        "backbone": "miniimagenet_cnn" if config.algorithm == "maml" else config.backbone or "conv4",
        "augmentation": augmentation(config), "pixel_prototype_accuracy": baseline_mean,
        "pixel_prototype_ci95": baseline_half_width,
        **reporting.training_record(history, config, train_seconds, selected_epochs),
    }
    files.write(model, results)
    print(f"{name} {config.ways}-way {config.shots}-shot {config.dataset}: accuracy {100 * mean_accuracy:.2f} ± "
          f"{100 * half_width:.2f}% (raw-pixel nearest prototype {100 * baseline_mean:.2f} ± "
          f"{100 * baseline_half_width:.2f}%) over {len(accuracies)} episodes")
    return results


def evaluate_on_images(args, predict, record):
    """`tfmeta evaluate MODEL --dataset ...`: the model's accuracy ± 95% interval on fixed episodes of an
    image dataset's classes (all of them, or the test part of `--class-split`), resized to the model's
    input, beside the raw-pixel nearest-prototype baseline on the same episodes."""
    from tfmeta.experiments.evaluate import write_evaluation

    height, width, channels = record["input_shape"]
    ways = args.ways or record.get("ways") or 5
    shots = args.shots or record.get("shots") or 1
    dataset = args.dataset or record["dataset"]
    # Without --dataset, the test classes the model's record names (its own dataset's); else all of them.
    test_classes = None if args.dataset or args.class_split else record.get("classes", {}).get("test")
    try:
        data = image_data.load_images(dataset, (height, width), channels, args.data_dir)
        if args.class_split:
            data = image_data.apply_class_split(data, image_data.read_class_split(args.class_split))["test"]
        elif test_classes:
            data = data.select_classes(test_classes)
        tfmeta.data.check_episode_shape(data, ways, shots, args.queries)
    except (ValueError, MemoryError) as error:
        raise SystemExit(f"tfmeta evaluate: {dataset}: {error}") from None
    classes = (f"the test classes of {args.class_split}" if args.class_split else
               "the test classes of its training run" if test_classes else "all classes")
    print(f"Evaluating {args.model} on {args.episodes} fixed {ways}-way {shots}-shot episodes of {dataset} "
          f"({classes}: {data.num_classes}, at {height}x{width}x{channels}; {args.queries} queries per class, "
          f"seed {args.seed}):")
    accuracies, baseline = accuracies_with_baseline(predict, data, ways, shots, args.queries, args.episodes,
                                                    args.seed, shuffle=not args.in_class_order)
    mean, half_width = mean_confidence_interval(accuracies)
    baseline_mean, baseline_half_width = mean_confidence_interval(baseline)
    print(f"accuracy {100 * mean:.2f} ± {100 * half_width:.2f}%, raw-pixel nearest prototype "
          f"{100 * baseline_mean:.2f} ± {100 * baseline_half_width:.2f}%, over {len(accuracies)} episodes")
    evaluation = {"model": reporting.portable_path(args.model), "dataset": dataset,
                  "split": f"{args.class_split}:test" if args.class_split else classes, "ways": ways,
                  "shots": shots, "queries": args.queries, "seed": args.seed, "in_class_order": args.in_class_order,
                  "accuracy": mean, "ci95": half_width, "test_episodes": len(accuracies),
                  "pixel_prototype_accuracy": baseline_mean, "pixel_prototype_ci95": baseline_half_width,
                  "command": reporting.command_line()}
    write_evaluation(args.output, evaluation, record)
    return evaluation
