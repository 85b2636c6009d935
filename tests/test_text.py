import gzip
import importlib.util
import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
import tensorflow_datasets as tfds

import tfmeta

from conftest import loaded_exports, moved_off_initialization, numpy_tfidf
from test_episodes import check_episode, synthetic_data
from test_serving import CLIENT, rest_request_code
from tfmeta.data import (LabelledData, LabelledText, episodes, evaluation_episodes, load_clinc_oos,
                         read_labelled_lines, read_text_folders)
from tfmeta.baselines import tfidf_nearest_prototype
from tfmeta.evaluation import episode_accuracies, mean_confidence_interval
from tfmeta import cli
from tfmeta.models.text import TermReweighting, text_conv_embedding, text_tfidf_embedding
from tfmeta.serving import export_saved_model

REPO = pathlib.Path(__file__).resolve().parents[1]


def synthetic_text(num_classes=12):
    """`synthetic_data` with each example's id written as a word: each text names its example."""
    data, class_of = synthetic_data(num_classes)
    texts = [f"example {i}" for i in data.images[:, 0]]
    return LabelledText(texts, data.labels), class_of


def as_ids(episode):
    """A text episode as `check_episode` reads image episodes: the example ids `[examples, 1]`."""
    ids = {key: np.array([[int(text.split()[1])] for text in episode[key]]) for key in ("support_x", "query_x")}
    return {**episode, **ids}


@pytest.mark.parametrize("ways, shots, queries", [(5, 1, 4), (12, 1, 1)])
def test_text_episodes_hold_the_image_episodes_invariants(ways, shots, queries):
    data, class_of = synthetic_text()
    stream = episodes(data, ways, shots, queries, seed=1, num_episodes=100, meta_batch_size=4)
    assert stream.element_spec["support_x"].dtype == tf.string
    assert stream.element_spec["support_x"].shape.as_list() == [4, ways * shots]
    for batch in stream.as_numpy_iterator():
        for task in range(4):
            check_episode(as_ids({key: value[task] for key, value in batch.items()}), class_of, ways, shots, queries)


def test_text_episodes_draw_the_same_examples_as_the_numbers_they_name():
    data, _ = synthetic_text()
    ids, _ = synthetic_data()
    for text, image in zip(evaluation_episodes(data, 5, 2, 3, 20).as_numpy_iterator(),
                           evaluation_episodes(ids, 5, 2, 3, 20).as_numpy_iterator()):
        for key in ("support_x", "query_x"):
            np.testing.assert_array_equal(as_ids(text)[key], image[key])
        np.testing.assert_array_equal(text["query_y"], image["query_y"])


def test_labelled_text_keeps_unicode_and_selects_classes():
    data = LabelledText([b"caf\xc3\xa9 au lait", "thé", "tea", "coffee"], [0, 1, 1, 0], ["coffee", "tea"])
    assert data.texts.tolist() == ["café au lait", "coffee", "thé", "tea"]
    assert data.example_shape == () and repr(data) == "LabelledText(4 texts, 2 classes)"
    picked = data.select_classes(["tea"])
    assert isinstance(picked, LabelledText) and picked.texts.tolist() == ["thé", "tea"]
    episode = next(episodes(data, 2, 1, 1, seed=0).as_numpy_iterator())
    assert {text.decode("utf-8") for text in episode["support_x"]} <= set(data.texts)


@pytest.mark.parametrize("texts, message", [
    (["fine", "  "], r"empty strings; text 1 is '  '"),
    (["fine", 3], "text 1 is a int: 3"),
    ("one string", "sequence of strings"),
    ([], "non-empty sequence"),
])
def test_labelled_text_refuses_what_is_not_text(texts, message):
    with pytest.raises(ValueError, match=message):
        LabelledText(texts, np.zeros(len(texts), int))


def test_numeric_labelled_data_still_refuses_strings():
    with pytest.raises(ValueError, match="numeric"):
        LabelledData(np.array(["a", "b"]), np.array([0, 1]))


def write_lines(path, lines):
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "wt", encoding="utf-8") as file:
        file.write("".join(line + "\n" for line in lines))
    return path


@pytest.mark.parametrize("name", ["data.tsv", "data.tsv.gz"])
def test_labelled_lines_are_read_by_class(tmp_path, name):
    lines = ["net\tA web browser", "games\tChess\twith tabs", "", "net\tmail client ", "games\tTetris"]
    data = read_labelled_lines(write_lines(tmp_path / name, lines))
    assert data.class_names == ["games", "net"]
    assert data.texts.tolist() == ["Chess\twith tabs", "Tetris", "A web browser", "mail client"]
    assert data.labels.tolist() == [0, 0, 1, 1]


