"""One training config per data set, with the paper's values (section 3.5, section 4).

The paper gives RMSprop, m = 128, d = 64, the class ratio C/m, the decay rate 0.94 of the margin
multiplier and the step counts. It does not give the learning rate, the initial margin multiplier
or the decay interval: those defaults are ours (see BUILD_NOTES.md).

The trainer's flags are made from the fields of `Config` (`define_flags`): a flag left unset takes
the data set's value, so every setting is written once, here.
"""

import dataclasses
import inspect
import math
from typing import Any

from absl import flags

from fl_embed import models
from fl_embed.losses.cluster import INFERENCE_BACKENDS
from fl_embed.losses.registry import LOSS_NAMES, LOSSES, get_loss
from fl_embed.samplers import classes_per_batch
from fl_embed.training.distributed import CLUSTER_LOSS_MODES, STRATEGIES


def _field(default, help: str, flag: bool = True, **options):
    """A `Config` field with its flag's help text; options: choices, lower_bound, unit_interval
    ((0, 1]), fraction ([0, 1))."""
    return dataclasses.field(
        default=default, metadata={"help": help, "flag": flag, **options}
    )


def _knob_default(knob: str) -> float:
    """A loss knob's default, read from the loss functions that take it (they must agree)."""
    defaults = {
        inspect.signature(spec.fn).parameters[knob].default
        for spec in LOSSES.values()
        if knob in spec.knobs
    }
    if len(defaults) != 1:
        raise ValueError(
            f"The losses taking {knob!r} disagree on its default: {defaults}"
        )
    return defaults.pop()


@dataclasses.dataclass(frozen=True)
class Config:
    """Settings of one training run (stored as the run's run_config.json with its replica count)."""

    dataset: str = _field("cub200", "Data set; picks the config.", flag=False)
    backbone: str = _field("inception_v2", "Backbone.", choices=models.BACKBONES)
    weights: str | None = _field(
        "imagenet",
        "Backbone weights: 'imagenet', a TF-slim checkpoint (prefix, folder or .tar.gz), "
        "a Keras .h5 file, or 'none'.",
    )
    loss: str = _field("clustering", "Loss: eq. 6 or a baseline.", choices=LOSS_NAMES)
    seed: int = _field(0, "Seed of weights, batch sampling and augmentation.")
    train_steps: int = _field(
        10_000, "Optimizer steps (paper: 10k CUB, 20k Cars196/SOP).", lower_bound=1
    )
    batch_size: int = _field(128, "Examples per batch m (paper: 128).", lower_bound=2)
    classes_per_batch_ratio: float = _field(
        0.25, "Classes per batch C/m (paper: 0.25, SOP 0.75).", unit_interval=True
    )
    embedding_dim: int = _field(64, "Embedding size d (paper: 64).", lower_bound=1)
    learning_rate: float = _field(1e-4, "RMSprop learning rate.", lower_bound=0.0)
    margin_multiplier: float = _field(
        1.0, "Initial margin multiplier gamma.", lower_bound=0.0
    )
    margin_decay_rate: float = _field(
        0.94, "gamma's factor per decay interval (paper: 0.94).", unit_interval=True
    )
    margin_decay_steps: int = _field(
        1000, "Steps between two decays of gamma.", lower_bound=1
    )
    # The baselines' knobs (fl_embed.losses.registry: every knob of a loss is a field).
    margin: float = _field(
        _knob_default("margin"),
        "Margin of the triplet and lifted structure losses (eqs. 1, 2).",
        lower_bound=0.0,
    )
    reg_lambda: float = _field(
        _knob_default("reg_lambda"),
        "N-pairs loss: weight lambda of the embedding-norm penalty (eq. 3).",
        lower_bound=0.0,
    )
    augment: bool = _field(True, "Random augmentation of training images.")
    validation_fraction: float = _field(
        0.0,
        "Tuning: hold out this last share of the train classes, train on the others and "
        "evaluate on the held-out ones (the test split is never read); 0: a normal run.",
        fraction=True,
    )
    # XLA-compiled on its own inside the graph step: ~3 ms of a glyph step at m = 128 against
    # ~20 ms as a plain graph (experiments/bench_train_step.py).
    cluster_inference: str = _field(
        "xla",
        "Backend of the clustering loss's loss-augmented inference.",
        choices=INFERENCE_BACKENDS,
    )
    strategy: str = _field(
        "default",
        "Distribution: default (one device), mirrored (this machine's devices) or "
        "multi_worker (MultiWorkerMirroredStrategy over the workers named in TF_CONFIG). "
        "Each replica gets its share of every batch.",
        choices=STRATEGIES,
    )
    cluster_loss_mode: str = _field(
        "global",
        "With several replicas: global (all-gathered, every loss sees the whole batch) or "
        "local (each replica's sub-batch of m/R examples from exactly C/R classes).",
        choices=CLUSTER_LOSS_MODES,
    )
    eval_every: int = _field(
        2000,
        "Steps between evaluations on the test split; 0: final only.",
        lower_bound=0,
    )
    eval_at_start: bool = _field(False, "Also evaluate the untrained model.")
    checkpoint_every: int = _field(
        500,
        "Steps between checkpoints (a killed run loses at most this many).",
        lower_bound=1,
    )
    log_every: int = _field(
        50, "Steps between progress lines and TensorBoard summaries.", lower_bound=1
    )
    # Facts of the data set, not flags.
    ks: tuple[int, ...] = _field((1, 2, 4, 8), "Recall@K cut-offs.", flag=False)
    image_size: int = _field(227, "Side of the model's square input.", flag=False)
    resize_to: int = _field(256, "Side before the centre crop (export).", flag=False)
    channels: int = _field(3, "Image channels.", flag=False)


