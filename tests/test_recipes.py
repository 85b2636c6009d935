"""`tfmeta train --recipe NAME`: each paper's Omniglot protocol as one flag."""

import json

import pytest

import tfmeta
from tfmeta.experiments import config as run_config
from tfmeta.experiments.recipes import RECIPES
from tfmeta.experiments.reporting import portable_config

SETTINGS = ("algorithm", "train_queries", "meta_batch", "inner_lr", "inner_steps", "eval_inner_steps", "pooling",
            "iterations", "meta_lr", "cosine_lr_to", "test_last")


def resolved(*flags):
    return run_config.resolve(run_config.train_parser().parse_args(list(flags)))


def settings_of(config, keys=SETTINGS):
    return {key: vars(config)[key] for key in keys}


@pytest.mark.parametrize("flags, expected", [
    # cbfinn/maml main.py's 5-way and 20-way 1-shot commands, K queries per class, 10 steps at test.
    (["--recipe", "finn2017"], ("maml", 1, 32, 0.4, 1, 10, "stride", 60000, 1e-3, None, True)),
    (["--recipe", "finn2017", "--ways", "20", "--shots", "5"], ("maml", 5, 16, 0.1, 5, 10, "stride", 60000, 1e-3,
                                                                None, True)),
    (["--recipe", "li2017-meta-sgd"], ("maml", 1, 32, 0.4, 1, 1, "stride", 60000, 1e-3, None, True)),
    (["--recipe", "raghu2020-anil", "--ways", "20"], ("anil", 1, 16, 0.1, 5, 10, "stride", 60000, 1e-3, None, True)),
    # The official omniglot_maml++ configurations: num_target_samples 1, 100 epochs of 500 iterations.
    (["--recipe", "antoniou2019-maml-plus-plus"], ("maml", 1, 8, 0.1, 5, 5, "max", 50000, 1e-3, 1e-5, False)),
    # supervised-reptile's README: --train-shots 10 (support and queries together), 20-way: 10 steps on 20.
    (["--recipe", "nichol2018-reptile", "--ways", "20"], ("reptile", 9, 5, 0.1, 10, 50, "stride", 200000, 1.0, None,
                                                          True)),
])
def test_a_recipe_sets_the_papers_settings_and_is_recorded(flags, expected):
    config = resolved(*flags)
    assert tuple(settings_of(config).values()) == expected
    assert portable_config(config)["recipe"] == flags[1]


def test_each_recipes_switches_reach_the_model():
    meta_sgd = tfmeta.experiments.build_model(resolved("--recipe", "li2017-meta-sgd"))
    assert meta_sgd.learn_inner_lr and meta_sgd.eval_inner_steps == 1
    plus_plus = resolved("--recipe", "antoniou2019-maml-plus-plus")
    assert settings_of(plus_plus, ("learn_per_step_inner_lr", "multi_step_loss_iterations", "per_step_bn",
                                   "val_episodes", "ensemble")) == \
        {"learn_per_step_inner_lr": True, "multi_step_loss_iterations": 5000, "per_step_bn": True,
         "val_episodes": 600, "ensemble": 5}
    reptile = tfmeta.experiments.build_model(resolved("--recipe", "nichol2018-reptile"))
    assert (reptile.inner_batch_size, reptile.inner_steps) == (10, 5)


def test_a_flag_or_a_config_file_wins_over_the_recipe(tmp_path):
    config = resolved("--recipe", "finn2017", "--ways", "20", "--meta-batch", "4", "--train-queries", "15",
                      "--iterations", "3000")
    assert settings_of(config, ("meta_batch", "train_queries", "iterations", "inner_steps")) == \
        {"meta_batch": 4, "train_queries": 15, "iterations": 3000, "inner_steps": 5}
    # MAML++'s multi-step loss anneals over a tenth of the iterations given.
    assert resolved("--recipe", "antoniou2019-maml-plus-plus", "--iterations", "3000").multi_step_loss_iterations \
        == 300
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"recipe": "nichol2018-reptile", "inner_lr": 0.05}))
    assert settings_of(resolved("--config", str(path)), ("algorithm", "inner_lr", "meta_batch")) == \
        {"algorithm": "reptile", "inner_lr": 0.05, "meta_batch": 5}


@pytest.mark.parametrize("flags, message", [
    (["--recipe", "finn"], rf"unknown --recipe 'finn'; choose from {list(RECIPES)}".replace("[", r"\[")),
    (["--recipe", "finn2017", "--algorithm", "reptile"],
     r"--recipe finn2017 is Finn, Abbeel, Levine 2017 \(MAML\), which trains --algorithm maml; received "
     r"--algorithm reptile"),
    (["--recipe", "raghu2020-anil", "--algorithm", "maml"], "which trains --algorithm anil; received --algorithm maml"),
    (["--recipe", "finn2017", "--ways", "10"], "5 and 20-way, 1 and 5-shot tasks; received --ways 10 --shots 1"),
    (["--recipe", "finn2017", "--dataset", "sinusoid"], "an Omniglot protocol; received --dataset sinusoid"),
])
def test_a_recipe_that_does_not_apply_is_refused_with_a_message(flags, message):
    with pytest.raises(SystemExit, match=message):
        resolved(*flags)
