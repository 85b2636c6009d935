"""MAML on sinusoid regression (Finn et al. 2017, section 5.1), with the paper's figure."""

import keras
import numpy as np

import tfmeta
from tfmeta.evaluation import mean_confidence_interval
from tfmeta.experiments import maml_plus_plus, reporting
from tfmeta.experiments.config import compile_for_training
from tfmeta.experiments.omniglot import run_name

# Validation and test tasks come from their own seeds: fixed, and never seen in training.
VALIDATION_SEED, TEST_SEED = 2 * 10**6, 10**6
REPORTED_STEPS = (0, 1, 10)


def query_errors(maml, tasks):
    """Per-task query mean squared error of the adapted model."""
    predictions = maml.predict(tasks, verbose=0)
    query_y = np.concatenate([batch["query_y"] for batch in tasks.as_numpy_iterator()])
    return np.mean((predictions - query_y) ** 2, axis=(1, 2))


def plot_adaptation(maml, task, path, steps=REPORTED_STEPS):
    """The MAML paper's figure: the true function, the support points, fits after 0, 1, 10 steps."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    x = np.linspace(-5, 5, 200, dtype=np.float32)[:, None]
    figure, axes = plt.subplots(figsize=(7, 4.5))
    axes.plot(x, task["amplitude"] * np.sin(x - task["phase"]), color="black", label="true function")
    axes.scatter(task["support_x"], task["support_y"], color="black", marker="^", zorder=3,
                 label=f"{len(task['support_x'])} support points")
    episode = {"support_x": task["support_x"][None], "support_y": task["support_y"][None], "query_x": x[None]}
    for step in steps:
        axes.plot(x, maml(episode, inner_steps=step)[0], linestyle="--" if step == 0 else "-",
                  label="meta-learned initialisation" if step == 0 else f"after {step} inner step(s)")
    axes.set_xlabel("x")
    axes.set_ylabel("y")
    axes.set_title("MAML, K-shot sinusoid regression")
    axes.legend(loc="lower right", fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def train_and_evaluate_sinusoid(config):
    """Meta-trains the 40-40 MLP on K-shot sinusoid tasks; reports query MSE after 0, 1 and 10 steps.

    Writes the run's files (see `reporting.RunFiles`) and `adaptation.png`
    to `config.output_dir`, and returns the results.
    """
    maml = tfmeta.MAML(tfmeta.models.sinusoid_mlp(), inner_lr=config.inner_lr,
                       inner_steps=config.inner_steps, eval_inner_steps=config.eval_inner_steps,
                       first_order=config.first_order, learn_inner_lr=config.learn_inner_lr,
                       loss=keras.losses.MeanSquaredError(), **maml_plus_plus.maml_arguments(config))
    compile_for_training(maml, config)

    def tasks(seed, num_tasks=None, meta_batch_size=None, start=0):
        return tfmeta.data.sinusoid_tasks(config.shots, config.queries, seed=seed, num_tasks=num_tasks,
                                          meta_batch_size=meta_batch_size, start=start)

    def train(meta_batch):  # the training stream from meta-batch `meta_batch` on
        return tasks(config.seed, meta_batch_size=config.meta_batch, start=meta_batch * config.meta_batch)

    validation = tasks(VALIDATION_SEED + config.seed, config.val_episodes,
                       tfmeta.data.fitting_meta_batch_size(config.val_episodes, 100))
    files = reporting.RunFiles(config.output_dir)
    maml, history, train_seconds, selected_epochs = reporting.fit(maml, train, validation, config, files)

    test = tasks(TEST_SEED + config.seed, config.test_episodes,
                 tfmeta.data.fitting_meta_batch_size(config.test_episodes, 100))
    results = {"algorithm": run_name(config), "dataset": "sinusoid", "shots": config.shots}
    for steps in REPORTED_STEPS:
        maml.eval_inner_steps = steps
        errors = query_errors(maml, test)
        results["test_tasks"] = len(errors)
        mean, half_width = mean_confidence_interval(errors)
        results[f"mse_{steps}_steps"], results[f"ci95_{steps}_steps"] = mean, half_width
        print(f"{config.shots}-shot sinusoid, {steps:2d} inner step(s): query MSE {mean:.3f} ± "
              f"{half_width:.3f} over {len(errors)} test tasks")
    maml.eval_inner_steps = config.eval_inner_steps
    results.update(reporting.training_record(history, config, train_seconds, selected_epochs))
    files.write(maml, results)
    task = next(tasks(TEST_SEED + config.seed, 1).as_numpy_iterator())
    try:
        plot_adaptation(maml, task, files.directory / "adaptation.png")
        print(f"wrote {files.directory / 'adaptation.png'}")
    except ImportError:
        print("install matplotlib for the adaptation figure")
    return results
