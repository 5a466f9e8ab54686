"""The run's settings: one dataclass, filled by the flags, saved as config.json in the run folder.

Export, inference and resume read the saved file back, so no flag ever has to be repeated.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable, Sequence

from cyclegan_tf.errors import ConfigError

CONFIG_FILE = "config.json"

GAN_LOSSES = ("lsgan", "vanilla", "wgangp")
NORMS = ("instance", "batch", "layer", "none")
# The GANs train.py can train (cyclegan_tf.gans.MODELS maps each name to its class).
MODELS = ("cyclegan", "dcgan", "wgangp", "stylegan")
# noise -> image, trained on one domain (--X)
GENERATOR_MODELS = ("dcgan", "wgangp", "stylegan")
# The sizes the DCGAN architecture makes: a first 4x4 or 5x5 layer, doubled four times.
GENERATOR_SIZES = (64, 80)
# StyleGAN2 doubles a learned 4x4 constant: powers of two, as in the paper.
STYLEGAN_SIZES = (32, 64, 128, 256, 512, 1024)
# Each model's defaults for the settings left unset (None): the papers' values.
MODEL_DEFAULTS = {
    "cyclegan": dict(Y="data/tfrecords/orange.tfrecords", batch_size=1, image_size=256,
                     norm="instance", learning_rate=2e-4, beta1=0.5, beta2=0.999),
    "dcgan": dict(Y="", batch_size=64, image_size=80, norm="batch", learning_rate=2e-4,
                  beta1=0.5, beta2=0.999),
    "wgangp": dict(Y="", batch_size=64, image_size=64, norm="layer", learning_rate=1e-4,
                   beta1=0.0, beta2=0.9),
    # StyleGAN2 (Karras et al. 2020) with the StyleGAN2-ADA settings for small images, at widths
    # that fit a CPU at 64 px (the paper's: --ngf 512 --ndf 512 --channel_base 32768).
    "stylegan": dict(Y="", batch_size=32, image_size=64, norm="none", learning_rate=2.5e-3,
                     beta1=0.0, beta2=0.99, ngf=256, ndf=256, z_dim=512, channel_base=2048),
}
# For the models that do not set them in MODEL_DEFAULTS.
COMMON_DEFAULTS = dict(ngf=64, ndf=64, z_dim=128, channel_base=0)
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
# StyleGAN2's D: "resnet" adds a 1x1 skip around each resolution's convolutions (the paper's),
# "orig" has none (StyleGAN2-ADA's cifar configuration).
D_ARCHITECTURES = ("resnet", "orig")
DIFF_AUGMENTATIONS = ("color", "translation", "cutout")  # diffaugment.py's
MIXED_PRECISION = ("off", "bf16")  # bf16 needs no loss scaling: AVX512-BF16 CPUs, Ampere+ GPUs, TPUs

# Settings that shape the networks or the checkpointed state: a checkpoint made with other values
# cannot be restored, so resuming with a different value is an error rather than a surprise.
# n_critic: WGAN-GP's critic optimizer counts n_critic updates per step (its schedule with it).
ARCHITECTURE_FIELDS = ("model", "image_size", "ngf", "ndf", "n_blocks", "norm", "input_skip",
                       "pool_size", "z_dim", "n_critic", "channel_base", "mapping_layers",
                       "d_architecture")
# Settings of the learning-rate schedule: changing one on resume re-plans it (continue_schedule).
SCHEDULE_FIELDS = ("learning_rate", "max_steps", "decay_steps")


def setting(default: Any, help: str, *, choices: Sequence[str] | None = None,
            flag: bool = True) -> Any:
    """A Config field with its command-line help: train.py defines one flag per field (same
    name, type, default and choices) unless flag is False."""
    return dataclasses.field(default=default,
                             metadata={"help": help, "choices": choices, "flag": flag})


def flag_fields() -> list[dataclasses.Field]:
    """The settings that are command-line flags, in declaration order."""
    return [f for f in dataclasses.fields(Config) if f.metadata.get("flag", True)]


@dataclasses.dataclass
class Config:
    """Everything that defines a training run (flag names are those of the classic train.py)."""

    # None in a field below means "the model's default" (MODEL_DEFAULTS), set in __post_init__;
    # a config.json from before --model has every value and no model: a CycleGAN's.
    model: str | None = setting(None, "the GAN to train: cyclegan (X <-> Y translation, the "
                                "default), dcgan or wgangp (new images like those of --X)",
                                choices=MODELS)
    X: str = setting("data/tfrecords/apple.tfrecords",
                     "X tfrecords (a file, a glob, or a sharded base name)")
    Y: str | None = setting(None, "Y tfrecords (cyclegan only; default "
                            "data/tfrecords/orange.tfrecords)")
    checkpoint_dir: str = setting("", "run folder (default: a new checkpoints/YYYYMMDD-HHMMSS); "
                                      "an existing one is resumed")
    batch_size: int | None = setting(None, "images per step per replica (default 1; dcgan, "
                                     "wgangp: 64)")
    image_size: int | None = setting(None, "training crop size (cyclegan: a multiple of 4, "
                                     "default 256; dcgan, wgangp: 64 or 80, default 80 / 64)")
    ngf: int | None = setting(None, "filters of the generators' first layer (default 64; "
                              "stylegan: its widest layer, default 256, the paper's 512)")
    ndf: int | None = setting(None, "filters of the discriminators' first layer (default 64; "
                              "stylegan: its widest layer, default 256, the paper's 512)")
    n_blocks: int = setting(0, "residual blocks (0: 6 up to 128 px, 9 above, as the paper)")
    norm: str | None = setting(None, "normalisation layers (cyclegan: instance or batch, default "
                               "instance; dcgan: batch; wgangp's critic: layer (default) or none)",
                               choices=NORMS)
    input_skip: bool = setting(False, "feed the input image to the generators' last layer too, "
                               "so translations keep its overall colour and contrast (instance "
                               "norm hides them from the paper's generator)")
    gan_loss: str = setting("lsgan", "GAN objective (wgangp adds a gradient penalty of weight "
                            "--gp_weight)", choices=GAN_LOSSES, flag=False)  # with --use_lsgan
    lambda1: float = setting(10.0, "weight of the forward cycle loss (X -> Y -> X)")
    lambda2: float = setting(10.0, "weight of the backward cycle loss (Y -> X -> Y)")
    lambda_identity: float = setting(0.5, "identity loss weight, times lambda of the target "
                                     "domain (0: the classic code's behaviour)")
    gp_weight: float = setting(10.0, "WGAN-GP gradient penalty weight")
    learning_rate: float | None = setting(None, "initial Adam learning rate (default 2e-4; "
                                          "wgangp: 1e-4)")
    beta1: float | None = setting(None, "Adam beta1 (default 0.5; wgangp: 0)")
    beta2: float | None = setting(None, "Adam beta2 (default 0.999; wgangp: 0.9)")
    z_dim: int | None = setting(None, "dcgan, wgangp, stylegan: length of the noise vector a "
                                "face is made from (default 128; stylegan: 512, also the "
                                "length of its style vector w)")
    channel_base: int | None = setting(None, "stylegan: a layer at r px has min(ngf, "
                                       "channel_base / r) channels (D: ndf); default 2048 (32 at "
                                       "64 px), the paper's 32768")
    mapping_layers: int = setting(8, "stylegan: dense layers of the mapping network z -> w")
    r1_gamma: float | None = setting(None, "stylegan: R1 penalty weight (default: the "
                                     "StyleGAN2-ADA heuristic 0.0002 * image_size^2 / batch)")
    r1_interval: int = setting(16, "stylegan: R1 every N steps (lazy regularisation)")
    style_mixing: float = setting(0.9, "stylegan: share of images made from two styles")
    d_architecture: str = setting("resnet", "stylegan: D with a residual skip around each "
                                  "resolution (resnet, the paper's) or without (orig, "
                                  "StyleGAN2-ADA's cifar D)", choices=D_ARCHITECTURES)
    mbstd_group: int = setting(4, "stylegan: images per group of D's minibatch standard "
                               "deviation (the paper's 4; StyleGAN2-ADA's cifar: 32); where "
                               "it does not divide the batch, its largest divisor below it")
    pl_weight: float = setting(0.0, "stylegan: path-length regularisation weight (the "
                               "paper's 2; 0: off), every 4 steps")
    diff_augment: str = setting("", "dcgan, wgangp, stylegan: differentiable augmentation of "
                                "every image D sees, real and generated (DiffAugment): a "
                                "comma-separated list of color, translation, cutout. For small "
                                "data sets, where D otherwise learns the training images by heart")
    n_critic: int = setting(5, "wgangp: critic updates per generator update")
    ema_decay: float = setting(0.999, "dcgan, wgangp, stylegan: decay of the moving average of "
                               "the generator's weights that export uses (0: no averaging). "
                               "The decay is at most (1 + step) / (10 + step), so 0.999 holds "
                               "only from step 8990 on, and a larger value later still")
    pool_size: int = setting(50, "history of generated images shown to D (0: off)")
    max_steps: int = setting(200_000, "stop after this many steps")
    decay_steps: int = setting(0, "linear lr decay to 0 over the last N steps (0: the second "
                               "half of max_steps)")
    # The rate the schedule holds until the decay starts; None: learning_rate. Set when a resumed
    # run's schedule is re-planned mid-decay (continue_schedule).
    decay_start_lr: float | None = setting(None, "", flag=False)
    augment: bool = setting(True, "resize to --load_size, random crop and flip")
    load_size: int = setting(0, "augment: resize to this before the random crop (0: 1.12 x "
                             "image_size; image_size: flips only, for aligned faces)")
    jitter_scale: float = setting(0.0, "augment: random zoom of each training crop by up to "
                                  "+-this fraction (aligned faces: 0.05 makes a model tolerate "
                                  "the alignment errors of faces found in photos)")
    jitter_shift: float = setting(0.0, "augment: random shift of each training crop by up to "
                                  "+-this fraction of its side (faces: 0.03)")
    jitter_degrees: float = setting(0.0, "augment: random rotation of each training crop by up "
                                    "to +-this many degrees (faces: 5)")
    seed: int = setting(0, "seed of the initial weights, data order and augmentation")
    measure_face_layout: bool = setting(True, "with the faces extra: measure where the "
                                        "training faces' eyes, nose and mouth sit "
                                        "(face_layout.json), for inference.py --align_faces")
    save_every: int = setting(1000, "checkpoint every N steps")
    summary_every: int = setting(100, "TensorBoard summaries every N steps")
    log_every: int = setting(100, "progress line every N steps (when not on a terminal)")
    keep_checkpoints: int = setting(3, "checkpoints kept on disk (>= 1)")
    jit_compile: bool = setting(False, "compile the step with XLA")
    mixed_precision: str = setting("off", "bf16 compute, float32 weights (AVX512-BF16 CPUs, "
                                   "Ampere+ GPUs, TPUs)", choices=MIXED_PRECISION)
    strategy: str = setting("default", "tf.distribute strategy: one device, all local GPUs, "
                            "TF_CONFIG machines, TPU", choices=STRATEGIES)

    def __post_init__(self) -> None:
        if self.model is None:
            self.model = "cyclegan"
        for name, value in {**COMMON_DEFAULTS, **MODEL_DEFAULTS.get(self.model, {})}.items():
            if getattr(self, name) is None:
                setattr(self, name, value)
        if self.model == "stylegan" and self.r1_gamma is None:
            self.r1_gamma = 0.0002 * self.image_size ** 2 / self.batch_size
        if self.model in GENERATOR_MODELS and self.load_size == 0:
            self.load_size = self.image_size  # aligned faces: flips only, no random crop
        if self.n_blocks == 0:
            self.n_blocks = 6 if self.image_size <= 128 else 9
        if self.decay_steps == 0:
            self.decay_steps = self.max_steps // 2
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(self.model in MODELS, f"model must be one of {MODELS}, got {self.model!r}")
        if self.model in GENERATOR_MODELS:
            self._validate_generator_model()
        else:
            need(self.norm in ("instance", "batch"),
                 f"--norm {self.norm} is not for a CycleGAN: use instance or batch")
            need(bool(self.Y), "a CycleGAN needs --Y: the tfrecords of its second domain")
        need(self.image_size > 0 and self.image_size % 4 == 0,
             f"image_size must be a positive multiple of 4, got {self.image_size}")
        need(self.image_size >= 16, f"image_size must be at least 16, got {self.image_size}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.ngf >= 1 and self.ndf >= 1, "ngf and ndf must be >= 1")
        need(self.n_blocks >= 1, f"n_blocks must be >= 1, got {self.n_blocks}")
        need(self.norm in NORMS, f"norm must be one of {NORMS}, got {self.norm!r}")
        need(self.gan_loss in GAN_LOSSES, f"gan_loss must be one of {GAN_LOSSES}, got {self.gan_loss!r}")
        need(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        need(self.d_architecture in D_ARCHITECTURES,
             f"d_architecture must be one of {D_ARCHITECTURES}, got {self.d_architecture!r}")
        need(self.mixed_precision in MIXED_PRECISION,
             f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        need(self.load_size == 0 or self.load_size >= self.image_size,
             f"load_size must be 0 (1.12 x image_size) or >= image_size ({self.image_size}), "
             f"got {self.load_size}")
        need(0 <= self.jitter_scale < 1 and 0 <= self.jitter_shift < 0.5
             and 0 <= self.jitter_degrees <= 180,
             "jitter_scale must be in [0, 1), jitter_shift in [0, 0.5), jitter_degrees in [0, 180]")
        need(self.augment or not (self.jitter_scale or self.jitter_shift or self.jitter_degrees),
             "--jitter_scale, --jitter_shift and --jitter_degrees are augmentations: drop "
             "--noaugment to use them")
        need(self.pool_size >= 0, "pool_size must be >= 0 (0 turns the history pool off)")
        need(self.max_steps >= 1, "max_steps must be >= 1")
        need(0 <= self.decay_steps <= self.max_steps, "decay_steps must be between 0 and max_steps")
        need(self.learning_rate > 0, "learning_rate must be > 0")
        need(self.decay_start_lr is None or self.decay_start_lr >= 0, "decay_start_lr must be >= 0")
        need(self.keep_checkpoints >= 1, "keep_checkpoints must be >= 1 (the latest is what "
             f"resumes), got {self.keep_checkpoints}")
        need(min(self.lambda1, self.lambda2, self.lambda_identity) >= 0, "lambdas must be >= 0")
        need(min(self.save_every, self.summary_every, self.log_every) >= 1,
             "save_every, summary_every and log_every must be >= 1")
        need(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "beta1 and beta2 must be in [0, 1)")
        names = self.diff_augment.split(",") if self.diff_augment else []
        for name in names:
            need(name in DIFF_AUGMENTATIONS,
                 f"--diff_augment {self.diff_augment!r}: no augmentation {name!r}; pass a "
                 f"comma-separated list of {', '.join(DIFF_AUGMENTATIONS)} without spaces, e.g. "
                 f"{','.join(DIFF_AUGMENTATIONS)}")
        need(len(set(names)) == len(names),
             f"--diff_augment {self.diff_augment!r} names an augmentation twice")
        need(not names or self.model in GENERATOR_MODELS,
             f"--diff_augment is for the face generators ({', '.join(GENERATOR_MODELS)}), not "
             f"--model {self.model}")

    def _validate_generator_model(self) -> None:
        """The settings a DCGAN / WGAN-GP / StyleGAN can use (their networks have one shape per
        size)."""
        m = self.model
        if m == "stylegan":
            self._validate_stylegan()
        elif self.image_size not in GENERATOR_SIZES:
            raise ConfigError(f"--model {m} makes images of {' or '.join(map(str, GENERATOR_SIZES))}"
                              f" px (a 4x4 or 5x5 start doubled four times), not {self.image_size}:"
                              f" pass --image_size {GENERATOR_SIZES[0]} or {GENERATOR_SIZES[1]}")
        if self.Y:
            raise ConfigError(f"--model {m} learns one set of images (--X); --Y is for cyclegan")
        allowed = {"dcgan": ("batch",), "wgangp": ("layer", "none"), "stylegan": ("none",)}[m]
        if self.norm not in allowed:
            why = {"dcgan": "the DCGAN's networks use batch norm",
                   "wgangp": "a WGAN-GP critic must not use batch norm (its penalty is per image): "
                             "layer or none",
                   "stylegan": "StyleGAN2 normalises by weight demodulation: leave --norm out"}[m]
            raise ConfigError(f"--norm {self.norm} does not fit --model {m}: {why}")
        if self.z_dim < 1 or self.n_critic < 1:
            raise ConfigError("z_dim and n_critic must be >= 1")
        if not 0 <= self.ema_decay < 1:
            raise ConfigError(f"ema_decay must be in [0, 1), got {self.ema_decay}")

    def _validate_stylegan(self) -> None:
        if self.image_size not in STYLEGAN_SIZES:
            raise ConfigError(f"--model stylegan makes square images whose side is a power of two "
                              f"from 32 to 1024 (a 4x4 constant doubled), not {self.image_size}: "
                              f"pass --image_size {min(STYLEGAN_SIZES, key=lambda s: abs(s - self.image_size))}")
        if min(self.channel_base, self.mapping_layers, self.r1_interval, self.mbstd_group) < 1:
            raise ConfigError("channel_base, mapping_layers, r1_interval and mbstd_group must "
                              "be >= 1")
        if self.r1_gamma < 0 or self.pl_weight < 0 or not 0 <= self.style_mixing <= 1:
            raise ConfigError("r1_gamma and pl_weight must be >= 0, style_mixing in [0, 1]")

    # -- the run folder --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    def save(self, run_dir: str) -> str:
        """Writes config.json atomically (a crash never leaves half a file)."""
        path = os.path.join(run_dir, CONFIG_FILE)
        tmp = path + ".tmp"
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(self.to_dict(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, path)
        return path

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> "Config":
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"unknown settings {unknown}; known: {sorted(known)}")
        return cls(**values)

    @classmethod
    def load(cls, run_dir: str) -> "Config":
        """Reads the settings a run saved in run_dir/config.json."""
        path = os.path.join(run_dir, CONFIG_FILE)
        if not os.path.isfile(path):
            raise ConfigError(f"{path} not found: {run_dir!r} is not a cyclegan_tf run folder "
                              "(train.py writes config.json there when a run starts)")
        try:
            with open(path, encoding="utf-8") as f:
                values = json.load(f)
        except (OSError, ValueError) as e:
            raise ConfigError(f"cannot read {path}: {e}") from e
        return cls.from_dict(values)

    def replace(self, **changes: Any) -> "Config":
        return dataclasses.replace(self, **changes)

    def learning_rate_at(self, step: int) -> float:
        """The rate optimizers.LinearDecay gives at step: decay_start_lr (or learning_rate) until
        max_steps - decay_steps, then linear to 0 at max_steps."""
        start_lr = self.learning_rate if self.decay_start_lr is None else self.decay_start_lr
        decay_start = self.max_steps - self.decay_steps
        progress = min(max((step - decay_start) / max(self.decay_steps, 1), 0.0), 1.0)
        return start_lr * (1.0 - progress)


def merge_with_saved(saved: Config, requested: Config, explicit: Iterable[str],
                     step: int = 0) -> Config:
    """The settings a resumed run uses: the saved ones, overridden by those given explicitly.

    An explicit setting that would change the networks or the checkpointed state is refused with a
    message naming it, since the checkpoint could not be restored with it. step: where the run
    resumes (its latest checkpoint's step); a new max_steps, decay_steps or learning_rate
    re-plans the learning rate from there (continue_schedule), so it never jumps.
    """
    explicit = set(explicit)
    clashes = [f"{name}: saved {getattr(saved, name)!r}, requested {getattr(requested, name)!r}"
               for name in ARCHITECTURE_FIELDS
               if name in explicit and getattr(saved, name) != getattr(requested, name)]
    if clashes:
        raise ConfigError(
            f"the run in {saved.checkpoint_dir or requested.checkpoint_dir!r} was trained with other "
            f"settings ({'; '.join(clashes)}). Drop these flags to resume it, or pass a new "
            "--checkpoint_dir to start a fresh run.")
    overrides = {name: getattr(requested, name) for name in explicit
                 if name not in ARCHITECTURE_FIELDS and hasattr(requested, name)}
    given = {name: overrides.pop(name) for name in SCHEDULE_FIELDS if name in overrides}
    # Only a real change re-plans: the same command run again must give the same schedule. An
    # unchanged learning_rate is no restart (continue_schedule would restart from it), except on
    # a finished run extended by a new max_steps: its rate is 0, and the given one restarts it.
    changed = {name for name, value in given.items() if value != getattr(saved, name)}
    if "learning_rate" in given and "max_steps" in changed and saved.learning_rate_at(step) == 0:
        changed.add("learning_rate")
    if "learning_rate" not in changed:
        given.pop("learning_rate", None)
    merged = dataclasses.replace(saved, **overrides)
    return continue_schedule(merged, step, **given) if changed else merged


def continue_schedule(config: Config, step: int, learning_rate: float | None = None,
                      max_steps: int | None = None, decay_steps: int | None = None) -> Config:
    """config with its learning-rate schedule re-planned at step for the settings given.

    The new schedule (optimizers.LinearDecay, from the fields saved in config.json) holds a rate
    lr until max(max_steps - decay_steps, step), then decays linearly to 0 at max_steps:
      lr = learning_rate if given (the decay restarts from that rate), else the rate the run has
           at step, so the rate goes on without a jump (a finished run's is 0: extending one
           without a learning_rate is refused, since it would learn nothing);
      decay_steps, if not given: while the run is in its constant phase, as for a new run
           (max_steps // 2 for a new max_steps, else unchanged); once it is decaying,
           max_steps - step: the decay goes on from its current rate to 0 at the new end.
    Re-planning again with the same values changes nothing, so resuming twice gives the same rate.
    """
    max_steps = config.max_steps if max_steps is None else max_steps
    if max_steps <= step:
        raise ConfigError(f"max_steps {max_steps} leaves nothing to train: the run in "
                          f"{config.checkpoint_dir!r} is at step {step}; give a larger --max_steps")
    decaying = step > config.max_steps - config.decay_steps
    lr = config.learning_rate_at(step) if learning_rate is None else learning_rate
    if lr == 0:
        raise ConfigError(f"the run in {config.checkpoint_dir!r} finished its learning-rate decay "
                          f"(the rate is 0 at step {step}): going on to step {max_steps} would "
                          "learn nothing. Add --learning_rate (e.g. "
                          f"{config.learning_rate:g}) to decay again from that rate")
    if decay_steps is None:
        if decaying:
            decay_steps = max_steps - step
        else:
            decay_steps = config.decay_steps if max_steps == config.max_steps else max_steps // 2
    decay_start = max(max_steps - decay_steps, step)
    base_lr = config.learning_rate if learning_rate is None else learning_rate
    return config.replace(learning_rate=base_lr, max_steps=max_steps,
                          decay_steps=max_steps - decay_start,
                          decay_start_lr=None if lr == base_lr else lr)
