"""The run's settings: one dataclass, filled by the flags, saved as config.json in the run folder.

Export, inference and resume read the saved file back, so no flag ever has to be repeated.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Iterable

CONFIG_FILE = "config.json"

GAN_LOSSES = ("lsgan", "vanilla", "wgangp")
NORMS = ("instance", "batch")
STRATEGIES = ("default", "mirrored", "multi_worker", "tpu")
MIXED_PRECISION = ("off", "bf16")  # bf16 needs no loss scaling: AVX512-BF16 CPUs, Ampere+ GPUs, TPUs

# Settings that shape the networks or the checkpointed state: a checkpoint made with other values
# cannot be restored, so resuming with a different value is an error rather than a surprise.
ARCHITECTURE_FIELDS = ("image_size", "ngf", "ndf", "n_blocks", "norm", "input_skip", "pool_size")


class ConfigError(ValueError):
    """A setting is invalid or contradicts the run folder's saved settings."""


@dataclasses.dataclass
class Config:
    """Everything that defines a training run (flag names are those of the classic train.py)."""

    X: str = "data/tfrecords/apple.tfrecords"
    Y: str = "data/tfrecords/orange.tfrecords"
    checkpoint_dir: str = ""
    batch_size: int = 1  # per replica
    image_size: int = 256
    ngf: int = 64
    ndf: int = 64
    n_blocks: int = 0  # 0: 6 residual blocks up to 128 px, 9 above (the paper's choice)
    norm: str = "instance"
    input_skip: bool = False  # generators also see their input at the last layer (keeps colour)
    gan_loss: str = "lsgan"
    lambda1: float = 10.0  # forward cycle X -> Y -> X
    lambda2: float = 10.0  # backward cycle Y -> X -> Y
    lambda_identity: float = 0.5  # times lambda of the target domain, as in the paper
    gp_weight: float = 10.0  # WGAN-GP gradient penalty
    learning_rate: float = 2e-4
    beta1: float = 0.5
    pool_size: int = 50
    max_steps: int = 200_000
    decay_steps: int = 0  # 0: linear decay to zero over the second half of max_steps
    augment: bool = True
    load_size: int = 0  # augment: resize to this, then random crop; 0: 1.12 x image_size (286 for 256)
    seed: int = 0
    save_every: int = 1000
    summary_every: int = 100
    log_every: int = 100
    keep_checkpoints: int = 3
    jit_compile: bool = False
    mixed_precision: str = "off"
    strategy: str = "default"

    def __post_init__(self) -> None:
        if self.n_blocks == 0:
            self.n_blocks = 6 if self.image_size <= 128 else 9
        if self.decay_steps == 0:
            self.decay_steps = self.max_steps // 2
        self.validate()

    def validate(self) -> None:
        def need(ok: bool, message: str) -> None:
            if not ok:
                raise ConfigError(message)

        need(self.image_size > 0 and self.image_size % 4 == 0,
             f"image_size must be a positive multiple of 4, got {self.image_size}")
        need(self.image_size >= 16, f"image_size must be at least 16, got {self.image_size}")
        need(self.batch_size >= 1, f"batch_size must be >= 1, got {self.batch_size}")
        need(self.ngf >= 1 and self.ndf >= 1, "ngf and ndf must be >= 1")
        need(self.n_blocks >= 1, f"n_blocks must be >= 1, got {self.n_blocks}")
        need(self.norm in NORMS, f"norm must be one of {NORMS}, got {self.norm!r}")
        need(self.gan_loss in GAN_LOSSES, f"gan_loss must be one of {GAN_LOSSES}, got {self.gan_loss!r}")
        need(self.strategy in STRATEGIES, f"strategy must be one of {STRATEGIES}, got {self.strategy!r}")
        need(self.mixed_precision in MIXED_PRECISION,
             f"mixed_precision must be one of {MIXED_PRECISION}, got {self.mixed_precision!r}")
        need(self.load_size == 0 or self.load_size >= self.image_size,
             f"load_size must be 0 (1.12 x image_size) or >= image_size ({self.image_size}), "
             f"got {self.load_size}")
        need(self.pool_size >= 0, "pool_size must be >= 0 (0 turns the history pool off)")
        need(self.max_steps >= 1, "max_steps must be >= 1")
        need(0 <= self.decay_steps <= self.max_steps, "decay_steps must be between 0 and max_steps")
        need(self.learning_rate > 0, "learning_rate must be > 0")
        need(min(self.lambda1, self.lambda2, self.lambda_identity) >= 0, "lambdas must be >= 0")
        need(min(self.save_every, self.summary_every, self.log_every) >= 1,
             "save_every, summary_every and log_every must be >= 1")

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


def merge_with_saved(saved: Config, requested: Config, explicit: Iterable[str]) -> Config:
    """The settings a resumed run uses: the saved ones, overridden by those given explicitly.

    An explicit setting that would change the networks or the checkpointed state is refused with a
    message naming it, since the checkpoint could not be restored with it.
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
    if "max_steps" in overrides and "decay_steps" not in overrides:
        overrides["decay_steps"] = 0  # re-derived from the new max_steps
    return dataclasses.replace(saved, **overrides)
