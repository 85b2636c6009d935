"""What a run leaves behind: model, results, learning curve, TensorBoard logs."""

import importlib.util
import json
import pathlib
import shlex
import sys
import time

import keras


def command_line():
    """How this process was started, as a user would type it."""
    program = pathlib.Path(sys.argv[0]).name
    if program == "tfmeta":
        head = ["tfmeta"]
    elif program == "__main__.py":
        head = ["python", "-m", "tfmeta"]
    else:
        head = ["python", sys.argv[0]]
    return shlex.join([*head, *sys.argv[1:]])


class RunFiles:
    """The files of a run in its output directory.

    `model.keras` (the model, rewritten after every epoch, so a stopped run
    leaves its last epoch), `results.json`, `learning_curve.png` (needs
    matplotlib) and `logs/` (TensorBoard: `tensorboard --logdir <dir>/logs`).
    """

    def __init__(self, directory):
        self.directory = pathlib.Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.model = self.directory / "model.keras"
        self.results = self.directory / "results.json"
        self.curve = self.directory / "learning_curve.png"
        self.logs = self.directory / "logs"

    def callbacks(self):
        callbacks = [keras.callbacks.ModelCheckpoint(str(self.model))]
        if importlib.util.find_spec("tensorboard") is None:
            print("no TensorBoard logs: install tensorboard (it comes with tensorflow and tfmeta[cpu])")
        else:
            callbacks.append(keras.callbacks.TensorBoard(log_dir=str(self.logs)))
        return callbacks

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


def epochs_of(config):
    per_epoch = min(config.iterations_per_epoch, config.iterations)
    return per_epoch, max(1, config.iterations // per_epoch)


def fit(model, train, validation, config, files):
    """`model.fit` for `config.iterations` meta-iterations; returns the history and the seconds it took."""
    per_epoch, epochs = epochs_of(config)
    start = time.time()
    history = model.fit(train, steps_per_epoch=per_epoch, epochs=epochs, validation_data=validation,
                        callbacks=files.callbacks(), verbose=1 if sys.stdout.isatty() else 2)
    return history, time.time() - start


def training_record(history, config, train_seconds):
    """The part of results.json that describes training: budget, curve, configuration, command."""
    per_epoch, epochs = epochs_of(config)
    curve = {"iteration": [per_epoch * (epoch + 1) for epoch in range(epochs)]}
    curve.update({key: [round(float(value), 5) for value in values] for key, values in history.history.items()})
    return {
        "iterations": per_epoch * epochs, "meta_batch": config.meta_batch,
        "episodes_seen": per_epoch * epochs * config.meta_batch, "train_seconds": round(train_seconds, 1),
        "curve": curve, "config": vars(config), "command": command_line(),
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
