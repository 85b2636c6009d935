"""What a run leaves behind: model, results, learning curve, TensorBoard logs."""

import importlib.util
import json
import os
import pathlib
import shlex
import sys
import time

import keras
import numpy as np

from tfmeta.algorithms import Ensemble
from tfmeta.data.locations import find_omniglot_dir


def portable_path(path):
    """`path` relative to the current directory when it lies under it, else as given.

    Runs are started from the repository's root, so what they record reads the
    same on every machine.
    """
    if path is None:
        return None
    absolute = pathlib.Path(os.path.abspath(path))
    if absolute.is_relative_to(pathlib.Path.cwd()):
        return absolute.relative_to(pathlib.Path.cwd()).as_posix() or "."
    return os.fspath(path)


def is_default_data_dir(data_dir):
    """Whether `data_dir` is where Omniglot is found anyway, so a recorded command can leave it out."""
    default = find_omniglot_dir()
    return bool(data_dir) and default is not None and os.path.isdir(data_dir) and os.path.samefile(data_dir, default)


def command_line(argv=None):
    """How this process was started, as a user types it from the repository's root.

    Paths under the current directory are made relative to it, and a
    `--data-dir` that names the default data location is left out.
    """
    argv = sys.argv if argv is None else argv
    program = pathlib.Path(argv[0]).name
    if program == "tfmeta":
        head = ["tfmeta"]
    elif program == "__main__.py":
        head = ["python", "-m", "tfmeta"]
    else:
        head = ["python", portable_path(argv[0])]
    words, rest = [], list(argv[1:])
    while rest:
        word = rest.pop(0)
        flag, equals, value = word.partition("=")
        if flag == "--data-dir":
            value = value if equals else (rest.pop(0) if rest else "")
            if not is_default_data_dir(value):
                words += ["--data-dir", portable_path(value)]
        elif word.startswith("/"):
            words.append(portable_path(word))
        elif equals and value.startswith("/"):
            words.append(f"{flag}={portable_path(value)}")
        else:
            words.append(word)
    return shlex.join([*head, *words])


def portable_config(config):
    """A run's settings as results.json records them: paths as `command_line` writes them."""
    settings = dict(vars(config))
    if is_default_data_dir(settings.get("data_dir")):
        settings["data_dir"] = None
    for key in ("data_dir", "output_dir"):
        settings[key] = portable_path(settings.get(key))
    return settings


class RunFiles:
    """The files of a run in its output directory.

    `model.keras` and `results.json` (written at the end),
    `learning_curve.png` (needs matplotlib), `logs/` (TensorBoard:
    `tensorboard --logdir <dir>/logs`) and `checkpoints/` (the model,
    optimizer state and progress after the latest epoch, for `--resume`).
    """

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model = self.directory / "model.keras"
        self.results = self.directory / "results.json"
        self.curve = self.directory / "learning_curve.png"
        self.logs = self.directory / "logs"
        self.checkpoints = self.directory / "checkpoints"
        self.latest = self.checkpoints / "latest.json"

    def write(self, model, results):
        model.save(self.model)
        self.results.write_text(json.dumps(results, indent=2) + "\n")
        written = [self.model, self.results]
        try:
            plot_learning_curve(results, self.curve)
            written.append(self.curve)
        except ImportError:
            print("install matplotlib for the learning curve (pip install 'tfmeta[examples]')")
        print(f"wrote {', '.join(str(path) for path in written)}")


# Settings a resumed run may change: they do not change what is computed up to the checkpoint
# (`iterations` may grow: a resumed run trains on to the new total).
RESUMABLE_CHANGES = ("resume", "intra_op_threads", "output_dir", "iterations", "test_last", "early_stopping")


def best_epochs(history, count=1):
    """`(epochs, metric)`: the 1-based epochs with the `count` best validation scores so far, best first
    (the earlier of ties first), and the metric that says so (`val_accuracy`, highest, for classifiers;
    else `val_loss`, lowest); `([], None)` without validation."""
    metric = next((key for key in ("val_accuracy", "val_loss") if history.get(key)), None)
    if metric is None:
        return [], None
    values = np.asarray(history[metric])
    order = np.argsort(-values if metric == "val_accuracy" else values, kind="stable")
    return [int(epoch) + 1 for epoch in order[:count]], metric


def best_epoch(history):
    """`(epoch, metric)`: `best_epochs`' best epoch, or `(None, None)` without validation."""
    epochs, metric = best_epochs(history)
    return (epochs[0] if epochs else None), metric