@pytest.mark.parametrize("lines, message", [
    (["net\tweb", "net web browser"], r"data.tsv, line 2: expected `label<TAB>text`, found no tab: 'net web"),
    (["net\tweb", "net\t  "], r"line 2: .*a label without text"),
    (["\tweb"], r"line 1: .*an empty label"),
    (["net\tweb", "net\tmail", "games\tchess"], r"fewer than min_per_class=2 examples, e.g. 'games' with 1"),
])
def test_bad_labelled_lines_name_the_file_and_line(tmp_path, lines, message):
    with pytest.raises(ValueError, match=message):
        read_labelled_lines(write_lines(tmp_path / "data.tsv", lines))


def test_text_that_is_not_utf8_is_named_by_file_and_line_with_the_fix(tmp_path):
    path = tmp_path / "data.tsv.gz"
    good = "\ufeffgames\t象棋游戏\nnet\t网络\n".encode("utf-8")  # a byte order mark first, skipped
    with gzip.open(path, "wb") as file:
        file.write(good + "net\t网络浏览器\n".encode("gb18030"))
    with pytest.raises(ValueError, match=r"data.tsv.gz, line 3: not valid UTF-8 \(byte 5 of the line is 0xcd\); "
                                         r"save the file as UTF-8, e.g. with `iconv -f GB18030 -t UTF-8`"):
        read_labelled_lines(path)
    with gzip.open(path, "wb") as file:
        file.write(good)
    assert read_labelled_lines(path, min_per_class=1).class_names == ["games", "net"]
    for name in ("spam", "ham"):
        (tmp_path / "folders" / name).mkdir(parents=True)
        (tmp_path / "folders" / name / "0.txt").write_text("一行", encoding="utf-8")
    (tmp_path / "folders/spam/1.txt").write_bytes("第一行\n".encode() + "第二行".encode("gbk"))
    with pytest.raises(ValueError, match=r"spam/1.txt, line 2: not valid UTF-8 \(byte 1 of the line is 0xb5\)"):
        read_text_folders(tmp_path / "folders", min_per_class=1)
    with pytest.raises(ValueError, match=r"`texts`, text 1, line 1: not valid UTF-8 \(byte 3 of the line is 0xff\)"):
        LabelledText(["fine", b"ok\xff"], [0, 0])


def test_a_missing_file_or_folder_is_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="No labelled text file at .*missing.tsv"):
        read_labelled_lines(tmp_path / "missing.tsv")
    with pytest.raises(FileNotFoundError, match="No folder at .*missing"):
        read_text_folders(tmp_path / "missing")
    with pytest.raises(ValueError, match="holds no class folders"):
        read_text_folders(tmp_path)


def test_text_folders_hold_one_example_per_file(tmp_path):
    for name, texts in {"spam": ["win money", "cheap pills"], "ham": ["lunch at one?", "minutes attached"]}.items():
        (tmp_path / name).mkdir()
        for i, text in enumerate(texts):
            (tmp_path / name / f"{i}.txt").write_text(text + "\n", encoding="utf-8")
    (tmp_path / "ham" / "notes.md").write_text("not an example")
    data = read_text_folders(tmp_path)
    assert data.class_names == ["ham", "spam"]
    assert data.texts.tolist() == ["lunch at one?", "minutes attached", "win money", "cheap pills"]
    (tmp_path / "spam" / "2.txt").write_text(" \n")
    with pytest.raises(ValueError, match=r"spam/2.txt is empty"):
        read_text_folders(tmp_path)
    (tmp_path / "spam" / "2.txt").unlink()
    with pytest.raises(ValueError, match="'ham' with 2"):
        read_text_folders(tmp_path, min_per_class=3)


def test_clinc_oos_is_read_by_intent_name_through_tfds():
    records = {"text": [b"what is my balance", b"play some jazz", b"how much money do i have", b"put on a song"],
               "intent_name": [b"balance", b"play_music", b"balance", b"play_music"]}

    def as_dataset(self, split, **kwargs):
        assert split == "validation"
        return tf.data.Dataset.from_tensor_slices({**records, "intent": [3, 7, 3, 7], "domain": [0, 1, 0, 1],
                                                   "domain_name": [b"banking", b"music"] * 2})

    with tfds.testing.mock_data(as_dataset_fn=as_dataset):
        data = load_clinc_oos("validation")
    assert data.class_names == ["balance", "play_music"]
    assert data.texts.tolist() == ["what is my balance", "how much money do i have", "play some jazz",
                                   "put on a song"]


def keyword_text(num_classes=6, per_class=12, seed=0):
    """Texts whose class shows in 2 of its 5 keywords, among 4 words drawn from 30 that all classes share."""
    rng = np.random.default_rng(seed)
    texts = [" ".join(rng.permutation([*rng.choice([f"key{c}x{j}" for j in range(5)], 2),
                                       *rng.choice([f"noise{j}" for j in range(30)], 4)]))
             for c in range(num_classes) for _ in range(per_class)]
    return LabelledText(texts, np.repeat(np.arange(num_classes), per_class))


def small_text_embedding(texts, **kwargs):
    return text_conv_embedding(texts, **{"vocabulary_size": 64, "sequence_length": 6, "embedding_dim": 8,
                                         "filters": 16, "output_dim": 16, **kwargs})


