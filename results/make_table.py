"""Writes the results tables and learning-curve figures from the JSON files in results/.

    python results/make_table.py          # rewrite the tables and docs/figures/curves/
    python results/make_table.py --check  # fail if a table is not what the JSON files say

The tables: README.md's main results and docs/results.md's full tables,
with commands (from results/*.json), and savedmodels/README.md's models
(from savedmodels/*/model.json).

Each JSON file is what a run wrote: `tfmeta train`'s results.json, or
`tfmeta evaluate --output`'s file (an evaluation plus the trained model's
record). No number in the tables is typed by hand.
"""

import argparse
import json
import pathlib
import re
import sys

from tfmeta.experiments.reporting import plot_learning_curve

RESULTS = pathlib.Path(__file__).resolve().parent
REPO = RESULTS.parent
README = REPO / "README.md"
RESULTS_PAGE = REPO / "docs" / "results.md"
SAVEDMODELS_README = REPO / "savedmodels" / "README.md"
CURVES = REPO / "docs" / "figures" / "curves"

# Published accuracy, by (method or its family, ways, shots), Omniglot (Vinyals split).
PUBLISHED = {
    ("Prototypical Networks", 5, 1): 98.8, ("Prototypical Networks", 5, 5): 99.7,
    ("Prototypical Networks", 20, 1): 96.0, ("Prototypical Networks", 20, 5): 98.9,
    ("Matching Networks", 5, 1): 98.1, ("Matching Networks", 20, 1): 93.8,
    ("MAML", 5, 1): 98.7, ("MAML", 5, 5): 99.9, ("MAML", 20, 1): 95.8,
    ("MAML++", 5, 1): 99.47, ("MAML++", 20, 1): 97.65,  # Antoniou et al., table 1 (ensemble of 5 checkpoints)
    # Finn et al.'s first-order approximation.
    ("first-order MAML", 5, 1): 98.3, ("first-order MAML", 5, 5): 99.2, ("first-order MAML", 20, 1): 89.4,
    ("raw-pixel nearest neighbour (cosine)", 5, 1): 41.7,  # Vinyals et al.'s pixel baseline
    ("ANIL", 20, 1): 96.2, ("ANIL", 20, 5): 98.0,  # Raghu et al., table 2
    # Nichol et al.'s transductive figures: tfmeta's MAML family, as Finn et al.'s, normalizes the query set with
    # its own batch statistics.
    ("Reptile", 5, 1): 97.68, ("Reptile", 5, 5): 99.48, ("Reptile", 20, 1): 89.43, ("Reptile", 20, 5): 97.12,
}
# Lake's 20 within-alphabet one-shot runs: published accuracy (100 - error rate).
PUBLISHED_LAKE = "humans 95.5, BPL 96.7, Siamese net 92.0, plain convnet 86.5"
# Sinusoid: MAML's query MSE after one step in the Meta-SGD paper, by shots.
PUBLISHED_SINUSOID = {5: 1.13, 10: 0.77, 20: 0.48}


MAML_FAMILY = ("MAML", "ANIL", "Reptile")


def inference_measurements():
    """`{(training command, ways, shots): {mode: evaluation}}`: the committed MAML-family exports measured both ways
    through the export (results/inference/, `tfmeta evaluate --inference ... --output`), and, under
    `"paper-protocol"`, as the paper's code tests (results/inference/paper-protocol/)."""
    measured = {}
    for path in sorted((RESULTS / "inference").glob("**/*.json")):
        record = json.loads(path.read_text())
        if "evaluation" in record:
            evaluation = record["evaluation"]
            key = (record["trained"]["training_command"], evaluation["ways"], evaluation["shots"])
            mode = "paper-protocol" if path.parent.name == "paper-protocol" else evaluation["inference"]
            measured.setdefault(key, {})[mode] = evaluation
    return measured


INFERENCE = inference_measurements()


def with_inference(row):
    """A MAML-family row with its per-query accuracy as the headline, where measured, and its inference mode."""
    if not any(name in row["algorithm"] for name in MAML_FAMILY) or row.get("dataset") != "omniglot":
        return row
    measured = INFERENCE.get((row.get("training_command") or row["command"], row["ways"], row["shots"]), {})
    if "per-query" not in measured:  # tested in one mode: the one its record names
        return {**row, "inference": row.get("tested_inference", "transductive")}
    return {**row, "inference": "per-query", "accuracy": measured["per-query"]["accuracy"],
            "ci95": measured["per-query"]["ci95"], "transductive": measured.get("transductive"),
            "paper_protocol": measured.get("paper-protocol")}


