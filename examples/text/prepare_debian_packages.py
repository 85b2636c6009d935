"""Builds a few-shot text corpus from Debian's package index: package descriptions labelled by Section.

    python examples/text/prepare_debian_packages.py [PACKAGES] [--output data/debian-packages]
    python examples/text/prepare_debian_packages.py --translations --max-words 60 \
        --output data/debian-packages-long
    python examples/text/prepare_debian_packages.py --translations --language zh_CN --min-per-class 10 \
        --output data/debian-packages-zh_CN

PACKAGES is an apt `Packages` index (plain, .gz, .xz or .lz4); by default the one `apt-get update` leaves for
Debian 12 (bookworm) main on amd64. Writes `train.tsv.gz`, `validation.tsv.gz` and `test.tsv.gz` of
`section<TAB>description` lines (read them with `tfmeta.data.read_labelled_lines`): the text is a package's
Description field (in apt's index, only the one-line synopsis; with --translations, the synopsis and long
description from apt's `Translation-en` index, matched by package name and Description-md5, cut to the first
--max-words words), duplicate texts are kept once, texts that appear under several sections are dropped,
sections with fewer than --min-per-class texts are dropped, and the sections are split at random (--seed) into
disjoint train / validation / test classes. Also writes `splits.json`, the sections of each split and their sizes.
Needs only the Python standard library (and the `lz4` command or apt's own apt-helper for an .lz4 index).
"""

import argparse
import bz2
import collections
import gzip
import json
import lzma
import pathlib
import random
import shutil
import subprocess
import unicodedata

DEFAULT_PACKAGES = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_binary-amd64_Packages.lz4"
# apt writes the "_" of zh_CN as "%5f" in the index's file name.
DEFAULT_TRANSLATIONS = "/var/lib/apt/lists/deb.debian.org_debian_dists_bookworm_main_i18n_Translation-{}.lz4"
APT_HELPER = "/usr/lib/apt/apt-helper"
SPLITS = ("train", "validation", "test")


def read_index(path):
    """The text of an apt index file, decompressed by its suffix."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise SystemExit(f"No Packages index at {path}: run `apt-get update`, or pass the path of one.")
    openers = {".gz": gzip.open, ".xz": lzma.open, ".bz2": bz2.open}
    if path.suffix in openers:
        with openers[path.suffix](path, "rt", encoding="utf-8") as file:
            return file.read()
    if path.suffix != ".lz4":
        return path.read_text(encoding="utf-8")
    if shutil.which("lz4"):
        command = ["lz4", "-dc", str(path)]
    elif pathlib.Path(APT_HELPER).is_file():
        command = [APT_HELPER, "cat-file", str(path)]
    else:
        raise SystemExit(f"{path} is lz4-compressed: install the `lz4` command, or decompress it and pass that file.")
    return subprocess.run(command, check=True, capture_output=True).stdout.decode("utf-8")


def stanzas(index):
    """Each package's fields as a dict; a field's continuation lines are joined to it with newlines."""
    for block in index.split("\n\n"):
        fields, name = {}, None
        for line in block.splitlines():
            if line.startswith((" ", "\t")) and name:
                fields[name] += "\n" + line.strip()
            elif ":" in line:
                name, value = line.split(":", 1)
                fields[name] = value.strip()
        if fields:
            yield fields


def description_text(description):
    """The synopsis and any long description as one line: the long part's "." lines are paragraph breaks.

    Lines are joined by a space, except where the long description wraps inside Chinese or Japanese text (wide
    characters on both sides), which puts no spaces between words.
    """
    synopsis, *lines = [line.strip() for line in description.split("\n") if line != "."]
    text = ""
    for line in lines:
        wide = text and line and all(unicodedata.east_asian_width(c) in "WF" for c in (text[-1], line[0]))
        text += line if wide or not text else " " + line
    return " ".join(f"{synopsis} {text}".split())  # one line, no tabs


def long_descriptions(translations, language="en"):
    """`{(package, description md5): full description}` from a `Translation-LANG` index."""
    field = f"Description-{language}"
    return {(fields["Package"], fields["Description-md5"]): fields[field]
            for fields in stanzas(translations)
            if {"Package", "Description-md5", field} <= fields.keys()}


# Debtags facets that say what a package is about (not its interface, role, toolkit or implementation language).
TOPICAL_FACETS = ("accessibility", "admin", "biology", "culture", "devel", "field", "game", "hardware", "junior",
                  "mail", "made-of", "network", "office", "privacy", "protocol", "science", "security", "sound",
                  "system", "use", "web", "works-with", "works-with-format")


def section_label(fields):
    """A package's Section, without its archive area: "contrib/net" is "net"."""
    return fields["Section"].split("/")[-1] if "Section" in fields else None


def topical_tags(fields):
    """The debtags of `TOPICAL_FACETS` of a package (those still marked TODO left out)."""
    tags = (tag.strip() for tag in fields.get("Tag", "").replace("\n", " ").split(","))
    return [tag for tag in tags if tag.split("::")[0] in TOPICAL_FACETS and "TODO" not in tag]


