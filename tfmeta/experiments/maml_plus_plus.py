"""`tfmeta train`'s MAML++ switches (Antoniou, Edwards, Storkey. How to train your MAML. ICLR 2019)."""

from tfmeta.experiments.recipes import fill

# What --maml-plus-plus sets besides `maml_plus_plus_config`'s MAML arguments, as the official
# Omniglot configurations do: meta-batch 8, max-pooling, per-step batch-norm weights, Adam 1e-3
# annealed to 1e-5 along a cosine. Per-step statistics stay off: the official code collects them
# but normalizes with each batch's moments, and using them scores at chance (docs/maml.md).
PRESET = {"meta_batch": 8, "pooling": "max", "per_step_bn": True,
          "meta_lr": 1e-3, "cosine_lr_to": 1e-5}

FLAGS = ("maml_plus_plus", "learn_per_step_inner_lr", "multi_step_loss_iterations", "first_order_iterations",
         "per_step_bn", "per_step_bn_statistics")


def add_flags(group):
    """Adds the MAML++ flags to the MAML argument group of `tfmeta train`."""
    group.add_argument("--maml-plus-plus", action="store_true", default=None,
                       help="MAML++'s combination, for every setting not given: 5 inner steps at rate 0.1 learned "
                            "per layer and step, multi-step loss annealed over the first tenth of --iterations, "
                            "per-step batch-norm weights (with each batch's statistics), max-pooling CNN, "
                            "meta-batch 8, Adam 1e-3 cosine-annealed to 1e-5 (docs/maml.md)")
    group.add_argument("--learn-per-step-inner-lr", action="store_true", default=None,
                       help="learn one inner rate per layer and inner step (MAML++'s LSLR)")
    group.add_argument("--multi-step-loss-iterations", type=int, metavar="N",
                       help="for the first N meta-iterations, the meta-loss weighs the query loss after every "
                            "inner step, annealed towards the last (MAML++; default: the last step's loss)")
    group.add_argument("--first-order-iterations", type=int, metavar="N",
                       help="first order for the first N meta-iterations, then second order (default: the order "
                            "--first-order says throughout)")
    group.add_argument("--per-step-bn", action="store_true", default=None,
                       help="batch-norm weights and biases per inner step, meta-learned (MAML++)")
    group.add_argument("--per-step-bn-statistics", action="store_true", default=None,
                       help="per-step batch-norm moving statistics, used at validation and test (needs "
                            "--per-step-bn; measured at chance accuracy: docs/maml.md)")


def resolve(config, given):
    """`config` with --maml-plus-plus's settings for those not in `given`; checks the combination."""
    for flag in FLAGS:
        config.setdefault(flag, None)
    if config["maml_plus_plus"]:
        if config["algorithm"] != "maml":
            raise SystemExit(f"tfmeta train: --maml-plus-plus applies to --algorithm maml; received --algorithm "
                             f"{config['algorithm']}")
        from tfmeta.algorithms import maml_plus_plus_config  # imports TensorFlow: only once a run resolves

        fill(config, given, {**PRESET, **maml_plus_plus_config(config["iterations"])})
    if config["per_step_bn_statistics"] and not config["per_step_bn"]:
        raise SystemExit("tfmeta train: --per-step-bn-statistics keeps statistics per inner step of the per-step "
                         "batch norm; add --per-step-bn")
    return config


def maml_arguments(config):
    """The MAML++ keyword arguments of `tfmeta.MAML` from a resolved configuration."""
    setting = vars(config).get  # configurations recorded before these switches lack them
    return {"learn_per_step_inner_lr": bool(setting("learn_per_step_inner_lr")),
            "multi_step_loss_iterations": setting("multi_step_loss_iterations"),
            "first_order_iterations": setting("first_order_iterations")}


def backbone_arguments(config):
    """The per-step batch-norm keyword arguments of `tfmeta.models.omniglot_cnn`."""
    setting = vars(config).get
    return {"norm_steps": config.inner_steps if setting("per_step_bn") else None,
            "per_step_statistics": bool(setting("per_step_bn_statistics"))}
