"""Labelled raw text: `LabelledText` and its loaders (tab-separated files, folders of .txt files, CLINC150)."""

import gzip
import pathlib

import numpy as np

from tfmeta.data.labelled import LabelledData


class LabelledText(LabelledData):
    """Raw strings and their class labels, grouped by class: `LabelledData` for text.

    Episodes drawn from it (`tfmeta.data.episodes`) carry the strings as
    `tf.string` tensors: `support_x` `[ways * shots]`, `query_x`
    `[ways * queries]`, with the same guarantees as for images. The strings
    are held as `texts` (also `images`, the name `LabelledData` uses for
    examples of any kind). Models take them raw: tokenization is part of the
    model (`tfmeta.models.text_conv_embedding`).

    Args:
        texts: a sequence of non-empty strings (`str`, or UTF-8 `bytes`).
        labels: integer array `[num_texts]` with values in `[0, len(class_names))`.
        class_names: one unique name per class; defaults to `"0"`, `"1"`, ...

    Example:
        >>> data = LabelledText(["refund my order", "where is my parcel", "play jazz"],
        ...                     [0, 0, 1], ["orders", "music"])
        >>> data.num_classes, data.example_shape
        (2, ())
    """

    @staticmethod
    def _checked_examples(texts):
        if isinstance(texts, (str, bytes)) or np.asarray(texts, dtype=object).ndim != 1 or len(texts) == 0:
            raise ValueError(f"`texts` must be a non-empty sequence of strings; received {str(texts)[:80]!r}.")
        decoded = []
        for index, text in enumerate(texts):
            if isinstance(text, bytes):
                text = _decoded(text, f"`texts`, text {index}")
            if not isinstance(text, str):
                raise ValueError(f"`texts` must hold strings; text {index} is a {type(text).__name__}: {text!r}.")
            if not text.strip():
                raise ValueError(f"`texts` must not hold empty strings; text {index} is {text!r}.")
            decoded.append(text)
        return np.array(decoded, dtype=str)

    @property
    def texts(self):
        return self.images

    def __repr__(self):
        return f"LabelledText({len(self)} texts, {self.num_classes} classes)"


def read_labelled_lines(path, min_per_class=2):
    """Reads `label<TAB>text` lines (UTF-8, optionally gzipped: `.gz`) into `LabelledText`.

    One example per line: the class name, a tab, the text (which may hold
    further tabs). Blank lines are skipped, and a UTF-8 byte order mark at
    the start. Classes are numbered in sorted order of their names.

    Args:
        path: the file.
        min_per_class: classes with fewer examples are an error (an episode
            needs at least one support and one query example of a class).

    Raises:
        FileNotFoundError: no such file.
        ValueError: naming the path and line of a line that is not UTF-8,
            has no tab, an empty label or a label without text, or a class
            with too few examples.

    Example:
        >>> train = read_labelled_lines("data/debian-packages/train.tsv.gz")
    """
    names, texts = [], []
    for _, name, text in labelled_lines(path):
        names.append(name)
        texts.append(text)
    return _grouped(texts, names, min_per_class, str(path))


def labelled_lines(path):
    """`(line number, label, text)` of each non-blank `label<TAB>text` line of `path`, checked as
    `read_labelled_lines` says."""
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"No labelled text file at {path}: expected lines of `label<TAB>text`.")
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as lines:
        for number, raw in enumerate(lines, start=1):
            line = _decoded(raw, path, number, "utf-8-sig" if number == 1 else "utf-8").rstrip("\r\n")
            if not line.strip():
                continue
            name, tab, text = line.partition("\t")
            if not tab or not name.strip() or not text.strip():
                problem = ("no tab" if not tab else "an empty label" if not name.strip() else
                           "a label without text")
                raise ValueError(f"{path}, line {number}: expected `label<TAB>text`, found {problem}: "
                                 f"{line[:80]!r}.")
            yield number, name.strip(), text.strip()


def line_of(path, text):
    """The number of the first line of `path` whose text (as `read_labelled_lines` reads it) is `text`."""
    return next(number for number, _, line_text in labelled_lines(path) if line_text == text)


def _decoded(raw, source, first_line=1, encoding="utf-8"):
    """`raw` bytes as text; bytes that are not UTF-8 are an error naming `source`, the line and the fix."""
    try:
        return raw.decode(encoding)
    except UnicodeDecodeError as error:
        line = first_line + raw.count(b"\n", 0, error.start)
        offset = error.start - raw.rfind(b"\n", 0, error.start)
        raise ValueError(f"{source}, line {line}: not valid UTF-8 (byte {offset} of the line is "
                         f"0x{raw[error.start]:02x}); save the file as UTF-8, e.g. with `iconv -f GB18030 -t UTF-8` "
                         "for Chinese text in GB18030 or GBK.") from None


TEXT_SPLITS = ("train", "validation", "test")


