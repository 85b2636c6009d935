"""Omniglot meta-training runs (Vinyals or Lake split): build a learner, train, test, write the run's files."""

import time

import tensorflow as tf

import tfmeta
from tfmeta.data.augmentation import random_shifts
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval, model_predictor
from tfmeta.experiments import maml_plus_plus, reporting
from tfmeta.experiments.config import compile_for_training
from tfmeta.omniglot_names import LAKE_RUNS

NAMES = {"maml": "MAML", "anil": "ANIL", "reptile": "Reptile", "matching": "Matching Networks",
         "protonet": "Prototypical Networks"}


GRADIENT_LEARNERS = {"maml": tfmeta.MAML, "anil": tfmeta.ANIL, "reptile": tfmeta.Reptile}


def build_model(config):
    """The learner a configuration asks for, on the papers' Omniglot backbones."""
    return build_learner(
        config,
        backbone=lambda: tfmeta.models.omniglot_cnn(config.ways, pooling=config.pooling,
                                                    **maml_plus_plus.backbone_arguments(config)),
        embedding=tfmeta.models.conv4_embedding)


def build_learner(config, backbone, embedding):
    """The configured learner on `backbone()` (the gradient learners) or `embedding()` (the metric learners)."""
    if config.algorithm in GRADIENT_LEARNERS:
        options = {"first_order": config.first_order, "learn_inner_lr": config.learn_inner_lr,
                   "adapt_normalization": config.adapt_normalization, **maml_plus_plus.maml_arguments(config)}
        if config.algorithm == "reptile":  # only the options given, which Reptile refuses by name
            options = {key: value for key, value in options.items() if value}
            options["inner_batch_size"] = config.inner_batch
        try:
            return GRADIENT_LEARNERS[config.algorithm](
                backbone(), inner_lr=config.inner_lr, inner_steps=config.inner_steps,
                eval_inner_steps=config.eval_inner_steps, inference=config.inference, **options)
        except ValueError as error:  # a combination the learner refuses, named in its message
            raise SystemExit(f"tfmeta train: {error}") from error
    if config.algorithm == "matching":
        return tfmeta.MatchingNetwork(
            embedding(), fce=config.fce, fce_steps=config.fce_steps,
            temperature=config.temperature, learn_temperature=config.learn_temperature,
        )
    try:
        return tfmeta.PrototypicalNetwork(
            embedding(), distance=(vars(config).get("distance") or "squared-euclidean").replace("-", "_"),
            temperature=config.temperature, learn_temperature=bool(config.learn_temperature))
    except ValueError as error:  # --temperature without --distance cosine
        raise SystemExit(f"tfmeta train: {error}") from error


def run_name(config):
    """A readable name of the configured learner, e.g. 'first-order MAML'."""
    name = NAMES[config.algorithm]
    if config.algorithm == "maml" and vars(config).get("maml_plus_plus"):
        name = "MAML++"
    if config.algorithm in ("maml", "anil") and config.first_order:
        name = "first-order " + name
    if config.algorithm in ("maml", "anil") and config.learn_inner_lr:
        name += " with learned inner rates (Meta-SGD)"
    if config.algorithm == "matching" and config.fce:
        name += " (FCE)"
    if vars(config).get("ensemble"):
        name += f", ensemble of {config.ensemble} checkpoints"
    return name


# Lake's task trains on the background set only. Its last alphabets (in sorted
# order) are held out for validation, so that no evaluation-set character is
# ever seen before the test.
LAKE_VALIDATION_ALPHABETS = 5


# --augment: the training drawings are downsampled by a mix of what clients
# commonly use, and shifted by up to this many pixels per axis.
AUGMENT_RESIZES = ("area", "bilinear", "bicubic-antialias")
AUGMENT_MAX_SHIFT = 1


def train_resize(config):
    """How the training drawings are downsampled: area, or the --augment mix."""
    return AUGMENT_RESIZES if config.augment else "area"


def _lake_splits(data_dir, augment=False):
    background = tfmeta.data.load_omniglot("background", data_dir)
    alphabets = sorted({name.split("/")[0] for name in background.class_names})
    held_out = set(alphabets[-LAKE_VALIDATION_ALPHABETS:])
    names = {part: [name for name in background.class_names if (name.split("/")[0] in held_out) == (part == "val")]
             for part in ("train", "val")}
    train = tfmeta.data.load_omniglot("background", data_dir, resize=AUGMENT_RESIZES) if augment else background
    return {"train": train.select_classes(names["train"]), "val": background.select_classes(names["val"])}


