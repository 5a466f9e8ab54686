"""The loop around the step: strategy, run folder, checkpoints, summaries, progress and signals."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import math
import os
import shutil
import signal
import threading
import time
from typing import Callable, Iterable, Iterator

import keras
import tensorflow as tf

from cyclegan_tf.config import Config, ConfigError, merge_with_saved
from cyclegan_tf.cyclegan import CycleGAN
from cyclegan_tf.data import DataError, make_dataset

LOCK_FILE = "train.lock"


class TrainingError(RuntimeError):
    """Training cannot go on; the message says why and what to do."""


# -- the run folder ---------------------------------------------------------------------------------

def resolve_run_dir(checkpoint_dir: str = "", load_model: str = "",
                    root: str = "checkpoints") -> str:
    """--checkpoint_dir as given; --load_model NAME means checkpoints/NAME (the classic flag);
    neither: a new folder checkpoints/YYYYMMDD-HHMM, as the classic train.py made."""
    if checkpoint_dir and load_model:
        raise ConfigError("give either --checkpoint_dir or --load_model, not both")
    if load_model:
        run_dir = load_model if os.path.isdir(load_model) else os.path.join(root, load_model)
        if not os.path.isdir(run_dir):
            raise ConfigError(f"--load_model {load_model}: no run folder {run_dir}")
        return run_dir
    if checkpoint_dir:
        return checkpoint_dir
    return os.path.join(root, datetime.datetime.now().strftime("%Y%m%d-%H%M"))


def prepare_config(requested: Config, explicit: Iterable[str] = ()) -> Config:
    """The config to train with: a new run's as requested, a resumed run's from its config.json
    with the explicitly given settings applied (architecture changes are refused)."""
    run_dir = requested.checkpoint_dir
    if os.path.isfile(os.path.join(run_dir, "config.json")):
        saved = Config.load(run_dir)
        saved.checkpoint_dir = run_dir
        return merge_with_saved(saved, requested, explicit)
    return requested


@contextlib.contextmanager
def run_lock(run_dir: str) -> Iterator[None]:
    """Only one trainer per run folder. The OS drops the lock when the process dies, even by
    SIGKILL, so a crash never leaves a stale lock behind."""
    path = os.path.join(run_dir, LOCK_FILE)
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        handle.seek(0)
        owner = handle.read().strip() or "unknown"
        handle.close()
        raise TrainingError(f"another trainer (pid {owner}) is using {run_dir}: stop it first, "
                            "or pass another --checkpoint_dir") from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    try:
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def _make_run_dir(run_dir: str) -> None:
    try:
        os.makedirs(run_dir, exist_ok=True)
        probe = os.path.join(run_dir, f".write_test.{os.getpid()}")  # workers may share run_dir
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise TrainingError(f"cannot write to checkpoint folder {run_dir}: "
                            f"{e.strerror or e}. Choose a writable --checkpoint_dir.") from None


# -- strategy ---------------------------------------------------------------------------------------

def make_strategy(name: str) -> tf.distribute.Strategy:
    """default: one device; mirrored: all GPUs of this machine; multi_worker: the machines named in
    TF_CONFIG; tpu: the TPU this machine reaches."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        # All local GPUs; on a machine without any, all logical CPU devices (as tests configure).
        devices = tf.config.list_logical_devices("GPU") or tf.config.list_logical_devices("CPU")
        return tf.distribute.MirroredStrategy([d.name for d in devices])
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError("--strategy multi_worker needs the TF_CONFIG environment variable "
                              "(see the README's multi-machine section)")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ConfigError(f"unknown strategy {name!r}")


def is_chief(strategy: tf.distribute.Strategy) -> bool:
    resolver = getattr(strategy, "cluster_resolver", None)
    if resolver is None or not resolver.task_type:
        return True
    if resolver.task_type == "chief":
        return True
    return (resolver.task_type == "worker" and resolver.task_id == 0
            and "chief" not in resolver.cluster_spec().as_dict())


# -- summaries and progress -------------------------------------------------------------------------

