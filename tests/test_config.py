"""Settings: validation, and the learning-rate schedule of a resumed run given new --max_steps."""
from __future__ import annotations

import json
import os

import pytest
import tensorflow as tf

from cyclegan_tf.config import Config, ConfigError, merge_with_saved
from cyclegan_tf.optimizers import LinearDecay

LR = 2e-4


def _rate(config: Config, step: int) -> float:
    """The rate the training graph uses (optimizers.LinearDecay), checked against the config's."""
    rate = float(LinearDecay.for_config(config)(step))
    assert rate == pytest.approx(config.learning_rate_at(step), rel=1e-6, abs=1e-10)  # float32
    return rate


def _resume(saved: Config, step: int, **flags) -> Config:
    """What train.py does on a run folder at step, given these flags explicitly."""
    return merge_with_saved(saved, Config(**flags), explicit=set(flags), step=step)


def test_keep_checkpoints_must_be_at_least_one():
    with pytest.raises(ConfigError, match="keep_checkpoints must be >= 1"):
        Config(keep_checkpoints=0)
    assert Config(keep_checkpoints=1).keep_checkpoints == 1


def test_extending_mid_decay_goes_on_from_the_current_rate_to_zero_at_the_new_end():
    saved = Config(max_steps=1000, learning_rate=LR)  # constant to 500, then to 0 at 1000
    assert _rate(saved, 750) == pytest.approx(LR / 2)
    longer = _resume(saved, 750, max_steps=2000)
    assert _rate(longer, 750) == pytest.approx(_rate(saved, 750), rel=1e-6)  # no jump
    assert _rate(longer, 1375) == pytest.approx(LR / 4, rel=1e-6)  # halfway down, linearly
    assert _rate(longer, 750) > _rate(longer, 751) > _rate(longer, 1999) > 0
    assert _rate(longer, 2000) == 0.0
    assert longer.learning_rate == LR and longer.max_steps == 2000
    shorter = _resume(saved, 750, max_steps=900)  # a smaller --max_steps: a steeper decay
    assert _rate(shorter, 750) == pytest.approx(LR / 2, rel=1e-6)
    assert _rate(shorter, 825) == pytest.approx(LR / 4, rel=1e-6) and _rate(shorter, 900) == 0.0


def test_resuming_again_gives_the_same_rate(tmp_path):
    saved = Config(max_steps=1000, learning_rate=LR, checkpoint_dir=str(tmp_path))
    longer = _resume(saved, 750, max_steps=2000)
    longer.save(str(tmp_path))
    reloaded = Config.load(str(tmp_path))
    assert reloaded == longer  # the breakpoints live in config.json
    # The same command again, a bare resume, or a resume a few steps later: the same schedule.
    for step, flags in ((750, {"max_steps": 2000}), (800, {}), (1100, {"max_steps": 2000})):
        again = _resume(reloaded, step, **flags)
        assert again == longer
        assert [_rate(again, s) for s in (750, 1100, 2000)] == \
            [_rate(longer, s) for s in (750, 1100, 2000)]
    # A second extension, mid-decay again: continuous at its own resume step.
    longest = _resume(reloaded, 1500, max_steps=3000)
    assert _rate(longest, 1500) == pytest.approx(_rate(longer, 1500), rel=1e-6)
    assert _rate(longest, 3000) == 0.0 and _rate(longest, 2250) == pytest.approx(
        _rate(longer, 1500) / 2, rel=1e-6)


def test_extending_in_the_constant_phase_starts_the_decay_as_a_new_run_would():
    saved = Config(max_steps=1000, learning_rate=LR)
    longer = _resume(saved, 300, max_steps=3000)
    assert longer.decay_steps == 1500 and longer.decay_start_lr is None  # as Config(max_steps=3000)
    assert [_rate(longer, s) for s in (300, 1500)] == [pytest.approx(LR)] * 2
    assert _rate(longer, 2250) == pytest.approx(LR / 2) and _rate(longer, 3000) == 0.0
    custom = _resume(saved, 300, max_steps=3000, decay_steps=500)
    assert _rate(custom, 2500) == pytest.approx(LR) and _rate(custom, 2750) == pytest.approx(LR / 2)
    # The derived start (250) is already past: the decay starts at the resume step, no jump.
    shorter = _resume(saved, 300, max_steps=500)
    assert _rate(shorter, 300) == pytest.approx(LR) and _rate(shorter, 400) == pytest.approx(LR / 2)


def test_a_new_learning_rate_restarts_the_decay_from_it():
    finished = Config(max_steps=1000, learning_rate=LR)
    assert _rate(finished, 1000) == 0.0
    # --max_steps alone would train at rate 0, learning nothing: refused, naming the way out.
    with pytest.raises(ConfigError, match="finished its learning-rate decay.*--learning_rate"):
        _resume(finished, 1000, max_steps=1500)
    # --learning_rate restarts the decay, also at the rate the run had (the natural choice).
    same = _resume(finished, 1000, max_steps=1500, learning_rate=LR)
    assert _rate(same, 1000) == pytest.approx(LR) and _rate(same, 1500) == 0.0
    assert _resume(same, 1250, max_steps=1500, learning_rate=LR) == same  # rerun: no change
    restarted = _resume(finished, 1000, max_steps=1500, learning_rate=1e-4)
    assert restarted.learning_rate == 1e-4 and restarted.decay_start_lr is None
    assert _rate(restarted, 1000) == pytest.approx(1e-4)
    assert _rate(restarted, 1250) == pytest.approx(5e-5) and _rate(restarted, 1500) == 0.0
    constant = _resume(finished.replace(max_steps=4000, decay_steps=0), 1000, learning_rate=1e-4)
    assert constant.decay_steps == 2000 and _rate(constant, 1999) == pytest.approx(1e-4)


def test_a_max_steps_already_reached_is_refused():
    with pytest.raises(ConfigError, match="max_steps 700 leaves nothing to train.*at step 750"):
        _resume(Config(max_steps=1000), 750, max_steps=700)


def test_old_config_files_resume_with_the_schedule_they_had(tmp_path):
    values = Config(max_steps=1000, decay_steps=200).to_dict()
    del values["decay_start_lr"]  # written before the field existed
    (tmp_path / "config.json").write_text(json.dumps(values))
    old = Config.load(str(tmp_path))
    assert old.decay_start_lr is None
    assert [_rate(old, s) for s in (0, 800, 900, 1000)] == pytest.approx([LR, LR, LR / 2, 0.0])
    assert _resume(old, 900, log_every=7) == old.replace(log_every=7)


def test_prepare_config_re_plans_at_the_latest_checkpoints_step(tmp_path):
    from cyclegan_tf.training import prepare_config
    run_dir = str(tmp_path)
    Config(max_steps=1000, checkpoint_dir=run_dir).save(run_dir)
    step = tf.Variable(750, dtype=tf.int64)
    manager = tf.train.CheckpointManager(tf.train.Checkpoint(step=step), run_dir, max_to_keep=1)
    manager.save(checkpoint_number=750)
    resumed = prepare_config(Config(checkpoint_dir=run_dir, max_steps=2000), {"max_steps"})
    assert _rate(resumed, 750) == pytest.approx(LR / 2, rel=1e-6) and _rate(resumed, 2000) == 0.0
    assert os.path.isfile(os.path.join(run_dir, "ckpt-750.index"))