def test_text_embedding_reads_only_a_texts_own_tokens():
    keras.utils.set_random_seed(0)
    texts = ["a web browser", "chess game for two", "python http library"]
    short, long = small_text_embedding(texts), small_text_embedding(texts, sequence_length=20)
    long.set_weights(short.get_weights())
    request = tf.constant(["chess game", "web browser for python", "Chess, game!"])
    embedded = short(request).numpy()
    # More padding changes nothing; standardization lowers case and drops punctuation.
    np.testing.assert_allclose(long(request).numpy(), embedded, atol=1e-6)
    np.testing.assert_allclose(embedded[2], embedded[0], atol=1e-6)
    # Words not in the training texts share the out-of-vocabulary token.
    np.testing.assert_allclose(short(tf.constant(["chess zebra", "chess yak"])).numpy()[0],
                               short(tf.constant(["chess yak"])).numpy()[0], atol=1e-6)
    assert not np.allclose(embedded[0], embedded[1])


def test_text_embedding_keeps_its_vocabulary_through_saving(tmp_path):
    model = small_text_embedding(["a web browser", "chess game"])
    model.save(tmp_path / "embedding.keras")
    loaded = keras.models.load_model(tmp_path / "embedding.keras")
    request = tf.constant(["chess browser", "a game"])
    np.testing.assert_allclose(loaded(request).numpy(), model(request).numpy(), atol=1e-6)
    with pytest.raises(ValueError, match="vocabulary_size.*received vocabulary_size=0"):
        small_text_embedding(["a"], vocabulary_size=0)


TEXT_LEARNERS = {
    "protonet": lambda embedding: tfmeta.PrototypicalNetwork(embedding),
    "matching": lambda embedding: tfmeta.MatchingNetwork(embedding, temperature=10.0),
    "matching-fce": lambda embedding: tfmeta.MatchingNetwork(embedding, fce=True, fce_steps=2),
}


@pytest.mark.parametrize("name", TEXT_LEARNERS)
def test_metric_learners_learn_text_episodes_with_fit(name):
    data = keyword_text()
    keras.utils.set_random_seed(0)
    model = TEXT_LEARNERS[name](small_text_embedding(data.texts, sequence_length=8))
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    fixed = evaluation_episodes(data, 3, 1, 2, num_episodes=40, meta_batch_size=4, seed=1)
    before = model.evaluate(fixed, verbose=0, return_dict=True)["accuracy"]
    model.fit(episodes(data, 3, 1, 2, seed=0, meta_batch_size=4), steps_per_epoch=30, verbose=0)
    after = model.evaluate(fixed, verbose=0, return_dict=True)["accuracy"]
    assert after > max(before + 0.15, 0.8), (before, after)


def test_text_models_take_numpy_strings_and_refuse_numbers():
    data = keyword_text()
    model = tfmeta.PrototypicalNetwork(small_text_embedding(data.texts))
    batch = next(evaluation_episodes(data, 3, 1, 2, num_episodes=2, meta_batch_size=2).as_numpy_iterator())
    as_str = {key: value.astype(str) if key.endswith("_x") else value for key, value in batch.items()}
    expected = model.predict(batch, verbose=0)  # object arrays of bytes, as tf.data gives them
    np.testing.assert_allclose(model.predict(as_str, verbose=0), expected, atol=1e-6)
    with pytest.raises(ValueError, match=r"support_x holds float32 examples, but the model takes raw text"):
        model.predict({**batch, "support_x": np.zeros([2, 3], np.float32)}, verbose=0)
    with pytest.raises(ValueError, match=r"support_x has shape \(2, 3, 1\).*expected \[tasks, examples\]"):
        model.predict({**batch, "support_x": batch["support_x"][..., None]}, verbose=0)