def write_summaries(writer, step: int, outputs: dict, learning_rate: float, steps_per_sec: float,
                    strategy: tf.distribute.Strategy) -> None:
    local = lambda v: strategy.experimental_local_results(v)[0]  # noqa: E731
    with writer.as_default(step=step):
        for name, value in outputs["losses"].items():
            tf.summary.scalar(f"loss/{name}", value)
        tf.summary.scalar("learning_rate", learning_rate)
        if steps_per_sec:
            tf.summary.scalar("steps_per_sec", steps_per_sec)
        for name, scores in outputs["scores"].items():
            tf.summary.histogram(name, local(scores))
        images = {name: local(value)[:3] for name, value in outputs["images"].items()}
        for row, names in (("X_to_Y", ("x", "G(x)", "F(G(x))")), ("Y_to_X", ("y", "F(y)", "G(F(y))"))):
            grid = tf.concat([images[n] for n in names], axis=2)  # side by side
            tf.summary.image(f"{row}: {' | '.join(names)}", (grid + 1.0) / 2.0, max_outputs=3)
    writer.flush()


def _format_duration(seconds: float) -> str:
    if not math.isfinite(seconds):
        return "?"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclasses.dataclass
class TrainResult:
    run_dir: str
    step: int
    checkpoint: str | None
    stopped_by: str  # "max_steps" or the signal's name


# -- the loop ---------------------------------------------------------------------------------------

class _StopRequest:
    """SIGTERM / Ctrl+C: finish the step, save, exit. A second Ctrl+C interrupts at once."""

    def __init__(self):
        self.signal_name: str | None = None

    def __call__(self, signum, frame):
        if self.signal_name is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.signal_name = signal.Signals(signum).name

    @contextlib.contextmanager
    def installed(self):
        if threading.current_thread() is not threading.main_thread():
            yield self
            return
        previous = {s: signal.signal(s, self) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield self
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)


def _all_finite(model: CycleGAN) -> bool:
    networks = (model.G, model.F, model.D_X, model.D_Y)
    return all(bool(tf.reduce_all(tf.math.is_finite(v))) for n in networks
               for v in n.trainable_variables)


def train(config: Config, log: Callable[[str], None] = print,
          step_callback: Callable[[int], None] | None = None) -> TrainResult:
    """Trains (or resumes) the run in config.checkpoint_dir up to config.max_steps."""
    strategy = make_strategy(config.strategy)
    chief = is_chief(strategy)
    run_dir = config.checkpoint_dir
    if not run_dir:
        raise ConfigError("config.checkpoint_dir is empty: say where the run lives")
    _make_run_dir(run_dir)
    lock = run_lock(run_dir) if chief else contextlib.nullcontext()
    with lock, _StopRequest().installed() as stop:
        if chief:
            config.save(run_dir)
        return _train_locked(config, strategy, chief, run_dir, stop, log, step_callback)


def _restore(checkpoint: tf.train.Checkpoint, path: str, run_dir: str) -> None:
    try:
        checkpoint.restore(path).assert_existing_objects_matched()
    except (ValueError, AssertionError, tf.errors.OpError) as e:
        raise TrainingError(
            f"cannot resume from {path}: it does not fit these settings ({str(e).splitlines()[0]}). "
            f"The run's settings are in {os.path.join(run_dir, 'config.json')}; use another "
            "--checkpoint_dir to start a new run.") from None


