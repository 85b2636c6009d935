"""A KerasHub backbone and its preprocessor as the embedding of a metric learner, loaded as a user loads a preset."""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

import tfmeta
from tfmeta import cli
from tfmeta.serving import export_saved_model

from test_text import write_split_folder
from test_tokenization import corpus

keras_hub = pytest.importorskip("keras_hub")


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    """A one-layer BERT with a WordPiece vocabulary of the Chinese test corpus's characters, saved with
    `save_to_preset` as a downloaded preset would be (presets themselves need the network)."""
    characters = sorted({c for text in corpus("chinese").texts for c in text if not c.isspace()})
    tokenizer = keras_hub.models.BertTokenizer(vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *characters])
    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.BertBackbone(vocabulary_size=tokenizer.vocabulary_size(), num_layers=1, num_heads=2,
                                             hidden_dim=16, intermediate_dim=32, max_sequence_length=32)
    folder = tmp_path_factory.mktemp("preset")
    backbone.save_to_preset(folder)
    keras_hub.models.BertTextClassifierPreprocessor(tokenizer, sequence_length=32).save_to_preset(folder)
    return folder


def test_the_pretrained_embedding_is_the_mean_of_the_backbones_token_features(tiny_preset):
    embedding = tfmeta.models.pretrained_text_embedding(str(tiny_preset))
    assert not embedding.trainable_weights  # frozen by default
    texts = tf.constant(["一个象棋游戏", "网络浏览器，支持HTTP协议"])
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(str(tiny_preset))
    inputs = preprocessor(texts)
    features = keras_hub.models.Backbone.from_preset(str(tiny_preset))(inputs)["sequence_output"].numpy()
    mask = inputs["padding_mask"].numpy()
    expected = np.stack([features[i][mask[i]].mean(0) for i in range(2)])
    np.testing.assert_allclose(embedding(texts).numpy(), expected, atol=1e-5)
    assert tfmeta.models.pretrained_text_embedding(str(tiny_preset), trainable=True).trainable_weights


def test_a_protonet_on_the_encoder_saves_and_serves_raw_chinese_strings(tiny_preset, tmp_path):
    model = tfmeta.PrototypicalNetwork(tfmeta.models.pretrained_text_embedding(str(tiny_preset)), distance="cosine",
                                       temperature=10.0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    request = {"support_x": tf.constant(["象棋游戏", "网络下载", "音频播放"]), "support_y": tf.constant([0, 1, 2]),
               "query_x": tf.constant(["一个新的象棋游戏", "播放音乐"])}
    expected = tf.nn.softmax(model.predict({key: value[None] for key, value in request.items()}, verbose=0)[0])
    np.testing.assert_allclose(loaded.embedding(request["query_x"]).numpy(),
                               model.embedding(request["query_x"]).numpy(), atol=1e-6)
    serve = tf.saved_model.load(str(export_saved_model(model, tmp_path / "served"))).signatures["serving_default"]
    np.testing.assert_allclose(serve(**request)["probabilities"].numpy(), expected.numpy(), atol=1e-5)
    with pytest.raises(tf.errors.InvalidArgumentError, match="query_x holds an empty or blank string"):
        serve(**{**request, "query_x": tf.constant(["象棋", " "])})


def test_tfmeta_train_fine_tunes_a_keras_hub_encoder_from_a_preset_folder(tiny_preset, tmp_path, monkeypatch):
    write_split_folder(tmp_path / "corpus", corpus("chinese", per_class=6), {"train": "01", "validation": "23",
                                                                              "test": "45"})
    monkeypatch.chdir(tmp_path)
    flags = ["train", "--algorithm", "protonet", "--dataset", "text:corpus", "--ways", "2", "--queries", "2",
             "--meta-batch", "1", "--iterations", "2", "--val-episodes", "1", "--test-episodes", "2"]
    with pytest.raises(SystemExit, match="--text-encoder takes keras-hub:PRESET_OR_DIR; received 'hub:x'"):
        cli.main([*flags, "--text-encoder", "hub:x"])
    with pytest.raises(SystemExit, match="--fine-tune-encoder fine-tunes the backbone of --text-encoder"):
        cli.main([*flags, "--fine-tune-encoder"])
    cli.main([*flags, "--text-encoder", f"keras-hub:{tiny_preset}", "--fine-tune-encoder"])
    run = tmp_path / "runs/corpus-protonet-2w1s"
    results = json.loads((run / "results.json").read_text())
    assert results["embedding"] == f"keras-hub:{tiny_preset}" and results["config"]["fine_tune_encoder"]
    trained = keras.models.load_model(run / "model.keras").embedding.get_layer("encoder").backbone
    pretrained = keras_hub.models.Backbone.from_preset(str(tiny_preset))
    assert any(not np.allclose(a, b) for a, b in zip(trained.get_weights(), pretrained.get_weights()))
