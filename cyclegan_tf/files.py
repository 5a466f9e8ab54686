"""The one rule every command that writes follows: nothing a user owns is deleted or overwritten.

An output path may be new (or an empty folder, for a folder output), or hold this package's own
earlier output of the same kind, which is then replaced (and the caller says so). Anything else
there, a folder with other files, a run folder, `.`, `..`, a parent of an input, an input itself,
is refused with one clear line before any work is done, and nothing on disk changes. Writes go to a hidden sibling first and are swapped
in when complete, so a crash or SIGKILL leaves either the old output or the new one.

Kinds of output and how this package recognises its own:
  saved_model  a folder with assets.extra/cyclegan_tf.json (written by every export)
  folder       a folder of results (evaluation, demo data) holding the marker file .cyclegan_tf
  tfrecords    a file of image records in build_data's schema (also the classic TF1 tool's)
  image        a PNG/JPEG/... whose metadata names this package (every image it writes does)
"""
from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import dataclasses
import json
import os
import shutil
import uuid
from typing import Iterable, Iterator, Sequence

from cyclegan_tf.errors import OutputError

SAVED_MODEL_MARKER = os.path.join("assets.extra", "cyclegan_tf.json")
FOLDER_MARKER = ".cyclegan_tf"
SOFTWARE = "cyclegan_tf"  # the Software tag of every image this package writes
KINDS = ("saved_model", "folder", "tfrecords", "image")
# What an export writes at the top of its folder: anything else there is someone else's.
SAVED_MODEL_ENTRIES = {"saved_model.pb", "fingerprint.pb", "variables", "assets", "assets.extra",
                       "model.onnx", "model.tflite"}
RUN_FOLDER_FILES = ("config.json", "checkpoint", "train.lock")


@dataclasses.dataclass(frozen=True)
class Output:
    """One path a command is about to write, and the kind of thing it writes there."""

    path: str
    kind: str

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"unknown output kind {self.kind!r}; one of {KINDS}")


def check_outputs(outputs: Sequence[Output], inputs: Iterable[str] = ()) -> list[str]:
    """Refuses, with an OutputError naming the path and what to do, any output that would destroy
    or mix up something else; call it before any work. Returns the outputs that already exist
    (this package's own, which the command will replace)."""
    inputs = [_real(p) for p in inputs if p]
    seen: dict[str, str] = {}
    replaced = []
    for output in outputs:
        target = _real(output.path)
        if target in seen:
            raise OutputError(f"{output.path} and {seen[target]} are the same path: give each "
                              "output its own")
        seen[target] = output.path
        _refuse_protected(output.path, target, inputs)
        if os.path.lexists(output.path) and not _empty_folder(output):
            if not is_own(output.path, output.kind):
                raise OutputError(_not_ours(output))
            replaced.append(output.path)
        else:
            parent = os.path.dirname(target)
            existing = _nearest_existing(parent)
            if not os.path.isdir(existing):
                raise OutputError(f"cannot write {output.path}: {existing} is a file, not a folder")
            if not os.access(existing, os.W_OK):
                raise OutputError(f"cannot write {output.path}: {existing} is not writable")
    return replaced


def is_own(path: str, kind: str) -> bool:
    """Whether path holds this package's own earlier output of this kind, and nothing else (a
    folder of ours that someone put other files into is theirs too now)."""
    path = path.rstrip(os.sep) or path
    if os.path.islink(path):
        return False
    if kind == "saved_model":
        return os.path.isfile(os.path.join(path, SAVED_MODEL_MARKER)) and \
            set(os.listdir(path)) <= SAVED_MODEL_ENTRIES
    if kind == "folder":
        try:
            with open(os.path.join(path, FOLDER_MARKER), encoding="utf-8") as f:
                written = set(json.load(f)["files"])
        except (OSError, ValueError, KeyError, TypeError):
            return False
        return _files_under(path) - {FOLDER_MARKER} <= written
    if not os.path.isfile(path):
        return False
    if kind == "tfrecords":
        return _is_image_tfrecords(path)
    return image_is_own(path)


def image_is_own(path: str) -> bool:
    from PIL import Image
    try:
        with Image.open(path) as image:
            return SOFTWARE in (image.info.get("Software"), image.getexif().get(0x0131),
                                image.info.get("comment", b"").decode("latin-1"))
    except Exception:  # noqa: BLE001 - not an image we can read: not ours
        return False


def image_save_options(path: str) -> dict:
    """PIL save() options that mark an image as this package's output (so a rerun may replace
    it) and keep JPEGs at quality 95."""
    from PIL import Image, PngImagePlugin
    ext = os.path.splitext(path)[1].lower()
    if ext == ".png":
        info = PngImagePlugin.PngInfo()
        info.add_text("Software", SOFTWARE)
        return {"pnginfo": info}
    if ext == ".gif":
        return {"comment": SOFTWARE.encode()}
    exif = Image.Exif()  # JPEG, WebP (BMP keeps no metadata: a rerun refuses to replace it)
    exif[0x0131] = SOFTWARE
    options = {"exif": exif.tobytes()}
    if ext in (".jpg", ".jpeg"):
        options["quality"] = 95
    return options


def save_image(image, path: str) -> str:
    """Saves a PIL image atomically, marked as this package's output."""
    with atomic_file(path) as tmp:
        image.save(tmp, format=_pil_format(path), **image_save_options(path))
    return path