def family(algorithm):
    return next((name for name in ("Prototypical Networks", "Matching Networks", "MAML") if name in algorithm),
                algorithm)


def row_of(record):
    """One table row's fields from a results file."""
    if "evaluation" in record:  # tfmeta evaluate --output: evaluated here, trained as recorded
        evaluation, trained = record["evaluation"], record["trained"]
        return {**trained, **{key: evaluation[key] for key in ("ways", "shots", "accuracy", "ci95",
                                                               "test_episodes")},
                "same_model_as": f"{trained['ways']}-way {trained['shots']}-shot",
                "tested_inference": recorded_inference(evaluation),
                "command": f"{trained.get('training_command') or trained['command']}; then "
                           f"{evaluation['command']}"}
    return {**record, "tested_inference": recorded_inference(record.get("config", {}))}


def recorded_inference(record):
    """The inference mode a run's config or an evaluation names; records from before per-query inference name none,
    and were transductive."""
    return record.get("inference", "transductive")


def split_name(row):
    if row.get("split") == "lake":
        return "Lake: background → 20 runs"
    if row.get("dataset", "").startswith("text:"):
        return f"held-out classes of {row['dataset'][len('text:'):]}"
    return "Vinyals" if row.get("split", "").startswith("vinyals") else row.get("split", "?")


def budget(row):
    if not row.get("iterations"):
        return "none"
    meta_batch = row.get("meta_batch") or row.get("config", {}).get("meta_batch")
    train_ways = row.get("train_ways") or row.get("config", {}).get("train_ways")
    episodes = f"{meta_batch} episode{'s' if meta_batch != 1 else ''}"
    if train_ways and train_ways != row.get("ways"):
        episodes += f" ({train_ways}-way)"
    trained = f"{row['iterations']:,} iterations × {episodes}, {row['train_seconds'] / 60:.0f} min"
    if row.get("ensemble_iterations"):
        trained += (f", tested as the {row['selected_by']} (iterations "
                    f"{', '.join(f'{iteration:,}' for iteration in sorted(row['ensemble_iterations']))})")
    elif row.get("selected_iteration", row["iterations"]) != row["iterations"]:
        trained += f", tested at iteration {row['selected_iteration']:,} ({row['selected_by']})"
    task = f"{row.get('ways')}-way {row['shots']}-shot"  # sinusoid rows have no ways
    if row.get("same_model_as", task) != task:
        trained += f" (the {row['same_model_as']} model)"
    return trained


def sorted_rows(rows):
    return sorted(rows, key=lambda r: (r.get("split") == "lake", family(r["algorithm"]), r["algorithm"],
                                       r["ways"], r["shots"]))


def paper_figure(row):
    if row.get("split") == "lake":
        return PUBLISHED_LAKE
    task = (row["ways"], row["shots"])
    algorithm = row["algorithm"].split(", ensemble of ")[0]  # an ensemble compares with its method's figure
    paper = PUBLISHED.get((algorithm, *task)) or PUBLISHED.get((family(algorithm), *task))
    return "—" if paper is None else str(paper)


def percent(evaluation):
    return f"{100 * evaluation['accuracy']:.2f} ± {100 * evaluation['ci95']:.2f}%"


def accuracy_cell(row):
    """Accuracy ± interval; a MAML-family row says its inference mode, per-query first, transductive beside it, and
    where measured, the accuracy in the paper's own test ("paper's test")."""
    cell = percent(row)
    if row.get("inference") == "transductive":
        return f"{cell} transductive"
    if row.get("inference") == "per-query":
        beside = [f"{name} {percent(row[key])}" for name, key in (("transductive", "transductive"),
                                                                  ("paper's test", "paper_protocol")) if row.get(key)]
        return cell + (f" ({'; '.join(beside)})" if beside else "")
    return cell


