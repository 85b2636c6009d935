"""Text in scripts written without spaces: tokenization inside the models, the baseline and the command line."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import cli
from tfmeta.baselines import tfidf_nearest_prototype
from tfmeta.data import LabelledText, evaluation_episodes
from tfmeta.models.tokenization import UnsplittableTextError, resolve_tokenization, text_vectorization
from tfmeta.serving import export_saved_model

from conftest import numpy_tfidf, reference_tokens
from test_text import write_split_folder

# Per language: the keywords of each class, the words every class uses, and how words are joined.
LANGUAGES = {
    "chinese": ({"games": ["游戏", "象棋", "玩家", "关卡", "策略"], "network": ["网络", "浏览器", "服务器", "协议", "下载"],
                 "sound": ["音频", "音乐", "播放", "声卡", "录音"], "science": ["数学", "物理", "化学", "计算", "统计"],
                 "office": ["文档", "表格", "打印", "字体", "编辑"], "system": ["内核", "驱动", "磁盘", "启动", "系统"]},
                ["一个", "软件", "程序", "支持", "可以", "用于", "提供", "使用", "功能", "简单", "开源", "工具"], ""),
    "japanese": ({"games": ["ゲーム", "将棋", "プレイヤー", "ステージ", "対戦"],
                  "network": ["ネットワーク", "ブラウザ", "サーバー", "通信", "々木"],
                  "sound": ["音楽", "オーディオ", "再生", "録音", "サウンド"], "science": ["数学", "物理", "化学", "計算", "統計"]},
                 ["ソフトウェア", "を", "の", "ための", "する", "できます", "簡単", "ツール", "使う", "は"], ""),
    # Chinese with English names in it, as Chinese package descriptions are written.
    "mixed": ({"games": ["游戏", "Chess", "玩家", "OpenGL", "策略"], "network": ["网络", "HTTP", "服务器", "Web", "下载"],
               "sound": ["音频", "ALSA", "播放", "MP3", "录音"], "science": ["数学", "Python", "化学", "NumPy", "统计"]},
              ["一个", "软件", "GNU", "支持", "可以", "Linux", "提供", "使用", "library", "简单", "开源", "GTK"], " "),
}


def corpus(language, per_class=10, seed=0):
    """`LabelledText` whose class shows in 2 of its 5 keywords, among 4 words all classes share, joined as
    the language writes them, with punctuation (ASCII, full width) and an ideographic space between."""
    keywords, shared, join = LANGUAGES[language]
    rng = np.random.default_rng(seed)
    texts = []
    for words in keywords.values():
        for i in range(per_class):
            chosen = list(rng.permutation([*rng.choice(words, 2, replace=False), *rng.choice(shared, 4)]))
            texts.append(join.join(chosen[:3]) + ["，", "、", "! ", "\u3000"][i % 4] + join.join(chosen[3:]) + "。")
    return LabelledText(texts, np.repeat(np.arange(len(keywords)), per_class), list(keywords))


@pytest.mark.parametrize("language", LANGUAGES)
def test_the_text_vectorization_reads_each_script_as_a_python_reference(language):
    texts = [*corpus(language).texts[::7], "Ｐython「開源」GTK+ 3，中文。", "ภาษาไทย Thai", "no space script here"]
    vectorize = text_vectorization(texts, "characters", output_mode="int", ragged=True)
    vocabulary = np.array(vectorize.get_vocabulary())
    for text, ids in zip(texts, vectorize(tf.constant(texts)).to_list()):
        assert vocabulary[ids].tolist() == reference_tokens(text, "characters"), text
    assert resolve_tokenization("auto", texts) == "characters"


def test_auto_reads_by_characters_when_a_hundredth_of_the_texts_need_it_and_words_are_refused_there():
    english = [f"plain english text {i}" for i in range(99)]
    assert resolve_tokenization("auto", english) == "words"
    assert resolve_tokenization("auto", [*english, "English with a name: 北京"]) == "characters"
    assert resolve_tokenization("auto", [*english, "another English text", "English with a name: 北京"]) == "words"
    for texts, script in ((corpus("chinese").texts, "Han"), (["ひらがなだけ"], "Hiragana"), (["ภาษาไทย"], "Thai")):
        with pytest.raises(UnsplittableTextError, match=rf"text 1 .* is written in {script}.*tokenize='characters'"):
            resolve_tokenization("words", ["plain", *texts])
    assert resolve_tokenization("characters", english) == "characters"
    with pytest.raises(ValueError, match="tokenize='letters'"):
        resolve_tokenization("letters", english)


def keras_order(embedding, vocabulary):
    """Indices into the sorted `vocabulary` of the embedding's TF-IDF features (Keras orders them by frequency)."""
    terms = embedding.get_layer("tf_idf").get_vocabulary()[1:]  # 0: out of vocabulary, left out
    assert sorted(terms) == vocabulary
    return [vocabulary.index(term) for term in terms]