def run_prepare_script(argv):
    spec = importlib.util.spec_from_file_location("prepare", REPO / "examples/text/prepare_debian_packages.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    module.main(argv)


PACKAGES = """Package: a
Section: net
Description: web browser
Description-md5: 0

Package: b
Section: contrib/net
Description: mail client
 with a long part
 .
 over two paragraphs

Package: c
Section: net
Description: web browser

Package: d
Section: games
Description: chess

Package: e
Section: games
Description: tetris

Package: e2
Section: games
Description: go board game

Package: f
Section: sound
Description: tetris

Package: g
Section: sound
Description: synthesizer

Package: h
Description: no section, left out
"""


def test_the_debian_corpus_script_labels_dedupes_and_splits_by_section(tmp_path):
    with gzip.open(tmp_path / "Packages.gz", "wt") as file:
        file.write(PACKAGES)
    run_prepare_script([str(tmp_path / "Packages.gz"), "--output", str(tmp_path / "out"), "--min-per-class", "2",
                        "--fractions", "0.5", "0.0"])
    splits = json.loads((tmp_path / "out/splits.json").read_text())
    # "tetris" is under two sections: dropped; "sound" keeps 1 text, too few.
    assert splits["dropped_classes"] == {"sound": 1} and splits["validation"] == {}
    assert sorted([*splits["train"], *splits["test"]]) == ["games", "net"]
    lines = {name: gzip.open(tmp_path / f"out/{name}.tsv.gz", "rt").read().splitlines() for name in ("train", "test")}
    assert sorted(lines["train"] + lines["test"]) == [
        "games\tchess", "games\tgo board game", "net\tmail client with a long part over two paragraphs",
        "net\tweb browser"]


@pytest.mark.parametrize("corpus", ["debian-packages", "debian-debtags", "debian-packages-zh_CN"])
def test_the_committed_debian_corpus_matches_its_record(corpus):
    folder = REPO / "data" / corpus
    splits = json.loads((folder / "splits.json").read_text())
    seen = set()
    for name in ("train", "validation", "test"):
        data = read_labelled_lines(folder / f"{name}.tsv.gz")
        assert dict(zip(data.class_names, data.class_count.tolist())) == splits[name]
        assert not seen & set(data.class_names), "a section in two splits"
        seen |= set(data.class_names)
        assert len(set(data.texts)) == len(data), "a repeated text"


@pytest.fixture(scope="module")
def exported_text_models(tmp_path_factory):
    """A Prototypical and an FCE Matching Network on text, their weights moved off their initial values, exported;
    one request."""
    data = keyword_text()
    root = tmp_path_factory.mktemp("savedmodels")
    models = {}
    for name in ("protonet", "matching-fce"):
        keras.utils.set_random_seed(0)
        model = TEXT_LEARNERS[name](small_text_embedding(data.texts))
        model(next(iter(episodes(data, 3, 1, 2, seed=0, meta_batch_size=2))))
        moved_off_initialization(model)
        models[name] = (model, export_saved_model(model, root / name))
    batch = next(evaluation_episodes(data, 3, 2, 2, num_episodes=1, meta_batch_size=1).as_numpy_iterator())
    request = {"support_x": batch["support_x"][0].astype(str), "support_y": batch["support_y"][0],
               "query_x": np.array(["key0x1 noise3 unseen words", "KEY1X2, noise7!", "key2x0", "noise1 key0x4",
                                    "key1x3 key1x1", "zebra key2x2"])}
    return models, request


@pytest.fixture(scope="module")
def loaded_text_models(exported_text_models):
    return loaded_exports(exported_text_models[0])


def predicted_probabilities(model, request):
    return tf.nn.softmax(model.predict({key: value[None] for key, value in request.items()}, verbose=0)[0]).numpy()


def test_text_models_serve_on_strings_in_a_process_without_tfmeta_or_keras(exported_text_models, tmp_path):
    models, request = exported_text_models
    np.savez(tmp_path / "request.npz", **request)
    subprocess.run([sys.executable, "-c", CLIENT, tmp_path / "request.npz", tmp_path / "outputs.npz",
                    *[str(path) for _, path in models.values()]], check=True, cwd=tmp_path, timeout=300)
    outputs = np.load(tmp_path / "outputs.npz")
    for index, (name, (model, path)) in enumerate(models.items()):
        expected = predicted_probabilities(model, request)
        assert outputs[f"probabilities_{index}"].shape == (6, 3)
        np.testing.assert_allclose(outputs[f"probabilities_{index}"], expected, atol=1e-5, err_msg=name)
        np.testing.assert_array_equal(outputs[f"classes_{index}"], expected.argmax(-1), err_msg=name)
        card = json.loads((path.parent / "model.json").read_text())
        assert card["input_dtype"] == "string" and card["input_shape"] == []


@pytest.mark.parametrize("change, message", [
    (dict(query_x=np.array(["key0x1", "  "])), "query_x holds an empty or blank string"),
    # Text of no known word: Chinese is one unknown word (no spaces), "zebra" was never seen in training.
    (dict(query_x=np.array(["key0x1", "这是一个中文句子", "key1x2", "zebra"])),
     r"a text holds no word of the vocabulary of the model .*Texts without a known word:\] \[2\]"),
    (dict(support_x=np.array(["key0x1", "key0x2", "汉字", "key1x3", "key2x1", "key2x2"])),
     r"no word of the vocabulary of the model .*Texts without a known word:\] \[1\]"),
    (dict(support_x=np.array([], str), support_y=np.array([], np.int32)), "support_x is empty"),
    (dict(support_y=np.array([0, 0, 1, 1, 3, 3], np.int32)), "a class has no support example"),
    (dict(support_y=np.array([0, 0, 1, 1, 2, -1], np.int32)), "support_y holds a negative label"),
])
def test_served_text_models_refuse_bad_requests_in_the_graph(exported_text_models, loaded_text_models, change,
                                                            message):
    _, request = exported_text_models
    serve = loaded_text_models["protonet"].signatures["serving_default"]
    with pytest.raises(tf.errors.InvalidArgumentError, match=message):
        serve(**{key: tf.constant(value) for key, value in {**request, **change}.items()})


def test_the_documented_text_rest_body_predicts_what_the_model_does(exported_text_models, loaded_text_models):
    models, request = exported_text_models
    model, path = models["matching-fce"]
    namespace = {"support_x": request["support_x"].tolist(), "support_y": request["support_y"],
                 "query_x": request["query_x"].tolist()}
    exec(rest_request_code("docs/text.md"), namespace)
    body = json.loads(namespace["body"])["inputs"]
    # TF Serving converts each JSON input to the dtype its signature declares.
    serve = loaded_text_models["matching-fce"].signatures["serving_default"]
    dtypes = {spec.name: spec.dtype for spec in serve.structured_input_signature[1].values()}
    outputs = serve(**{key: tf.constant(value, dtypes[key]) for key, value in body.items()})
    np.testing.assert_allclose(outputs["probabilities"].numpy(), predicted_probabilities(model, request), atol=1e-5)
    with pytest.raises(ValueError, match="input_range.*takes strings"):
        export_saved_model(model, path.parent, 2, input_range=(0.0, 1.0))


def numpy_tfidf_nearest_mean(training_texts, support_x, support_y, query_x, tokenize="words"):
    """TF-IDF, cosine to the L2-normalised class means."""
    _, vector = numpy_tfidf(training_texts, tokenize)
    support = np.array([vector(text) for text in support_x])
    means = np.array([support[support_y == label].mean(0) for label in range(support_y.max() + 1)])
    means /= np.linalg.norm(means, axis=1, keepdims=True)
    return np.array([np.argmax(means @ vector(text)) for text in query_x])


def test_tfidf_baseline_matches_a_numpy_reference():
    data = keyword_text()
    training_texts = data.texts[::2]
    predict = tfidf_nearest_prototype(training_texts)
    for batch in evaluation_episodes(data, 3, 2, 4, num_episodes=4, meta_batch_size=2).as_numpy_iterator():
        predicted = predict(batch["support_x"], batch["support_y"], batch["query_x"]).numpy()
        for task in range(2):
            decoded = {key: [text.decode() for text in batch[key][task]] for key in ("support_x", "query_x")}
            expected = numpy_tfidf_nearest_mean(training_texts, decoded["support_x"], batch["support_y"][task],
                                                decoded["query_x"])
            np.testing.assert_array_equal(predicted[task], expected)


def test_the_text_example_trains_and_compares_with_tfidf_on_the_same_episodes(tmp_path):
    write_split_folder(tmp_path, keyword_text(num_classes=9, per_class=8),
                       {"train": "012", "validation": "345", "test": "678"})
    spec = importlib.util.spec_from_file_location("text_fewshot", REPO / "examples/text_fewshot.py")
    example = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example)
    record = example.main(["--data", str(tmp_path), "--algorithm", "matching-fce", "--ways", "3", "--shots", "1",
                           "--queries", "2", "--iterations", "4", "--epochs", "2", "--meta-batch", "2",
                           "--val-episodes", "4", "--test-episodes", "6", "--vocabulary-size", "100",
                           "--sequence-length", "8", "--output", str(tmp_path / "result.json")])
    assert json.loads((tmp_path / "result.json").read_text()) == record
    assert record["algorithm"] == "Matching Networks (FCE)" and record["test_episodes"] == 6
    paired = np.array(record["accuracy"]) - record["baseline_on_the_same_episodes"]["accuracy"]
    assert record["minus_baseline"]["accuracy"] == pytest.approx(paired)
    assert len(record["val_accuracy"]) == 2 and record["command"].startswith("python")


