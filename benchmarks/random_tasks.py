"""Random tasks and the task-size flags every MAML benchmark shares.

NumPy only, so that learn2learn_maml.py (no TensorFlow) times the very data maml_throughput.py does.
"""

import numpy as np


def add_task_flags(parser):
    """--ways, --shots, --queries (per class) and --meta-batch (tasks per meta-iteration)."""
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15, help="query examples per class")
    parser.add_argument("--meta-batch", type=int, default=32, help="tasks per meta-iteration")


def random_meta_batch(ways, shots, queries, tasks, example_shape=(28, 28, 1), seed=0):
    """One meta-batch of random images with well-formed labels."""
    rng = np.random.default_rng(seed)

    def labels(per_class):
        return np.tile(np.repeat(np.arange(ways), per_class), [tasks, 1]).astype(np.int32)

    return {
        "support_x": rng.random([tasks, ways * shots, *example_shape], np.float32),
        "support_y": labels(shots),
        "query_x": rng.random([tasks, ways * queries, *example_shape], np.float32),
        "query_y": labels(queries),
    }
