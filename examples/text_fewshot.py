"""Few-shot text classification: Prototypical or Matching Networks on raw strings, against TF-IDF.

    python examples/text_fewshot.py --algorithm protonet --shots 1
    python examples/text_fewshot.py --embedding tfidf --data data/debian-debtags --meta-lr 1e-2 --shots 1
    python examples/text_fewshot.py --algorithm tfidf --shots 5

Reads `label<TAB>text` files `train.tsv.gz`, `validation.tsv.gz` and `test.tsv.gz` from --data (by default
data/debian-packages: Debian package descriptions labelled by Section, split by section), trains a text
embedding (its vocabulary adapted on the training texts): the convolutional `tfmeta.models.text_conv_embedding`
or, with `--embedding tfidf`, `tfmeta.models.text_tfidf_embedding`, which starts as the TF-IDF baseline and
learns term weights; on episodes of the training classes, keeps the weights of the epoch with the best validation
accuracy, and reports the query accuracy ± 95% interval over fixed, seeded test episodes of held-out
classes: of the model, and of the TF-IDF nearest-class-mean baseline (`tfmeta.baselines`, no
meta-learning, the same vocabulary source) and of the network before meta-training on the same episodes,
and of model and baseline on --val-episodes episodes of the training classes. `--algorithm tfidf` runs the
baseline alone.
"""

import argparse
import functools
import json
import pathlib
import time

import keras
import numpy as np

import tfmeta
from tfmeta.baselines import tfidf_nearest_prototype
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval, model_predictor
from tfmeta.experiments.reporting import command_line, portable_path
from tfmeta.models.text import text_conv_embedding, text_tfidf_embedding

ALGORITHMS = ("protonet", "matching", "matching-fce", "tfidf")
NAMES = {"protonet": "Prototypical Networks", "matching": "Matching Networks",
         "matching-fce": "Matching Networks (FCE)", "tfidf": "TF-IDF nearest class mean"}