def keras_vocabulary_order(embedding, vocabulary):
    """Indices into the sorted `vocabulary` of the embedding's TF-IDF features (Keras orders them by frequency)."""
    keras_terms = embedding.get_layer("tf_idf").get_vocabulary()[1:]  # 0: out of vocabulary, left out
    assert sorted(keras_terms) == vocabulary
    return [vocabulary.index(term) for term in keras_terms]


def test_the_tfidf_embedding_starts_at_tfidf_and_reweights_terms_as_a_numpy_reference():
    data = keyword_text()
    training_texts = data.texts[::2]
    vocabulary, vector = numpy_tfidf(training_texts)
    embedding = text_tfidf_embedding(training_texts, initial_scale=3.0)
    order = keras_vocabulary_order(embedding, vocabulary)
    texts = np.array([*data.texts[1:12:3], "KEY0X1 noise3 unseen"])  # upper case, and a word out of vocabulary
    tfidf = np.array([vector(text) for text in texts])[:, order]
    np.testing.assert_allclose(embedding(texts).numpy(), 3.0 * tfidf, atol=1e-5)

    reweighting = embedding.get_layer("reweighting")
    log_weights = np.random.default_rng(0).normal(size=len(order)).astype(np.float32)
    reweighting.term_log_weights.assign(log_weights)
    reweighting.log_scale.assign(np.log(2.0))
    weighted = tfidf * np.exp(log_weights)
    expected = 2.0 * weighted / np.linalg.norm(weighted, axis=1, keepdims=True)
    np.testing.assert_allclose(embedding(texts).numpy(), expected, atol=1e-5)