# gamma stays 1 on glyphs: the tuned comparison (README) chose 12, jointly with a learning rate of
# 8e-3 and a decay every 20 of its 300 steps; alone in this 2,000-step job it did not help (one
# run each: NMI 89.75 vs 90.41, R@1 96.66 vs 96.72, MAP@R 67.38 vs 67.87).
_GLYPHS = Config(
    dataset="glyphs",
    backbone="small_cnn",
    weights=None,
    train_steps=2000,
    learning_rate=1e-3,
    margin_decay_steps=200,
    eval_every=500,
    checkpoint_every=250,
    image_size=32,
    resize_to=32,
    channels=1,
    eval_at_start=True,
)

CONFIGS = {
    "cub200": Config(),
    "cars196": Config(dataset="cars196", train_steps=20_000),
    "sop": Config(
        dataset="sop",
        train_steps=20_000,
        classes_per_batch_ratio=0.75,
        ks=(1, 10, 100, 1000),
    ),
    # The CPU budget: the README's main job (under 10 minutes on 2 cores, training + evaluation +
    # export). Ten decays of gamma over the run, as CUB's 10k steps at the 1000-step interval.
    "glyphs": _GLYPHS,
    # The SOP regime offline (issue 17): 1,175 train classes of 5 images, C/m = 0.75 (96 classes
    # a batch, most seen once), R@{1, 10, 100}. Sized for minutes on 2 cores, ten decays of gamma.
    "hangul": dataclasses.replace(
        _GLYPHS,
        dataset="hangul",
        train_steps=1000,
        classes_per_batch_ratio=0.75,
        margin_decay_steps=100,
        ks=(1, 10, 100),
    ),
}

DATASETS = tuple(CONFIGS)
FLAG_FIELDS = tuple(f.name for f in dataclasses.fields(Config) if f.metadata["flag"])


def get_config(dataset: str) -> Config:
    """The config of `dataset`.

    Raises:
      ValueError: unknown data set, naming the choices.
    """
    if dataset not in CONFIGS:
        raise ValueError(
            f"Unknown data set {dataset!r}; use one of {', '.join(DATASETS)}."
        )
    return CONFIGS[dataset]


