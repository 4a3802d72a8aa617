"""Training pieces the trainers wire together: margin decay, losses per name, the train step,
checkpoints, run-config checks, embedding a data set and progress lines."""

from fl_embed.training.checkpoints import (
    CheckpointError,
    checkpoint_manager,
    restore_latest,
)
from fl_embed.training.embed import embed_dataset
from fl_embed.training.progress import Progress, format_duration
from fl_embed.training.run_config import (
    RESUMABLE_FIELDS,
    RunConfigMismatchError,
    check_run_config,
    read_run_config,
)
from fl_embed.training.schedules import margin_multiplier_at, margin_multiplier_schedule
from fl_embed.training.step import (
    DEFAULT_CLUSTER_INFERENCE,
    L2_NORMALIZE,
    LOSSES,
    loss_terms,
    make_train_step,
)
from fl_embed.training.summaries import write_scalars
from fl_embed.training.tables import markdown_table, mean_spread_table

__all__ = [
    "DEFAULT_CLUSTER_INFERENCE",
    "L2_NORMALIZE",
    "LOSSES",
    "RESUMABLE_FIELDS",
    "CheckpointError",
    "Progress",
    "RunConfigMismatchError",
    "check_run_config",
    "checkpoint_manager",
    "embed_dataset",
    "format_duration",
    "loss_terms",
    "make_train_step",
    "margin_multiplier_at",
    "margin_multiplier_schedule",
    "markdown_table",
    "mean_spread_table",
    "read_run_config",
    "restore_latest",
    "write_scalars",
]