def test_the_tfidf_embedding_refuses_a_text_of_no_known_word_outside_training_only():
    embedding = text_tfidf_embedding(["a web browser", "chess game for two"], dropout=0.0)
    assert embedding(np.array(["web", "chess browser"])).shape[0] == 2
    with pytest.raises(tf.errors.InvalidArgumentError, match="no word of the vocabulary of the model"):
        embedding(np.array(["web game", "网页浏览器"]))
    # In training an unknown text is let through (term dropout may empty any short text): its vector is zero.
    np.testing.assert_array_equal(embedding(np.array(["网页浏览器"]), training=True), 0.0)


def test_the_tfidf_embedding_projection_adds_learned_features():
    data = keyword_text()
    vocabulary, vector = numpy_tfidf(data.texts)
    embedding = text_tfidf_embedding(data.texts, projection_dim=4, initial_scale=1.0)
    tfidf = np.array([vector(text) for text in data.texts[:5]])[:, keras_vocabulary_order(embedding, vocabulary)]
    projection = embedding.get_layer("reweighting").projection.numpy()
    features = np.concatenate([tfidf, tfidf @ projection], axis=1)
    np.testing.assert_allclose(embedding(data.texts[:5]).numpy(),
                               features / np.linalg.norm(features, axis=1, keepdims=True), atol=1e-5)
    assert embedding.output_shape == (None, len(vocabulary) + 4)


@pytest.mark.parametrize("distance, shots", [("squared_euclidean", 1), ("cosine", 1), ("cosine", 3)])
def test_an_untrained_tfidf_protonet_predicts_the_class_mean_of_highest_tfidf_cosine(distance, shots):
    """As the TF-IDF baseline does; with one shot the squared distance ranks as the cosine (unit vectors)."""
    data = keyword_text(num_classes=8)
    training_texts = data.texts[::3]
    _, vector = numpy_tfidf(training_texts)
    model = tfmeta.PrototypicalNetwork(text_tfidf_embedding(training_texts), distance=distance)
    decided = 0
    for batch in evaluation_episodes(data, 5, shots, 4, num_episodes=6, meta_batch_size=3).as_numpy_iterator():
        predicted = model.predict(batch, verbose=0).argmax(-1)
        for task in range(3):
            support, query = (np.array([vector(text.decode()) for text in batch[key][task]])
                              for key in ("support_x", "query_x"))
            means = np.stack([support[batch["support_y"][task] == label].mean(0) for label in range(5)])
            cosines = query @ (means / np.linalg.norm(means, axis=1, keepdims=True)).T
            # Queries whose best classes are tied (e.g. no word in common with any) may go either way.
            top_two = np.sort(cosines, axis=-1)[:, -2:]
            clear = top_two[:, 1] - top_two[:, 0] > 1e-4
            np.testing.assert_array_equal(predicted[task][clear], cosines.argmax(-1)[clear])
            decided += clear.sum()
    assert decided > 0.6 * 6 * 20


def test_the_tfidf_embedding_keeps_its_weights_through_saving_and_refuses_bad_arguments(tmp_path):
    data = keyword_text()
    model = tfmeta.PrototypicalNetwork(text_tfidf_embedding(data.texts, projection_dim=3))
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(episodes(data, 3, 1, 2, seed=0, meta_batch_size=2), steps_per_epoch=3, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.embedding(data.texts[:6]).numpy(), model.embedding(data.texts[:6]).numpy(),
                               atol=1e-6)
    assert not np.allclose(model.embedding.get_layer("reweighting").term_log_weights.numpy(), 0.0)
    with pytest.raises(ValueError, match="projection_dim=-1"):
        TermReweighting(projection_dim=-1)
    with pytest.raises(ValueError, match="initial_scale=0"):
        TermReweighting(initial_scale=0)
    with pytest.raises(ValueError, match="dropout=1.0"):
        text_tfidf_embedding(data.texts, dropout=1.0)


def write_split_folder(folder, data, classes_of_split, suffix=".tsv.gz"):
    """`train`, `validation` and `test` files of `data`'s texts of the classes named by digit strings."""
    folder.mkdir(exist_ok=True)
    for name, classes in classes_of_split.items():
        write_lines(folder / f"{name}{suffix}", [f"class{c}\t{text}" for c in classes
                                                 for text in data.texts[data.labels == int(c)]])
    return folder


