"""Omniglot meta-training runs (Vinyals split): build a learner, train, test, write the run's files."""

import time

import keras

import tfmeta
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval, model_predictor
from tfmeta.experiments import reporting

NAMES = {"maml": "MAML", "matching": "Matching Networks", "protonet": "Prototypical Networks"}


def build_model(config):
    """The learner a configuration asks for, on the papers' Omniglot backbones."""
    if config.algorithm == "maml":
        return tfmeta.MAML(
            tfmeta.models.omniglot_cnn(config.ways, pooling=config.pooling),
            inner_lr=config.inner_lr, inner_steps=config.inner_steps,
            eval_inner_steps=config.eval_inner_steps, first_order=config.first_order,
            learn_inner_lr=config.learn_inner_lr,
        )
    if config.algorithm == "matching":
        return tfmeta.MatchingNetwork(
            tfmeta.models.conv4_embedding(), fce=config.fce, fce_steps=config.fce_steps,
            temperature=config.temperature, learn_temperature=config.learn_temperature,
        )
    return tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding())


def run_name(config):
    """A readable name of the configured learner, e.g. 'first-order MAML'."""
    name = NAMES[config.algorithm]
    if config.algorithm == "maml" and config.first_order:
        name = "first-order " + name
    if config.algorithm == "matching" and config.fce:
        name += " (FCE)"
    return name


def train_and_evaluate_omniglot(config):
    """Meta-trains the configured learner on the Vinyals training classes and tests it.

    Validation uses fixed episodes of the Vinyals validation classes after
    each epoch; the test uses `config.test_episodes` fixed, seeded episodes
    of the test classes. Writes the run's files to `config.output_dir`
    (see `reporting.RunFiles`) and returns the results.
    """
    start = time.time()
    splits = {split: tfmeta.data.load_omniglot(f"vinyals-{split}", config.data_dir)
              for split in ("train", "val", "test")}
    print(f"Omniglot (Vinyals split) train/val/test: "
          f"{'/'.join(str(d.num_classes) for d in splits.values())} classes, read in "
          f"{time.time() - start:.1f} s")

    model = build_model(config)
    test_shape = (config.ways, config.shots, config.queries)
    train_shape = (config.train_ways or config.ways, config.shots, config.train_queries or config.queries)
    train = tfmeta.data.episodes(splits["train"], *train_shape, seed=config.seed,
                                 meta_batch_size=config.meta_batch)
    val = tfmeta.data.evaluation_episodes(splits["val"], *test_shape, config.val_episodes,
                                          meta_batch_size=min(config.val_episodes, 25))
    model.compile(optimizer=keras.optimizers.Adam(config.meta_lr))
    files = reporting.RunFiles(config.output_dir)
    history, train_seconds = reporting.fit(model, train, val, config, files)

    print(f"Testing on {config.test_episodes} fixed episodes of the test classes:")
    test = tfmeta.data.evaluation_episodes(splits["test"], *test_shape, config.test_episodes,
                                           meta_batch_size=min(config.test_episodes, 25))
    accuracies = episode_accuracies(model_predictor(model), test, config.test_episodes)
    mean, half_width = mean_confidence_interval(accuracies)
    name = run_name(config)
    results = {
        "algorithm": name, "dataset": "omniglot", "split": "vinyals",
        "ways": config.ways, "shots": config.shots, "accuracy": mean, "ci95": half_width,
        "test_episodes": len(accuracies), **reporting.training_record(history, config, train_seconds),
    }
    files.write(model, results)
    print(f"{name} {config.ways}-way {config.shots}-shot Omniglot (Vinyals test classes): accuracy "
          f"{100 * mean:.2f} ± {100 * half_width:.2f}% over {len(accuracies)} episodes, after "
          f"{results['iterations']} meta-iterations in {train_seconds / 60:.1f} min")
    return results
