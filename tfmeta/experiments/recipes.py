"""`tfmeta train --recipe NAME`: a paper's Omniglot protocol as one flag.

A recipe gives every setting of the paper's run that the command line (or
a config file) leaves unset; docs/maml.md lists each value beside the line
of the paper or its official code it comes from.
"""

# The Omniglot tasks the papers train on; each recipe's settings depend on the ways (Finn et al.'s 20-way
# runs differ from their 5-way ones) and on the shots (queries per class are counted from them).
WAYS = (5, 20)
SHOTS = (1, 5)


def fill(config, given, settings):
    """Sets `config[key] = value` for each of `settings` whose key is not in `given` (the settings a user set)."""
    config.update({key: value for key, value in settings.items() if key not in given})
    return config


def _finn(ways, shots):
    """Finn et al.'s Omniglot runs (cbfinn/maml, main.py's usage lines and flags)."""
    per_way = {5: {"meta_batch": 32, "inner_lr": 0.4, "inner_steps": 1},
               20: {"meta_batch": 16, "inner_lr": 0.1, "inner_steps": 5}}[ways]
    # K support and K query examples per class (DataGenerator(update_batch_size*2)); 10 inner steps at test
    # (test_num_updates); Adam 1e-3 throughout; strided convolutions (max_pool=False); 60,000 iterations; the
    # last model tested (test_iter=-1); validated every 500 iterations (TEST_PRINT_INTERVAL).
    return {**per_way, "train_queries": shots, "eval_inner_steps": 10, "meta_lr": 1e-3, "pooling": "stride",
            "first_order": False, "iterations": 60000, "iterations_per_epoch": 500, "test_last": True}


def _meta_sgd(ways, shots):
    """Li et al. 2017 (no official code): Finn et al.'s protocol, one step in training and at test, a learned
    rate per parameter entry initialised at Finn's rate (not verified against the paper's text: docs/maml.md)."""
    return {**_finn(ways, shots), "inner_steps": 1, "eval_inner_steps": 1, "learn_inner_lr": True}


def _maml_plus_plus(ways, shots):
    """The official omniglot_maml++-omniglot_*.json configurations (the same for every task but its ways and
    shots): MAML++'s switches (--maml-plus-plus), 1 query per class, 100 epochs of 500 iterations, 600
    validation tasks per epoch, the ensemble of the 5 best validated epochs tested."""
    return {"maml_plus_plus": True, "train_queries": 1, "iterations": 50000, "iterations_per_epoch": 500,
            "val_episodes": 600, "ensemble": 5}


def _nichol(ways, shots):
    """Nichol et al.'s non-transductive Omniglot commands (openai/supervised-reptile, README.md)."""
    per_way = {5: {"inner_batch": 10, "inner_steps": 5, "iterations": 100000},
               20: {"inner_batch": 20, "inner_steps": 10, "iterations": 200000}}[ways]
    # --train-shots 10: a training task holds 10 examples per class, tfmeta's support and query sets together.
    # Their inner loop is Adam (1e-3 at 5-way, 5e-4 at 20-way), which has no counterpart in tfmeta's SGD inner
    # loop: --inner-lr stays tfmeta's Reptile default. The final model is tested.
    return {**per_way, "train_queries": 10 - shots, "meta_batch": 5, "meta_lr": 1.0, "eval_inner_steps": 50,
            "pooling": "stride", "iterations_per_epoch": 2000, "test_last": True}


# name -> (algorithm, paper, settings(ways, shots))
RECIPES = {
    "finn2017": ("maml", "Finn, Abbeel, Levine 2017 (MAML)", _finn),
    "li2017-meta-sgd": ("maml", "Li, Zhou, Chen, Li 2017 (Meta-SGD)", _meta_sgd),
    "antoniou2019-maml-plus-plus": ("maml", "Antoniou, Edwards, Storkey 2019 (MAML++)", _maml_plus_plus),
    # No public code: Finn et al.'s Omniglot protocol, not verified against the paper's appendix (docs/maml.md).
    "raghu2020-anil": ("anil", "Raghu, Raghu, Bengio, Vinyals 2020 (ANIL)", _finn),
    "nichol2018-reptile": ("reptile", "Nichol, Achiam, Schulman 2018 (Reptile)", _nichol),
}


def add_flag(parser):
    parser.add_argument("--recipe", metavar="NAME",
                        help=f"a paper's Omniglot protocol, for every setting not given (its --algorithm, queries "
                             f"per class in training, meta-batch, inner steps and rates, architecture, iterations, "
                             f"outer rate and schedule; docs/maml.md): {', '.join(RECIPES)}")


def algorithm_of(settings):
    """The algorithm of the recipe `settings` name (`--recipe` alone picks it), or None without a recipe."""
    name = settings.get("recipe")
    if name is None:
        return None
    if name not in RECIPES:
        raise SystemExit(f"tfmeta train: unknown --recipe {name!r}; choose from {list(RECIPES)}")
    return RECIPES[name][0]


def resolve(settings, config):
    """`config` with the settings of `settings["recipe"]`, if any, for those not in `settings`.

    `settings` are the settings the user gave; `config` their merge with the
    defaults. Refuses an unknown recipe, another algorithm than the
    recipe's, and tasks the paper did not train.
    """
    name = settings.get("recipe")
    config.setdefault("recipe", None)
    if algorithm_of(settings) is None:
        return config
    algorithm, paper, recipe = RECIPES[name]
    if config["algorithm"] != algorithm:
        raise SystemExit(f"tfmeta train: --recipe {name} is {paper}, which trains --algorithm {algorithm}; "
                         f"received --algorithm {config['algorithm']}")
    if config["dataset"] != "omniglot":
        raise SystemExit(f"tfmeta train: --recipe {name} is an Omniglot protocol; received --dataset "
                         f"{config['dataset']}")
    if config["ways"] not in WAYS or config["shots"] not in SHOTS:
        raise SystemExit(f"tfmeta train: --recipe {name} is the protocol of {paper} on Omniglot's "
                         f"{' and '.join(map(str, WAYS))}-way, {' and '.join(map(str, SHOTS))}-shot tasks; "
                         f"received --ways {config['ways']} --shots {config['shots']}")
    return fill(config, settings, recipe(config["ways"], config["shots"]))