def classification_table(rows):
    """docs/results.md's table: every row with its budget and the command that produced it."""
    lines = ["| method | split | task | accuracy (95% interval) | test episodes | training (2-vCPU CPU) | paper | "
             "command |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in sorted_rows(rows):
        lines.append(
            f"| {row['algorithm']} | {split_name(row)} | {row['ways']}-way {row['shots']}-shot | {accuracy_cell(row)} "
            f"| {row['test_episodes']:,} | {budget(row)} | {paper_figure(row)} | `{row['command']}` |")
    return "\n".join(lines)


def main_table(rows):
    """README.md's table: method, task, accuracy, the paper's figure; of several models of one method on one
    task, the most accurate (docs/results.md lists them all)."""
    lines = ["| method | task (Omniglot) | accuracy (95% interval) | paper |", "| --- | --- | --- | --- |"]
    best = {}
    for row in rows:
        key = (row["algorithm"], row["ways"], row["shots"], row.get("split") == "lake")
        # A MAML-family model measured per query before one measured transductively only.
        if key not in best or ((row.get("inference") != "transductive", row["accuracy"])
                               > (best[key].get("inference") != "transductive", best[key]["accuracy"])):
            best[key] = row
    for row in sorted_rows(best.values()):
        task = f"{row['ways']}-way {row['shots']}-shot"
        task += ", Lake's 20 runs" if row.get("split") == "lake" else ""
        lines.append(f"| {row['algorithm']} | {task} | {accuracy_cell(row)} | {paper_figure(row)} |")
    return "\n".join(lines)


def sinusoid_table(rows):
    lines = ["| method | shots | MSE, no adaptation | MSE, 1 step | MSE, 10 steps | MAML in Meta-SGD paper (1 step) | "
             "training (2-vCPU CPU) | command |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    for row in sorted(rows, key=lambda r: (r["algorithm"], r["shots"])):
        paper = PUBLISHED_SINUSOID.get(row["shots"])
        mse = {steps: f"{row[f'mse_{steps}_steps']:.3f} ± {row[f'ci95_{steps}_steps']:.3f}" for steps in (0, 1, 10)}
        lines.append(f"| {row['algorithm']} | {row['shots']} | {mse[0]} | {mse[1]} | {mse[10]} | "
                     f"{paper if paper is not None else '—'} | {budget(row)} | `{row['command']}` |")
    return "\n".join(lines)


def curve_of(row):
    """The learning curve `{iteration: [...], val_accuracy: [...], ...}` of a training record."""
    if "curve" in row:
        return row["curve"]
    if "val_accuracy" in row:  # records written before results.json held the whole curve
        per_epoch = row["iterations"] // len(row["val_accuracy"])
        return {"iteration": [per_epoch * (i + 1) for i in range(len(row["val_accuracy"]))],
                "val_accuracy": row["val_accuracy"]}
    return None


def plot_curves(named_rows):
    """One PNG per trained model with a recorded curve; returns their names."""
    CURVES.mkdir(parents=True, exist_ok=True)
    drawn = []
    for name, row in named_rows:
        curve = curve_of(row)
        if curve is not None:
            plot_learning_curve({**row, "curve": curve}, CURVES / f"{name}.png")
            drawn.append(name)
    return drawn


TIME_TO_ACCURACY_THRESHOLDS = (0.97, 0.98)
TIME_TO_ACCURACY_FIGURE = REPO / "docs" / "figures" / "time_to_accuracy.png"


def time_to_accuracy_runs(records):
    """`(name, row, minutes per iteration, curve)` of the 5-way 1-shot Vinyals training runs with a curve."""
    runs = []
    for name, record in records:
        row = with_inference(row_of(record))
        curve = curve_of(row)
        if ("evaluation" not in record and row.get("dataset") == "omniglot" and row.get("split") == "vinyals"
                and (row["ways"], row["shots"]) == (5, 1) and curve and "val_accuracy" in curve):
            runs.append((name, row, row["train_seconds"] / 60 / row["iterations"], curve))
    return runs


def time_to_accuracy_table(records):
    """Wall-clock minutes and meta-iterations until the validation accuracy first reaches each threshold."""
    header = " | ".join(f"first ≥ {100 * t:.0f}% validation" for t in TIME_TO_ACCURACY_THRESHOLDS)
    lines = [f"| method | meta-batch | s per meta-iteration | {header} | best validation | test accuracy | command |",
             "| --- | --- | --- | " + "--- | " * len(TIME_TO_ACCURACY_THRESHOLDS) + "--- | --- | --- |"]
    for name, row, minutes_per_iteration, curve in time_to_accuracy_runs(records):
        cells = []
        for threshold in TIME_TO_ACCURACY_THRESHOLDS:
            reached = [it for it, acc in zip(curve["iteration"], curve["val_accuracy"]) if acc >= threshold]
            cells.append(f"{reached[0] * minutes_per_iteration:.0f} min ({reached[0]:,} iterations)" if reached
                         else f"not within {row['iterations']:,} iterations")
        meta_batch = row.get("meta_batch") or row.get("config", {}).get("meta_batch")
        lines.append(f"| {row['algorithm']} | {meta_batch} | {60 * minutes_per_iteration:.2f} | {' | '.join(cells)} "
                     f"| {100 * max(curve['val_accuracy']):.2f}% | {accuracy_cell(row)} | `{row['command']}` |")
    return "\n".join(lines)


def plot_time_to_accuracy(records):
    """Validation accuracy against wall-clock minutes, every 5-way 1-shot run in one figure."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    for name, row, minutes_per_iteration, curve in time_to_accuracy_runs(records):
        minutes = [it * minutes_per_iteration for it in curve["iteration"]]
        axes.plot(minutes, [100 * a for a in curve["val_accuracy"]], marker="o", markersize=3,
                  label=f"{row['algorithm']} ({name})")
    for threshold in TIME_TO_ACCURACY_THRESHOLDS:
        axes.axhline(100 * threshold, color="grey", linewidth=0.6, linestyle="--")
    axes.set(xlabel="training minutes (2 vCPUs)", ylabel="validation accuracy, 5-way 1-shot (%)", ylim=(90, 100),
             title="Omniglot 5-way 1-shot: time to accuracy")
    axes.legend(fontsize=7, loc="lower right")
    figure.tight_layout()
    figure.savefig(TIME_TO_ACCURACY_FIGURE, dpi=120)
    plt.close(figure)


def classification_rows(records):
    return [with_inference(row_of(r)) for _, r in records if row_of(r).get("dataset") == "omniglot"]


def text_table():
    """Few-shot text classification: `tfmeta train --dataset text:DIR` runs in results/text/, which record the
    TF-IDF baseline on the same episodes."""
    lines = ["| method | task | accuracy | TF-IDF, same episodes | difference (paired) | command |",
             "| --- | --- | --- | --- | --- | --- |"]
    for path in sorted((RESULTS / "text").glob("*.json")):
        row = json.loads(path.read_text())
        if "baseline_accuracy" in row:
            distance = row["config"].get("distance")  # Prototypical Networks: cosine or squared Euclidean
            method = row["algorithm"] + (f" ({distance.replace('-', ' ').replace('euclidean', 'Euclidean')} distance)"
                                         if distance else "")
            lines.append(f"| {method} | {row['ways']}-way {row['shots']}-shot, {split_name(row)} | "
                         f"{accuracy_cell(row)} | {100 * row['baseline_accuracy']:.2f} ± "
                         f"{100 * row['baseline_ci95']:.2f}% | {100 * row['minus_baseline']:+.2f} ± "
                         f"{100 * row['minus_baseline_ci95']:.2f} points | `{row['command']}` |")
    return "\n".join(lines)


def inference_table():
    """MAML's query normalizations on the same test episodes (results/inference/compare_modes.py's records)."""
    lines = ["| model | trained | transductive | per-query (support statistics) | support + one query | command |",
             "| --- | --- | --- | --- | --- | --- |"]
    for path in sorted((RESULTS / "inference").glob("compare-*.json")):
        row = json.loads(path.read_text())
        cells = " | ".join(accuracy_cell(row[mode]) for mode in ("transductive", "per-query", "support-plus-query"))
        lines.append(f"| `{row['model']}` | {row['trained']} | {cells} | `{row['command']}` |")
    return "\n".join(lines)


def load_ablation():
    return [json.loads(path.read_text()) for path in sorted((RESULTS / "ablation" / "maml-plus-plus").glob("*.json"))]


def ablation_table(records):
    """MAML++'s switches one at a time on the MAML base (examples/maml_plus_plus_ablation.py): the base row
    first, then the switches from the largest gain to the largest loss."""
    lines = ["| row | flags added to the base | test accuracy (95% interval) | against the base | test episodes | "
             "best validation | minutes | command |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
    base = next((r for r in records if r["ablation"]["row"] == "maml"), None)
    for row in sorted(records, key=lambda r: (r["ablation"]["row"] != "maml", -r["accuracy"])):
        flags = " ".join(row["ablation"]["flags"]) or "none (the base)"
        against = "—" if base is None or row is base else f"{100 * (row['accuracy'] - base['accuracy']):+.2f} points"
        lines.append(f"| {row['ablation']['row']} | `{flags}` | {accuracy_cell(row)} | {against} | "
                     f"{row['test_episodes']:,} | {100 * max(row['curve']['val_accuracy']):.2f}% | "
                     f"{row['train_seconds'] / 60:.0f} | `{row['ablation']['command']}` |")
    return "\n".join(lines)


def tables(records):
    """The generated blocks of docs/results.md."""
    sinusoid = [row_of(r) for _, r in records if row_of(r).get("dataset") == "sinusoid"]
    curves = [f"[{name}](figures/curves/{name}.png)" for name, r in records if curve_of(row_of(r))]
    return {"results-omniglot": classification_table(classification_rows(records)),
            "results-sinusoid": sinusoid_table(sinusoid),
            "results-time-to-accuracy": time_to_accuracy_table(records),
            "results-text": text_table(),
            "results-inference": inference_table(),
            "results-ablation": ablation_table(load_ablation()),
            "results-curves": "Learning curves (validation accuracy, or loss, per epoch): " + ", ".join(curves) + "."}


def evaluation_mode(card, test):
    """", transductive" for a MAML-family card's further test measured transductively (as every one recorded before
    per-query inference was), else nothing: the card's headline is per-query."""
    if test is card or "accuracy_transductive" not in card or recorded_inference(test) != "transductive":
        return ""
    return ", transductive"


