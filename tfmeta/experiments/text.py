"""Meta-training on a text corpus split by class: `--dataset text:DIR`."""

import time

import tfmeta
from tfmeta.baselines import tfidf_nearest_prototype
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval, model_predictor
from tfmeta.experiments import reporting
from tfmeta.experiments.config import compile_for_training, is_text_dataset
from tfmeta.experiments.images import checked_validation_episodes
from tfmeta.experiments.omniglot import build_learner, run_name
from tfmeta.data.text import line_of, split_path
from tfmeta.models.tokenization import UnsplittableTextError, resolve_tokenization

BASELINE = "TF-IDF nearest class mean"


def build_text_model(config, training_texts, tokenize):
    """The configured metric learner on `tfmeta.models.text_tfidf_embedding` adapted on the training texts, or on
    the pretrained encoder of `--text-encoder keras-hub:PRESET_OR_DIR`."""
    def embedding():
        if not config.text_encoder:
            return tfmeta.models.text_tfidf_embedding(training_texts, tokenize=tokenize)
        try:
            return tfmeta.models.pretrained_text_embedding(config.text_encoder[len("keras-hub:"):],
                                                           trainable=bool(config.fine_tune_encoder))
        except (ImportError, OSError, ValueError) as error:
            raise SystemExit(f"tfmeta train: --text-encoder {config.text_encoder}: {error}") from None

    return build_learner(config, backbone=None, embedding=embedding)


def corpus_tokenization(tokenize, dataset, training_texts, command):
    """`resolve_tokenization` on a corpus's training texts; text that `--tokenize words` cannot split exits
    naming its file and line, and the flag that splits it."""
    try:
        return resolve_tokenization(tokenize, training_texts)
    except UnsplittableTextError as error:
        path = split_path(dataset[len("text:"):], "train")
        raise SystemExit(f"tfmeta {command}: {path}, line {line_of(path, error.text)}: "
                         f"{error.text[:40]!r} is written in {error.script}, without spaces between words: "
                         "--tokenize words would read each of its phrases as one token; use --tokenize characters "
                         "(or auto)") from None


def accuracies_with_baseline(predict, data, training_texts, ways, shots, queries, num_episodes, seed=0,
                             tokenize="auto"):
    """`(accuracies of predict, of the TF-IDF nearest-class-mean baseline)` on the same fixed episodes of `data`;
    the baseline's vocabulary and document frequencies come from `training_texts`, split as `tokenize` says."""
    def episodes():
        return tfmeta.data.evaluation_episodes(data, ways, shots, queries, num_episodes, seed=seed,
                                               meta_batch_size=tfmeta.data.fitting_meta_batch_size(num_episodes))

    baseline = tfidf_nearest_prototype(training_texts, tokenize=tokenize)
    return (episode_accuracies(predict, episodes(), num_episodes),
            episode_accuracies(baseline, episodes(), num_episodes, verbose=0))


def compared_with_baseline(accuracies, baseline):
    """The record of a model's per-episode accuracies beside the baseline's on the same episodes: each mean
    ± its 95% interval, and the paired difference."""
    (mean, half_width), (baseline_mean, baseline_half_width), (difference, difference_half_width) = (
        mean_confidence_interval(values) for values in (accuracies, baseline, accuracies - baseline))
    return {"accuracy": mean, "ci95": half_width, "test_episodes": len(accuracies), "baseline": BASELINE,
            "baseline_accuracy": baseline_mean, "baseline_ci95": baseline_half_width,
            "minus_baseline": difference, "minus_baseline_ci95": difference_half_width}


def summary(scores):
    """`compared_with_baseline`'s record as one line."""
    return (f"accuracy {100 * scores['accuracy']:.2f} ± {100 * scores['ci95']:.2f}% ({BASELINE} "
            f"{100 * scores['baseline_accuracy']:.2f} ± {100 * scores['baseline_ci95']:.2f}%, difference "
            f"{100 * scores['minus_baseline']:+.2f} ± {100 * scores['minus_baseline_ci95']:.2f} points)")


def read_corpus(dataset, command):
    """The train/validation/test splits of `text:DIR`; a bad folder exits naming `command` and the problem."""
    try:
        return tfmeta.data.read_text_splits(dataset[len("text:"):])
    except (OSError, ValueError) as error:
        raise SystemExit(f"tfmeta {command}: {error}") from None