def stops_early(history, patience):
    """Whether `patience` epochs have passed without a better validation score."""
    best, _ = best_epoch(history)
    return bool(patience) and best is not None and len(history["loss"]) - best >= patience


class Checkpoint(keras.callbacks.Callback):
    """Saves the model (with optimizer state) and the run's progress after every epoch.

    Each save is complete before it becomes visible: the model goes to a
    temporary name and is renamed to `checkpoints/epoch-NNNN.keras` (and to
    `checkpoints/best.keras` when its validation score is the best so far),
    then `checkpoints/latest.json` (epoch, model file, history so far,
    training seconds, settings) is replaced the same way, and only then are
    older checkpoints deleted (but those of the `config.ensemble` best
    epochs). A process killed at any moment leaves a `latest.json` that
    names a complete model. With `config.early_stopping` N, training stops
    after N epochs without a better validation score.
    """

    def __init__(self, files, config, history, seconds_before):
        super().__init__()
        self.files, self.config = files, config
        self.history = history
        self.seconds_before = seconds_before
        self.start = time.time()

    @property
    def seconds(self):
        return self.seconds_before + time.time() - self.start

    def on_epoch_end(self, epoch, logs=None):
        for key, value in (logs or {}).items():
            self.history.setdefault(key, []).append(float(value))
        self.files.checkpoints.mkdir(exist_ok=True)
        name = checkpoint_name(epoch + 1)
        for target in [name, *([BEST] if best_epoch(self.history)[0] == epoch + 1 else [])]:
            temporary = self.files.checkpoints / f".partial-{target}"
            self.model.save(temporary)
            os.replace(temporary, self.files.checkpoints / target)
        state = {"epoch": epoch + 1, "model": name, "history": self.history,
                 "train_seconds": self.seconds, "config": vars(self.config)}
        temporary = self.files.checkpoints / ".partial-latest.json"
        temporary.write_text(json.dumps(state, indent=1))
        os.replace(temporary, self.files.latest)
        kept = {name, *map(checkpoint_name, best_epochs(self.history, self.config.ensemble or 0)[0])}
        for old in self.files.checkpoints.glob("epoch-*.keras"):
            if old.name not in kept:
                old.unlink()
        if stops_early(self.history, self.config.early_stopping):
            print(f"no better validation score for {self.config.early_stopping} epochs: stopping")
            self.model.stop_training = True


BEST = "best.keras"


def checkpoint_name(epoch):
    """The checkpoint file of 1-based `epoch`."""
    return f"epoch-{epoch:04d}.keras"