def fixed_episodes(split, data_dir, ways, shots, queries, num_episodes, seed=0, shuffle=True, resize="area"):
    """Fixed test episodes and their number: Lake's 20 runs for `LAKE_RUNS` (20-way 1-shot whatever
    `ways` and `shots` say), else `num_episodes` seeded episodes of an Omniglot split, their examples
    in random order unless `shuffle` is false, the drawings downsampled by `resize`."""
    if split == LAKE_RUNS:
        runs = tfmeta.data.load_lake_runs(data_dir, resize=resize)
        return tf.data.Dataset.from_tensors(runs), len(runs["support_y"])
    data = tfmeta.data.load_omniglot(split, data_dir, resize=resize)
    meta_batch_size = tfmeta.data.fitting_meta_batch_size(num_episodes)
    return tfmeta.data.evaluation_episodes(data, ways, shots, queries, num_episodes, seed=seed, shuffle=shuffle,
                                           meta_batch_size=meta_batch_size), num_episodes


def train_and_evaluate_omniglot(config):
    """Meta-trains the configured learner on Omniglot and tests it.

    `config.split` "vinyals": train on the Vinyals training classes,
    validate on fixed episodes of its validation classes after each epoch,
    test on `config.test_episodes` fixed, seeded episodes of its test
    classes. "lake": train on Lake's background set (its last
    `LAKE_VALIDATION_ALPHABETS` alphabets held out for validation) and test
    on Lake's 20 within-alphabet 20-way one-shot runs (`config.ways` must be
    20 and `config.shots` 1). Writes the run's files to `config.output_dir`
    (see `reporting.RunFiles`) and returns the results.
    """
    if config.split == "lake" and (config.ways, config.shots) != (20, 1):
        raise SystemExit(f"tfmeta train: Lake's runs are 20-way 1-shot; received --ways {config.ways} "
                         f"--shots {config.shots}")
    start = time.time()
    if config.split == "lake":
        splits = _lake_splits(config.data_dir, config.augment)
    else:
        splits = {split: tfmeta.data.load_omniglot(f"vinyals-{split}", config.data_dir,
                                                   resize=train_resize(config) if split == "train" else "area")
                  for split in ("train", "val")}
    print(f"Omniglot ({config.split} split) train/val: "
          f"{'/'.join(str(d.num_classes) for d in splits.values())} classes, read in "
          f"{time.time() - start:.1f} s")

    model = build_model(config)
    test_shape = (config.ways, config.shots, config.queries)
    train_shape = (config.train_ways or config.ways, config.shots, config.train_queries or config.queries)

    def alphabets(data):  # the class groups of within-alphabet episodes
        return [name.split("/")[0] for name in data.class_names] if config.within_alphabet else None

    def train(meta_batch):  # the training stream from meta-batch `meta_batch` on
        stream = tfmeta.data.episodes(splits["train"], *train_shape, seed=config.seed,
                                      meta_batch_size=config.meta_batch, start=meta_batch * config.meta_batch,
                                      class_groups=alphabets(splits["train"]))
        if config.augment:
            stream = random_shifts(stream, AUGMENT_MAX_SHIFT, config.seed, start=meta_batch)
        return stream

    val = tfmeta.data.evaluation_episodes(splits["val"], *test_shape, config.val_episodes,
                                          meta_batch_size=tfmeta.data.fitting_meta_batch_size(config.val_episodes),
                                          class_groups=alphabets(splits["val"]))
    compile_for_training(model, config)
    files = reporting.RunFiles(config.output_dir)
    model, history, train_seconds, selected_epochs = reporting.fit(model, train, val, config, files)

    test, num_test = fixed_episodes(LAKE_RUNS if config.split == "lake" else "vinyals-test",
                                    config.data_dir, *test_shape, config.test_episodes)
    print(f"Testing on {num_test} fixed {config.split} test episodes:")
    accuracies = episode_accuracies(model_predictor(model), test, num_test)
    mean, half_width = mean_confidence_interval(accuracies)
    name = run_name(config)
    results = {
        "algorithm": name, "dataset": "omniglot", "split": config.split,
        "ways": config.ways, "shots": config.shots, "accuracy": mean, "ci95": half_width,
        "test_episodes": len(accuracies), **reporting.training_record(history, config, train_seconds, selected_epochs),
    }
    files.write(model, results)
    print(f"{name} {config.ways}-way {config.shots}-shot Omniglot ({config.split} test): accuracy "
          f"{100 * mean:.2f} ± {100 * half_width:.2f}% over {len(accuracies)} episodes, after "
          f"{results['iterations']} meta-iterations in {train_seconds / 60:.1f} min")
    return results
