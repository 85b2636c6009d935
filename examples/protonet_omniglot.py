"""Prototypical Networks on N-way K-shot Omniglot (Snell et al. 2017).

    python examples/protonet_omniglot.py --data-dir ../shared/omniglot --ways 5 --shots 1

Trains the conv4 embedding on episodes of the Vinyals training classes — by
default with Snell et al.'s "higher way" training episodes (60 classes, 5
queries each) — then prints the query accuracy ± 95% interval over fixed,
seeded test episodes.
"""

import tfmeta
from tfmeta.experiments import omniglot_parser, parse_config, train_and_evaluate_omniglot


def main(argv=None):
    parser = omniglot_parser(__doc__.splitlines()[0], output_dir="runs/protonet_omniglot",
                             train_ways=60, train_queries=5, meta_batch=1, iterations=5000,
                             iterations_per_epoch=500)
    config = parse_config(parser, argv)
    model = tfmeta.PrototypicalNetwork(tfmeta.models.conv4_embedding())
    return train_and_evaluate_omniglot(model, config, "Prototypical Networks")


if __name__ == "__main__":
    main()