def savedmodels_table():
    """The table of savedmodels/README.md, from each exported model's model.json."""
    lines = ["| name | model | task | accuracy (model.json) | trained with |", "| --- | --- | --- | --- | --- |"]
    for card_path in sorted((REPO / "savedmodels").glob("*/model.json")):
        card = json.loads(card_path.read_text())
        if card["task"] == "classification":
            task = f"{card['ways']}-way {card['shots']}-shot, {split_name(card)}"
            score = "; ".join(
                f"{percent(test)} ({test['test_episodes']:,} episodes)"
                + (f" on {test['ways']}-way {test['shots']}-shot" if test is not card else "")
                + (f", {test['resize']} downsampling" if "resize" in test else "")
                + evaluation_mode(card, test)
                for test in [card, *card.get("evaluations", [])])
            if "accuracy_transductive" in card:  # MAML family: per-query (serving_default), then transductive
                score = (f"per-query {score}; transductive {100 * card['accuracy_transductive']:.2f} ± "
                         f"{100 * card['ci95_transductive']:.2f}%")
            if "baseline_accuracy" in card:  # text models: the baseline on the same episodes
                score += (f"; {card['baseline']} {100 * card['baseline_accuracy']:.2f} ± "
                          f"{100 * card['baseline_ci95']:.2f}% on the same episodes")
        else:
            task = f"{card['shots']}-shot sinusoid regression"
            score = (f"query MSE {card['mse_1_steps']:.3f} ± {card['ci95_1_steps']:.3f} after 1 step, "
                     f"{card['mse_10_steps']:.3f} ± {card['ci95_10_steps']:.3f} after 10 "
                     f"({card['test_tasks']:,} tasks)")
        lines.append(f"| `{card_path.parent.name}` | {card['algorithm']} | {task} | {score} | "
                     f"`{card['training_command']}` |")
    return "\n".join(lines)


