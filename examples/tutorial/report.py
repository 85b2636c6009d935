"""Figures and tables of docs/tutorial.md from the results the tutorial's scripts wrote.

    python examples/tutorial/report.py                  # tables for docs/tutorial.md, figures
    python examples/tutorial/report.py --language zh-CN # tables for docs/tutorial.zh-CN.md

Reads every `maml-*.json` and `matching-*.json` in results/tutorial/
(written by `maml.py --output` and `matching_networks.py --output`), draws
each family's learning curves side by side (training queries, validation
episodes; the seed-0 runs) into docs/figures/tutorial/, and prints a Markdown
table per family: test accuracy ± 95% interval of every run, the mean over
seeds where a variant ran with several, and the commands. The pages hold these
tables verbatim (tests/test_tutorial.py checks). Needs matplotlib
(pip install ".[examples]").
"""

import argparse
import json
import pathlib
import sys

import numpy as np

REPO = pathlib.Path(__file__).resolve().parents[2]
FAMILIES = {"maml": "MAML", "matching": "Matching Networks"}
LANGUAGES = ("en", "zh-CN")

TEXT = {
    "en": {
        "original maml": "tutorial as written (fast weights unused); tested after {steps} inner steps, α = {lr:g}",
        "corrected maml": "corrected, {steps} inner step{plural}, α = {lr:g}",
        "original head": "tutorial as written (dense head over embeddings)",
        "original similarity": "tutorial's similarity, attention over labels",
        "corrected matching": "corrected (cosine attention over labels)",
        "header": "| variant | seed | test accuracy (95% interval) | training |",
        "budget": "{iterations:,} {unit}s × {tasks} tasks, {minutes:.1f} min",
        "meta-iteration": "meta-iteration", "step": "step",
        "means": "Mean over seeds: {means}.",
        "mean": "{name}: {mean:.2f}% (seeds {seeds}: {each})",
        "separator": "; ",
    },
    "zh-CN": {
        "original maml": "教程原样（未使用快速权重）；测试时 {steps} 步内循环，α = {lr:g}",
        "corrected maml": "修正后，{steps} 步内循环，α = {lr:g}",
        "original head": "教程原样（支持集嵌入加权平均后接全连接输出头）",
        "original similarity": "教程的相似度，对标签做注意力",
        "corrected matching": "修正后（余弦相似度，对标签做注意力）",
        "header": "| 变体 | 种子 | 测试准确率（95% 区间） | 训练 |",
        "budget": "{iterations:,} {unit} × {tasks} 个任务，{minutes:.1f} 分钟",
        "meta-iteration": "次元迭代", "step": "步",
        "means": "各种子平均：{means}。",
        "mean": "{name}：{mean:.2f}%（种子 {seeds}：{each}）",
        "separator": "；",
    },
}


def label(results, language="en"):
    """A short name of a run's variant."""
    text = TEXT[language]
    if "original" in results:  # maml.py
        if results["original"]:
            return text["original maml"].format(steps=results["eval_inner_steps"], lr=results["inner_lr"])
        steps = results["inner_steps"]
        return text["corrected maml"].format(steps=steps, plural="s" if steps != 1 else "", lr=results["inner_lr"])
    if results["original_head"]:
        return text["original head"]
    if results["original_similarity"]:
        return text["original similarity"]
    return text["corrected matching"]


def seed_of(results):
    return results.get("seed", 0)  # the first runs recorded no seed: they ran with the default, 0


def load_runs(results_dir, prefix):
    """The runs of one family, the tutorial as written first, then the corrections; MAML runs at
    the most common inner rate before the others."""
    runs = [json.loads(path.read_text()) for path in sorted(results_dir.glob(f"{prefix}-*.json"))]
    rates = [r["inner_lr"] for r in runs if "inner_lr" in r]
    common_rate = max(set(rates), key=rates.count) if rates else None
    runs.sort(key=lambda r: (not r.get("original", r.get("original_head", False)),
                             not r.get("original_similarity", False), r.get("inner_lr") != common_rate,
                             r.get("inner_steps", 0), -r.get("inner_lr", 0), seed_of(r)))
    return runs


