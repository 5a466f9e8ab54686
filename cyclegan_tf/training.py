"""The loop every model trains in: run folder, strategy, checkpoints, data, summaries, progress
and signals. A model (gans.MODELS: CycleGAN, DCGAN, WGAN-GP) brings its networks, its checkpoint and its step; the Trainer
never names them."""
from __future__ import annotations

import contextlib
import dataclasses
import datetime
import fcntl
import itertools
import math
import os
import shutil
import signal
import threading
from typing import Callable, Iterable, Iterator

import keras
import tensorflow as tf

from cyclegan_tf import faces
from cyclegan_tf.config import Config, ConfigError, merge_with_saved
from cyclegan_tf.data import (Jitter, check_tfrecords, iterate_images, make_dataset,
                              resolve_tfrecords, training_load_size)
from cyclegan_tf.errors import DataError, TrainingError
from cyclegan_tf.gans import build_model, model_class
from cyclegan_tf.progress import Progress

LOCK_FILE = "train.lock"
RUNS_ROOT = "checkpoints"


# -- the run folder ---------------------------------------------------------------------------------

def resolve_run_dir(checkpoint_dir: str = "", load_model: str = "",
                    root: str = RUNS_ROOT) -> str:
    """--checkpoint_dir as given; --load_model NAME means checkpoints/NAME (the classic flag);
    neither: "" (a new run: the Trainer makes a new folder checkpoints/YYYYMMDD-HHMMSS)."""
    if checkpoint_dir and load_model:
        raise ConfigError("give either --checkpoint_dir or --load_model, not both")
    if load_model:
        run_dir = load_model if os.path.isdir(load_model) else os.path.join(root, load_model)
        if not os.path.isdir(run_dir):
            raise ConfigError(f"--load_model {load_model}: no run folder {run_dir}")
        return run_dir
    return checkpoint_dir


def new_run_dir(root: str = RUNS_ROOT) -> str:
    """Makes and returns a folder no other run has: root/YYYYMMDD-HHMMSS, with -2, -3... added
    when runs start in the same second (os.mkdir is atomic: two processes never get one folder)."""
    os.makedirs(root, exist_ok=True)
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    for n in range(1, 10_000):
        run_dir = os.path.join(root, stamp if n == 1 else f"{stamp}-{n}")
        try:
            os.mkdir(run_dir)
            return run_dir
        except FileExistsError:
            continue
    raise TrainingError(f"cannot find a free run folder name under {root}")


def prepare_config(requested: Config, explicit: Iterable[str] = (),
                   new_data: bool = False) -> Config:
    """The config to train with: a new run's as requested, a resumed run's from its config.json
    with the explicitly given settings applied (architecture changes are refused; a new
    max_steps, decay_steps or learning_rate re-plans the rate from the resume step).

    Resuming a run with other data (--X/--Y naming other files than it trained on) is refused
    unless new_data is set: a reused folder name must not silently train an old run on new images.
    """
    run_dir = requested.checkpoint_dir
    if not (run_dir and os.path.isfile(os.path.join(run_dir, "config.json"))):
        return requested
    saved = Config.load(run_dir)
    saved.checkpoint_dir = run_dir
    other_data = [f"--{name} {getattr(requested, name)} (it trained on {getattr(saved, name)})"
                  for name in model_class(saved.model).inputs if name in set(explicit)
                  and not _same_path(getattr(requested, name), getattr(saved, name))]
    if other_data and not new_data:
        raise ConfigError(
            f"{run_dir} holds a run trained on other data: {'; '.join(other_data)}. Give a new "
            "--checkpoint_dir (or none) to start a new run; to go on training this run on the "
            "new data, add --new_data.")
    return merge_with_saved(saved, requested, explicit, step=_checkpoint_step(run_dir))


def _same_path(a: str, b: str) -> bool:
    return a == b or os.path.realpath(a) == os.path.realpath(b)


def _checkpoint_step(run_dir: str) -> int:
    """The step the run resumes at: its latest checkpoint's (0 without one)."""
    latest = tf.train.latest_checkpoint(run_dir)
    if latest is None:
        return 0
    try:
        return int(tf.train.load_checkpoint(latest).get_tensor("step/.ATTRIBUTES/VARIABLE_VALUE"))
    except (tf.errors.OpError, ValueError) as e:
        raise TrainingError(f"cannot read the step of {latest} ({str(e).splitlines()[0]}); use "
                            "another --checkpoint_dir to start a new run") from None


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


