"""Matching Networks on N-way K-shot Omniglot (Vinyals et al. 2016).

    python examples/matching_omniglot.py --data-dir ../shared/omniglot --ways 5 --shots 1 [--fce]

Trains the conv4 embedding (and, with --fce, the full-context LSTMs) on episodes
of the Vinyals training classes, then prints the query accuracy ± 95% interval
over fixed, seeded test episodes.
"""

import tfmeta
from tfmeta.experiments import omniglot_parser, parse_config, train_and_evaluate_omniglot


def main(argv=None):
    parser = omniglot_parser(__doc__.splitlines()[0], output_dir="runs/matching_omniglot",
                             meta_batch=8, iterations=5000, iterations_per_epoch=500)
    parser.add_argument("--fce", action="store_true", help="full context embeddings")
    parser.add_argument("--fce-steps", type=int, default=5, help="processing steps of the query LSTM")
    parser.add_argument("--temperature", type=float, default=1.0, help="scale of the cosines")
    parser.add_argument("--learn-temperature", action="store_true", help="learn the scale")
    config = parse_config(parser, argv)
    model = tfmeta.MatchingNetwork(
        tfmeta.models.conv4_embedding(), fce=config.fce, fce_steps=config.fce_steps,
        temperature=config.temperature, learn_temperature=config.learn_temperature,
    )
    name = "Matching Networks (FCE)" if config.fce else "Matching Networks"
    return train_and_evaluate_omniglot(model, config, name)


if __name__ == "__main__":
    main()
