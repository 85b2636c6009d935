"""A pretrained KerasHub text encoder as the embedding of a metric learner, its tokenizer inside the model."""

import keras

INSTALL = 'KerasHub is an optional extra of tfmeta: pip install ".[text]"'


def _keras_hub():
    try:
        import keras_hub
    except ImportError as error:
        raise ImportError(f"A pretrained text encoder needs KerasHub ({error}); {INSTALL}.") from None
    return keras_hub


@keras.saving.register_keras_serializable(package="tfmeta")
class PretrainedTextEncoder(keras.layers.Layer):
    """Raw strings `[batch]` -> a KerasHub preprocessor -> its backbone -> the mean of the text's token features.

    The preprocessor (tokenizer, special tokens, padding to its sequence
    length) runs inside the layer, so a saved or exported model takes raw
    strings; the mean is over the non-padding tokens (`padding_mask`).

    Args:
        preprocessor: a `keras_hub.models.TextClassifierPreprocessor`.
        backbone: the `keras_hub.models.Backbone` its outputs feed; a dict
            output gives its `sequence_output`.
        trainable: fine-tune the backbone (`False`: frozen, only what is
            on top of it learns).
    """

    def __init__(self, preprocessor, backbone, trainable=False, **kwargs):
        super().__init__(**kwargs)
        keras_hub = _keras_hub()
        if not isinstance(preprocessor, keras_hub.models.Preprocessor):
            raise ValueError(f"`preprocessor` must be a KerasHub preprocessor; received {preprocessor!r}.")
        if not isinstance(backbone, keras_hub.models.Backbone):
            raise ValueError(f"`backbone` must be a KerasHub backbone; received {backbone!r}.")
        self.preprocessor, self.backbone = preprocessor, backbone
        self.backbone.trainable = self.fine_tune = bool(trainable)
        if self.fine_tune and isinstance(backbone.output, dict):
            # Layers that do not lead to the token features (BERT's pooler) would get no gradient: frozen.
            used = {id(layer) for layer in keras.Model(backbone.inputs, backbone.output["sequence_output"]).layers}
            for layer in backbone.layers:
                layer.trainable = layer.trainable and id(layer) in used

    def build(self, input_shape):
        pass  # the preprocessor and backbone come built (from their preset)

    def call(self, texts):
        inputs = self.preprocessor(texts)
        features = self.backbone(inputs)
        if isinstance(features, dict):
            features = features["sequence_output"]
        mask = keras.ops.expand_dims(keras.ops.cast(inputs["padding_mask"], features.dtype), -1)
        pooled = keras.ops.sum(features * mask, axis=1) / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)
        return keras.ops.cast(pooled, "float32")

    def compute_output_shape(self, input_shape):
        return (*input_shape, self.backbone.hidden_dim)

    def get_config(self):
        return {**super().get_config(), "trainable": self.fine_tune,
                "preprocessor": keras.saving.serialize_keras_object(self.preprocessor),
                "backbone": keras.saving.serialize_keras_object(self.backbone)}

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("preprocessor", "backbone"):
            config[key] = keras.saving.deserialize_keras_object(config[key])
        return cls(**config)


def pretrained_text_embedding(source, trainable=False, sequence_length=None, name="pretrained_text_embedding"):
    """A KerasHub text backbone with its preprocessor, as an embedding of raw strings `[batch]`.

    Args:
        source: a KerasHub preset name (downloaded from its hub on first
            use, e.g. `"bert_base_multi"`) or a folder written by
            `save_to_preset` holding a backbone and a text classifier
            preprocessor.
        trainable: fine-tune the backbone (default: frozen).
        sequence_length: tokens read per text (default: the preset's).

    Example:
        >>> protonet = tfmeta.PrototypicalNetwork(pretrained_text_embedding("bert_base_multi"),
        ...                                       distance="cosine", temperature=10.0)
    """
    keras_hub = _keras_hub()
    options = {} if sequence_length is None else {"sequence_length": sequence_length}
    preprocessor = keras_hub.models.TextClassifierPreprocessor.from_preset(source, **options)
    backbone = keras_hub.models.Backbone.from_preset(source)
    texts = keras.Input(shape=(), dtype="string", name="texts")
    return keras.Model(texts, PretrainedTextEncoder(preprocessor, backbone, trainable, name="encoder")(texts),
                       name=name)