def _writable_run_dir(run_dir: str) -> bool:
    """Makes run_dir if needed and checks it is writable; returns whether it was made now (by
    os.mkdir, which is atomic: of two trainers starting at once, one makes it)."""
    try:
        os.makedirs(os.path.dirname(os.path.abspath(run_dir)), exist_ok=True)
        try:
            os.mkdir(run_dir)
            made = True
        except FileExistsError:
            made = False
        probe = os.path.join(run_dir, f".write_test.{os.getpid()}")  # workers may share run_dir
        with open(probe, "w") as f:
            f.write("ok")
        os.remove(probe)
    except OSError as e:
        raise TrainingError(f"cannot write to checkpoint folder {run_dir}: "
                            f"{e.strerror or e}. Choose a writable --checkpoint_dir.") from None
    return made


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
        try:
            resolver = tf.distribute.cluster_resolver.TPUClusterResolver()
        except ValueError as e:  # no TPU on this machine, and no TPU_NAME to reach one
            raise ConfigError(f"--strategy tpu: no TPU found ({e}). Run on a Cloud TPU VM, or "
                              "set TPU_NAME to the TPU to connect to") from None
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


# -- summaries --------------------------------------------------------------------------------------

def write_summaries(writer, step: int, model, outputs: dict, learning_rate: float,
                    steps_per_sec: float, strategy: tf.distribute.Strategy) -> None:
    """Every loss, the learning rate, steps/s, score histograms and the model's image rows."""
    local = lambda v: strategy.experimental_local_results(v)[0]  # noqa: E731
    with writer.as_default(step=step):
        for name, value in outputs["losses"].items():
            tf.summary.scalar(f"loss/{name}", value)
        tf.summary.scalar("learning_rate", learning_rate)
        if steps_per_sec:
            tf.summary.scalar("steps_per_sec", steps_per_sec)
        for name, scores in outputs.get("scores", {}).items():
            tf.summary.histogram(name, local(scores))
        images = {name: local(value)[:3] for name, value in outputs.get("images", {}).items()}
        if hasattr(model, "summary_images"):  # images the step does not make (a generator's)
            images.update(model.summary_images())
        for row, names in model.image_rows.items():
            grid = tf.concat([images[n] for n in names], axis=2)  # side by side
            tf.summary.image(f"{row}: {' | '.join(names)}", (grid + 1.0) / 2.0, max_outputs=3)
    writer.flush()


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


def train(config: Config, log: Callable[[str], None] | None = None,
          step_callback: Callable[[int], None] | None = None) -> TrainResult:
    """Trains (or resumes) the run in config.checkpoint_dir up to config.max_steps; an empty
    checkpoint_dir starts a new run in a new folder. log: where messages go (None: stdout, with
    a progress bar on a terminal)."""
    return Trainer(config, log, step_callback).run()