def rarest_tag_labeller(all_fields):
    """`label(fields)`: the package's least frequent topical tag (ties by name), None without one.

    One label per package keeps the classes disjoint; the rarest tag is the most specific (a package tagged
    `use::gameplaying` and `game::chess` is a chess package).
    """
    frequency = collections.Counter(tag for fields in all_fields for tag in topical_tags(fields))

    def label(fields):
        tags = topical_tags(fields)
        return min(tags, key=lambda tag: (frequency[tag], tag)) if tags else None

    return label


def labelled_texts(index, long_description_of=None, max_words=None, label="section", translated_only=False):
    """`{label: [text, ...]}`: each distinct description once, under the one label it appears with.

    `label` is "section" (the package's Section) or "debtags" (its rarest topical debtag, see
    `rarest_tag_labeller`). With `long_description_of` (see `long_descriptions`), a package's text is its long
    description where the translations have it (its synopsis otherwise, or, `translated_only`, nothing), cut to
    `max_words` words.
    """
    all_fields = list(stanzas(index))
    label_of = section_label if label == "section" else rarest_tag_labeller(all_fields)
    labels_of = collections.defaultdict(set)
    order = []
    for fields in all_fields:
        name = label_of(fields)
        key = (fields.get("Package"), fields.get("Description-md5"))
        if name is None or not fields.get("Description") or (translated_only and key not in long_description_of):
            continue
        description = (long_description_of or {}).get(key, fields["Description"])
        text = " ".join(description_text(description).split()[:max_words])
        if text not in labels_of:
            order.append(text)
        labels_of[text].add(name)
    by_label = collections.defaultdict(list)
    for text in order:
        if len(labels_of[text]) == 1:
            by_label[next(iter(labels_of[text]))].append(text)
    return by_label


def split_sections(sections, fractions, seed):
    """Sections shuffled with `seed` and cut into train / validation / test by `fractions`."""
    sections = sorted(sections)
    random.Random(seed).shuffle(sections)
    train_end = round(fractions[0] * len(sections))
    validation_end = train_end + round(fractions[1] * len(sections))
    parts = sections[:train_end], sections[train_end:validation_end], sections[validation_end:]
    return {name: sorted(part) for name, part in zip(SPLITS, parts)}


def write_lines(path, by_section, sections):
    # mtime=0: the same input gives byte-identical files.
    with open(path, "wb") as raw, gzip.GzipFile(fileobj=raw, mode="wb", mtime=0) as file:
        for section in sections:
            for text in by_section[section]:
                file.write(f"{section}\t{text}\n".encode("utf-8"))


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("packages", nargs="?", default=DEFAULT_PACKAGES,
                        help="an apt Packages index (default: %(default)s)")
    parser.add_argument("--translations", nargs="?", const=True,
                        help="a Translation-LANG index whose long descriptions replace the synopses (given without "
                             f"a path: {DEFAULT_TRANSLATIONS.format('LANG')})")
    parser.add_argument("--language", default="en",
                        help="the language of --translations, e.g. zh_CN; other than en, only the packages the "
                             "translations describe are kept, so that the corpus is in that language "
                             "(default: %(default)s)")
    parser.add_argument("--label", choices=("section", "debtags"), default="section",
                        help="the class of a package: its Section, or its rarest debtag of the topical facets "
                             "(packages without one are left out) (default: %(default)s)")
    parser.add_argument("--max-words", type=int, help="cut each text to its first N words (default: no cut)")
    parser.add_argument("--output", default="data/debian-packages", help="output folder (default: %(default)s)")
    parser.add_argument("--min-per-class", type=int, default=40,
                        help="drop sections with fewer distinct descriptions (default: %(default)s)")
    parser.add_argument("--fractions", type=float, nargs=2, default=(0.6, 0.2), metavar=("TRAIN", "VALIDATION"),
                        help="fractions of the sections for meta-training and validation; the rest are test "
                             "sections (default: 0.6 0.2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split of the sections (default: 0)")
    args = parser.parse_args(argv)
    if args.translations is True:
        args.translations = DEFAULT_TRANSLATIONS.format(args.language.replace("_", "%5f"))
    if args.language != "en" and not args.translations:
        parser.error(f"--language {args.language} reads the descriptions of --translations; give it")

    long_description_of = (long_descriptions(read_index(args.translations), args.language) if args.translations
                           else None)
    by_section = labelled_texts(read_index(args.packages), long_description_of, args.max_words, args.label,
                                translated_only=args.language != "en")
    kept = {section: texts for section, texts in by_section.items() if len(texts) >= args.min_per_class}
    splits = split_sections(kept, args.fractions, args.seed)
    output = pathlib.Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    for name, sections in splits.items():
        write_lines(output / f"{name}.tsv.gz", kept, sections)
    record = {
        "source": pathlib.Path(args.packages).name,
        **({"translations": pathlib.Path(args.translations).name, "max_words": args.max_words}
           if args.translations else {}),
        **({"language": args.language} if args.language != "en" else {}),
        "label": args.label,
        "min_per_class": args.min_per_class,
        "seed": args.seed,
        "dropped_classes": {section: len(texts) for section, texts in sorted(by_section.items())
                             if section not in kept},
        **{name: {section: len(kept[section]) for section in sections} for name, sections in splits.items()},
    }
    (output / "splits.json").write_text(json.dumps(record, indent=2) + "\n")
    for name, sections in splits.items():
        print(f"{name}: {len(sections)} classes, {sum(len(kept[s]) for s in sections)} descriptions")


if __name__ == "__main__":
    main()
