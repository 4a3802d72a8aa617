"""Tests of experiments/train.py: flags, outputs, resuming, refusing another run's directory."""

import dataclasses
import json
import os
import shutil

import keras
import numpy as np
import pytest
import tensorflow as tf
from absl import flags

from experiments import run_dir, train
from fl_embed import export
from fl_embed.evaluation import evaluate
from fl_embed.training import make_train_step
from fl_embed.training.checkpoints import NonFiniteError, RunCheckpoints
from tests.experiments.conftest import (
    TINY_FLAGS,
    run_module,
    train_in_process,
    train_tiny,
)

FLAGS = flags.FLAGS


@pytest.fixture
def parse():
    """Parses trainer flags in-process and resets them afterwards."""

    def parse_flags(*args):
        FLAGS.unparse_flags()
        return FLAGS(["train", "--output_dir=/tmp/unused", *args])

    yield parse_flags
    FLAGS.unparse_flags()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--loss=contrastive"], "clustering|triplet|lifted|npairs"),
        (["--dataset=mnist"], "cub200|cars196|sop|glyphs"),
        (["--backbone=resnet"], "inception_v3|bn_inception|small_cnn"),
        (["--classes_per_batch_ratio=0.005"], r"1 class\(es\) per batch of 128"),
        (["--classes_per_batch_ratio=1.0"], "128 classes per batch of 128"),
        (["--classes_per_batch_ratio=1.5"], r"must be in \(0, 1\]"),
        (["--batch_size=1"], ">= 2"),
        (["--train_steps=0"], "not a positive integer"),
        (["--margin_decay_rate=0"], r"must be in \(0, 1\]"),
    ],
)
def test_bad_flag_values_are_usage_errors(parse, args, message):
    with pytest.raises(flags.IllegalFlagValueError, match=message):
        parse(*args)


def test_unset_flags_take_the_data_sets_paper_values(parse):
    parse("--dataset=sop", "--loss=triplet")
    config = train.run_settings()
    assert config.train_steps == 20_000 and config.classes_per_batch_ratio == 0.75
    assert config.batch_size == 128 and config.embedding_dim == 64
    assert config.margin_decay_rate == 0.94 and config.loss == "triplet"
    parse("--dataset=cub200", "--train_steps=5")
    assert train.run_settings().train_steps == 5


def test_command_line_rejects_a_bad_flag_with_a_message():
    result = run_module(
        "experiments.train",
        "--output_dir=/tmp/x",
        "--classes_per_batch_ratio=0.001",
        check=False,
    )
    assert result.returncode != 0
    assert "class(es) per batch" in result.stderr


def test_run_writes_metrics_checkpoints_summaries_and_export(tiny_run, glyph_data_dir):
    out, log, stdout = tiny_run
    with open(os.path.join(out, "metrics.json")) as f:
        record = json.load(f)
    assert record["step"] == 2 and record["loss"] == "clustering"
    recalls = {f"recall@{k}" for k in (1, 2, 4, 8)}
    assert set(record["metrics"]) == {"nmi", "map@r", "r_precision", *recalls}
    assert tf.train.latest_checkpoint(os.path.join(out, "checkpoints")).endswith(
        "ckpt-2"
    )
    assert os.listdir(os.path.join(out, "train")) and os.listdir(
        os.path.join(out, "eval")
    )
    assert "steps/s" in log and "ETA" in log
    # The export reproduces the recorded metrics through its own signature.
    embed, _ = run_dir.saved_model_embed_fn(os.path.join(out, "export"))
    embeddings, labels = run_dir.embed_split(embed, "glyphs", "test", glyph_data_dir)
    assert evaluate(embeddings, labels)["recall@1"] == pytest.approx(
        record["metrics"]["recall@1"], abs=1e-3
    )
    assert "| clustering loss, 2 steps |" in stdout


def test_rerun_resumes_from_the_latest_checkpoint(tiny_run, glyph_data_dir, tmp_path):
    source = tiny_run[0]
    out = str(tmp_path / "resumed")
    shutil.copytree(source, out)
    # Interrupted after step 1: drop the step-2 checkpoint and everything written after it.
    manager = tf.train.CheckpointManager(
        tf.train.Checkpoint(), os.path.join(out, "checkpoints"), 10
    )
    for path in tf.io.gfile.glob(manager.checkpoints[-1] + "*"):
        os.remove(path)
    with open(os.path.join(out, "checkpoints", "checkpoint"), "w") as f:
        f.write(
            'model_checkpoint_path: "ckpt-1"\nall_model_checkpoint_paths: "ckpt-1"\n'
        )
    shutil.rmtree(os.path.join(out, "export"))
    os.remove(os.path.join(out, "metrics.json"))
    flags_ = [f for f in TINY_FLAGS if not f.startswith("--train_steps")]
    code, log, _ = train_in_process(
        *flags_,
        "--train_steps=3",
        f"--output_dir={out}",
        f"--data_dir={glyph_data_dir}",
    )
    assert code == 0, log[-3000:]
    assert "Resuming run" in log and "ckpt-1" in log
    assert "step 1/" not in log
    assert "step 2/3" in log and "step 3/3" in log
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["step"] == 3
    assert os.path.isfile(
        os.path.join(
            export.latest_export(os.path.join(out, "export")), "saved_model.pb"
        )
    )