def replace_block(text, name, content):
    pattern = re.compile(rf"(<!-- {name} -->\n).*?(<!-- /{name} -->)", re.S)
    if not pattern.search(text):
        raise SystemExit(f"a generated page lacks the <!-- {name} --> ... <!-- /{name} --> block")
    return pattern.sub(lambda m: m.group(1) + content + "\n" + m.group(2), text)


def load_records():
    return [(path.stem, json.loads(path.read_text())) for path in sorted(RESULTS.glob("*.json"))]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only check that the tables are up to date")
    args = parser.parse_args(argv)
    records = load_records()
    readmes = {README: {"results-main": main_table(classification_rows(records))}, RESULTS_PAGE: tables(records),
               SAVEDMODELS_README: {"savedmodels": savedmodels_table()}}
    for path, blocks in readmes.items():
        text = path.read_text()
        updated = text
        for name, content in blocks.items():
            updated = replace_block(updated, name, content)
        if args.check and updated != text:
            raise SystemExit(f"{path.relative_to(REPO)}'s tables differ from the JSON files: run "
                             "python results/make_table.py")
        if not args.check:
            path.write_text(updated)
    if args.check:
        return
    drawn = plot_curves([(name, row_of(record)) for name, record in records])
    plot_time_to_accuracy(records)
    print(f"wrote the tables from {len(records)} results files and {len(drawn)} curves to {CURVES}")


if __name__ == "__main__":
    sys.exit(main())
