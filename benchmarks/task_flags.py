"""The task-size flags every MAML benchmark shares; imports nothing heavy, so learn2learn_maml.py can use it."""


def add_task_flags(parser):
    """--ways, --shots, --queries (per class) and --meta-batch (tasks per meta-iteration)."""
    parser.add_argument("--ways", type=int, default=5)
    parser.add_argument("--shots", type=int, default=1)
    parser.add_argument("--queries", type=int, default=15, help="query examples per class")
    parser.add_argument("--meta-batch", type=int, default=32, help="tasks per meta-iteration")