def test_directory_of_another_run_is_refused_with_how_to_resume(
    tiny_run, glyph_data_dir
):
    out = tiny_run[0]
    code, log, _ = train_in_process(
        *TINY_FLAGS,
        "--loss=triplet",
        f"--output_dir={out}",
        f"--data_dir={glyph_data_dir}",
    )
    assert code != 0
    assert "loss: 'clustering' (stored) vs 'triplet' (now)" in log
    assert f"--flagfile={out}/flags.txt" in log
    assert not os.path.exists(os.path.join(out, "checkpoints", "ckpt-3.index"))


def test_a_diverging_run_stops_with_a_clear_error_and_saves_nothing(
    glyph_data_dir, tmp_path
):
    # A learning rate of 1e38 makes the weights (or the loss) non-finite within a step or two.
    out = str(tmp_path / "diverged")
    code, log, _ = train_tiny(out, glyph_data_dir, "--learning_rate=1e38")
    assert code == 1
    assert "step " in log and ("non-finite" in log.lower() or "nan" in log.lower())
    assert "resumes from the last good checkpoint" in log
    checkpoints_dir = os.path.join(out, "checkpoints")
    saved = os.listdir(checkpoints_dir) if os.path.isdir(checkpoints_dir) else []
    for name in saved:
        if name.endswith(".index"):
            reader = tf.train.load_checkpoint(os.path.join(checkpoints_dir, name[:-6]))
            for key in reader.get_variable_to_shape_map():
                value = reader.get_tensor(key)
                if (
                    getattr(value, "dtype", None) is not None
                    and value.dtype.kind == "f"
                ):
                    assert np.all(np.isfinite(value)), key
    assert not os.path.isdir(os.path.join(out, "export")) or not export.export_versions(
        os.path.join(out, "export")
    )


def test_a_tuning_run_trains_and_evaluates_on_train_classes_only(
    tmp_path, glyph_data_dir, monkeypatch
):
    """--validation_fraction: batches from the fit classes, evaluation on the held-out ones,
    and the test split is never opened (issue 15)."""
    import data_prep

    loads, samples = [], []
    real_load, real_batches = data_prep.load, data_prep.class_ratio_batches

    def load(name, split, *args, **kwargs):
        loads.append((split, kwargs.get("classes")))
        return real_load(name, split, *args, **kwargs)

    def batches(*args, **kwargs):
        samples.append(kwargs.get("classes"))
        return real_batches(*args, **kwargs)

    monkeypatch.setattr(data_prep, "load", load)
    monkeypatch.setattr(data_prep, "class_ratio_batches", batches)
    out = str(tmp_path / "trial")
    code, log, stdout = train_tiny(
        out, glyph_data_dir, "--validation_fraction=0.25", "--noexport"
    )
    assert code == 0, log[-3000:]
    fit, validation = data_prep.validation_split("glyphs", 0.25)
    assert [split for split, _ in loads] == ["train"]
    np.testing.assert_array_equal(loads[0][1], validation)
    assert len(samples) == 1
    np.testing.assert_array_equal(samples[0], fit)
    assert "20 validation classes" in log and "glyphs validation classes" in stdout
    assert not os.path.exists(os.path.join(out, "export"))
    with open(os.path.join(out, "metrics.json")) as f:
        assert json.load(f)["validation_fraction"] == 0.25


class _Exploding(keras.layers.Layer):
    """Identity whose untrained statistic is multiplied by 1e30 at every training call: it is
    Inf after the second step while the loss, which never reads it, stays finite."""

    def build(self, input_shape):
        self.statistic = self.add_weight(
            shape=(), initializer="ones", trainable=False, name="statistic"
        )

    def call(self, x, training=False):
        if training:
            self.statistic.assign(self.statistic * 1e30)
        return x


def test_a_weight_diverging_with_a_finite_loss_stops_the_loop_at_the_next_log_line(
    glyph_data_dir, tmp_path
):
    out = str(tmp_path / "exploding")
    FLAGS.unparse_flags()
    # Checked at every log line (here every step), before the checkpoint of step 3.
    FLAGS(["train", *TINY_FLAGS, f"--output_dir={out}", "--checkpoint_every=3"])
    try:
        config = dataclasses.replace(train.run_settings(), train_steps=6)
        model = keras.Sequential(
            [
                keras.Input((32, 32, 1)),
                keras.layers.Flatten(),
                keras.layers.Dense(8),
                _Exploding(),
                keras.layers.UnitNormalization(),
            ]
        )
        optimizer = keras.optimizers.RMSprop(1e-3)
        step = tf.Variable(0, dtype=tf.int64)
        checkpoints = RunCheckpoints(
            os.path.join(out, "checkpoints"),
            model=model,
            optimizer=optimizer,
            step=step,
        )
        train_step = make_train_step(model, optimizer, "triplet", 1.0)
        batches = iter(run_dir.train_batches(config, 0, glyph_data_dir))
        with pytest.raises(
            NonFiniteError, match=r"step 2: variable '.*statistic' holds 1 NaN / Inf"
        ):
            train.train_loop(
                config, train_step, batches, tf.Variable(1.0), step, checkpoints, None
            )
    finally:
        FLAGS.unparse_flags()
    assert int(step.numpy()) == 2  # the step it was found at; nothing saved
    saved = tf.io.gfile.glob(os.path.join(out, "checkpoints", "ckpt-*"))
    assert not saved, saved
