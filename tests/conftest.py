import os
import pathlib
import shutil
import string
import subprocess
import sys
import tempfile
import time
import unicodedata

import keras
import numpy as np
import pytest
import tensorflow as tf

from tfmeta.data import cache, locations
from tfmeta.layers import MetaBatchNormalization

REPO = pathlib.Path(__file__).resolve().parents[1]


def pytest_configure(config):
    """One decoded-data cache for the whole run, empty at its start: the first process to read Omniglot decodes
    it (the decoding is tested), every later one, the xdist workers' and the commands the tests start included
    (they inherit the environment), reads it back. The user's own cache is neither used nor written."""
    if hasattr(config, "workerinput"):  # an xdist worker: its controller has set the variable
        return
    config.tfmeta_cache = tempfile.mkdtemp(prefix="tfmeta-test-cache-")
    os.environ[cache.ENVIRONMENT_VARIABLE] = config.tfmeta_cache


def pytest_unconfigure(config):
    if hasattr(config, "tfmeta_cache"):
        shutil.rmtree(config.tfmeta_cache, ignore_errors=True)


def typed(command, cwd, timeout=600):
    """`command` (e.g. `"tfmeta train --algorithm maml"` or `"python -m tfmeta --help"`, words split on spaces) run
    as a user types it, in a new process of this Python (`tfmeta` is the installed script beside it), with every
    module it imports listed on stderr (PYTHONPROFILEIMPORTTIME). Returns `(completed process, its stderr without
    that list, the modules it imported, wall seconds)`."""
    words = command.split()
    head = {"tfmeta": [str(pathlib.Path(sys.executable).with_name("tfmeta"))], "python": [sys.executable]}[words[0]]
    if not pathlib.Path(head[0]).is_file():
        pytest.fail(f"no {head[0]}: install tfmeta (pip install .) for its tfmeta command")
    start = time.perf_counter()
    completed = subprocess.run([*head, *words[1:]], capture_output=True, text=True, timeout=timeout, cwd=cwd,
                               env={**os.environ, "PYTHONPROFILEIMPORTTIME": "1"})
    seconds = time.perf_counter() - start
    lines = completed.stderr.splitlines()
    modules = {line.split("|")[-1].strip() for line in lines if line.startswith("import time:")}
    stderr = "\n".join(line for line in lines if not line.startswith("import time:"))
    return completed, stderr, modules, seconds


def finished(process, timeout=600):
    """The stdout of a started `subprocess.Popen(..., stderr=PIPE, text=True)`, once it has exited with status 0."""
    out, err = process.communicate(timeout=timeout)
    assert process.returncode == 0, err[-3000:]
    return out


@pytest.fixture(scope="session")
def omniglot_dir():
    """The official Omniglot release, as the repository ships it in data/omniglot."""
    path = REPO / locations.REPOSITORY_DATA
    if not (path / "images_background.zip").is_file():
        pytest.fail(f"the repository's Omniglot release is missing: no {path / 'images_background.zip'}")
    return path