@pytest.mark.parametrize("language", ["chinese", "mixed"])
def test_the_tfidf_embedding_and_baseline_on_chinese_match_a_numpy_reference(language):
    data = corpus(language)
    training_texts = data.texts[::2]
    vocabulary, vector = numpy_tfidf(training_texts, "characters")
    embedding = tfmeta.models.text_tfidf_embedding(training_texts, initial_scale=3.0)
    texts = data.texts[1::5]
    expected = np.array([vector(text) for text in texts])[:, keras_order(embedding, vocabulary)]
    np.testing.assert_allclose(embedding(texts).numpy(), 3.0 * expected, atol=1e-5)

    predict = tfidf_nearest_prototype(training_texts)
    correct = []
    for batch in evaluation_episodes(data, 4, 1, 4, num_episodes=4, meta_batch_size=2).as_numpy_iterator():
        predicted = predict(batch["support_x"], batch["support_y"], batch["query_x"]).numpy()
        for task in range(2):
            support, query = (np.array([vector(text.decode()) for text in batch[key][task]])
                              for key in ("support_x", "query_x"))
            labels = batch["support_y"][task]
            cosines = query @ np.stack([support[labels == c][0] for c in range(4)]).T  # one shot: a text per class
            clear = np.diff(np.sort(cosines, axis=-1)[:, -2:], axis=-1)[:, 0] > 1e-4
            np.testing.assert_array_equal(predicted[task][clear], cosines.argmax(-1)[clear])
            correct += (predicted[task] == batch["query_y"][task]).tolist()
    assert np.mean(correct) > 0.5  # 4 ways: two texts of a class share characters, not whitespace-split words


def test_a_model_of_chinese_text_tokenizes_the_same_way_saved_and_served(tmp_path):
    data = corpus("chinese")
    keras.utils.set_random_seed(0)
    model = tfmeta.PrototypicalNetwork(tfmeta.models.text_tfidf_embedding(data.texts), distance="cosine",
                                       temperature=10.0)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(tfmeta.data.episodes(data, 3, 1, 2, seed=0, meta_batch_size=2), steps_per_epoch=2, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    request = tf.constant(["一个新的象棋游戏", "网络浏览器，支持HTTP", "播放音乐！", "未见过的字"])
    np.testing.assert_allclose(loaded.embedding(request).numpy(), model.embedding(request).numpy(), atol=1e-6)
    serve = tf.saved_model.load(str(export_saved_model(model, tmp_path / "served"))).signatures["serving_default"]
    support = {"support_x": tf.constant(["象棋游戏", "网络下载", "音频播放"]), "support_y": tf.constant([0, 1, 2])}
    served = serve(**support, query_x=tf.constant(request[:3]))["probabilities"].numpy()
    expected = model.predict({"support_x": support["support_x"][None], "support_y": support["support_y"][None],
                              "query_x": tf.constant(request[:3])[None]}, verbose=0)[0]
    np.testing.assert_allclose(served, tf.nn.softmax(expected).numpy(), atol=1e-5)
    assert served.argmax(-1).tolist() == [0, 1, 2]


def test_tfmeta_train_names_the_line_a_word_tokenization_cannot_split_and_reads_chinese_by_characters(
        tmp_path, monkeypatch):
    data = corpus("chinese", per_class=6)
    folder = write_split_folder(tmp_path / "corpus", data, {"train": "01", "validation": "23", "test": "45"})
    monkeypatch.chdir(tmp_path)
    flags = ["train", "--algorithm", "protonet", "--dataset", "text:corpus", "--ways", "2", "--queries", "2",
             "--meta-batch", "1", "--iterations", "1", "--val-episodes", "1", "--test-episodes", "2"]
    with pytest.raises(SystemExit, match=r"corpus/train.tsv.gz, line 1: '.*' is written in Han, without spaces "
                                         r"between words: .*use --tokenize characters \(or auto\)"):
        cli.main([*flags, "--tokenize", "words"])
    with pytest.raises(SystemExit, match="--tokenize applies to text corpora"):
        cli.main(["train", "--algorithm", "protonet", "--tokenize", "words"])
    cli.main(flags)
    results = json.loads((tmp_path / "runs/corpus-protonet-2w1s/results.json").read_text())
    assert results["tokenize"] == "characters" and results["config"]["tokenize"] == "auto"