def test_text_splits_are_read_from_a_folder_and_must_not_share_classes(tmp_path):
    data = keyword_text(num_classes=6, per_class=3)
    folder = write_split_folder(tmp_path / "corpus", data, {"train": "01", "validation": "2", "test": "345"},
                                suffix=".tsv")
    splits = tfmeta.data.read_text_splits(folder)
    assert [splits[name].class_names for name in ("train", "validation", "test")] == [
        ["class0", "class1"], ["class2"], ["class3", "class4", "class5"]]
    assert splits["test"].texts.tolist() == data.texts[9:].tolist()
    write_lines(folder / "validation.tsv.gz", [f"class1\t{text}" for text in data.texts[:2]])  # .gz comes first
    with pytest.raises(ValueError, match="train and validation splits share 1 class.*'class1'"):
        tfmeta.data.read_text_splits(folder)
    (folder / "test.tsv").unlink()
    with pytest.raises(FileNotFoundError, match="No test file in .*test.tsv.gz or test.tsv"):
        tfmeta.data.read_text_splits(folder)
    with pytest.raises(FileNotFoundError, match="No folder at"):
        tfmeta.data.read_text_splits(tmp_path / "none")


TAGGED_PACKAGES = """Package: a
Section: net
Tag: use::browsing, role::program, web::browser
Description: web browser
Description-md5: aa

Package: b
Section: net
Tag: use::browsing, interface::x11
Description: text browser
Description-md5: bb

Package: c
Section: games
Tag: game::strategy, use::gameplaying
Description: chess
Description-md5: cc

Package: d
Section: games
Tag: game::strategy, use::gameplaying
Description: go board game
Description-md5: dd

Package: e
Section: games
Tag: role::program, interface::x11
Description: no topical tag, left out
Description-md5: ee

Package: f
Section: games
Tag: use::gameplaying, game::TODO
Description: tetris
Description-md5: ff
"""

TRANSLATIONS = """Package: a
Description-md5: aa
Description-en: web browser
 A fast browser for the
 .
 world wide web.

Package: c
Description-md5: cc
Description-en: chess
 Plays chess against you at several levels of strength.

Package: d
Description-md5: other
Description-en: go board game
 A long description of another version, not used.
"""


def test_the_debian_corpus_script_labels_by_rarest_topical_debtag_with_long_descriptions(tmp_path):
    (tmp_path / "Packages").write_text(TAGGED_PACKAGES)
    (tmp_path / "Translation-en").write_text(TRANSLATIONS)
    run_prepare_script([str(tmp_path / "Packages"), "--label", "debtags", "--translations",
                        str(tmp_path / "Translation-en"), "--max-words", "6", "--output", str(tmp_path / "out"),
                        "--min-per-class", "1", "--fractions", "1.0", "0.0"])
    lines = gzip.open(tmp_path / "out/train.tsv.gz", "rt").read().splitlines()
    # web::browser (1 package) is rarer than use::browsing (2), use::gameplaying (3); game::strategy (2) comes
    # before use::gameplaying; role::, interface:: and TODO tags are not topical.
    assert sorted(lines) == ["game::strategy\tchess Plays chess against you at",
                             "game::strategy\tgo board game",
                             "use::browsing\ttext browser",
                             "use::gameplaying\ttetris",
                             "web::browser\tweb browser A fast browser for"]
    splits = json.loads((tmp_path / "out/splits.json").read_text())
    assert splits["label"] == "debtags" and splits["max_words"] == 6 and splits["dropped_classes"] == {}


CHINESE_TRANSLATIONS = """Package: a
Description-md5: aa
Description-zh_CN: 网页浏览器
 一个快速的网页浏
 览器，支持 HTTP
 协议。

Package: c
Description-md5: cc
Description-zh_CN: 国际象棋
"""


def test_the_debian_corpus_script_builds_a_chinese_corpus_of_the_translated_packages_only(tmp_path):
    (tmp_path / "Packages").write_text(TAGGED_PACKAGES)
    (tmp_path / "Translation-zh_CN").write_text(CHINESE_TRANSLATIONS, encoding="utf-8")
    run_prepare_script([str(tmp_path / "Packages"), "--translations", str(tmp_path / "Translation-zh_CN"),
                        "--language", "zh_CN", "--output", str(tmp_path / "out"), "--min-per-class", "1",
                        "--fractions", "1.0", "0.0"])
    lines = gzip.open(tmp_path / "out/train.tsv.gz", "rt", encoding="utf-8").read().splitlines()
    # Lines wrapped inside Chinese text join without a space; packages without a translation are left out.
    assert sorted(lines) == ["games\t国际象棋", "net\t网页浏览器 一个快速的网页浏览器，支持 HTTP 协议。"]
    assert json.loads((tmp_path / "out/splits.json").read_text())["language"] == "zh_CN"
    with pytest.raises(SystemExit):
        run_prepare_script([str(tmp_path / "Packages"), "--language", "zh_CN", "--output", str(tmp_path / "x")])


TEXT_CLI_FLAGS = {"protonet": [], "matching": [], "matching-fce": ["--fce"]}


