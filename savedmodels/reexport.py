"""Exports a committed MAML-family SavedModel again, with per-query inference as its default signatures.

Exports made before per-query inference answer transductively: a query's
answer there depends on the other queries of the request; exports made
before the inference loop became a `tf.while_loop` hold every inner step
unrolled (Reptile's 50). This rebuilds
each model from its card's training command, restores the weights from
its newest version, checks that the rebuilt model in transductive mode
gives the old export's answers, and writes the next version (per-query
`serving_default` and `serving_tasks`, transductive `serving_transductive`
and `serving_tasks_transductive`) with the old card's records, removing the
old version. Then it measures both modes through the new export with
`tfmeta evaluate` on the card's test episodes and records them in the card.

    python savedmodels/reexport.py savedmodels/maml-omniglot-5w1s [...]
"""

import argparse
import json
import pathlib
import shlex
import shutil
import subprocess
import sys

import keras
import numpy as np
import tensorflow as tf

import tfmeta
from tfmeta.experiments import config as run_config
from tfmeta.experiments.omniglot import build_model, fixed_episodes
from tfmeta.serving import MODEL_CARD, export_saved_model, model_card

# What model_card writes itself; everything else in an old card is the training run's record.
_COMPUTED = set(model_card(tfmeta.MAML(tfmeta.models.sinusoid_mlp()), 1)) - {"algorithm"}


def rebuilt_model(card, version_dir):
    """The card's model, built from its training command, with the weights of `version_dir`."""
    command = shlex.split(card["training_command"])
    config = run_config.resolve(run_config.train_parser().parse_args(command[command.index("train") + 1:]))
    # The mode the model trained in: cards from before per-query inference do not say, and those trained
    # transductively.
    config.inference = card["maml"].get("training_inference", "transductive")
    # Cards from before MAML's adapt_normalization say that the inner loop adapted all weights, normalization
    # included, or (the oldest) nothing about it: those models adapted them too.
    config.adapt_normalization = card["maml"].get("adapts", "all weights") == "all weights"
    members = config.ensemble or 1
    models = [build_model(config) for _ in range(members)]
    model = tfmeta.Ensemble(models) if members > 1 else models[0]
    saved = tf.saved_model.load(str(version_dir)).variables
    if [tuple(v.shape) for v in saved] != [tuple(v.shape) for v in model.variables]:
        raise SystemExit(f"{version_dir}: its variables do not match the model its training command builds")
    for variable, value in zip(model.variables, saved):
        variable.assign(value)
    return model


def check_same_answers(model, version_dir, card):
    """The rebuilt model, transductive, answers as the old export on a few test episodes."""
    signatures = tf.saved_model.load(str(version_dir)).signatures
    # Exports before per-query inference answer transductively in serving_tasks; later ones by that name.
    serve = signatures.get("serving_tasks_transductive", signatures["serving_tasks"])
    episodes, _ = fixed_episodes("vinyals-test", None, card["ways"], card["shots"], 15, 4, seed=0)
    batch = next(iter(episodes))
    old = serve(support_x=batch["support_x"], support_y=tf.cast(batch["support_y"], tf.int32),
                query_x=batch["query_x"])["probabilities"]
    new = tf.nn.softmax(model(batch, inference="transductive"), axis=-1)
    np.testing.assert_allclose(new.numpy(), old.numpy(), atol=1e-4)


def measure(base_dir, card, inference):
    """`tfmeta evaluate` of the newest export in `inference` mode on the card's test episodes."""
    output = pathlib.Path("results", "inference", f"{base_dir.name}-{inference}.json")
    command = ["python", "-m", "tfmeta", "evaluate", base_dir.as_posix(), "--inference", inference,
               "--ways", str(card["ways"]), "--shots", str(card["shots"]),
               "--episodes", str(card["test_episodes"]), "--output", output.as_posix()]
    subprocess.run([sys.executable, *command[1:]], check=True)
    return json.loads(output.read_text())["evaluation"]


def reexport(base_dir):
    card = json.loads((base_dir / MODEL_CARD).read_text())
    old_version = base_dir / str(card["version"])
    model = rebuilt_model(card, old_version)
    check_same_answers(model, old_version, card)
    metadata = {key: value for key, value in card.items() if key not in _COMPUTED}
    version = card["version"] + 1

    def export():
        export_saved_model(model, base_dir, version, inner_steps=card["maml"]["inner_steps"],
                           input_range=card["input_range"], metadata=metadata, overwrite=True)

    export()
    shutil.rmtree(old_version)
    per_query, transductive = (measure(base_dir, card, mode) for mode in ("per-query", "transductive"))
    metadata.update(accuracy=per_query["accuracy"], ci95=per_query["ci95"], test_episodes=per_query["test_episodes"],
                    accuracy_transductive=transductive["accuracy"], ci95_transductive=transductive["ci95"])
    export()
    print(f"{base_dir}: version {version}, per-query {100 * per_query['accuracy']:.2f} ± "
          f"{100 * per_query['ci95']:.2f}%, transductive {100 * transductive['accuracy']:.2f} ± "
          f"{100 * transductive['ci95']:.2f}%")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("models", nargs="+", type=pathlib.Path, help="savedmodels/<name> directories")
    keras.utils.set_random_seed(0)
    for base_dir in parser.parse_args().models:
        reexport(base_dir)


if __name__ == "__main__":
    main()