def read_text_splits(folder, min_per_class=2):
    """Reads a corpus split by class: `{"train", "validation", "test"}` -> `LabelledText`.

    `folder` holds `train.tsv.gz`, `validation.tsv.gz` and `test.tsv.gz`
    (or the same names without `.gz`) of `label<TAB>text` lines, as
    `read_labelled_lines` reads them; their classes must be disjoint (the
    test measures classes never trained on).

    Raises:
        FileNotFoundError: naming a missing folder or file.
        ValueError: a bad line (named by `read_labelled_lines`), or a class
            name in two splits.

    Example:
        >>> splits = read_text_splits("data/debian-packages")
    """
    folder = pathlib.Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"No folder at {folder}: expected train.tsv.gz, validation.tsv.gz and test.tsv.gz "
                                "of `label<TAB>text` lines.")
    splits = {name: read_labelled_lines(split_path(folder, name), min_per_class) for name in TEXT_SPLITS}
    for first, second in ((0, 1), (0, 2), (1, 2)):
        shared = sorted(set(splits[TEXT_SPLITS[first]].class_names) & set(splits[TEXT_SPLITS[second]].class_names))
        if shared:
            raise ValueError(f"{folder}: the {TEXT_SPLITS[first]} and {TEXT_SPLITS[second]} splits share "
                             f"{len(shared)} class(es), e.g. {shared[0]!r}; split a corpus by class.")
    return splits


def split_path(folder, name):
    """The file of split `name` (e.g. "train") in `folder`: `name.tsv.gz`, else `name.tsv`."""
    candidates = [pathlib.Path(folder) / f"{name}.tsv.gz", pathlib.Path(folder) / f"{name}.tsv"]
    path = next((candidate for candidate in candidates if candidate.is_file()), None)
    if path is None:
        raise FileNotFoundError(f"No {name} file in {folder}: expected {candidates[0].name} or "
                                f"{candidates[1].name} (`label<TAB>text` lines).")
    return path


def read_text_folders(path, min_per_class=2):
    """Reads one folder per class of UTF-8 `.txt` files, one example per file, into `LabelledText`.

    `path/<class name>/<anything>.txt`; classes in sorted order of their
    folder names, files in sorted order within a class. Other files are
    ignored.

    Raises:
        FileNotFoundError: `path` is not a folder.
        ValueError: naming the file of an empty text (and the line of
            bytes that are not UTF-8), a folder without class folders, or a
            class with too few examples.
    """
    path = pathlib.Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"No folder at {path}: expected one folder of .txt files per class.")
    folders = sorted(folder for folder in path.iterdir() if folder.is_dir())
    if not folders:
        raise ValueError(f"{path} holds no class folders: expected {path}/<class name>/*.txt.")
    names, texts = [], []
    for folder in folders:
        for file in sorted(folder.glob("*.txt")):
            text = _decoded(file.read_bytes(), file).strip()
            if not text:
                raise ValueError(f"{file} is empty: every .txt file is one example and needs text.")
            names.append(folder.name)
            texts.append(text)
    return _grouped(texts, names, min_per_class, str(path), [folder.name for folder in folders])


def _grouped(texts, names, min_per_class, source, class_names=None):
    """`LabelledText` of texts named by class, after the check that every class has `min_per_class` texts."""
    class_names = sorted(set(names)) if class_names is None else class_names
    counts = {name: 0 for name in class_names}
    for name in names:
        counts[name] += 1
    short = [name for name in class_names if counts[name] < min_per_class]
    if short:
        raise ValueError(f"{source}: {len(short)} class(es) have fewer than min_per_class={min_per_class} "
                         f"examples, e.g. {short[0]!r} with {counts[short[0]]}; an episode needs a support and a "
                         "query example of each class. Drop such classes or add examples.")
    index = {name: c for c, name in enumerate(class_names)}
    return LabelledText(texts, np.array([index[name] for name in names], dtype=np.int64), class_names)


def load_clinc_oos(split="train", data_dir=None, min_per_class=2):
    """CLINC150's intents (Larson et al. 2019) through tensorflow-datasets, as `LabelledText`.

    150 intents over 10 domains, 100 / 20 / 30 utterances per intent in
    the `train` / `validation` / `test` splits (the `*_oos` splits hold the
    out-of-scope queries). Class names are the intent names, in sorted order.
    For few-shot learning, split by class: e.g. `select_classes` on the
    train split for meta-training and on the test split for evaluation.

    Args:
        split: a tensorflow-datasets split of `clinc_oos`.
        data_dir: tensorflow-datasets' data directory (default: its own).

    Reference:
        Larson et al. An Evaluation Dataset for Intent Classification and
        Out-of-Scope Prediction. EMNLP-IJCNLP 2019.
    """
    import tensorflow_datasets as tfds

    try:
        dataset = tfds.load("clinc_oos", split=split, data_dir=data_dir)
    except OSError as error:  # requests' connection errors are OSErrors
        raise OSError(f"tensorflow-datasets could not prepare clinc_oos (split {split!r}): it downloads it once "
                      f"from github.com ({type(error).__name__}: {error}).") from None
    texts, names = [], []
    for batch in dataset.batch(4096).as_numpy_iterator():
        texts += [text.decode("utf-8") for text in batch["text"]]
        names += [name.decode("utf-8") for name in batch["intent_name"]]
    if not texts:
        raise ValueError(f"clinc_oos split {split!r} is empty.")
    return _grouped(texts, names, min_per_class, f"clinc_oos {split}")