@contextlib.contextmanager
def atomic_file(path: str, kind: str = "image") -> Iterator[str]:
    """Yields a temporary path beside path; renamed onto path only if the block succeeds and
    path is still new or ours (it was checked before the work, which may have taken minutes)."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    tmp = temporary_path(path)
    try:
        yield tmp
        _still_replaceable(Output(path, kind))
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


@contextlib.contextmanager
def atomic_folder(path: str, kind: str = "folder") -> Iterator[str]:
    """Yields a new temporary folder beside path; when the block succeeds it is marked as this
    package's output and swapped in for path (an earlier output of ours is then removed)."""
    path = os.path.abspath(path)
    parent = os.path.dirname(path)
    os.makedirs(parent, exist_ok=True)
    tmp = temporary_path(path)
    os.mkdir(tmp)
    try:
        yield tmp
        if kind == "folder":  # the marker lists what was written: anything added later is not ours
            with open(os.path.join(tmp, FOLDER_MARKER), "w", encoding="utf-8") as f:
                json.dump({"written_by": SOFTWARE, "files": sorted(_files_under(tmp))}, f)
        _still_replaceable(Output(path, kind))
        _swap_in(tmp, path)
    finally:
        if os.path.exists(tmp):
            shutil.rmtree(tmp, ignore_errors=True)


def _swap_in(new: str, path: str) -> None:
    """Puts folder new at path. With an old folder there, both are exchanged in one atomic
    rename (Linux renameat2), so some complete folder is at path at every moment."""
    if not os.path.lexists(path):
        os.rename(new, path)
        return
    if not _exchange(new, path):  # other systems: two renames, the old one kept until the end
        old = new + ".old"
        os.rename(path, old)
        try:
            os.rename(new, path)
        except OSError:
            os.rename(old, path)
            raise
        new = old
    shutil.rmtree(new, ignore_errors=True)  # now the old output


def temporary_path(path: str) -> str:
    """A hidden name beside path for its output while it is written (no glob of the output's
    name matches it, and two writers never share one)."""
    folder, name = os.path.split(os.path.abspath(path))
    return os.path.join(folder, f".{name}.{uuid.uuid4().hex[:8]}.incomplete")


def _still_replaceable(output: Output) -> None:
    if os.path.lexists(output.path) and not _empty_folder(output) and \
            not is_own(output.path, output.kind):
        raise OutputError(_not_ours(output) + " (it appeared while this command was working)")


def _files_under(folder: str) -> set[str]:
    return {os.path.relpath(os.path.join(root, name), folder)
            for root, _, names in os.walk(folder) for name in names}


def _exchange(a: str, b: str) -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        renameat2 = libc.renameat2
    except (OSError, AttributeError):
        return False
    at_fdcwd, rename_exchange = -100, 2
    return renameat2(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange) == 0


# -- what is protected ------------------------------------------------------------------------------

def _real(path: str) -> str:
    return os.path.realpath(os.path.abspath(path))


def _nearest_existing(path: str) -> str:
    while not os.path.exists(path):
        path = os.path.dirname(path)
    return path


def _empty_folder(output: Output) -> bool:
    """An empty folder where a folder output goes holds nothing to lose: it is used as new."""
    return output.kind in ("saved_model", "folder") and os.path.isdir(output.path) and \
        not os.path.islink(output.path) and not os.listdir(output.path)


def _is_ancestor(folder: str, path: str) -> bool:
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _refuse_protected(given: str, target: str, inputs: Sequence[str]) -> None:
    special = {_real(os.curdir): "the current folder", _real(os.pardir): "the parent folder",
               _real(os.path.expanduser("~")): "your home folder", _real(os.sep): "the root folder"}
    if target in special:
        raise OutputError(f"refusing to write {given}: it is {special[target]}. Give the "
                          "output a path of its own")
    for source in inputs:
        if _is_ancestor(target, source):
            what = "an input" if target == source else "a folder holding an input"
            raise OutputError(f"refusing to write {given}: it is {what} ({source}). Give the "
                              "output another path: inputs are never overwritten")
    if os.path.isdir(target) and any(os.path.exists(os.path.join(target, name))
                                     for name in RUN_FOLDER_FILES):
        raise OutputError(f"refusing to write {given}: it is a training run folder "
                          "(config.json, checkpoints). Give the output another path")


def _not_ours(output: Output) -> str:
    what = {"saved_model": "a model exported by this package",
            "folder": "a results folder written by this package",
            "tfrecords": "a tfrecords file of images",
            "image": "an image written by this package"}[output.kind]
    if os.path.isdir(output.path):
        found = "a folder" + (" with other files" if os.listdir(output.path) else "")
    else:
        found = "a file"
    return (f"refusing to write {output.path}: it exists and is {found}, not {what}, so replacing "
            "it could destroy your data. Move it away or give another path")


def _is_image_tfrecords(path: str) -> bool:
    import tensorflow as tf
    try:
        for record in tf.data.TFRecordDataset(path).take(1):
            example = tf.train.Example.FromString(record.numpy())
            return "image/encoded_image" in example.features.feature
        return os.path.getsize(path) == 0
    except Exception:  # noqa: BLE001 - unreadable as tfrecords: not ours
        return False


def _pil_format(path: str) -> str | None:
    from PIL import Image
    Image.init()
    return Image.EXTENSION.get(os.path.splitext(path)[1].lower())
