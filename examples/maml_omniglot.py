"""MAML on N-way K-shot Omniglot (Finn et al. 2017, section 5.2).

    python examples/maml_omniglot.py --data-dir ../shared/omniglot --ways 5 --shots 1 --intra-op-threads 1

Meta-trains Finn's CNN on the Vinyals training classes (rotations as extra
classes) with Keras progress bars and a validation score per epoch, then
prints the query accuracy ± 95% interval over fixed, seeded test episodes.
"""

import tfmeta
from tfmeta.experiments import omniglot_parser, parse_config, train_and_evaluate_omniglot


def main(argv=None):
    parser = omniglot_parser(__doc__.splitlines()[0], output_dir="runs/maml_omniglot")
    parser.add_argument("--inner-lr", type=float, default=0.4, help="inner-loop step size")
    parser.add_argument("--inner-steps", type=int, default=1, help="inner steps in meta-training")
    parser.add_argument("--eval-inner-steps", type=int, default=3, help="inner steps at test time")
    parser.add_argument("--first-order", action="store_true", help="first-order MAML")
    parser.add_argument("--learn-inner-lr", action="store_true", help="Meta-SGD per-parameter rates")
    parser.add_argument("--pooling", default="stride", choices=tfmeta.models.backbones.POOLINGS,
                        help="Finn's strided CNN or the max-pool variant")
    config = parse_config(parser, argv)
    maml = tfmeta.MAML(
        tfmeta.models.omniglot_cnn(config.ways, pooling=config.pooling),
        inner_lr=config.inner_lr, inner_steps=config.inner_steps,
        eval_inner_steps=config.eval_inner_steps, first_order=config.first_order,
        learn_inner_lr=config.learn_inner_lr,
    )
    name = "first-order MAML" if config.first_order else "MAML"
    return train_and_evaluate_omniglot(maml, config, name)


if __name__ == "__main__":
    main()