def parse_config(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--algorithm", choices=ALGORITHMS, default="protonet", help="default: %(default)s")
    parser.add_argument("--data", default="data/debian-packages",
                        help="folder of train/validation/test .tsv.gz files (default: %(default)s)")
    parser.add_argument("--ways", type=int, default=5, help="classes per test episode (default: %(default)s)")
    parser.add_argument("--shots", type=int, default=1, help="support texts per class (default: %(default)s)")
    parser.add_argument("--queries", type=int, default=15, help="query texts per class (default: %(default)s)")
    parser.add_argument("--train-ways", type=int, default=None,
                        help="classes per training episode (default: --ways)")
    parser.add_argument("--iterations", type=int, default=3000, help="meta-training steps (default: %(default)s)")
    parser.add_argument("--epochs", type=int, default=10,
                        help="validations during training; the best epoch's weights are kept (default: %(default)s)")
    parser.add_argument("--meta-batch", type=int, default=4, help="episodes per step (default: %(default)s)")
    parser.add_argument("--meta-lr", type=float, default=1e-3, help="Adam's learning rate (default: %(default)s)")
    parser.add_argument("--embedding", choices=("conv", "tfidf"), default="conv",
                        help="tfidf: TF-IDF with learned term weights and similarities "
                             "(tfmeta.models.text_tfidf_embedding); conv: a convolutional network over token "
                             "embeddings (tfmeta.models.text_conv_embedding) (default: %(default)s)")
    parser.add_argument("--projection-dim", type=int, default=0,
                        help="tfidf embedding: features of the learned term projection (default: %(default)s)")
    parser.add_argument("--dropout", type=float, default=0.1, help="embedding dropout (default: %(default)s)")
    parser.add_argument("--vocabulary-size", type=int, default=20000, help="default: %(default)s")
    parser.add_argument("--sequence-length", type=int, default=32, help="tokens read per text (default: %(default)s)")
    parser.add_argument("--val-episodes", type=int, default=200, help="default: %(default)s")
    parser.add_argument("--test-episodes", type=int, default=1000, help="default: %(default)s")
    parser.add_argument("--seed", type=int, default=0, help="seed of initialisation and training episodes")
    parser.add_argument("--output", help="write the result to this JSON file (as results/text/ holds)")
    parser.add_argument("--export", help="also export the trained model for serving to this folder")
    config = parser.parse_args(argv)
    config.train_ways = config.train_ways or config.ways
    return config


def build_model(config, training_texts):
    if config.embedding == "tfidf":
        embedding = text_tfidf_embedding(training_texts, vocabulary_size=config.vocabulary_size,
                                         projection_dim=config.projection_dim, dropout=config.dropout)
    else:
        embedding = text_conv_embedding(training_texts, vocabulary_size=config.vocabulary_size,
                                        sequence_length=config.sequence_length, dropout=config.dropout)
    if config.algorithm == "protonet":
        return tfmeta.PrototypicalNetwork(embedding)
    # Cosines lie in [-1, 1]: a learned temperature lets the attention sharpen (Snell et al. 2017, appendix).
    return tfmeta.MatchingNetwork(embedding, fce=config.algorithm == "matching-fce", temperature=10.0,
                                  learn_temperature=True)


class KeepBest(keras.callbacks.Callback):
    """Restores, when training ends, the weights of the epoch with the best validation accuracy."""

    def on_train_begin(self, logs=None):
        self.best, self.weights = -1.0, None

    def on_epoch_end(self, epoch, logs=None):
        if logs["val_accuracy"] > self.best:
            self.best, self.weights, self.epoch = logs["val_accuracy"], self.model.get_weights(), epoch + 1

    def on_train_end(self, logs=None):
        self.model.set_weights(self.weights)


def fixed_episodes(data, config, num_episodes):
    """The same `num_episodes` episodes of `data` in every run (seed 0), for comparisons on identical tasks."""
    return tfmeta.data.evaluation_episodes(data, config.ways, config.shots, config.queries, num_episodes,
                                           meta_batch_size=tfmeta.data.fitting_meta_batch_size(num_episodes))


def accuracy_record(accuracies):
    mean, half_width = mean_confidence_interval(accuracies)
    return {"accuracy": mean, "ci95": half_width}


def train_and_evaluate(config):
    """Trains (unless the algorithm is the baseline) and evaluates; returns the results record."""
    start = time.time()
    splits = tfmeta.data.read_text_splits(config.data)
    for name, data in splits.items():
        print(f"{name}: {data}")
    baseline = tfidf_nearest_prototype(splits["train"].texts, config.vocabulary_size)
    test = functools.partial(fixed_episodes, splits["test"], config, config.test_episodes)
    record = {"algorithm": NAMES[config.algorithm], "dataset": portable_path(config.data), "ways": config.ways,
              "shots": config.shots, "test_episodes": config.test_episodes}
    if config.algorithm != "tfidf":
        keras.utils.set_random_seed(config.seed)
        model = build_model(config, splits["train"].texts)
        model.compile(optimizer=keras.optimizers.Adam(config.meta_lr))
        # The same network before meta-training: what meta-training adds on held-out classes.
        untrained = episode_accuracies(model_predictor(model), test(), config.test_episodes)
        train = tfmeta.data.episodes(splits["train"], config.train_ways, config.shots, config.queries,
                                     seed=config.seed, meta_batch_size=config.meta_batch)
        validation = fixed_episodes(splits["validation"], config, config.val_episodes)
        keep_best = KeepBest()
        history = model.fit(train, validation_data=validation, epochs=config.epochs,
                            steps_per_epoch=config.iterations // config.epochs, callbacks=[keep_best], verbose=2)
        record.update(iterations=config.iterations, train_seconds=round(time.time() - start, 1),
                      selected_epoch=keep_best.epoch,
                      val_accuracy=[round(value, 4) for value in history.history["val_accuracy"]])
        accuracies = episode_accuracies(model_predictor(model), test(), config.test_episodes)
        record.update(accuracy_record(accuracies))
        record["untrained_on_the_same_episodes"] = accuracy_record(untrained)
        # Model and baseline on episodes of the training classes: does what is learned hold beyond them?
        seen = functools.partial(fixed_episodes, splits["train"], config, config.val_episodes)
        record["on_training_classes"] = {"episodes": config.val_episodes, **{
            name: accuracy_record(episode_accuracies(predict, seen(), config.val_episodes))
            for name, predict in (("model", model_predictor(model)), ("baseline", baseline))}}
        if config.export:
            tfmeta.serving.export_saved_model(model, config.export, metadata={
                "shots": config.shots, "accuracy": record["accuracy"], "command": command_line()}, overwrite=True)
    baseline_accuracies = episode_accuracies(baseline, test(), config.test_episodes)
    if config.algorithm == "tfidf":
        record.update(accuracy_record(baseline_accuracies), iterations=0)
    else:
        record["baseline_on_the_same_episodes"] = {"algorithm": NAMES["tfidf"],
                                                   **accuracy_record(baseline_accuracies)}
        difference = accuracies - baseline_accuracies  # paired: the same episodes
        record["minus_baseline"] = accuracy_record(difference)
    record.update(config={key: portable_path(value) if key in ("data", "output", "export") else value
                          for key, value in vars(config).items()},
                  machine="2 vCPUs, no GPU", command=command_line())
    if config.output:
        pathlib.Path(config.output).parent.mkdir(parents=True, exist_ok=True)
        pathlib.Path(config.output).write_text(json.dumps(record, indent=2) + "\n")
    print(f"{record['algorithm']}, {config.ways}-way {config.shots}-shot, {config.test_episodes} test episodes: "
          f"{100 * record['accuracy']:.2f} ± {100 * record['ci95']:.2f}%")
    if "baseline_on_the_same_episodes" in record:
        base = record["baseline_on_the_same_episodes"]
        print(f"{base['algorithm']} on the same episodes: {100 * base['accuracy']:.2f} ± {100 * base['ci95']:.2f}%")
    return record


def main(argv=None):
    return train_and_evaluate(parse_config(argv))


if __name__ == "__main__":
    main()
