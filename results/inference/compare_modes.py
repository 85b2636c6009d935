"""MAML's query normalizations compared on the same fixed test episodes.

    python results/inference/compare_modes.py savedmodels/maml-omniglot-5w1s \
        --trained "..." --output results/inference/compare-NAME.json

For a plain MAML model (a `.keras` file, or a committed export rebuilt from
its card), the accuracy ± 95% interval of:

- transductive: the queries normalized with their own batch's statistics
  (Finn et al.'s evaluation; an answer depends on the other queries);
- per-query: with the support set's statistics at the adapted weights
  (MetaBN, Bronskill et al. 2020; tfmeta's default);
- support-plus-query: each query alone with the support set, statistics
  over both (Nichol et al. 2018's non-transductive evaluation).
"""

import argparse
import json
import pathlib
import sys

import keras
import tensorflow as tf

import tfmeta
from tfmeta.algorithms import adapt
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval
from tfmeta.experiments.omniglot import fixed_episodes
from tfmeta.experiments.reporting import command_line

MODES = ("transductive", "per-query", "support-plus-query")


def load(path):
    path = pathlib.Path(path)
    if path.suffix == ".keras":
        return keras.models.load_model(path), {}
    sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[2] / "savedmodels"))
    from reexport import rebuilt_model  # noqa: E402 (the savedmodels/ script, not a package)

    card = json.loads((path / "model.json").read_text())
    return rebuilt_model(card, path / str(card["version"])), card


def support_plus_query(maml):
    """`predict` answering each query from a pass over the support set and that query, after one adaptation."""
    if type(maml) is not tfmeta.MAML or maml.learn_inner_lr or maml.learn_per_step_inner_lr:
        raise SystemExit("compare_modes: support-plus-query compares plain MAML models (one inner rate)")
    backbone = maml.backbone
    rates = [maml.inner_lr if adapted else None for adapted in maml._adapted]

    def one_task(task):
        support_x, support_y, query_x = task
        params = [v.value for v in backbone.trainable_variables]
        state = [v.value for v in backbone.non_trainable_variables]
        fast = adapt(backbone, params, state, support_x, support_y, maml.mean_loss, rates, maml.eval_inner_steps,
                     training=False)

        def answer(query):
            batch = tf.concat([support_x, query[tf.newaxis]], axis=0)
            return backbone.stateless_call(fast, state, batch, training=False)[0][-1]

        return tf.map_fn(answer, query_x)

    def predict(support_x, support_y, query_x):
        return tf.map_fn(one_task, (support_x, support_y, query_x), fn_output_signature=backbone.compute_dtype)

    return predict


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model", help="a MAML .keras file or a committed savedmodels/<name> directory")
    parser.add_argument("--episodes", type=int, default=1000)
    parser.add_argument("--inner-steps", type=int, help="inner steps at test (default: the model's eval_inner_steps)")
    parser.add_argument("--output", required=True)
    parser.add_argument("--trained", required=True,
                        help="how the model was trained, for the table, e.g. '8,000 iterations, transductive'")
    args = parser.parse_args()
    maml, card = load(args.model)
    if args.inner_steps is not None:
        maml.eval_inner_steps = args.inner_steps
    ways, shots = maml.ways, card.get("shots", 1)
    predictors = {mode: lambda s, y, q, mode=mode: maml({"support_x": s, "support_y": y, "query_x": q},
                                                         inference=mode)
                  for mode in MODES[:2]}
    predictors["support-plus-query"] = support_plus_query(maml)
    record = {"model": args.model, "trained": args.trained, "ways": ways, "shots": shots, "queries": 15,
              "inner_steps": maml.eval_inner_steps,
              "test_episodes": args.episodes, "command": command_line()}
    for mode, predict in predictors.items():
        episodes, count = fixed_episodes("vinyals-test", None, ways, shots, 15, args.episodes, seed=0)
        mean, ci95 = mean_confidence_interval(episode_accuracies(predict, episodes, count))
        record[mode] = {"accuracy": mean, "ci95": ci95}
        print(f"{mode}: {100 * mean:.2f} ± {100 * ci95:.2f}%")
    pathlib.Path(args.output).write_text(json.dumps(record, indent=2) + "\n")


if __name__ == "__main__":
    main()
