"""Training pieces the trainers wire together: margin decay, the one train step (any
tf.distribute strategy), checkpoints and embedding a data set."""

from fl_embed.training.checkpoints import (
    CheckpointError,
    checkpoint_manager,
    restore_latest,
)
from fl_embed.training.embed import embed_dataset
from fl_embed.training.schedules import margin_multiplier_at, margin_multiplier_schedule
from fl_embed.training.step import loss_kwargs, make_train_step, replica_loss_terms

__all__ = [
    "CheckpointError",
    "checkpoint_manager",
    "embed_dataset",
    "loss_kwargs",
    "make_train_step",
    "margin_multiplier_at",
    "margin_multiplier_schedule",
    "replica_loss_terms",
    "restore_latest",
]