def evaluate_on_text(args, predict, record):
    """`tfmeta evaluate` of a text model: its accuracy ± 95% interval on fixed episodes of the test classes of
    the corpus it was trained on (or of `--dataset text:DIR`), beside the TF-IDF nearest class mean (vocabulary
    from that corpus's training texts) on the same episodes and the paired difference."""
    from tfmeta.experiments.evaluate import write_evaluation

    dataset = getattr(args, "dataset", None) or record.get("dataset")
    if record.get("input_dtype") != "string":
        raise SystemExit(f"tfmeta evaluate: {args.model} takes numbers, not text; received --dataset {dataset}")
    if not is_text_dataset(dataset):
        raise SystemExit(f"tfmeta evaluate: {args.model} classifies text: name a corpus with --dataset text:DIR; "
                         f"received --dataset {dataset}")
    splits = read_corpus(dataset, "evaluate")
    ways = args.ways or record.get("ways") or 5
    shots = args.shots or record.get("shots") or 1
    print(f"Evaluating {args.model} on {args.episodes} fixed {ways}-way {shots}-shot episodes of the test classes "
          f"of {dataset} ({args.queries} queries per class, seed {args.seed}):")
    tokenize = corpus_tokenization(record.get("tokenize", "auto"), dataset, splits["train"].texts, "evaluate")
    accuracies, baseline = accuracies_with_baseline(predict, splits["test"], splits["train"].texts, ways, shots,
                                                    args.queries, args.episodes, seed=args.seed, tokenize=tokenize)
    scores = compared_with_baseline(accuracies, baseline)
    print(f"{summary(scores)} over {len(accuracies)} episodes")
    evaluation = {"model": reporting.portable_path(args.model), "dataset": dataset, "split": "test", "ways": ways,
                  "shots": shots, "queries": args.queries, "seed": args.seed, **scores,
                  "command": reporting.command_line()}
    write_evaluation(args.output, evaluation, record)
    return evaluation


def train_and_evaluate_text(config):
    """Meta-trains Matching or Prototypical Networks on a text corpus and tests them on its test classes.

    `config.dataset` is `text:DIR`, DIR holding `train`, `validation` and
    `test` files of `label<TAB>text` lines with disjoint classes
    (`tfmeta.data.read_text_splits`). Validation after each epoch on fixed
    episodes of the validation classes (the best epoch is tested); the test
    on `config.test_episodes` fixed episodes of the test classes, with the
    TF-IDF nearest-class-mean baseline on the same episodes and the paired
    difference. Writes the run's files to `config.output_dir` and returns
    the results.
    """
    start = time.time()
    folder = config.dataset[len("text:"):]
    splits = read_corpus(config.dataset, "train")
    print(f"{folder}, train/validation/test: {'/'.join(str(d.num_classes) for d in splits.values())} classes, "
          f"{'/'.join(str(len(d)) for d in splits.values())} texts, read in {time.time() - start:.1f} s")
    training_texts = splits["train"].texts
    tokenize = corpus_tokenization(config.tokenize, config.dataset, training_texts, "train")
    model = build_text_model(config, training_texts, tokenize)
    test_shape = (config.ways, config.shots, config.queries)
    train_shape = (config.train_ways or config.ways, config.shots, config.train_queries or config.queries)

    def train(meta_batch):  # the training stream from meta-batch `meta_batch` on
        return tfmeta.data.episodes(splits["train"], *train_shape, seed=config.seed,
                                    meta_batch_size=config.meta_batch, start=meta_batch * config.meta_batch)

    val = checked_validation_episodes(splits, test_shape, train, config)
    compile_for_training(model, config)
    files = reporting.RunFiles(config.output_dir)
    model, history, train_seconds, selected_epochs = reporting.fit(model, train, val, config, files)

    print(f"Testing on {config.test_episodes} fixed episodes of the test classes:")
    accuracies, baseline = accuracies_with_baseline(model_predictor(model), splits["test"], training_texts,
                                                    *test_shape, config.test_episodes, tokenize=tokenize)
    scores = compared_with_baseline(accuracies, baseline)
    name = run_name(config)
    results = {
        "algorithm": name, "dataset": config.dataset, "split": "by class: the corpus's train/validation/test files",
        "ways": config.ways, "shots": config.shots, **scores, "input_dtype": "string",
        "embedding": config.text_encoder or "text_tfidf_embedding", "tokenize": tokenize,
        **reporting.training_record(history, config, train_seconds, selected_epochs),
    }
    files.write(model, results)
    print(f"{name} {config.ways}-way {config.shots}-shot {config.dataset}: {summary(scores)} over "
          f"{len(accuracies)} episodes")
    return results