def from_record(record: dict[str, Any]) -> Config:
    """The `Config` of a stored run (its run_config.json); fields it lacks take the defaults."""
    names = {f.name for f in dataclasses.fields(Config)}
    values = {name: value for name, value in record.items() if name in names}
    if "ks" in values:
        values["ks"] = tuple(values["ks"])
    return Config(**values)


def define_flags(flag_values: flags.FlagValues = flags.FLAGS) -> None:
    """--dataset, and one flag per `Config` field marked as a flag, defaulting to the data set's.

    Enums name their choices and bounds are checked by absl, so a bad value is a usage error.
    """
    flags.DEFINE_enum(
        "dataset", "glyphs", DATASETS, "Data set; picks its config.", flag_values
    )
    for field in dataclasses.fields(Config):
        meta = field.metadata
        if not meta["flag"]:
            continue
        name, text = field.name, f"{meta['help']} Default: the data set's config."
        bound = {"lower_bound": meta["lower_bound"]} if "lower_bound" in meta else {}
        if "choices" in meta:
            flags.DEFINE_enum(name, None, meta["choices"], text, flag_values)
        elif field.type is bool:
            flags.DEFINE_boolean(name, None, text, flag_values)
        elif field.type is int:
            flags.DEFINE_integer(name, None, text, flag_values=flag_values, **bound)
        elif field.type is float:
            flags.DEFINE_float(name, None, text, flag_values=flag_values, **bound)
            # absl's bounds let NaN through (every comparison with NaN is false).
            flags.register_validator(
                name,
                lambda value: value is None or math.isfinite(value),
                message=f"--{name} must be a finite number.",
                flag_values=flag_values,
            )
        else:
            flags.DEFINE_string(name, None, text, flag_values)
        if meta.get("fraction"):
            flags.register_validator(
                name,
                lambda value: value is None or 0.0 <= value < 1.0,
                message=f"--{name} must be in [0, 1).",
                flag_values=flag_values,
            )
        if meta.get("unit_interval"):
            flags.register_validator(
                name,
                lambda value: value is None or 0.0 < value <= 1.0,
                message=f"--{name} must be in (0, 1].",
                flag_values=flag_values,
            )
    flags.register_multi_flags_validator(
        ["dataset", "batch_size", "classes_per_batch_ratio"],
        _check_classes_per_batch,
        flag_values=flag_values,
    )


def _check_classes_per_batch(values: dict[str, Any]) -> bool:
    """A batch must hold at least 2 classes and fewer than m (section 3.5)."""
    config = get_config(values["dataset"])
    m = values["batch_size"] or config.batch_size
    ratio = values["classes_per_batch_ratio"] or config.classes_per_batch_ratio
    try:
        classes_per_batch(m, ratio)
    except ValueError as err:
        raise flags.ValidationError(str(err)) from err
    return True


def from_flags(flag_values: flags.FlagValues = flags.FLAGS) -> Config:
    """The --dataset's config with every flag that was set applied ('none' weights -> None)."""
    changes = {
        name: flag_values[name].value
        for name in FLAG_FIELDS
        if flag_values[name].value is not None
    }
    if changes.get("weights") in ("none", ""):
        changes["weights"] = None
    return dataclasses.replace(get_config(flag_values.dataset), **changes)


def to_flags(config: Config) -> list[str]:
    """The flags that give `config` back through `from_flags`, one per setting."""
    lines = [f"--dataset={config.dataset}"]
    for name in FLAG_FIELDS:
        value = getattr(config, name)
        if isinstance(value, bool):
            lines.append(f"--{name}" if value else f"--no{name}")
        else:
            lines.append(f"--{name}={'none' if value is None else value}")
    return lines


def loss_knobs(config: Config) -> dict[str, Any]:
    """The knobs of the config's loss with their values (gamma's initial value included)."""
    return {knob: getattr(config, knob) for knob in get_loss(config.loss).knobs}
