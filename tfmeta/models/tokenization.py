"""How raw text becomes tokens inside a model: words, or characters for scripts written without spaces."""

import keras
import numpy as np
import tensorflow as tf

from tfmeta.modes import TOKENIZATIONS

# Scripts written without spaces between words: a whitespace split reads a whole phrase of them as one token.
NO_SPACE_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar")
# An RE2 class of their characters, with the prolonged sound mark ー, which Unicode assigns to no script (Common)
# but Japanese writes inside words.
NO_SPACE_CHARACTER = "[" + "".join(rf"\p{{{script}}}" for script in NO_SPACE_SCRIPTS) + r"\x{30FC}]"
# Unicode punctuation, symbols and separators (，。「」、U+3000 ...) end a token; Keras's standardization removes
# ASCII punctuation only.
SEPARATOR = r"[\p{P}\p{S}\p{Z}]"
# "auto" reads by characters when at least this share of the training texts holds a script without spaces (and
# "words" is refused there); a stray foreign name in a corpus changes nothing.
AUTO_SHARE = 0.01


@keras.saving.register_keras_serializable(package="tfmeta")
def split_characters(texts):
    """Splits standardized strings `[batch]` into tokens `[batch, (tokens)]`, in the order they are written.

    Text in a script written without spaces (`NO_SPACE_SCRIPTS`: Chinese,
    Japanese, Thai, ...) gives each of its characters and each pair of
    adjacent characters (unigrams and bigrams); text in other scripts gives
    its words, split at whitespace, punctuation and symbols. `"用python写的"`
    -> `["用", "python", "写", "写的", "的"]`.
    """
    texts = tf.strings.regex_replace(texts, SEPARATOR, " ")
    characters = tf.strings.unicode_split(texts, "UTF-8", errors="replace")
    flat, text_of = characters.flat_values, characters.value_rowids()
    no_space = tf.strings.regex_full_match(flat, NO_SPACE_CHARACTER)
    following = tf.concat([flat, [""]], 0)[1:]
    pairs = (no_space & tf.concat([no_space, [False]], 0)[1:]
             & tf.equal(tf.concat([text_of, [-1]], 0)[1:], text_of))  # adjacent in the same text
    pieces = tf.where(no_space,
                      tf.strings.join([" ", flat, " ", tf.where(pairs, tf.strings.join([flat, following, " "]), "")]),
                      flat)
    return tf.strings.split(tf.strings.reduce_join(characters.with_flat_values(pieces), axis=1))


class UnsplittableTextError(ValueError):
    """Text in a script without spaces, given to a word tokenization: `index` and `script` name the first one."""

    def __init__(self, index, text, script):
        self.index, self.text, self.script = index, text, script
        super().__init__(f"text {index} ({text[:40]!r}) is written in {script}, without spaces between words: "
                         "tokenize='words' would read each of its phrases as one token; use "
                         "tokenize='characters' (or 'auto', which chooses it).")


def _no_space_script(text):
    """The first of `NO_SPACE_SCRIPTS` that `text` is written in (Katakana for a lone ー)."""
    return next((script for script in NO_SPACE_SCRIPTS
                 if tf.strings.regex_full_match(text, rf"(?s).*\p{{{script}}}.*").numpy()), "Katakana")


def resolve_tokenization(tokenize, training_texts):
    """`"words"` or `"characters"`: `tokenize`, with `"auto"` chosen from `training_texts`.

    `"auto"` is `"characters"` when at least `AUTO_SHARE` of the texts hold
    a character of a script written without spaces, else `"words"`; on such
    texts `"words"` is refused (`UnsplittableTextError`).
    """
    if tokenize not in TOKENIZATIONS:
        raise ValueError(f"`tokenize` must be one of {TOKENIZATIONS}; received tokenize={tokenize!r}.")
    if tokenize == "characters":
        return tokenize
    texts = np.asarray(training_texts, dtype=str)
    holds = tf.strings.regex_full_match(texts, rf"(?s).*{NO_SPACE_CHARACTER}.*").numpy()
    if holds.mean() < AUTO_SHARE:
        return "words"
    if tokenize == "auto":
        return "characters"
    index = int(np.argmax(holds))
    raise UnsplittableTextError(index, str(texts[index]), _no_space_script(texts[index]))


def text_vectorization(training_texts, tokenize="auto", **kwargs):
    """`keras.layers.TextVectorization(**kwargs)` adapted on `training_texts`, split as `tokenize` resolves.

    Both ways keep Keras's standardization (lower case, ASCII punctuation
    removed): `"words"` is its whitespace split, `"characters"` is
    `split_characters`. The split is part of the layer's configuration, so a
    saved or exported model tokenizes as it was trained.
    """
    split = "whitespace" if resolve_tokenization(tokenize, training_texts) == "words" else split_characters
    layer = keras.layers.TextVectorization(split=split, **kwargs)
    layer.adapt(np.asarray(training_texts, dtype=str))
    return layer
