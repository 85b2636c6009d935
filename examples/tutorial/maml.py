"""The tutorial's MAML ("深度学习与元学习"), ported faithfully and corrected.

    python examples/tutorial/maml.py                # the tutorial's settings, corrected
    python examples/tutorial/maml.py --original     # the tutorial's code as written

The classes and functions keep the tutorial's names and signatures; each line
that differs from it carries a `# Fixed:` comment saying what was wrong.
TensorFlow only: tfmeta supplies the data (Omniglot episodes) and nothing
else. Meta-trains on 5-way 1-shot episodes of the Vinyals training classes
with a progress bar, then prints the query accuracy ± 95% interval over fixed
episodes of held-out (test) classes. docs/tutorial.md measures each fix.
"""

import argparse
import json
import os
import sys
import time

import tensorflow as tf

from tfmeta.evaluation import mean_confidence_interval

from harness import command_line, episode_accuracies, omniglot_tasks, run_steps  # beside this script


# ---------------------------------------------------------------------------
# The tutorial's code, corrected.
# ---------------------------------------------------------------------------

class MAML(tf.keras.Model):
    def __init__(self, input_shape, num_classes):
        super().__init__()
        self.conv1 = tf.keras.layers.Conv2D(32, 3, activation="relu")
        self.pool1 = tf.keras.layers.MaxPooling2D()
        self.conv2 = tf.keras.layers.Conv2D(64, 3, activation="relu")
        self.pool2 = tf.keras.layers.MaxPooling2D()
        self.flatten = tf.keras.layers.Flatten()
        self.dense1 = tf.keras.layers.Dense(128, activation="relu")
        # Fixed: no softmax here. The model returns logits and the loss applies
        # the softmax (from_logits=True): a log-softmax stays finite where the
        # log of a clipped probability loses its gradient, and MAML
        # differentiates the loss twice.
        self.dense2 = tf.keras.layers.Dense(num_classes)
        # Creates the weights now: the fast-weight calls below need them.
        self(tf.keras.Input(shape=input_shape))

    def call(self, x):
        x = self.pool1(self.conv1(x))
        x = self.pool2(self.conv2(x))
        return self.dense2(self.dense1(self.flatten(x)))


# Fixed: from_logits=True, as the model returns logits.
loss_fn = tf.keras.losses.CategoricalCrossentropy(from_logits=True)


def adapt(model, support_images, support_labels, inner_lr, num_inner_steps):
    """The fast weights θ' after `num_inner_steps` gradient steps on the support set.

    The tutorial's inner loop, in a function of its own so that testing
    reuses it. The model's variables are never changed: `model.stateless_call`
    runs the model on the fast-weight tensors instead. Under an outer tape,
    the meta-gradient flows back through every inner step (second order).
    """
    fast_weights = [tf.convert_to_tensor(w) for w in model.trainable_variables]  # θ
    # Fixed: num_inner_steps steps; the tutorial took one step whatever it said.
    for _ in range(num_inner_steps):
        with tf.GradientTape() as inner_tape:
            inner_tape.watch(fast_weights)
            support_logits, _ = model.stateless_call(fast_weights, [], support_images)
            # Fixed: Keras losses take (y_true, y_pred); the tutorial passed
            # (predictions, labels), a different loss (docs/tutorial.md).
            support_loss = loss_fn(support_labels, support_logits)
        gradients = inner_tape.gradient(support_loss, fast_weights)
        fast_weights = [w - inner_lr * g for w, g in zip(fast_weights, gradients)]
    return fast_weights


def maml_task_loss(model, support_images, support_labels, query_images, query_labels, inner_lr,
                   num_inner_steps):
    """One task's query loss after adapting to its support set: `(loss, query_logits)`."""
    fast_weights = adapt(model, support_images, support_labels, inner_lr, num_inner_steps)
    # Fixed: the query loss is taken with the fast weights θ'. The tutorial
    # called model(query_images), i.e. the original weights θ.
    query_logits, _ = model.stateless_call(fast_weights, [], query_images)
    return loss_fn(query_labels, query_logits), query_logits


