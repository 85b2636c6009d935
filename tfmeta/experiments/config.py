"""The configuration of a meta-training run: flags, config files, per-algorithm defaults."""

import argparse
import json
import os
import pathlib

from tfmeta.experiments import maml_plus_plus, recipes
from tfmeta.modes import INFERENCE_MODES, TOKENIZATIONS
from tfmeta.omniglot_names import DATA_DIR_HELP, VINYALS_SPLITS, vinyals_num_classes

# The flags and their resolution import no TensorFlow, so that `tfmeta --help` and argument errors answer at once;
# the functions that run a configuration import it.

ALGORITHMS = ("maml", "anil", "reptile", "matching", "protonet")
MAML_FAMILY = ("maml", "anil", "reptile")  # adapt by gradient steps; the head fixes the ways
DATASETS = ("omniglot", "sinusoid")

# What a setting is when neither the command line nor a config file sets it:
# the common value, unless the (dataset, algorithm) pair has its own (the
# papers' setups: Snell et al.'s 60-way ProtoNet episodes, Finn's sinusoid).
DEFAULTS = {
    "common": {
        "dataset": "omniglot", "split": "vinyals", "ways": 5, "shots": 1, "queries": 15, "meta_batch": 32,
        "iterations": 2000, "iterations_per_epoch": 100, "meta_lr": 1e-3, "val_episodes": 100,
        "test_episodes": 1000, "seed": 0, "intra_op_threads": None, "distribute": "none", "inner_lr": 0.4,
        "inner_steps": 1, "eval_inner_steps": 3, "pooling": "stride", "fce_steps": 5, "temperature": 1.0,
        "inference": "per-query",
    },
    ("omniglot", "protonet"): {"train_ways": 60, "train_queries": 5, "meta_batch": 1, "iterations": 5000,
                               "iterations_per_epoch": 500},
    ("omniglot", "matching"): {"meta_batch": 8, "iterations": 5000, "iterations_per_epoch": 500},
    # Nichol et al.'s Omniglot setup: 5 inner steps on batches of 10, 50 at test, meta-batch 5, outer SGD step
    # 1.0 annealed linearly to 0 (their inner loop is Adam at 1e-3; tfmeta's is SGD, as at test).
    ("omniglot", "reptile"): {"meta_batch": 5, "meta_lr": 1.0, "inner_lr": 0.1, "inner_steps": 5,
                              "eval_inner_steps": 50, "inner_batch": 10},
    # Image datasets (images:DIR, tfds:NAME): Finn et al.'s miniImageNet MAML settings.
    ("images", "maml"): {"meta_batch": 4, "inner_lr": 0.01, "inner_steps": 5, "eval_inner_steps": 10},
    # Text corpora (text:DIR): the embedding starts from TF-IDF; a step of 1e-2 moves its term weights in a
    # few hundred meta-iterations (docs/text.md).
    # Prototypical Networks compare texts by the cosine, as the TF-IDF baseline does: the squared distance to a
    # mean of unit vectors also counts the mean's length (docs/text.md).
    ("text", "protonet"): {"meta_batch": 4, "meta_lr": 1e-2, "iterations": 500, "iterations_per_epoch": 100,
                           "distance": "cosine", "temperature": 10.0, "learn_temperature": True, "tokenize": "auto"},
    ("text", "matching"): {"meta_batch": 4, "meta_lr": 1e-2, "iterations": 500, "iterations_per_epoch": 100,
                           "temperature": 10.0, "learn_temperature": True, "tokenize": "auto"},
    ("sinusoid", "maml"): {"shots": 10, "queries": 10, "meta_batch": 25, "iterations": 10000,
                           "iterations_per_epoch": 1000, "inner_lr": 0.01, "eval_inner_steps": 1},
}


def _default_help(key):
    """The defaults of `key` as help text: 'default: 32; protonet: 1, matching: 8'."""
    text = f"default: {DEFAULTS['common'][key]}" if key in DEFAULTS["common"] else "default: none"
    special = [f"{dataset} {algorithm}: {values[key]}" for (dataset, algorithm), values in
               ((k, v) for k, v in DEFAULTS.items() if k != "common") if key in values]
    return text + (f"; {', '.join(special)}" if special else "")


LR_DECAY_FACTOR = 0.5  # --lr-decay-factor when only --lr-decay-every is given (Snell et al. halved)