class Trainer:
    """One training run, in named phases: check the data, open the run folder, build the model,
    restore, save the settings, train, save. A start that fails before the first step leaves no
    new folder behind; a refused resume leaves the run's config.json as it was."""

    def __init__(self, config: Config, log: Callable[[str], None] | None = None,
                 step_callback: Callable[[int], None] | None = None):
        self.config = config
        self.print = log or print
        self.log = log  # None: the progress bar or lines go to the terminal
        self.step_callback = step_callback
        self.strategy = make_strategy(config.strategy)
        self.chief = is_chief(self.strategy)

    def run(self) -> TrainResult:
        self.check_data()
        made = self.open_run_folder()
        lock = run_lock(self.run_dir) if self.chief else contextlib.nullcontext()
        with lock, _StopRequest().installed() as self.stop:
            trained = False
            try:
                self.build_model()
                self.restore()
                if self.chief:
                    self.config.save(self.run_dir)  # after the restore: a refused one changes nothing
                    self.record_face_layout()
                self.make_datasets()
                trained = True
                return self.loop()
            except BaseException:
                # Only a folder this start made, only while it holds the lock, only if no step ran.
                if made and self.chief and not (trained and self.step > self.start_step):
                    shutil.rmtree(self.run_dir, ignore_errors=True)
                raise

    # -- phases -------------------------------------------------------------------------------------

    def check_data(self) -> None:
        """Every input readable before a folder is made or a network built."""
        for name in model_class(self.config.model).inputs:
            check_tfrecords(resolve_tfrecords(getattr(self.config, name)))

    def open_run_folder(self) -> bool:
        """Makes the run folder (a new unique one if none was given); returns whether it is new."""
        if not self.config.checkpoint_dir:
            if self.config.strategy == "multi_worker":
                raise ConfigError("--strategy multi_worker needs --checkpoint_dir: a folder "
                                  "every worker sees")
            self.config = self.config.replace(checkpoint_dir=new_run_dir())
            made = True
        else:
            made = _writable_run_dir(self.config.checkpoint_dir)
        self.run_dir = self.config.checkpoint_dir
        return made

    def build_model(self) -> None:
        keras.utils.set_random_seed(self.config.seed)  # the same initial weights for one --seed
        with self.strategy.scope():
            self.model = build_model(self.config)
        self.checkpoint = self.model.checkpoint()
        # Every worker must take part in saving (it is a collective); only the chief's is kept.
        self.save_dir = self.run_dir if self.chief else os.path.join(
            self.run_dir, f".worker{self.strategy.cluster_resolver.task_id}")
        self.manager = tf.train.CheckpointManager(self.checkpoint, self.save_dir,
                                                  max_to_keep=self.config.keep_checkpoints)

    def restore(self) -> None:
        self.latest = tf.train.latest_checkpoint(self.run_dir)
        if self.latest:
            try:
                self.checkpoint.restore(self.latest).assert_existing_objects_matched()
            except (ValueError, AssertionError, tf.errors.OpError) as e:
                raise TrainingError(
                    f"cannot resume from {self.latest}: it does not fit these settings "
                    f"({str(e).splitlines()[0]}). The run's settings are in "
                    f"{os.path.join(self.run_dir, 'config.json')}; use another --checkpoint_dir "
                    "to start a new run.") from None
            self.print(f"resumed from {self.latest} at step {int(self.model.step.numpy())}")
        self.start_step = self.step = int(self.model.step.numpy())

    def record_face_layout(self) -> None:
        """Once per run, with the faces extra: where the training faces' landmarks sit, for
        aligning photos to them later (faces.py). Data that are not faces are left alone, and
        a detector failure costs the run nothing but the layout."""
        c = self.config
        path = os.path.join(self.run_dir, faces.LAYOUT_FILE)
        if not c.measure_face_layout or os.path.exists(path) or not faces.detector_available():
            return
        sources = [getattr(c, name) for name in self.model.inputs]
        images = itertools.chain.from_iterable(
            (array for _, array in itertools.islice(iterate_images(source), 32))
            for source in sources)
        try:
            layout = faces.measure_training_layout(
                images, c.image_size, training_load_size(c.image_size, c.augment, c.load_size),
                source=" + ".join(sources))
        except Exception as e:  # an optional extra must never stop a run
            self.print(f"warning: no face layout measured ({type(e).__name__}: {e})")
            return
        if layout is not None:
            layout.save(self.run_dir)
            eyes = ", ".join(f"({x:.2f}, {y:.2f})" for x, y in layout.points[:2])
            self.print(f"face layout of the training crops (eyes at {eyes} of the side), "
                       f"measured on {layout.measured_on}: {path}")

    def make_datasets(self) -> None:
        c, start = self.config, self.start_step
        # A step may read several batches of each input (WGAN-GP: one per critic update).
        batch_size = c.batch_size * getattr(self.model, "batches_per_step", 1)
        jitter = Jitter(c.jitter_scale, c.jitter_shift, c.jitter_degrees)

        def batches(pattern: str, seed: int):
            # A resumed run skips the images it has consumed: it sees the uninterrupted run's data.
            return iter(self.strategy.distribute_datasets_from_function(
                lambda ctx: make_dataset(pattern, c.image_size, batch_size, c.augment,
                                         seed=seed, load_size=c.load_size, jitter=jitter,
                                         input_context=ctx,
                                         skip=start * batch_size
                                         * ctx.num_replicas_in_sync // ctx.num_input_pipelines)))

        self.batches = [batches(getattr(c, name), c.seed + i)
                        for i, name in enumerate(self.model.inputs)]

    def loop(self) -> TrainResult:
        c, model = self.config, self.model
        step_fn = model.distributed_step_fn(self.strategy)
        writer = (tf.summary.create_file_writer(self.run_dir) if self.chief
                  else tf.summary.create_noop_writer())
        self.print(f"training {self.run_dir} from step {self.step} to {c.max_steps} "
                   f"({self.strategy.num_replicas_in_sync} replica(s), {c.image_size} px, batch "
                   f"{c.batch_size} per replica); {self.schedule_text()}")
        progress = Progress(c.max_steps, self.step, every=c.log_every, log=self.log)
        last_saved, saved_step = self.latest, self.step if self.latest else -1
        while self.step < c.max_steps and self.stop.signal_name is None:
            try:
                outputs = step_fn(*(next(b) for b in self.batches))
            except tf.errors.DataLossError as e:
                raise DataError(f"corrupt record while reading "
                                f"{' or '.join(getattr(c, n) for n in model.inputs)}: "
                                f"{e.message.strip()}. Rebuild the tfrecords with build_data.py."
                                ) from None
            self.step += 1
            step = self.step
            if self.step_callback is not None:
                self.step_callback(step)
            if any(step % every == 0 for every in (c.log_every, c.summary_every, c.save_every)):
                progress.update(1, self.progress_text(self.finite_losses(outputs, step)))
            else:
                progress.update(1)
            if step % c.summary_every == 0:
                write_summaries(writer, step, model, outputs, float(model.learning_rate),
                                progress.rate, self.strategy)
            if step % c.save_every == 0:
                last_saved, saved_step = self.save(step), step
        if self.step != saved_step:
            last_saved = self.save(self.step)
        progress.close()
        writer.close()
        stopped_by = self.stop.signal_name or "max_steps"
        if self.stop.signal_name:
            self.print(f"{self.stop.signal_name}: saved {last_saved} at step {self.step}; run the "
                       "same command to resume")
        elif self.chief:
            self.print(f"done: step {self.step}, checkpoint {last_saved}")
        else:
            self.print(f"done: step {self.step} (the chief writes the checkpoints)")
        return TrainResult(self.run_dir, self.step, last_saved, stopped_by)

    # -- helpers ------------------------------------------------------------------------------------

    def schedule_text(self) -> str:
        c = self.config
        decay_start = c.max_steps - c.decay_steps
        if c.learning_rate_at(self.step) == 0:
            return ("lr 0: this run finished its decay, so it trains on without learning; give "
                    "--learning_rate to decay again from that rate to 0 at --max_steps")
        return (f"lr {c.learning_rate_at(self.step):.2e} now, "
                + (f"constant to step {decay_start}, then " if self.step < decay_start else "")
                + f"linear to 0 at step {c.max_steps}")

    def progress_text(self, losses: dict[str, float]) -> str:
        shown = " ".join(f"{short} {losses[name]:.3f}"
                         for short, name in self.model.progress_losses.items())
        return f"lr {float(self.model.learning_rate):.2e} | {shown}"

    def finite_losses(self, outputs: dict, step: int) -> dict[str, float]:
        losses = {k: float(v) for k, v in outputs["losses"].items()}
        bad = [k for k, v in losses.items() if not math.isfinite(v)]
        if bad:
            raise TrainingError(
                f"loss became NaN/Inf at step {step} ({', '.join(bad)}); stopped without saving, "
                f"the last good checkpoint {self.manager.latest_checkpoint} is intact. Lower "
                "--learning_rate or try --gan_loss lsgan, then rerun to resume from it.")
        return losses

    def save(self, step: int) -> str | None:
        weights = [v for network in self.model.networks.values()
                   for v in network.trainable_variables]
        if not all(bool(tf.reduce_all(tf.math.is_finite(v))) for v in weights):
            raise TrainingError(f"weights became NaN/Inf by step {step}: nothing saved; the last "
                                f"good checkpoint {self.manager.latest_checkpoint} is intact. Lower "
                                "--learning_rate, or try --gan_loss lsgan.")
        try:
            path = self.manager.save(checkpoint_number=step)
        except (OSError, tf.errors.OpError) as e:
            reason = getattr(e, "message", None) or getattr(e, "strerror", None) or str(e)
            raise TrainingError(f"could not write a checkpoint to {self.run_dir} at step {step}: "
                                f"{reason.strip()}. The previous checkpoint "
                                f"{tf.train.latest_checkpoint(self.run_dir)} is intact; free space "
                                "or fix permissions and rerun the same command to resume.") from None
        if not self.chief:
            shutil.rmtree(self.save_dir, ignore_errors=True)
        return path if self.chief else None


