"""Names of settings shared by the library and the `tfmeta` command, importable without TensorFlow."""

# How MAML-family models normalize a task's queries (tfmeta.algorithms.predict_queries).
INFERENCE_MODES = ("per-query", "transductive")
# How text embeddings split texts into tokens (tfmeta.models.tokenization).
TOKENIZATIONS = ("words", "characters", "auto")