DESCRIPTION = ("Meta-trains a few-shot learner, tests it on fixed held-out episodes, and writes model.keras, "
               "results.json, a learning curve and TensorBoard logs.")


TRAIN_USAGE = f"%(prog)s --algorithm {{{','.join(ALGORITHMS)}}} [--config FILE] [options]"


class ArgumentParser(argparse.ArgumentParser):
    """An argparse parser whose errors are one line and a pointer to --help, not the usage of every flag."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message}\n(see {self.prog} --help)\n")


def train_parser(prog="tfmeta train"):
    """The flags of a meta-training run (`tfmeta train --help`)."""
    parser = ArgumentParser(prog=prog, description=DESCRIPTION, usage=TRAIN_USAGE)
    add_train_flags(parser)
    return parser


def add_train_flags(parser):
    """Adds the flags of a meta-training run to `parser`; every default is None (see `resolve`)."""
    add = parser.add_argument

    def add_with_default(*names, help, **kwargs):
        dest = names[0].lstrip("-").replace("-", "_")
        add(*names, help=f"{help} ({_default_help(dest)})", **kwargs)

    required = parser.add_argument_group("required, on the command line or in the --config file")
    required.add_argument("--algorithm", choices=ALGORITHMS, type=str.lower,
                          help="maml, anil (MAML adapting the head only), reptile, matching (Matching Networks) or "
                               "protonet (Prototypical Networks), in any case; --recipe names it too")
    add("--config", metavar="FILE", help="a JSON file of settings (keys are flag names with underscores, e.g. "
                         "\"meta_batch\"); flags given on the command line win")
    recipes.add_flag(parser)
    add_with_default("--dataset", type=dataset_argument, metavar="DATASET",
                     help="omniglot (Vinyals split), sinusoid regression, images:DIR (a folder with one sub-folder "
                          "of images per class), tfds:NAME[/CONFIG] (a TFDS image dataset, e.g. tfds:cifar100; see "
                          "docs/images.md) or text:DIR (train/validation/test.tsv.gz of label<TAB>text lines, split "
                          "by class; see docs/text.md)")
    add("--data-dir", help=DATA_DIR_HELP)
    add_with_default("--split", choices=("vinyals", "lake"),
                     help="Omniglot: vinyals (train/val/test classes of Vinyals et al.) or lake (train on the "
                          "background set, test on Lake's 20 within-alphabet 20-way one-shot runs)")
    add("--within-alphabet", action="store_true", default=None,
        help="Omniglot: draw each training and validation episode's classes from one alphabet, as Lake's runs "
             "are (the Vinyals test episodes stay across alphabets)")
    add("--augment", action="store_true", default=None,
        help="Omniglot: train on drawings downsampled by a mix of area, bilinear and bicubic-antialias "
             "resizing, each shifted by up to 1 pixel per axis, so the model does not depend on how a client "
             "resizes (validation and test stay area-downsampled; default: area only, no shifts)")
    add_with_default("--ways", type=int, help="classes per test and validation episode")
    add("--train-ways", type=int, help="classes per training episode (default: --ways; omniglot protonet: 60)")
    add_with_default("--shots", type=int, help="support examples per class (sinusoid: support points)")
    add_with_default("--queries", type=int, help="query examples per class in test episodes")
    add("--train-queries", type=int, help="query examples per class in training (default: --queries; "
                                          "omniglot protonet: 5)")
    add_with_default("--meta-batch", type=int, help="episodes per meta-iteration")
    add_with_default("--iterations", type=int, help="meta-iterations")
    add_with_default("--iterations-per-epoch", type=int,
                     help="meta-iterations between validations, checkpoints and log points")
    add_with_default("--meta-lr", type=float, help="Adam learning rate of the outer update (reptile: the step "
                                                   "of its outer SGD, annealed linearly to 0 over --iterations "
                                                   "unless a schedule flag is given)")
    add("--lr-decay-every", type=int, metavar="N",
        help="multiply the outer learning rate by --lr-decay-factor every N meta-iterations (Snell et al. "
             "halved it every 2,000 episodes; default: a constant rate)")
    add("--cosine-lr-to", type=float, metavar="LR",
        help="anneal the outer learning rate from --meta-lr to LR over --iterations along a cosine, as MAML++ "
             "does (1e-3 to 1e-5); default: constant")
    add("--lr-decay-factor", type=float, help=f"the factor of --lr-decay-every (default: {LR_DECAY_FACTOR})")
    add("--clip-norm", type=float, help="clip the outer gradients to this global norm (default: no clipping)")
    add("--skip-non-finite", action="store_true", default=None,
        help="skip a step whose loss or gradient is NaN or infinite (default: stop training, naming the step)")
    add("--distribute", choices=("none", "mirrored", "multiworker"),
        help="none: one device; mirrored: data-parallel over every local GPU (tf.distribute.MirroredStrategy); "
             "multiworker: over several hosts (MultiWorkerMirroredStrategy; run the same command on every host, "
             "each with its TF_CONFIG). Each replica takes an equal share of the meta-batch (default: none)")
    add("--deterministic", action="store_true", default=None,
        help="enable TensorFlow's op determinism: with the same seed, a rerun gives identical weights on the "
             "same machine (slower on GPUs)")
    add_with_default("--val-episodes", type=int, help="fixed validation episodes after each epoch")
    add_with_default("--test-episodes", type=int, help="fixed test episodes (sinusoid: test tasks)")
    add_with_default("--seed", type=int, help="seed of weights and training episodes")
    add("--intra-op-threads", type=int,
        help="TensorFlow intra-op threads, 0 for TensorFlow's choice (default: 1 for MAML on a machine without "
             "a GPU, where it is faster because the task loop already keeps every core busy; else 0)")
    add("--output-dir", help="where the run's files go (default: runs/<dataset>-<algorithm>-<ways>w<shots>s)")
    add("--test-last", action="store_true", default=None,
        help="test the model of the last epoch (default: the one with the best validation accuracy, or loss "
             "for regression, as Snell et al. and MAML++ select)")
    add("--ensemble", type=int, metavar="K",
        help="keep the checkpoints of the K epochs with the best validation scores and test their ensemble "
             "(the mean of their class probabilities; MAML++ tests K=5); model.keras is that ensemble "
             "(default: test the single best model)")
    add("--early-stopping", type=int, metavar="N",
        help="stop after N epochs without a better validation score (default: train all --iterations)")
    add("--resume", action="store_true", default=None,
        help="continue from the latest checkpoint in the output directory (after its last complete epoch, "
             "on the episodes that follow), if there is one; the other settings must be the same")
    maml = parser.add_argument_group("MAML")
    maml.add_argument("--inner-lr", type=float, help=f"inner-loop step size ({_default_help('inner_lr')})")
    maml.add_argument("--inner-steps", type=int, help=f"inner steps in meta-training ({_default_help('inner_steps')})")
    maml.add_argument("--eval-inner-steps", type=int,
                      help=f"inner steps at validation and test time ({_default_help('eval_inner_steps')})")
    maml.add_argument("--first-order", action="store_true", default=None, help="first-order MAML")
    maml.add_argument("--inference", choices=INFERENCE_MODES,
                      help="how queries are normalized, in training, validation, test and the export: per-query "
                           "(with the support set's batch statistics, so an answer depends only on the support set "
                           "and that query) or transductive (with the statistics of all the queries of a task, as "
                           f"Finn et al.) ({_default_help('inference')})")
    maml.add_argument("--learn-inner-lr", action="store_true", default=None,
                      help="learn per-parameter inner rates (Meta-SGD)")
    maml.add_argument("--adapt-normalization", action="store_true", default=None,
                      help="adapt the normalization layers' scales and offsets in the inner loop too (default: "
                           "meta-learned by the outer loop alone, as in Finn et al.'s code and MAML++)")
    maml.add_argument("--pooling", choices=("stride", "max"),
                      help=f"Finn's strided CNN or the max-pool variant ({_default_help('pooling')})")
    maml_plus_plus.add_flags(maml)
    maml.add_argument("--inner-batch", type=int, metavar="N",
                      help="reptile: examples per training inner step, successive batches of the task's "
                           f"examples; none: every step on the whole task ({_default_help('inner_batch')})")
    protonet = parser.add_argument_group("Prototypical Networks")
    protonet.add_argument("--distance", choices=("squared-euclidean", "cosine"),
                          help="a query's distance to a class mean: Snell et al.'s squared Euclidean, or the cosine "
                               "scaled by --temperature (default: squared-euclidean; text corpora: cosine)")
    matching = parser.add_argument_group("Matching Networks")
    matching.add_argument("--fce", action="store_true", default=None, help="full context embeddings")
    matching.add_argument("--fce-steps", type=int,
                          help=f"processing steps of the FCE query LSTM ({_default_help('fce_steps')})")
    matching.add_argument("--temperature", type=float,
                          help=f"scale of the cosines before the softmax; protonet: with --distance cosine "
                               f"({_default_help('temperature')})")
    matching.add_argument("--learn-temperature", action="store_true", default=None, help="learn the scale")
    images = parser.add_argument_group("image datasets (--dataset images:DIR or tfds:NAME)")
    images.add_argument("--image-size", type=int, nargs=2, metavar=("H", "W"),
                        help="resize every image to H x W (default: a TFDS dataset's own fixed size, else 84 84)")
    images.add_argument("--channels", type=int, choices=(1, 3), help="1 (grayscale) or 3 (RGB; the default)")
    images.add_argument("--class-split", metavar="FILE",
                        help="a JSON file of train / validation / test class lists, or a shipped split: cifar-fs, "
                             "fc100 (tfds:cifar100), cub (tfds:caltech_birds2011) (default: 64/16/20%% of the "
                             "classes, shuffled by --seed)")
    images.add_argument("--backbone", choices=("conv4", "resnet12"),
                        help="embedding of the metric learners: conv4 (64 filters) or resnet12 (default: conv4; "
                             "MAML uses Finn et al.'s 32-filter CNN)")
    images.add_argument("--image-augmentation", choices=("none", "crop-flip"),
                        help="crop-flip: shift each training image by up to 1/8 of its side (zero fill) and mirror "
                             "it with probability 1/2 (default: crop-flip for matching and protonet, none for maml)")
    text = parser.add_argument_group("text corpora (--dataset text:DIR)")
    text.add_argument("--tokenize", choices=TOKENIZATIONS,
                      help="words (split at whitespace), characters (words, and the character unigrams and bigrams "
                           "of scripts written without spaces: Chinese, Japanese, Thai) or auto (characters when at "
                           "least 1%% of the training texts hold such a script) (default: auto)")
    text.add_argument("--text-encoder", metavar="keras-hub:PRESET_OR_DIR",
                      help="embed texts with a pretrained KerasHub backbone and its preprocessor (a preset name, "
                           "e.g. keras-hub:bert_base_multi, or a folder written by save_to_preset; needs pip install "
                           "\".[text]\") instead of the TF-IDF embedding (default: TF-IDF)")
    text.add_argument("--fine-tune-encoder", action="store_true", default=None,
                      help="with --text-encoder: fine-tune the backbone (default: frozen)")


def dataset_argument(value):
    """`--dataset`: one of `DATASETS`, `images:DIR`, `tfds:NAME[/CONFIG]` or `text:DIR`."""
    kind, colon, location = value.partition(":")
    if value in DATASETS or (colon and kind in ("images", "tfds", "text") and location):
        return value
    raise argparse.ArgumentTypeError(f"choose from {', '.join(DATASETS)}, images:DIR, tfds:NAME[/CONFIG] or "
                                     f"text:DIR; received {value!r}")


def is_text_dataset(dataset):
    """True for the `text:DIR` values of `--dataset`."""
    return isinstance(dataset, str) and dataset.startswith("text:")


def check_omniglot_ways(command, split, ways, episodes):
    """Exits with one line unless Omniglot's `split` has `ways` classes for its `episodes`, before any image is read
    (Lake's parts are checked as they are read)."""
    classes = vinyals_num_classes(split) if split in VINYALS_SPLITS else None
    if classes is not None and ways > classes:
        raise SystemExit(f"tfmeta {command}: {ways} ways exceed the {classes} classes of Omniglot's {split} split, "
                         f"which the {episodes} episodes are drawn from; choose at most {classes}")


def resolve(args):
    """Fills unset settings from the config file and the defaults; validates the combination."""
    settings = {key: value for key, value in vars(args).items() if value is not None}
    if args.config:
        path = pathlib.Path(args.config)
        if not path.is_file():
            raise SystemExit(f"tfmeta train: no config file at {path}")
        from_file = json.loads(path.read_text())
        unknown = sorted(set(from_file) - set(vars(args)))
        if unknown:
            raise SystemExit(f"tfmeta train: unknown settings {unknown} in {path}; valid: "
                             f"{sorted(set(vars(args)) - {'config'})}")
        settings = {**from_file, **settings}
    if isinstance(settings.get("algorithm"), str):
        settings["algorithm"] = settings["algorithm"].lower()
    recipe_algorithm = recipes.algorithm_of(settings)  # refuses an unknown recipe
    if recipe_algorithm and "algorithm" not in settings:
        settings["algorithm"] = recipe_algorithm
    if settings.get("algorithm") not in ALGORITHMS:
        raise SystemExit(f"tfmeta train: choose --algorithm from {list(ALGORITHMS)}; received "
                         f"{settings.get('algorithm')!r}")
    dataset = settings.get("dataset", DEFAULTS["common"]["dataset"])
    if settings["algorithm"] in ("anil", "reptile") and dataset != "omniglot":
        raise SystemExit(f"tfmeta train: --algorithm {settings['algorithm']} trains on omniglot; received "
                         f"--dataset {dataset}")
    if settings.get("inference") is not None and settings["algorithm"] not in MAML_FAMILY:
        raise SystemExit(f"tfmeta train: --inference applies to {', '.join(MAML_FAMILY)} (metric learners embed each "
                         f"query alone); received --algorithm {settings['algorithm']}")
    if settings.get("inner_batch") is not None and settings["algorithm"] != "reptile":
        raise SystemExit(f"tfmeta train: --inner-batch applies to --algorithm reptile; received --algorithm "
                         f"{settings['algorithm']}")
    if dataset == "sinusoid" and settings["algorithm"] != "maml":
        raise SystemExit("tfmeta train: sinusoid regression trains MAML only; received "
                         f"--algorithm {settings['algorithm']}")
    text_dataset = is_text_dataset(dataset)
    if text_dataset and settings["algorithm"] not in ("matching", "protonet"):
        raise SystemExit(f"tfmeta train: text corpora train matching or protonet; received --algorithm "
                         f"{settings['algorithm']}")
    image_dataset = dataset.startswith(("images:", "tfds:"))
    defaults_of = "images" if image_dataset else "text" if text_dataset else dataset
    config = {**DEFAULTS["common"], **DEFAULTS.get((defaults_of, settings["algorithm"]), {}), **settings}
    config = recipes.resolve(settings, config)
    if config["algorithm"] == "protonet" and config.get("distance") != "cosine":
        # A default temperature scales the default cosine; the squared distance has none (a given one is refused).
        for key in ("temperature", "learn_temperature"):
            if key not in settings:
                config[key] = DEFAULTS["common"].get(key)
    for flag in ("first_order", "learn_inner_lr", "adapt_normalization", "fce", "learn_temperature", "skip_non_finite",
                 "deterministic", "resume", "within_alphabet", "test_last", "augment"):
        config[flag] = bool(config.get(flag))
    config = maml_plus_plus.resolve(config, settings)
    config.setdefault("train_ways", None)
    config.setdefault("inner_batch", None)
    config.setdefault("train_queries", None)
    if config["algorithm"] in MAML_FAMILY and config["train_ways"] not in (None, config["ways"]):
        raise SystemExit(f"tfmeta train: MAML's head has one output per class, so it trains and tests on the "
                         f"same number of ways; received --ways {config['ways']} --train-ways "
                         f"{config['train_ways']}")
    config.setdefault("data_dir", None)
    config.setdefault("clip_norm", None)
    config.setdefault("early_stopping", None)
    config.setdefault("ensemble", None)
    if config["early_stopping"] is not None and config["early_stopping"] < 1:
        raise SystemExit(f"tfmeta train: --early-stopping must be a positive number of epochs; received "
                         f"{config['early_stopping']}")
    if config["ensemble"] is not None:
        # Early stopping may end a run after --early-stopping + 1 epochs: each must find its K checkpoints.
        epochs = min(max(1, config["iterations"] // config["iterations_per_epoch"]),
                     config["early_stopping"] + 1 if config["early_stopping"] else float("inf"))
        if not 2 <= config["ensemble"] <= epochs:
            raise SystemExit(f"tfmeta train: --ensemble K needs K in [2, {epochs}], the epochs this run trains at "
                             f"least (--iterations / --iterations-per-epoch, --early-stopping + 1); received "
                             f"--ensemble {config['ensemble']}")
        conflict = "--dataset sinusoid" if dataset == "sinusoid" else "--test-last" if config["test_last"] else None
        if conflict:
            raise SystemExit(f"tfmeta train: --ensemble averages the class probabilities of the best validated "
                             f"epochs; it does not go with {conflict}")
    config.setdefault("lr_decay_every", None)
    config.setdefault("cosine_lr_to", None)
    if config["cosine_lr_to"] is not None and config["lr_decay_every"] is not None:
        raise SystemExit("tfmeta train: choose one learning-rate schedule: --cosine-lr-to or --lr-decay-every")
    if config["cosine_lr_to"] is not None and not 0 <= config["cosine_lr_to"] <= config["meta_lr"]:
        raise SystemExit(f"tfmeta train: --cosine-lr-to must lie in [0, --meta-lr {config['meta_lr']}]; received "
                         f"{config['cosine_lr_to']}")
    config.setdefault("lr_decay_factor", None)  # LR_DECAY_FACTOR when decaying; unset, so old checkpoints resume
    if config["lr_decay_every"] is not None and config["lr_decay_every"] < 1:
        raise SystemExit(f"tfmeta train: --lr-decay-every must be a positive number of meta-iterations; received "
                         f"{config['lr_decay_every']}")
    if config["lr_decay_factor"] is not None and not 0 < config["lr_decay_factor"] <= 1:
        raise SystemExit(f"tfmeta train: --lr-decay-factor must be in (0, 1]; received {config['lr_decay_factor']}")
    if config["iterations"] > config["iterations_per_epoch"] and config["iterations"] % config["iterations_per_epoch"]:
        raise SystemExit(f"tfmeta train: --iterations {config['iterations']} is not a whole number of epochs of "
                         f"--iterations-per-epoch {config['iterations_per_epoch']}; make it a multiple, e.g. "
                         f"{config['iterations'] // config['iterations_per_epoch'] * config['iterations_per_epoch']}")
    if dataset == "omniglot" and config["split"] == "vinyals":
        for split, ways, episodes in (("vinyals-train", config["train_ways"] or config["ways"], "training"),
                                      ("vinyals-val", config["ways"], "validation"),
                                      ("vinyals-test", config["ways"], "test")):
            check_omniglot_ways("train", split, ways, episodes)
    prefix = dataset if config["split"] == "vinyals" else f"{dataset}-{config['split']}"
    for key in ("image_size", "channels", "class_split", "backbone", "image_augmentation", "tokenize",
                "text_encoder", "fine_tune_encoder"):
        config.setdefault(key, None)
    for flag in ("tokenize", "text_encoder"):
        if config[flag] and not text_dataset:
            raise SystemExit(f"tfmeta train: --{flag.replace('_', '-')} applies to text corpora (--dataset "
                             f"text:DIR); received --dataset {dataset}")
    if config["text_encoder"] and not config["text_encoder"].startswith("keras-hub:"):
        raise SystemExit(f"tfmeta train: --text-encoder takes keras-hub:PRESET_OR_DIR; received "
                         f"{config['text_encoder']!r}")
    if config["fine_tune_encoder"] and not config["text_encoder"]:
        raise SystemExit("tfmeta train: --fine-tune-encoder fine-tunes the backbone of --text-encoder; give it")
    if image_dataset or text_dataset:  # runs/cifar100-protonet-5w1s for tfds:cifar100, ...
        prefix = pathlib.Path(dataset.split(":", 1)[1].rstrip("/")).name.replace("/", "-")
    config.setdefault("output_dir", f"runs/{prefix}-{config['algorithm']}-{config['ways']}w{config['shots']}s"
                      if dataset != "sinusoid" else f"runs/sinusoid-maml-{config['shots']}shot")
    if dataset != "omniglot":  # --split names Omniglot's splits; record how this dataset's classes are split
        if "split" in settings:
            raise SystemExit(f"tfmeta train: --split applies to --dataset omniglot; received --dataset {dataset}"
                             + (" (its classes are split by --class-split)" if image_dataset else ""))
        config["split"] = (config["class_split"] or f"seeded class fractions 64/16/20% (--seed {config['seed']})"
                           if image_dataset else "the corpus's train/validation/test files" if text_dataset else None)
    config.pop("config", None)
    return argparse.Namespace(**config)


def parse_train_config(argv=None, prog="tfmeta train"):
    """Parses and resolves `tfmeta train` flags; see `apply_process_settings`."""
    return apply_process_settings(resolve(train_parser(prog).parse_args(argv)))


def apply_process_settings(config):
    """Applies the process-wide settings (threads, seed) and returns `config`.

    Call it before building a model: TensorFlow fixes its thread pools when
    it first runs an op.
    """
    import keras
    import tensorflow as tf

    if config.intra_op_threads is None:
        config.intra_op_threads = default_intra_op_threads(config.algorithm)
    if config.intra_op_threads:
        try:
            tf.config.threading.set_intra_op_parallelism_threads(config.intra_op_threads)
        except RuntimeError:  # TensorFlow already runs (e.g. a second run in one Python process)
            print(f"TensorFlow is already running: intra-op threads stay at "
                  f"{tf.config.threading.get_intra_op_parallelism_threads() or 'its choice'}")
    if config.deterministic:
        tf.config.experimental.enable_op_determinism()
    keras.utils.set_random_seed(config.seed)
    return config


def default_intra_op_threads(algorithm):
    """1 for MAML without a GPU, else 0 (TensorFlow's choice).

    MAML's task loop runs tasks concurrently, one per core; splitting each
    small op across cores on top of that costs more than it gains
    (`benchmarks/maml_throughput.py`: docs/performance.md). Metric learners
    run one large batch, which more threads speed up.
    """
    import tensorflow as tf

    return 1 if algorithm in MAML_FAMILY and not tf.config.list_physical_devices("GPU") else 0


def distribution_strategy(config):
    """The tf.distribute strategy a run asks for (the default strategy for one device)."""
    import tensorflow as tf

    if config.distribute == "none":
        return tf.distribute.get_strategy()
    if config.distribute == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise SystemExit("tfmeta train: --distribute multiworker needs TF_CONFIG (the cluster and this "
                             "worker's index) in the environment")
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
    else:
        strategy = tf.distribute.MirroredStrategy()
    if config.meta_batch % strategy.num_replicas_in_sync:
        raise SystemExit(f"tfmeta train: --meta-batch {config.meta_batch} does not split evenly over "
                         f"{strategy.num_replicas_in_sync} replicas")
    print(f"data-parallel over {strategy.num_replicas_in_sync} replica(s): "
          f"{', '.join(strategy.extended.worker_devices)}")
    return strategy


def for_this_worker(config, strategy):
    """`config` with the output directory of this worker: non-chief workers of a multi-worker run
    write to `<output_dir>/worker-<index>` (they must save too, as saving is collective)."""
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or resolver.task_type in (None, "chief") or (
            resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict()):
        return config
    worker_dir = f"{config.output_dir}/{resolver.task_type}-{resolver.task_id}"
    return argparse.Namespace(**{**vars(config), "output_dir": worker_dir})


def compile_for_training(model, config):
    """Compiles `model` with the configured outer optimizer and fault handling."""
    import keras

    learning_rate = config.meta_lr
    if config.cosine_lr_to is not None:
        learning_rate = keras.optimizers.schedules.CosineDecay(
            config.meta_lr, decay_steps=config.iterations, alpha=config.cosine_lr_to / config.meta_lr)
    if config.lr_decay_every:
        learning_rate = keras.optimizers.schedules.ExponentialDecay(
            config.meta_lr, decay_steps=config.lr_decay_every,
            decay_rate=config.lr_decay_factor or LR_DECAY_FACTOR, staircase=True)
    optimizer = keras.optimizers.Adam
    if config.algorithm == "reptile":  # Nichol et al.: SGD on θ - mean θ', its step annealed linearly to 0
        optimizer = keras.optimizers.SGD
        if config.cosine_lr_to is None and not config.lr_decay_every:
            learning_rate = keras.optimizers.schedules.PolynomialDecay(config.meta_lr, config.iterations, 0.0)
    model.compile(optimizer=optimizer(learning_rate, global_clipnorm=config.clip_norm),
                  non_finite="skip" if config.skip_non_finite else "stop")
