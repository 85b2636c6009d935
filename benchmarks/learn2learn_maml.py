"""learn2learn's MAML on the same network and random tasks as maml_throughput.py, for comparison.

    python benchmarks/learn2learn_maml.py --ways 5 --shots 1 --queries 1 --meta-batch 32 --inner-steps 1

Runs in an environment with PyTorch and learn2learn (neither is a tfmeta
dependency; see docs/performance.md), never imports TensorFlow. The loop is
learn2learn's own Omniglot example's (`examples/vision/maml_omniglot.py`):
per task, `clone()`, `adapt()` on the support loss for each inner step, the
query loss's `backward()`; then one Adam step. The network is
`learn2learn.vision.models.OmniglotCNN` (Finn et al.'s: four strided 3x3
convolutions of 64 filters with batch normalization and ReLU, a mean over
the last positions, a linear head), second order, inner rate 0.4. Last
line, as maml_throughput.py's: `ms_per_iter=<median> tasks_per_s=<...>
peak_rss_mb=<...> cpu_ms_per_iter=<median>`.
"""

import argparse
import resource
import time

import learn2learn
import numpy as np
import torch

from random_tasks import add_task_flags, random_meta_batch


def meta_iteration(maml, optimizer, tasks, inner_steps, loss_fn):
    optimizer.zero_grad()
    for support_x, support_y, query_x, query_y in tasks:
        learner = maml.clone()
        for _ in range(inner_steps):
            learner.adapt(loss_fn(learner(support_x), support_y))
        (loss_fn(learner(query_x), query_y) / len(tasks)).backward()
    optimizer.step()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_task_flags(parser)
    parser.add_argument("--inner-steps", type=int, default=1)
    parser.add_argument("--iterations", type=int, default=30, help="timed meta-iterations")
    parser.add_argument("--warmup", type=int, default=3, help="untimed meta-iterations")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch.set_num_threads(N) (default: PyTorch's, one per core)")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    maml = learn2learn.algorithms.MAML(learn2learn.vision.models.OmniglotCNN(args.ways), lr=0.4)
    optimizer = torch.optim.Adam(maml.parameters(), 1e-3)
    batch = {key: torch.from_numpy(value) for key, value in
             random_meta_batch(args.ways, args.shots, args.queries, args.meta_batch).items()}
    # PyTorch's convolutions take channels first; its cross-entropy, int64 labels.
    tasks = list(zip(batch["support_x"].permute(0, 1, 4, 2, 3), batch["support_y"].long(),
                     batch["query_x"].permute(0, 1, 4, 2, 3), batch["query_y"].long()))
    loss_fn = torch.nn.CrossEntropyLoss()
    for _ in range(args.warmup):
        meta_iteration(maml, optimizer, tasks, args.inner_steps, loss_fn)
    times, cpu_times = [], []
    for _ in range(args.iterations):
        start, cpu_start = time.perf_counter(), time.process_time()
        meta_iteration(maml, optimizer, tasks, args.inner_steps, loss_fn)
        times.append(time.perf_counter() - start)
        cpu_times.append(time.process_time() - cpu_start)
    median = float(np.median(times))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"learn2learn {learn2learn.__version__} MAML (PyTorch {torch.__version__}), {args.inner_steps} inner "
          f"step(s), second order, {args.ways}-way {args.shots}-shot, {args.queries} queries, meta-batch "
          f"{args.meta_batch}, threads: {torch.get_num_threads()}")
    print(f"ms_per_iter={1000 * median:.0f} tasks_per_s={args.meta_batch / median:.1f} "
          f"peak_rss_mb={peak_mb:.0f} cpu_ms_per_iter={1000 * float(np.median(cpu_times)):.0f}")


if __name__ == "__main__":
    main()