@pytest.fixture
def no_local_omniglot(monkeypatch, tmp_path):
    """A process in which the search for a local Omniglot release finds nothing (tensorflow-datasets is next)."""
    monkeypatch.delenv(locations.ENVIRONMENT_VARIABLE, raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(locations, "_SOURCE_TREE", tmp_path)
    return tmp_path


@pytest.fixture
def mocked_tfds_omniglot(no_local_omniglot, monkeypatch):
    """As `no_local_omniglot`, for tests under `tfds.testing.mock_data`, which needs no network."""
    monkeypatch.setattr(locations, "check_download_possible", lambda: None)


def random_episodes(example_shape, tasks=2, ways=3, shots=2, queries=3, seed=0, pixels=False, dtype="float32"):
    """A meta-batch of random episodes as NumPy arrays, labels class by class.

    Inputs are standard normal, or uniform in [0, 1] with `pixels=True` (what
    a served image model accepts).
    """
    rng = np.random.default_rng(seed)
    draw = rng.uniform if pixels else rng.normal
    return {
        "support_x": draw(size=[tasks, ways * shots, *example_shape]).astype(dtype),
        "support_y": np.tile(np.repeat(np.arange(ways), shots), [tasks, 1]).astype(np.int32),
        "query_x": draw(size=[tasks, ways * queries, *example_shape]).astype(dtype),
        "query_y": np.tile(np.repeat(np.arange(ways), queries), [tasks, 1]).astype(np.int32),
    }


REQUEST_KEYS = ("support_x", "support_y", "query_x")


def one_by_one(predict, episodes, tasks=False):
    """Each query of a one-task episode asked alone: a request each, or (`tasks`) a task each of one request."""
    request = {key: episodes[key] for key in REQUEST_KEYS}
    queries = request["query_x"].shape[1]
    if tasks:
        alone = {key: np.repeat(value, queries, axis=0) for key, value in request.items() if key != "query_x"}
        return predict({**alone, "query_x": np.swapaxes(request["query_x"], 0, 1)})[:, 0]
    return np.stack([predict({**request, "query_x": request["query_x"][:, q:q + 1]})[0, 0] for q in range(queries)])


def assert_per_query(predict, episodes, tasks=False):
    """`predict(one-task episodes) -> [1, Q, N]` answers each query alike alone, in the batch, and shuffled."""
    request = {key: episodes[key] for key in REQUEST_KEYS}
    together = predict(request)[0]
    order = np.random.default_rng(1).permutation(len(together))
    shuffled = predict({**request, "query_x": request["query_x"][:, order]})[0]
    np.testing.assert_allclose(one_by_one(predict, request, tasks), together, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(shuffled, together[order], rtol=1e-5, atol=1e-5)


def moved_off_initialization(model, seed=0):
    """Every weight of a built model scaled by a random factor in [0.8, 1.2] and shifted by up to 0.02: learned
    rates apart, moving statistics away from 0 and 1, signs kept (variances and rates stay positive). Serving must
    reproduce the model whatever its weights, so export tests need not trace a train step (the CLI's tests export
    meta-trained models)."""
    rng = np.random.default_rng(seed)
    for variable in model.variables:
        if not variable.dtype.startswith("float"):
            continue
        value = variable.numpy()
        variable.assign(value * rng.uniform(0.8, 1.2, value.shape) + rng.uniform(0.0, 0.02, value.shape))


def loaded_exports(exports):
    """`{name: (model, export path)}` -> `{name: loaded SavedModel}`: each loaded once (loading takes seconds)."""
    return {name: tf.saved_model.load(str(path)) for name, (_, path) in exports.items()}


def float64_episodes(tasks, example_shape=(2,)):
    """Random episodes in float64 whose values float32 holds exactly (MAML's call casts its inputs to float32)."""
    episodes = random_episodes(example_shape, tasks=tasks)
    return {key: value.astype(np.float64) if value.dtype == np.float32 else value for key, value in episodes.items()}


def directional_derivatives(function, values, gradients, directions=3, h=1e-6, seed=1):
    """(analytic, central-difference) derivatives of `function` along random directions, as arrays.

    `function(values) -> float` takes a list of arrays (use float64);
    `gradients` is the gradient to check, one array per value.
    """
    rng = np.random.default_rng(seed)
    values = [np.asarray(v, np.float64) for v in values]
    analytic, numeric = [], []
    for _ in range(directions):
        direction = [rng.normal(size=v.shape) for v in values]
        plus = function([v + h * d for v, d in zip(values, direction)])
        minus = function([v - h * d for v, d in zip(values, direction)])
        numeric.append((plus - minus) / (2 * h))
        analytic.append(sum(float(np.sum(np.asarray(g) * d)) for g, d in zip(gradients, direction)))
    return np.array(analytic), np.array(numeric)


def mlp(dtype="float32", seed=0):
    """A small seeded MLP, 2 inputs to 3 logits, smooth activations (finite differences need them)."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((2,), dtype=dtype)
    x = keras.layers.Dense(6, activation="softplus", dtype=dtype)(inputs)
    x = keras.layers.Dense(6, activation="tanh", dtype=dtype)(x)
    return keras.Model(inputs, keras.layers.Dense(3, dtype=dtype)(x))


def conv_net(dtype="float32", seed=0, ways=3):
    """A small seeded CNN on 6x6x1 inputs with MetaBatchNormalization, which second-order MAML accepts."""
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((6, 6, 1), dtype=dtype)
    x = keras.layers.Conv2D(3, 3, strides=2, padding="same", dtype=dtype)(inputs)
    x = MetaBatchNormalization(dtype=dtype)(x)
    x = keras.layers.Activation("softplus", dtype=dtype)(x)
    x = keras.layers.Flatten(dtype=dtype)(x)
    return keras.Model(inputs, keras.layers.Dense(ways, dtype=dtype)(x))


def loss_for(dtype):
    """Cross-entropy on logits, computed in `dtype`."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype=dtype)


def task(episodes, t):
    """Task `t` of a NumPy meta-batch, as tensors."""
    return {key: tf.constant(value[t]) for key, value in episodes.items()}


def traced_steps(maml):
    """A list that grows by one each time `maml`'s train step is traced."""
    traces = []
    train_step = maml.train_step

    def counting_train_step(data):
        traces.append(1)  # Python code runs only while tracing
        return train_step(data)

    maml.train_step = counting_train_step
    return traces


# The colour of each class's images in the generated folders: one flat colour per class.
CLASS_COLOURS = {"circle": (250, 10, 10), "square": (10, 250, 10), "star": (10, 10, 250), "wave": (200, 200, 40)}


def write_image(path, pixels):
    """Writes uint8 pixels `[h, w, c]` as PNG or JPEG, by the path's suffix."""
    encode = tf.io.encode_png if path.suffix == ".png" else tf.io.encode_jpeg
    path.write_bytes(encode(tf.constant(pixels, tf.uint8)).numpy())


def image_folder(root, per_class=6, classes=CLASS_COLOURS):
    """A folder of class folders of flat-colour images: several sizes, RGB and grayscale, PNG and JPEG."""
    sizes = [(20, 20), (31, 17), (8, 40)]
    for name, colour in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            height, width = sizes[i % len(sizes)]
            pixels = np.broadcast_to(np.array(colour, np.uint8), (height, width, 3))
            if i % 4 == 3:  # a grayscale file: the colour's luminance
                pixels = np.round(pixels @ np.array([0.2989, 0.587, 0.114]))[..., None].astype(np.uint8)
            write_image(root / name / f"{i}.{'jpg' if i % 2 else 'png'}", pixels)
    return root


# Unicode character names of the scripts written without spaces (Chinese, Japanese, Thai, ...), and 々, a Han mark.
NO_SPACE_NAMES = ("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH", "HIRAGANA", "KATAKANA", "THAI", "LAO",
                  "KHMER", "MYANMAR", "IDEOGRAPHIC ITERATION MARK")


def reference_tokens(text, tokenize="words"):
    """The tokens of `text` as tfmeta's text models should read it, in plain Python.

    Keras's standardization (ASCII letters lowered, ASCII punctuation
    removed); "words" splits at whitespace; "characters" also ends words at
    any Unicode punctuation, symbol or separator, and gives each character
    of a script written without spaces and each pair of such characters
    written next to each other.
    """
    text = "".join(c.lower() if "A" <= c <= "Z" else c for c in text if c not in string.punctuation)
    if tokenize == "words":
        return text.split()
    text = "".join(" " if unicodedata.category(c)[0] in "PSZ" else c for c in text)
    no_space = [unicodedata.name(c, "").startswith(NO_SPACE_NAMES) for c in text]
    tokens, word = [], ""
    for i, c in enumerate(text):
        if no_space[i] or c.isspace():
            tokens += [word] if word else []
            word = ""
        if no_space[i]:
            tokens += [c] + ([c + text[i + 1]] if i + 1 < len(text) and no_space[i + 1] else [])
        elif not c.isspace():
            word += c
    return tokens + ([word] if word else [])


def numpy_tfidf(training_texts, tokenize="words"):
    """`(vocabulary, vector(text))`: L2-normalised TF-IDF of `reference_tokens` with Keras's idf = log(1 +
    documents / (1 + document frequency)), the vocabulary in sorted order."""
    documents = [reference_tokens(text, tokenize) for text in training_texts]
    vocabulary = sorted({token for tokens in documents for token in tokens})
    frequency = np.array([sum(token in tokens for tokens in documents) for token in vocabulary])
    idf = np.log(1 + len(documents) / (1 + frequency))

    def vector(text):
        tokens = reference_tokens(text, tokenize)
        tfidf = np.array([tokens.count(token) for token in vocabulary]) * idf
        return tfidf / max(np.linalg.norm(tfidf), 1e-12)

    return vocabulary, vector