def original_task_loss(model, support_images, support_labels, query_images, query_labels, inner_lr,
                       num_inner_steps):
    """The tutorial's task loss as written: `(loss, query_logits)`.

    Kept to measure what the fixes change (`--original`). The model's softmax
    is applied here, since the model now returns logits; the rest is the
    tutorial's code.
    """
    original_loss_fn = tf.keras.losses.CategoricalCrossentropy()
    with tf.GradientTape() as inner_tape:
        # Bug: (y_pred, y_true) where Keras takes (y_true, y_pred).
        support_loss = original_loss_fn(tf.nn.softmax(model(support_images)), support_labels)
    gradients = inner_tape.gradient(support_loss, model.trainable_variables)
    # Bug: one step, whatever num_inner_steps says.
    fast_weights = [w - inner_lr * g for w, g in zip(model.trainable_variables, gradients)]
    # Bug: fast_weights is never used; the queries are scored with the
    # original weights, which makes this plain multi-task training.
    query_logits = model(query_images)
    return original_loss_fn(query_labels, tf.nn.softmax(query_logits)), query_logits


def train_maml(model, dataset, inner_lr, outer_lr, num_inner_steps, num_outer_steps, original=False,
               callback=None):
    """Meta-trains `model` for `num_outer_steps` steps, one meta-batch of `dataset` each.

    Each element of `dataset` is a meta-batch of tasks `(support_images,
    support_labels, query_images, query_labels)` with a leading task axis,
    one-hot labels. The outer loss is the sum of the tasks' query losses, as
    in the tutorial. `original=True` runs the tutorial's task loss as written;
    `callback(step)`, if given, runs after each step; it may
    return `[(name, value)]` pairs for the progress bar. Returns the per-step
    mean query loss and accuracy (training queries, after adaptation).
    """
    optimizer = tf.keras.optimizers.Adam(outer_lr)
    task_loss = original_task_loss if original else maml_task_loss

    @tf.function  # Compiled: an addition, not a fix (the tutorial ran eagerly).
    def outer_step(support_images, support_labels, query_images, query_labels):
        num_tasks = support_images.shape[0]
        with tf.GradientTape() as outer_tape:
            meta_loss, correct = 0.0, 0.0
            for t in range(num_tasks):
                loss, query_logits = task_loss(model, support_images[t], support_labels[t], query_images[t],
                                               query_labels[t], inner_lr, num_inner_steps)
                meta_loss += loss
                correct += tf.reduce_mean(tf.cast(tf.equal(tf.argmax(query_logits, -1),
                                                           tf.argmax(query_labels[t], -1)), tf.float32))
        gradients = outer_tape.gradient(meta_loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return meta_loss / num_tasks, correct / num_tasks

    return run_steps(outer_step, dataset, num_outer_steps, "meta-iteration", callback)


# ---------------------------------------------------------------------------
# Evaluation and the command line (not in the tutorial).
# ---------------------------------------------------------------------------

def episode_accuracy(model, inner_lr, num_inner_steps):
    """A compiled `accuracy(*episode)`: the query accuracy after `num_inner_steps` steps on the support set."""

    @tf.function
    def accuracy(support_images, support_labels, query_images, query_labels):
        fast_weights = adapt(model, support_images, support_labels, inner_lr, num_inner_steps)
        query_logits, _ = model.stateless_call(fast_weights, [], query_images)
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(query_logits, -1), tf.argmax(query_labels, -1)),
                                      tf.float32))

    return accuracy


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="examples/tutorial/maml.py", description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--original", action="store_true",
        help="train with the tutorial's task loss as written (fast weights unused), to compare")
    add("--ways", type=int, default=5, help="classes per episode (default: 5)")
    add("--shots", type=int, default=1, help="support examples per class (default: 1)")
    add("--queries", type=int, default=15, help="query examples per class (default: 15)")
    add("--meta-batch", type=int, default=8, help="tasks per meta-iteration (default: 8)")
    add("--iterations", type=int, default=100,
        help="meta-iterations, the tutorial's num_outer_steps (default: 100, the tutorial's)")
    add("--inner-lr", type=float, default=0.01, help="inner step size (default: 0.01, the tutorial's)")
    add("--outer-lr", type=float, default=0.001, help="Adam's learning rate (default: 0.001, the tutorial's)")
    add("--inner-steps", type=int, default=5,
        help="inner steps in training and testing (default: 5, the tutorial's num_inner_steps)")
    add("--eval-inner-steps", type=int, help="inner steps at validation and test time (default: --inner-steps)")
    add("--val-every", type=int, default=100, help="meta-iterations between validations (default: 100)")
    add("--val-episodes", type=int, default=100,
        help="fixed validation episodes (Vinyals validation classes); 0 for none (default: 100)")
    add("--test-episodes", type=int, default=1000, help="fixed test episodes (default: 1000)")
    add("--data-dir", help="the official Omniglot release (default: tfmeta's, data/omniglot of the repository)")
    add("--seed", type=int, default=0, help="seed of the weights and the training episodes (default: 0)")
    add("--intra-op-threads", type=int, default=0, help="TensorFlow intra-op threads, 0 for its choice (default: 0)")
    add("--output", help="write the results (accuracy, interval, learning curve, command) to this JSON file")
    args = parser.parse_args(argv)
    for name in ("ways", "shots", "queries", "meta_batch", "iterations", "val_every", "test_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer; received {getattr(args, name)}")
    for name in ("inner_steps", "eval_inner_steps", "val_episodes", "intra_op_threads"):
        value = getattr(args, name)
        if value is not None and value < 0:
            parser.error(f"--{name.replace('_', '-')} must be a non-negative integer; received {value}")
    if args.eval_inner_steps is None:
        args.eval_inner_steps = args.inner_steps
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.keras.utils.set_random_seed(args.seed)

    shape = (args.ways, args.shots, args.queries)
    train = omniglot_tasks("vinyals-train", *shape, seed=args.seed, meta_batch_size=args.meta_batch,
                           data_dir=args.data_dir)
    val = omniglot_tasks("vinyals-val", *shape, seed=0, num_episodes=args.val_episodes,
                         data_dir=args.data_dir) if args.val_episodes else None
    test = omniglot_tasks("vinyals-test", *shape, seed=0, num_episodes=args.test_episodes, data_dir=args.data_dir)

    model = MAML(input_shape=(28, 28, 1), num_classes=args.ways)
    accuracy = episode_accuracy(model, args.inner_lr, args.eval_inner_steps)  # validation and test
    curve = {"val_iteration": [], "val_accuracy": []}

    def validate(step):
        if val is not None and (step % args.val_every == 0 or step == args.iterations):
            accuracies = episode_accuracies(accuracy, val, args.val_episodes, verbose=False)
            curve["val_iteration"].append(step)
            curve["val_accuracy"].append(float(accuracies.mean()))
        return [("val_accuracy", curve["val_accuracy"][-1])] if curve["val_accuracy"] else []

    name = "the tutorial's MAML step as written" if args.original else "corrected MAML"
    print(f"Meta-training {name}: {args.ways}-way {args.shots}-shot Omniglot, {args.iterations} meta-iterations "
          f"of {args.meta_batch} tasks, {args.inner_steps} inner step(s) of {args.inner_lr}")
    start = time.time()
    history = train_maml(model, train, args.inner_lr, args.outer_lr, args.inner_steps, args.iterations,
                         original=args.original, callback=validate)
    train_seconds = time.time() - start

    print(f"Testing on {args.test_episodes} fixed episodes of held-out classes ({args.eval_inner_steps} inner "
          "steps on each support set):")
    accuracies = episode_accuracies(accuracy, test, args.test_episodes)
    mean, half_width = mean_confidence_interval(accuracies)
    results = {
        "algorithm": name, "original": args.original, "dataset": "omniglot", "split": "vinyals",
        "ways": args.ways, "shots": args.shots, "queries": args.queries, "meta_batch": args.meta_batch,
        "iterations": args.iterations, "inner_lr": args.inner_lr, "outer_lr": args.outer_lr,
        "inner_steps": args.inner_steps, "eval_inner_steps": args.eval_inner_steps, "seed": args.seed,
        "accuracy": mean, "ci95": half_width, "test_episodes": len(accuracies),
        "train_seconds": round(train_seconds, 1),
        "curve": {"iteration": list(range(1, args.iterations + 1)), **history, **curve},
        "command": command_line(__file__, argv),
    }
    if args.output:
        os.makedirs(os.path.dirname(os.path.abspath(args.output)), exist_ok=True)
        with open(args.output, "w") as f:
            json.dump(results, f, indent=1)
    print(f"{name}, {args.ways}-way {args.shots}-shot Omniglot (held-out classes): accuracy "
          f"{100 * mean:.2f} ± {100 * half_width:.2f}% over {len(accuracies)} episodes")
    return results


if __name__ == "__main__":
    main()