@pytest.mark.parametrize("name", TEXT_CLI_FLAGS)
def test_tfmeta_train_on_a_text_folder_compares_with_tfidf_on_the_same_episodes_and_exports(name, tmp_path,
                                                                                             monkeypatch):
    data = keyword_text(num_classes=9, per_class=8)
    write_split_folder(tmp_path / "corpus", data, {"train": "012", "validation": "345", "test": "678"})
    monkeypatch.chdir(tmp_path)
    cli.main(["train", "--algorithm", name.split("-")[0], *TEXT_CLI_FLAGS[name], "--dataset", "text:corpus",
              "--ways", "3", "--queries", "2", "--meta-batch", "2", "--iterations", "4", "--iterations-per-epoch",
              "2", "--val-episodes", "2", "--test-episodes", "6"])
    run = tmp_path / "runs" / f"corpus-{name.split('-')[0]}-3w1s"
    results = json.loads((run / "results.json").read_text())
    assert results["embedding"] == "text_tfidf_embedding" and results["config"]["meta_lr"] == 0.01
    assert results["algorithm"] == {"protonet": "Prototypical Networks", "matching": "Matching Networks",
                                    "matching-fce": "Matching Networks (FCE)"}[name]
    test = tfmeta.data.read_labelled_lines("corpus/test.tsv.gz")
    baseline = tfidf_nearest_prototype(tfmeta.data.read_labelled_lines("corpus/train.tsv.gz").texts)
    correct = [np.mean(baseline(b["support_x"], b["support_y"], b["query_x"]).numpy() == b["query_y"], axis=-1)
               for b in evaluation_episodes(test, 3, 1, 2, 6, meta_batch_size=3).as_numpy_iterator()]
    assert results["baseline_accuracy"] == pytest.approx(np.mean(correct))
    assert results["minus_baseline"] == pytest.approx(results["accuracy"] - results["baseline_accuracy"])
    cli.main(["export", str(run / "model.keras"), "served"])
    card = json.loads((tmp_path / "served/model.json").read_text())
    assert card["input_dtype"] == "string" and card["baseline"] == "TF-IDF nearest class mean"
    assert card["baseline_accuracy"] == results["baseline_accuracy"] and card["accuracy"] == results["accuracy"]
    # tfmeta evaluate scores the served model (on strings) on the training run's test episodes, as it did.
    cli.main(["evaluate", "served", "--queries", "2", "--episodes", "6", "--output", "evaluation.json"])
    evaluation = json.loads((tmp_path / "evaluation.json").read_text())["evaluation"]
    assert evaluation["dataset"] == "text:corpus" and (evaluation["ways"], evaluation["shots"]) == (3, 1)
    for key in ("accuracy", "baseline_accuracy", "minus_baseline"):
        assert evaluation[key] == pytest.approx(results[key], abs=1e-6)
    with pytest.raises(SystemExit, match="classifies text: name a corpus with --dataset text:DIR"):
        cli.main(["evaluate", "served", "--dataset", "images:corpus"])


def test_tfmeta_train_refuses_maml_on_text_and_names_a_bad_text_folder(tmp_path):
    with pytest.raises(SystemExit, match="text corpora train matching or protonet; received --algorithm maml"):
        cli.main(["train", "--algorithm", "maml", "--dataset", f"text:{tmp_path}"])
    with pytest.raises(SystemExit, match="No train file in"):
        cli.main(["train", "--algorithm", "protonet", "--dataset", f"text:{tmp_path}",
                  "--output-dir", str(tmp_path / "run")])
    with pytest.raises(SystemExit, match="takes numbers, not text; received --dataset text:"):
        cli.main(["evaluate", str(REPO / "savedmodels/protonet-omniglot-5w1s"), "--dataset", f"text:{tmp_path}"])


@pytest.mark.parametrize("name", ["protonet-debian-debtags-5w1s", "protonet-debian-packages-zh_CN-5w1s"])
def test_the_committed_text_model_reproduces_its_recorded_accuracy_and_baseline(name):
    # The first 50 of the recorded 1,000 test episodes, served on strings (Chinese ones for zh_CN); the recorded
    # accuracies (over all of them) must lie within this run's intervals.
    card = json.loads((REPO / "savedmodels" / name / "model.json").read_text())
    loaded = tf.saved_model.load(str(REPO / "savedmodels" / name / "1"))  # keeps the variables
    serve = loaded.signatures["serving_tasks"]
    splits = tfmeta.data.read_text_splits(REPO / card["dataset"][len("text:"):])

    def stream():
        return evaluation_episodes(splits["test"], card["ways"], card["shots"], card.get("queries", 15), 50,
                                   meta_batch_size=tfmeta.data.fitting_meta_batch_size(50))

    model = episode_accuracies(lambda sx, sy, qx: serve(support_x=sx, support_y=tf.cast(sy, tf.int32),
                                                        query_x=qx)["probabilities"], stream(), 50, verbose=0)
    training_texts = splits["train"].texts
    baseline = episode_accuracies(tfidf_nearest_prototype(training_texts, tokenize=card.get("tokenize", "words")),
                                  stream(), 50, verbose=0)
    for accuracies, recorded, recorded_ci95 in ((model, card["accuracy"], card["ci95"]),
                                                (baseline, card["baseline_accuracy"], card["baseline_ci95"])):
        mean, ci95 = mean_confidence_interval(accuracies)
        assert abs(mean - recorded) <= max(ci95, recorded_ci95)
