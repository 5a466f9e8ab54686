"""The errors a user can cause, in one place: each message says what is wrong and what to do.

The command-line scripts end any of them with that one line and exit status 2 (cyclegan_tf.cli).
This module imports nothing heavy, so the scripts can name these errors before TensorFlow loads.
"""


class UserError(Exception):
    """Base of every error whose message is meant for the user, not a traceback."""


class ConfigError(UserError, ValueError):
    """A setting is invalid or contradicts the run folder's saved settings."""


class DataError(UserError, ValueError):
    """Input data that cannot be used; the message names the path and what to do."""


class OutputError(UserError, ValueError):
    """An output path that would destroy or mix up something the user owns; nothing was written."""


class ExportError(UserError, RuntimeError):
    """An export or a model load that cannot be done; the message says why."""


class TrainingError(UserError, RuntimeError):
    """Training cannot go on; the message says why and what to do."""
