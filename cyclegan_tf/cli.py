"""What the scripts share: a quiet start, and user errors that end in one clear line (exit 2).

Each script imports this module first: importing it loads TensorFlow with stderr silenced, since
TensorFlow's C++ start-up lines (oneDNN, CUDA stubs, "All log messages before absl::InitializeLog")
are printed while its libraries load, before any setting can hide them. --verbosity (-v) keeps
them, and shows a traceback for user errors too. Only the scripts import this module.
"""
from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from typing import Callable, Iterable, Iterator, Sequence

from absl import app, flags, logging

from cyclegan_tf.errors import UserError


def verbose_requested(argv: Sequence[str]) -> bool:
    """Whether the command line asks for TensorFlow's own messages (--verbosity, -v)."""
    return any(arg.split("=")[0] in ("--verbosity", "-v", "--v") for arg in argv[1:])


@contextlib.contextmanager
def _stderr_captured() -> Iterator[None]:
    """Sends the process' stderr (file descriptor 2, which C++ writes to) to a temporary file,
    and shows what was written there only if the block fails (an import that crashes says why)."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            yield
        except BaseException:
            os.dup2(saved, 2)
            captured.seek(0)
            sys.stderr.write(captured.read().decode("utf-8", "replace"))
            raise
        finally:
            os.dup2(saved, 2)
            os.close(saved)


def load_tensorflow(verbose: bool) -> None:
    """Imports TensorFlow, hiding its start-up noise unless verbose."""
    if verbose:
        import tensorflow  # noqa: F401
        return
    # Later C++ messages too: even its errors, since a machine without a GPU logs "failed call to
    # cuInit" as one. Failures still reach the user as Python exceptions; --verbosity shows all.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    with _stderr_captured():
        import tensorflow  # noqa: F401


def run(main: Callable[[list[str]], int | None]) -> None:
    """absl's app.run with a quiet start; a UserError prints 'error: ...' once and exits 2."""
    verbose = verbose_requested(sys.argv)

    def guarded(argv: list[str]) -> int | None:
        if len(argv) > 1:
            raise app.UsageError(f"unexpected arguments {argv[1:]}: every input is a --flag "
                                 "(quote a glob such as --X 'data/horse-*' so the shell leaves it)")
        if not verbose:
            logging.set_verbosity(logging.ERROR)  # library warnings (TFDS, Keras) stay quiet
        try:
            return main(argv)
        except UserError as e:
            if verbose:
                logging.exception("user error")
            print(f"error: {e}", file=sys.stderr)
            return 2

    app.run(lambda argv: sys.exit(guarded(argv)))


def define_config_flags() -> list[str]:
    """One absl flag per Config setting (config.flag_fields): same name, type, default, choices
    and help, so the flags can never drift from the settings saved with a run."""
    import dataclasses
    from cyclegan_tf.config import Config, flag_fields
    define = {bool: flags.DEFINE_bool, int: flags.DEFINE_integer, float: flags.DEFINE_float,
              str: flags.DEFINE_string}
    hints = {f.name: f.type for f in dataclasses.fields(Config)}
    names = []
    for field in flag_fields():
        # "int | None": None means the model's default (config.MODEL_DEFAULTS)
        kind = {"bool": bool, "int": int, "float": float,
                "str": str}[hints[field.name].removesuffix(" | None")]
        owner = {"module_name": sys.argv[0]}  # listed with the script's own flags in --help
        if field.metadata.get("choices"):
            flags.DEFINE_enum(field.name, field.default, list(field.metadata["choices"]),
                              field.metadata["help"], **owner)
        else:
            define[kind](field.name, field.default, field.metadata["help"], **owner)
        names.append(field.name)
    return names


def explicit_flags(names: Iterable[str]) -> set[str]:
    """The flags the user actually gave (those a resumed run applies over its saved settings)."""
    return {name for name in names if flags.FLAGS[name].present}


load_tensorflow(verbose_requested(sys.argv))  # before the script's other imports (see the top)