def table(runs, unit, language="en"):
    """A Markdown table of the runs' test accuracies, then the means over seeds, then the commands."""
    text = TEXT[language]
    rows = [text["header"], "| --- | --- | --- | --- |"]
    for results in runs:
        budget = text["budget"].format(iterations=results["iterations"], unit=text[unit],
                                       tasks=results["meta_batch"], minutes=results["train_seconds"] / 60)
        rows.append(f"| {label(results, language)} | {seed_of(results)} | {100 * results['accuracy']:.2f} ± "
                    f"{100 * results['ci95']:.2f}% | {budget} |")
    markdown = "\n".join(rows)
    by_variant = {}
    for results in runs:
        by_variant.setdefault(label(results, language), []).append(results)
    means = [text["mean"].format(name=name, mean=100 * np.mean([r["accuracy"] for r in group]),
                                 seeds=", ".join(str(seed_of(r)) for r in group),
                                 each=", ".join(f"{100 * r['accuracy']:.2f}" for r in group))
             for name, group in by_variant.items() if len(group) > 1]
    if means:
        markdown += "\n\n" + text["means"].format(means=text["separator"].join(means))
    commands = "\n".join(results["command"] for results in runs)
    return markdown + f"\n\n```bash\n{commands}\n```"


def tables(results_dir, language="en"):
    """`{family prefix: Markdown table}` for the families with results."""
    found = {}
    for prefix in FAMILIES:
        runs = load_runs(results_dir, prefix)
        if runs:
            found[prefix] = table(runs, "meta-iteration" if prefix == "maml" else "step", language)
    return found


def smoothed(values, window):
    """Trailing mean over `window` steps (fewer at the start)."""
    values = np.asarray(values, dtype=np.float64)
    sums = np.cumsum(np.insert(values, 0, 0.0))
    counts = np.minimum(np.arange(1, values.size + 1), window)
    return (sums[1:] - sums[np.arange(1, values.size + 1) - counts]) / counts


def plot(runs, title, unit, path, window):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    legend_rows = (len(runs) + 1) // 2
    figure, (train_axes, val_axes) = plt.subplots(1, 2, figsize=(11, 4 + 0.25 * legend_rows), sharey=True)
    for results in runs:
        curve = results["curve"]
        train_axes.plot(curve["iteration"], smoothed(curve["accuracy"], window), linewidth=1.2,
                        label=f"{label(results)}: test {100 * results['accuracy']:.1f}%")
        if curve.get("val_iteration"):
            val_axes.plot(curve["val_iteration"], curve["val_accuracy"], marker="o", markersize=3,
                          color=train_axes.lines[-1].get_color())
    chance = 1 / runs[0]["ways"]
    for axes, name in ((train_axes, f"training queries (mean of the last {window} {unit}s)"),
                       (val_axes, "validation episodes (held-out classes)")):
        axes.axhline(chance, color="grey", linestyle=":", linewidth=1)
        axes.annotate("chance", (0, chance), xycoords=("axes fraction", "data"), xytext=(4, 3),
                      textcoords="offset points", color="grey", fontsize=8)
        axes.set_xlabel(f"{unit}s")
        axes.set_title(name, fontsize=10)
        axes.grid(alpha=0.3)
    train_axes.set_ylabel("query accuracy")
    shape = f"{runs[0]['ways']}-way {runs[0]['shots']}-shot"
    figure.suptitle(f"{title}, Omniglot {shape}: the tutorial's code and its corrections")
    bottom = (0.05 + 0.17 * legend_rows) / (4 + 0.25 * legend_rows)
    figure.legend(*train_axes.get_legend_handles_labels(), loc="lower center", ncol=2, fontsize=8, frameon=False)
    figure.tight_layout(rect=(0, bottom, 1, 1))
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="examples/tutorial/report.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--results-dir", default=REPO / "results" / "tutorial", type=pathlib.Path,
                        help="where the runs' JSON files are (default: results/tutorial)")
    parser.add_argument("--figures-dir", default=REPO / "docs" / "figures" / "tutorial", type=pathlib.Path,
                        help="where the figures go (default: docs/figures/tutorial)")
    parser.add_argument("--language", choices=LANGUAGES, default="en", help="language of the tables (default: en)")
    args = parser.parse_args(sys.argv[1:] if argv is None else argv)
    drawn = []
    for prefix, markdown in tables(args.results_dir, args.language).items():
        runs = load_runs(args.results_dir, prefix)
        path = args.figures_dir / f"{prefix}-curves.png"
        plot([r for r in runs if seed_of(r) == 0], FAMILIES[prefix], "meta-iteration" if prefix == "maml" else "step",
             path, window=50 if prefix == "maml" else 100)
        drawn.append(path)
        print(f"{FAMILIES[prefix]}:\n\n{markdown}\n")
    for path in drawn:
        print(f"wrote {path}")
    return drawn


if __name__ == "__main__":
    main()
