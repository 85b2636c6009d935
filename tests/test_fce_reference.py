"""Matching Networks' full context embeddings against a NumPy transcription of the paper's appendix.

Vinyals et al. 2016, appendix A, on fixed random weights:

    g(x_i, S) = h→_i + h←_i + g'(x_i)        (a bidirectional LSTM over the support set)
    ĥ_k, c_k = LSTM(f'(x̂), [h_{k-1}, r_{k-1}], c_{k-1})
    h_k = ĥ_k + f'(x̂)
    r_{k-1} = Σ_i softmax_i(h_{k-1}ᵀ g(x_i)) g(x_i)
    f(x̂, S) = h_K

with the LSTM's hidden state input `[h, r]` summed, `h + r` (tfmeta's documented variant), h_0 = f'(x̂)
and c_0 = 0; then P(y = c | x̂, S) = Σ_{i: y_i = c} softmax_i(temperature · cos(f(x̂, S), g(x_i, S))).
"""

import keras
import numpy as np

import tfmeta


def sigmoid(z):
    return 1.0 / (1.0 + np.exp(-z))


def lstm_step(x, h, c, kernel, recurrent_kernel, bias):
    """Keras's LSTMCell: gates i, f, c, o; sigmoid recurrent activation, tanh activation."""
    i, f, g, o = np.split(x @ kernel + h @ recurrent_kernel + bias, 4, axis=-1)
    c = sigmoid(f) * c + sigmoid(i) * np.tanh(g)
    return sigmoid(o) * np.tanh(c), c


def lstm_over(sequence, weights):
    h = c = np.zeros(sequence.shape[-1])
    outputs = []
    for x in sequence:
        h, c = lstm_step(x, h, c, *weights)
        outputs.append(h)
    return np.array(outputs)


def reference_log_probabilities(model, support_x, support_y, query_x, ways):
    kernel, bias = (w.numpy().astype(np.float64) for w in model.embedding.trainable_weights)
    embed = lambda x: x @ kernel + bias  # noqa: E731  (g' = f', one Dense layer)
    forward = [w.numpy().astype(np.float64) for w in model.support_lstm.forward_layer.cell.weights]
    backward = [w.numpy().astype(np.float64) for w in model.support_lstm.backward_layer.cell.weights]
    attention_cell = [w.numpy().astype(np.float64) for w in model.query_cell.weights]
    temperature = float(model.temperature.numpy())

    support = embed(support_x)
    g = lstm_over(support, forward) + lstm_over(support[::-1], backward)[::-1] + support
    results = []
    for x_hat in embed(query_x):
        h, c = x_hat, np.zeros_like(x_hat)
        for _ in range(model.fce_steps):
            scores = g @ h
            attention = np.exp(scores - scores.max()) / np.exp(scores - scores.max()).sum()
            r = attention @ g
            h_hat, c = lstm_step(x_hat, h + r, c, *attention_cell)
            h = h_hat + x_hat
        cosine = g @ h / (np.linalg.norm(g, axis=1) * np.linalg.norm(h))
        a = np.exp(temperature * cosine) / np.exp(temperature * cosine).sum()
        results.append(np.log([a[support_y == label].sum() for label in range(ways)]))
    return np.array(results)


def test_full_context_embeddings_follow_the_appendix_equations():
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5,))
    embedding = keras.Model(inputs, keras.layers.Dense(4)(inputs))
    model = tfmeta.MatchingNetwork(embedding, fce=True, fce_steps=3, temperature=2.0)
    rng = np.random.default_rng(1)
    for weight in model.weights:  # away from the initialisers' zeros and ones: every term matters
        weight.assign(rng.normal(scale=0.5, size=weight.shape).astype(np.float32) if weight.trainable
                      else weight.numpy())
    ways, shots, queries = 3, 2, 4
    episodes = {
        "support_x": rng.normal(size=[2, ways * shots, 5]).astype(np.float32),
        "support_y": np.tile(np.arange(ways).repeat(shots), [2, 1]).astype(np.int32),
        "query_x": rng.normal(size=[2, queries, 5]).astype(np.float32),
    }
    episodes["support_y"][1] = rng.permutation(episodes["support_y"][1])  # order matters with FCE
    predicted = model.predict(episodes, verbose=0)
    for t in range(2):
        expected = reference_log_probabilities(model, episodes["support_x"][t].astype(np.float64),
                                               episodes["support_y"][t], episodes["query_x"][t].astype(np.float64),
                                               ways)
        np.testing.assert_allclose(predicted[t], expected, rtol=1e-4, atol=1e-5)
