"""The tutorial's Matching Networks ("深度学习与元学习"), ported faithfully and corrected.

    python examples/tutorial/matching_networks.py                    # corrected
    python examples/tutorial/matching_networks.py --original-head    # the tutorial's code as written

The classes and functions keep the tutorial's names and signatures; each line
that differs from it carries a `# Fixed:` comment saying what was wrong.
TensorFlow only: tfmeta supplies the data (Omniglot episodes) and nothing
else. The tutorial's embedding is two dense layers (it classified short
texts), so each 28x28 Omniglot image is flattened into a vector of 784
pixels. Trains on 5-way 1-shot episodes of the Vinyals training classes with
a progress bar, then prints the query accuracy ± 95% interval over fixed
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

class EmbeddingFunction(tf.keras.Model):
    def __init__(self, embedding_dim):
        super().__init__()
        self.dense1 = tf.keras.layers.Dense(128, activation="relu")
        self.dense2 = tf.keras.layers.Dense(embedding_dim)

    def call(self, x):
        return self.dense2(self.dense1(x))


class MatchingNetworks(tf.keras.Model):
    """Predicts a query's class as an attention-weighted vote of the support labels.

    `call` takes one task: support images `[examples, features]`, one-hot
    support labels `[examples, classes]`, query images `[queries, features]`,
    and returns class probabilities `[queries, classes]`, for whichever
    classes the support labels name. The two flags bring back the tutorial's
    code, to measure what the fixes change: `original_similarity`
    normalises the similarity matrix instead of the embeddings;
    `original_head` feeds the attention-weighted support embeddings to a
    dense softmax head of `num_classes` outputs (the tutorial's; only that
    head uses `num_classes`) instead of attending over the labels.
    """

    def __init__(self, embedding_function, num_classes, original_similarity=False, original_head=False):
        super().__init__()
        self.embedding_function = embedding_function
        self.num_classes = num_classes
        self.original_similarity = original_similarity
        self.original_head = original_head
        if original_head:
            self.dense = tf.keras.layers.Dense(num_classes, activation="softmax")
        # Fixed: no dense head. The attention over the support labels gives
        # the class probabilities itself, for whichever classes the episode
        # brings; a head's fixed outputs cannot know them.

    def call(self, support_images, support_labels, query_images):
        support_emb = self.embedding_function(support_images)
        query_emb = self.embedding_function(query_images)
        if self.original_similarity:
            similarity = tf.matmul(query_emb, support_emb, transpose_b=True)
            similarity = tf.math.l2_normalize(similarity, axis=1)  # Bug: not a cosine
        else:
            # Fixed: the cosine similarity normalises the embeddings, then
            # multiplies them. The tutorial normalised the similarity matrix,
            # which leaves each support example's length in its score.
            similarity = tf.matmul(tf.math.l2_normalize(query_emb, axis=1),
                                   tf.math.l2_normalize(support_emb, axis=1), transpose_b=True)
        attention = tf.nn.softmax(similarity)
        if self.original_head:
            # Bug: an average of support embeddings; support_labels is never used.
            weighted = tf.matmul(attention, support_emb)
            return self.dense(weighted)
        # Fixed: attend over the support labels (one-hot): P(class c | query)
        # is the attention on the support examples of class c. The tutorial
        # averaged the support embeddings and never used support_labels.
        return tf.matmul(attention, support_labels)


def train_matching_networks(model, dataset, lr, num_steps, callback=None):
    """Trains `model` for `num_steps` steps, one meta-batch of `dataset` each.

    Each element of `dataset` is a meta-batch of tasks `(support_images,
    support_labels, query_images, query_labels)` with a leading task axis,
    one-hot labels. The loss is the sum of the tasks' query losses, as in the
    tutorial. `callback(step)`, if given, runs after each step; it may
    return `[(name, value)]` pairs for the progress bar. Returns the
    per-step mean query loss and accuracy.
    """
    optimizer = tf.keras.optimizers.Adam(lr)
    loss_fn = tf.keras.losses.CategoricalCrossentropy()

    @tf.function  # Compiled: an addition, not a fix (the tutorial ran eagerly).
    def train_step(support_images, support_labels, query_images, query_labels):
        num_tasks = support_images.shape[0]
        with tf.GradientTape() as tape:
            loss, correct = 0.0, 0.0
            for t in range(num_tasks):
                probabilities = model(support_images[t], support_labels[t], query_images[t])
                loss += loss_fn(query_labels[t], probabilities)
                correct += tf.reduce_mean(tf.cast(tf.equal(tf.argmax(probabilities, -1),
                                                           tf.argmax(query_labels[t], -1)), tf.float32))
        gradients = tape.gradient(loss, model.trainable_variables)
        optimizer.apply_gradients(zip(gradients, model.trainable_variables))
        return loss / num_tasks, correct / num_tasks

    return run_steps(train_step, dataset, num_steps, "step", callback)


# ---------------------------------------------------------------------------
# Evaluation and the command line (not in the tutorial).
# ---------------------------------------------------------------------------

def episode_accuracy(model):
    """A compiled `accuracy(*episode)`: the query accuracy of one episode."""

    @tf.function
    def accuracy(support_images, support_labels, query_images, query_labels):
        probabilities = model(support_images, support_labels, query_images)
        return tf.reduce_mean(tf.cast(tf.equal(tf.argmax(probabilities, -1), tf.argmax(query_labels, -1)),
                                      tf.float32))

    return accuracy


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="examples/tutorial/matching_networks.py",
                                     description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--original-head", action="store_true",
        help="the tutorial's head as written: normalised similarity matrix, attention-weighted support "
             "embeddings into a dense softmax head (support labels unused)")
    add("--original-similarity", action="store_true",
        help="only the tutorial's similarity (the similarity matrix normalised, not the embeddings), "
             "with attention over the labels")
    add("--ways", type=int, default=5, help="classes per episode (default: 5)")
    add("--shots", type=int, default=1, help="support examples per class (default: 1)")
    add("--queries", type=int, default=15, help="query examples per class (default: 15)")
    add("--meta-batch", type=int, default=16, help="tasks per step (default: 16)")
    add("--iterations", type=int, default=1000, help="training steps, the tutorial's num_steps (default: 1000)")
    add("--lr", type=float, default=0.001, help="Adam's learning rate (default: 0.001)")
    add("--embedding-dim", type=int, default=64, help="the embedding's size (default: 64)")
    add("--val-every", type=int, default=100, help="steps between validations (default: 100)")
    add("--val-episodes", type=int, default=100,
        help="fixed validation episodes (Vinyals validation classes); 0 for none (default: 100)")
    add("--test-episodes", type=int, default=1000, help="fixed test episodes (default: 1000)")
    add("--data-dir", help="the official Omniglot release (default: tfmeta's, data/omniglot of the repository)")
    add("--seed", type=int, default=0, help="seed of the weights and the training episodes (default: 0)")
    add("--intra-op-threads", type=int, default=0, help="TensorFlow intra-op threads, 0 for its choice (default: 0)")
    add("--output", help="write the results (accuracy, interval, learning curve, command) to this JSON file")
    args = parser.parse_args(argv)
    for name in ("ways", "shots", "queries", "meta_batch", "iterations", "embedding_dim", "val_every",
                 "test_episodes"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be a positive integer; received {getattr(args, name)}")
    for name in ("val_episodes", "intra_op_threads"):
        if getattr(args, name) < 0:
            parser.error(f"--{name.replace('_', '-')} must be a non-negative integer; received {getattr(args, name)}")
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else list(argv)
    args = parse_args(argv)
    if args.intra_op_threads:
        tf.config.threading.set_intra_op_parallelism_threads(args.intra_op_threads)
    tf.keras.utils.set_random_seed(args.seed)

    shape = (args.ways, args.shots, args.queries)
    train = omniglot_tasks("vinyals-train", *shape, seed=args.seed, meta_batch_size=args.meta_batch,
                           data_dir=args.data_dir, flatten=True)
    val = omniglot_tasks("vinyals-val", *shape, seed=0, num_episodes=args.val_episodes,
                         data_dir=args.data_dir, flatten=True) if args.val_episodes else None
    test = omniglot_tasks("vinyals-test", *shape, seed=0, num_episodes=args.test_episodes, data_dir=args.data_dir,
                          flatten=True)

    model = MatchingNetworks(EmbeddingFunction(args.embedding_dim), num_classes=args.ways,
                             original_similarity=args.original_head or args.original_similarity,
                             original_head=args.original_head)
    accuracy = episode_accuracy(model)  # validation and test
    curve = {"val_iteration": [], "val_accuracy": []}

    def validate(step):
        if val is not None and (step % args.val_every == 0 or step == args.iterations):
            accuracies = episode_accuracies(accuracy, val, args.val_episodes, verbose=False)
            curve["val_iteration"].append(step)
            curve["val_accuracy"].append(float(accuracies.mean()))
        return [("val_accuracy", curve["val_accuracy"][-1])] if curve["val_accuracy"] else []

    if args.original_head:
        name = "the tutorial's Matching Networks head as written"
    elif args.original_similarity:
        name = "Matching Networks with the tutorial's similarity (attention over labels)"
    else:
        name = "corrected Matching Networks"
    print(f"Training {name}: {args.ways}-way {args.shots}-shot Omniglot, {args.iterations} steps of "
          f"{args.meta_batch} tasks")
    start = time.time()
    history = train_matching_networks(model, train, args.lr, args.iterations, callback=validate)
    train_seconds = time.time() - start

    print(f"Testing on {args.test_episodes} fixed episodes of held-out classes:")
    accuracies = episode_accuracies(accuracy, test, args.test_episodes)
    mean, half_width = mean_confidence_interval(accuracies)
    results = {
        "algorithm": name, "original_head": args.original_head,
        "original_similarity": args.original_head or args.original_similarity,
        "dataset": "omniglot", "split": "vinyals", "ways": args.ways, "shots": args.shots,
        "queries": args.queries, "meta_batch": args.meta_batch, "iterations": args.iterations, "lr": args.lr,
        "embedding_dim": args.embedding_dim, "seed": args.seed, "accuracy": mean, "ci95": half_width,
        "test_episodes": len(accuracies), "train_seconds": round(train_seconds, 1),
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
