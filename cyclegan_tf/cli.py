"""What the four scripts share: user errors end in one clear line and exit status 2."""
from __future__ import annotations

import sys
from typing import Callable

from absl import app, flags, logging

from cyclegan_tf.config import ConfigError
from cyclegan_tf.data import DataError
from cyclegan_tf.export import ExportError
from cyclegan_tf.training import TrainingError

USER_ERRORS = (ConfigError, DataError, ExportError, TrainingError)


def run(main: Callable[[list[str]], int | None]) -> None:
    def guarded(argv: list[str]) -> int | None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}: every input is a --flag")
        try:
            return main(argv)
        except USER_ERRORS as e:
            logging.error("%s", e)
            print(f"error: {e}", file=sys.stderr)
            return 2

    app.run(lambda argv: sys.exit(guarded(argv)))


def explicit_flags(names) -> set[str]:
    """The flags the user actually gave (those a resumed run applies over its saved settings)."""
    return {name for name in names if flags.FLAGS[name].present}