def _train_locked(config, strategy, chief, run_dir, stop, log, step_callback) -> TrainResult:
    keras.utils.set_random_seed(config.seed)  # the same initial weights for the same --seed
    with strategy.scope():
        model = CycleGAN(config)
    checkpoint = model.checkpoint()
    # Every worker must take part in saving (it is a collective); only the chief's copy is kept.
    save_dir = run_dir if chief else os.path.join(run_dir, f".worker{strategy.cluster_resolver.task_id}")
    manager = tf.train.CheckpointManager(checkpoint, save_dir, max_to_keep=config.keep_checkpoints)
    latest = tf.train.latest_checkpoint(run_dir)
    if latest:
        _restore(checkpoint, latest, run_dir)
        log(f"resumed from {latest} at step {int(model.step.numpy())}")
    start_step = int(model.step.numpy())

    def dataset(pattern: str, seed: int):
        return strategy.distribute_datasets_from_function(
            lambda ctx: make_dataset(pattern, config.image_size, config.batch_size, config.augment,
                                     seed=seed, load_size=config.load_size, input_context=ctx))

    # A resumed run gets a fresh shuffle rather than the first epoch's order again.
    x_batches = iter(dataset(config.X, config.seed + 2 * start_step))
    y_batches = iter(dataset(config.Y, config.seed + 2 * start_step + 1))
    step_fn = model.distributed_step_fn(strategy)
    writer = tf.summary.create_file_writer(run_dir) if chief else tf.summary.create_noop_writer()

    def save(step: int) -> str | None:
        if not _all_finite(model):
            raise TrainingError(f"weights became NaN/Inf by step {step}: nothing saved; the last good "
                                f"checkpoint {manager.latest_checkpoint} is intact. Lower "
                                "--learning_rate, or try --gan_loss lsgan.")
        try:
            path = manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            reason = getattr(e, "message", None) or getattr(e, "strerror", None) or str(e)
            raise TrainingError(f"could not write a checkpoint to {run_dir} at step {step}: "
                                f"{reason.strip()}. The previous checkpoint "
                                f"{tf.train.latest_checkpoint(run_dir)} is intact; free space or "
                                "fix permissions and rerun the same command to resume.") from None
        if not chief:
            shutil.rmtree(save_dir, ignore_errors=True)
        return path if chief else None

    log(f"training {run_dir} from step {start_step} to {config.max_steps} "
        f"({strategy.num_replicas_in_sync} replica(s), {config.image_size} px, batch "
        f"{config.batch_size} per replica)")
    step, last_saved, saved_step = start_step, latest, start_step if latest else -1
    interval_start, interval_step, steps_per_sec = time.perf_counter(), step, 0.0
    while step < config.max_steps and stop.signal_name is None:
        try:
            outputs = step_fn(next(x_batches), next(y_batches))
        except tf.errors.DataLossError as e:
            raise DataError(f"corrupt record while reading {config.X} or {config.Y}: "
                            f"{e.message.strip()}. Rebuild the tfrecords with build_data.py.") from None
        step += 1
        if step_callback is not None:
            step_callback(step)
        report = step % config.log_every == 0 or step % config.summary_every == 0
        if report or step % config.save_every == 0:
            losses = {k: float(v) for k, v in outputs["losses"].items()}
            if not all(map(math.isfinite, losses.values())):
                bad = ", ".join(k for k, v in losses.items() if not math.isfinite(v))
                raise TrainingError(
                    f"loss became NaN/Inf at step {step} ({bad}); stopped without saving, the last "
                    f"good checkpoint {manager.latest_checkpoint} is intact. Lower --learning_rate "
                    "or try --gan_loss lsgan, then rerun to resume from it.")
        if step % config.log_every == 0:
            now = time.perf_counter()
            steps_per_sec = (step - interval_step) / max(now - interval_start, 1e-9)
            interval_start, interval_step = now, step
            eta = (config.max_steps - step) / steps_per_sec if steps_per_sec else float("inf")
            log(f"step {step}/{config.max_steps} | {steps_per_sec:.2f} steps/s | ETA "
                f"{_format_duration(eta)} | lr {float(model.learning_rate):.2e} | "
                f"G {losses['G/total']:.3f} F {losses['F/total']:.3f} "
                f"D_X {losses['D_X/loss']:.3f} D_Y {losses['D_Y/loss']:.3f}")
        if step % config.summary_every == 0:
            write_summaries(writer, step, outputs, float(model.learning_rate), steps_per_sec,
                            strategy)
        if step % config.save_every == 0:
            last_saved, saved_step = save(step), step
    if step != saved_step:
        last_saved = save(step)
    writer.close()
    stopped_by = stop.signal_name or "max_steps"
    if stop.signal_name:
        log(f"{stop.signal_name}: saved {last_saved} at step {step}; run the same command to resume")
    elif chief:
        log(f"done: step {step}, checkpoint {last_saved}")
    else:
        log(f"done: step {step} (the chief writes the checkpoints)")
    return TrainResult(run_dir, step, last_saved, stopped_by)
