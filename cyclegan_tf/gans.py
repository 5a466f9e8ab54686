"""The GANs the Trainer can train, by name (--model). Adding one: its module, and one line here
(and its name in config.MODELS, which the flag's choices come from)."""
from __future__ import annotations

import tensorflow as tf

from cyclegan_tf.config import MODELS as MODEL_NAMES
from cyclegan_tf.config import Config, ConfigError
from cyclegan_tf.cyclegan import CycleGAN
from cyclegan_tf.generators import DCGAN, WGANGP
from cyclegan_tf.stylegan import StyleGAN

MODELS: dict[str, type[tf.Module]] = {"cyclegan": CycleGAN, "dcgan": DCGAN, "wgangp": WGANGP,
                                      "stylegan": StyleGAN}
assert tuple(MODELS) == MODEL_NAMES, "config.MODELS and gans.MODELS must list the same GANs"


def model_class(name: str | None) -> type[tf.Module]:
    """The class of the GAN named name (None: a config.json from before --model, a CycleGAN)."""
    try:
        return MODELS[name or "cyclegan"]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}: one of {', '.join(MODELS)}") from None


def build_model(config: Config) -> tf.Module:
    """The run's GAN (create it inside strategy.scope())."""
    return model_class(config.model)(config)