def epochs_of(config):
    per_epoch = min(config.iterations_per_epoch, config.iterations)
    return per_epoch, max(1, config.iterations // per_epoch)


def changed_settings(saved, current):
    """The settings that differ between a checkpoint's and this run's; a setting newer than the
    checkpoint counts as the same while it is unset (None or off)."""
    return sorted(key for key in set(saved) | set(current)
                  if key not in RESUMABLE_CHANGES and (key in saved or current[key])
                  and saved.get(key) != current.get(key))


def _resume(model, config, files):
    """`(model, first epoch, history, seconds)`: from the latest checkpoint if resuming, else fresh."""
    if not (config.resume and files.latest.is_file()):
        if config.resume:
            print(f"nothing to resume in {files.checkpoints}: starting from scratch")
        return model, 0, {}, 0.0
    state = json.loads(files.latest.read_text())
    changed = changed_settings(state["config"], vars(config))
    if changed:
        settings = ", ".join(f"{key}={state['config'].get(key)!r}" for key in changed)
        raise SystemExit(f"tfmeta train --resume: the checkpoint in {files.checkpoints} was made with other "
                         f"settings: {settings}")
    saved_iterations = state["config"].get("iterations")
    if config.cosine_lr_to is not None and saved_iterations != config.iterations:
        # The checkpoint's optimizer anneals over the iterations it was started with.
        raise SystemExit(f"tfmeta train --resume: --cosine-lr-to anneals the learning rate over --iterations, so "
                         f"this run resumes with its --iterations {saved_iterations} only; received "
                         f"--iterations {config.iterations}")
    per_epoch, epochs = epochs_of(config)
    if epochs < state["epoch"]:
        raise SystemExit(f"tfmeta train --resume: the checkpoint in {files.checkpoints} is at "
                         f"{state['epoch'] * per_epoch} meta-iterations, past --iterations {config.iterations}")
    print(f"resuming after epoch {state['epoch']} from {files.checkpoints / state['model']}")
    model = keras.models.load_model(files.checkpoints / state["model"])
    return model, state["epoch"], state["history"], state["train_seconds"]


def fit(model, train_stream, validation, config, files):
    """Meta-trains for `config.iterations` meta-iterations, checkpointing every epoch.

    `train_stream(start)` is the training stream from meta-batch `start`
    on; with `config.resume`, training continues after the latest
    checkpoint, on the meta-batches that follow it. Returns the model, the
    history of every epoch, the training seconds (interruptions excluded)
    and the epochs the model is from: the one with the best validation score
    (as Snell et al. and MAML++ select), or the last with
    `config.test_last` or without validation; with `config.ensemble` K, the
    K best, whose checkpoints make up a `tfmeta.Ensemble` (MAML++'s test).
    """
    per_epoch, epochs = epochs_of(config)
    model, initial_epoch, history, seconds = _resume(model, config, files)
    checkpoint = Checkpoint(files, config, history, seconds)
    callbacks = [checkpoint]
    if importlib.util.find_spec("tensorboard") is None:
        print("no TensorBoard logs: install tensorboard (it comes with tensorflow and tfmeta[cpu])")
    else:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(files.logs)))
    if initial_epoch < epochs and not stops_early(history, config.early_stopping):
        model.fit(train_stream(initial_epoch * per_epoch), steps_per_epoch=per_epoch, epochs=epochs,
                  initial_epoch=initial_epoch, validation_data=validation, callbacks=callbacks,
                  verbose=1 if sys.stdout.isatty() else 2)
    last = len(checkpoint.history.get("loss", []))
    if config.ensemble:
        epochs, metric = best_epochs(checkpoint.history, config.ensemble)
        if len(epochs) < config.ensemble:
            raise SystemExit(f"tfmeta train --ensemble {config.ensemble}: only {len(epochs)} validated epochs "
                             f"to choose from")
        print(f"testing the ensemble of epochs {epochs} of {last}, the {len(epochs)} best by {metric}")
        members = [keras.models.load_model(files.checkpoints / checkpoint_name(epoch)) for epoch in epochs]
        return Ensemble(members), checkpoint.history, checkpoint.seconds, epochs
    best, metric = best_epoch(checkpoint.history)
    if config.test_last or best in (None, last):
        return model, checkpoint.history, checkpoint.seconds, [last]
    print(f"testing the model of epoch {best} of {last}, the best by {metric}")
    return keras.models.load_model(files.checkpoints / BEST), checkpoint.history, checkpoint.seconds, [best]


def training_record(history, config, train_seconds, selected_epochs):
    """The part of results.json that describes training: budget, curve, the epochs tested, configuration,
    command."""
    per_epoch, _ = epochs_of(config)
    epochs = len(history["loss"])
    curve = {"iteration": [per_epoch * (epoch + 1) for epoch in range(epochs)]}
    curve.update({key: [round(float(value), 5) for value in values] for key, values in history.items()})
    best, metric = best_epoch(history)
    if len(selected_epochs) > 1:
        selected_by = f"ensemble of the {len(selected_epochs)} best {metric}"
    else:
        selected_by = "last epoch" if selected_epochs == [epochs] and best != epochs else f"best {metric}"
    return {
        "iterations": per_epoch * epochs, "selected_iteration": per_epoch * selected_epochs[0],
        **({"ensemble_iterations": [per_epoch * epoch for epoch in selected_epochs]} if len(selected_epochs) > 1
           else {}),
        "selected_by": selected_by, "meta_batch": config.meta_batch,
        "episodes_seen": per_epoch * epochs * config.meta_batch, "train_seconds": round(train_seconds, 1),
        "curve": curve, "config": portable_config(config), "command": command_line(),
    }


def plot_learning_curve(results, path):
    """Training and validation accuracy (or loss, for regression) against meta-iterations, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    curve = results["curve"]
    metric = "accuracy" if "val_accuracy" in curve or "accuracy" in curve else "loss"
    figure, axes = plt.subplots(figsize=(6, 4))
    for key, label in ((metric, "training (running mean over the epoch)"), (f"val_{metric}", "validation")):
        if key in curve:
            axes.plot(curve["iteration"], curve[key], marker="o", markersize=3, label=label)
    axes.set_xlabel("meta-iterations")
    axes.set_ylabel("query accuracy" if metric == "accuracy" else "query loss")
    shape = f"{results['ways']}-way {results['shots']}-shot" if "ways" in results else f"{results['shots']}-shot"
    axes.set_title(f"{results['algorithm']}, {results['dataset']} {shape}")
    axes.grid(alpha=0.3)
    axes.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
