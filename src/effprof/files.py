"""Reading back what a user or effprof wrote, without trusting it; writing files atomically.

One rule for every file effprof reads back (config files, run.json, ledger files, tables, caches,
ONNX files, pruned structures, checkpoints): it must be a regular file (a folder, a FIFO or
``/dev/zero`` behind a symlink is refused, never read; the check is made on the opened file, so
nothing can be swapped in between), at most ``limit`` bytes, and readable; text is UTF-8, JSON
parses within Python's nesting limit, and a pydantic schema names the first wrong field. Every
problem is one ``EffprofError`` line naming the file, e.g. ``cache 'ceilings.json' is not a
regular file (a device, FIFO or socket)``.

Writers never follow links and never leave half a file: the text goes to a fresh temporary with
a unique name in the target's folder (created exclusively, so a planted link or file at that name
is never written through), then is renamed over the target. :func:`move_file` puts a file made
elsewhere (another filesystem included) in place the same way.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from effprof.results import EffprofError

if TYPE_CHECKING:
    from pydantic import BaseModel, ValidationError

    M = TypeVar("M", bound=BaseModel)


def shown_path(path: str | Path, what: str = "") -> str:
    """``config 'x.yaml'``: how a message names a file."""
    return f"{what} {str(path)!r}".lstrip()


NOT_THERE = "does not exist (a link to nowhere?)"  # a file a stored record names, absent


@contextlib.contextmanager
def open_regular(path: str | Path, limit: int, what: str = "") -> Iterator[Any]:
    """The open binary file ``path``, checked to be a regular file of at most ``limit`` bytes.

    Opened without blocking (a FIFO answers at once, and is then refused) and checked on the
    open descriptor. A missing file raises FileNotFoundError (callers say what was expected
    there); every other problem is an EffprofError.
    """
    shown = shown_path(path, what)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise
    except IsADirectoryError:
        raise EffprofError(f"{shown} is not a regular file (a folder)") from None
    except (OSError, ValueError) as err:
        raise EffprofError(f"{shown} cannot be read ({_reason(err)})") from None
    try:
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            kind = "a folder" if stat.S_ISDIR(info.st_mode) else "a device, FIFO or socket"
            raise EffprofError(f"{shown} is not a regular file ({kind})")
        if info.st_size > limit:
            raise EffprofError(f"{shown} is larger than {size_text(limit)}")
        os.set_blocking(fd, True)
        fh = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with fh:
        yield fh


def check_file(path: str | Path, limit: int, what: str = "", missing: str | None = None) -> int:
    """The size of ``path`` once checked like :func:`open_regular` (for files a library reads
    itself: parquet, ONNX, checkpoints); raises as it does, except that with ``missing`` an absent
    file is the EffprofError ``<what 'path'> <missing>``."""
    try:
        with open_regular(path, limit, what) as fh:
            try:
                fh.read(1)  # an unreadable file (EIO, a mode that denies reading) fails here
            except OSError as err:
                raise EffprofError(
                    f"{shown_path(path, what)} cannot be read ({_reason(err)})"
                ) from None
            return os.fstat(fh.fileno()).st_size
    except FileNotFoundError:
        if missing is None:
            raise
        raise EffprofError(f"{shown_path(path, what)} {missing}") from None


def read_small_bytes(path: str | Path, limit: int, what: str = "") -> bytes:
    """The bytes of ``path`` (a regular file of at most ``limit`` bytes)."""
    with open_regular(path, limit, what) as fh:
        try:
            data = fh.read(limit + 1)
        except OSError as err:
            raise EffprofError(
                f"{shown_path(path, what)} cannot be read ({_reason(err)})"
            ) from None
    if len(data) > limit:  # grew while being read
        raise EffprofError(f"{shown_path(path, what)} is larger than {size_text(limit)}")
    return data


def read_small_text(path: str | Path, limit: int, what: str = "") -> str:
    """The UTF-8 text of ``path`` (a regular file of at most ``limit`` bytes).

    A missing file raises FileNotFoundError; every other problem is an EffprofError such as
    ``config 'x.yaml' is not a regular file (a folder)``.
    """
    data = read_small_bytes(path, limit, what)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        shown = shown_path(path, what)
        raise EffprofError(f"{shown} is not UTF-8 text (byte {err.start:,})") from None


def parse_json(text: str, shown: str) -> Any:
    """``json.loads`` with one-line errors: ``<shown> is corrupt: Expecting value: line 1 ...``."""
    try:
        return json.loads(text)
    except RecursionError:
        raise EffprofError(f"{shown} is corrupt: nested too deeply") from None
    except ValueError as err:  # JSONDecodeError, and an integer of more digits than allowed
        raise EffprofError(f"{shown} is corrupt: {str(err).split(';')[0]}") from None


def read_json(path: str | Path, limit: int, what: str = "") -> Any:
    """The parsed JSON of ``path``, checked like :func:`read_small_text`."""
    return parse_json(read_small_text(path, limit, what), shown_path(path, what))


def describe_validation_error(err: ValidationError, source: str) -> str:
    """The first problem of a pydantic error as one line: ``config.yaml: repeat: input should be ...``."""
    errors = err.errors()
    # an unknown key first: it is the likely typo, and the "field required" beside it its echo
    first = next((e for e in errors if e.get("type") == "extra_forbidden"), errors[0])
    where = ".".join(str(p) for p in first.get("loc", ())) or "(top level)"
    message = first.get("msg", "invalid value")
    if first.get("type") == "extra_forbidden":
        message = "unknown key"
    extra = f" (and {err.error_count() - 1} more problems)" if err.error_count() > 1 else ""
    return f"{source}: {where}: {message}{extra}"


def check_schema(schema: type[M], data: Any, source: str) -> M:
    """``data`` validated by a pydantic ``schema``; the first problem is one EffprofError line."""
    from pydantic import ValidationError

    try:
        return schema.model_validate(data)
    except ValidationError as err:
        raise EffprofError(describe_validation_error(err, source)) from None


def nearest_folder(path: str | Path) -> Path:
    """``path`` if it is a folder, else the nearest folder above it that exists (``.`` at worst)."""
    for candidate in (Path(path), *Path(path).parents):
        with contextlib.suppress(OSError, ValueError):
            if candidate.is_dir():
                return candidate
    return Path(".")


def is_inside(path: str | Path, folder: str | Path) -> bool:
    """Whether ``path`` (links and ``..`` resolved) lies inside ``folder`` (resolved too)."""
    try:
        return Path(os.path.realpath(path)).is_relative_to(os.path.realpath(folder))
    except (OSError, ValueError):
        return False


# --- ONNX files ----------------------------------------------------------------------------------

MAX_ONNX_BYTES = 2 * 2**30  # protobuf's limit for one message


def check_onnx_file(path: str | Path, folder: str | Path | None = None) -> Path:
    """``path`` once it is an ONNX model that may be handed to ONNX Runtime: a regular file of at
    most 2 GiB that parses as an ONNX model, every external-data file it names a regular file
    inside ``folder`` (default: the model's own folder; ``../../etc/passwd`` is refused)."""
    import onnx
    from onnx.external_data_helper import _get_all_tensors

    path = Path(path)
    shown = shown_path(path, "ONNX file")
    check_file(path, MAX_ONNX_BYTES, "ONNX file", missing=NOT_THERE)
    try:
        model = onnx.load(str(path), load_external_data=False)
    except Exception as err:  # protobuf's DecodeError and friends
        lines = str(err).strip().splitlines() or [type(err).__name__]
        raise EffprofError(f"{shown} is not a readable ONNX model ({lines[0][:120]})") from None
    if model.ir_version < 1 or not model.graph.output:  # an empty file parses as an empty model
        raise EffprofError(f"{shown} holds no ONNX graph (empty or not an ONNX file)")
    base = Path(folder) if folder is not None else path.parent
    for tensor in _get_all_tensors(model):
        if tensor.data_location != onnx.TensorProto.EXTERNAL:
            continue
        location = {entry.key: entry.value for entry in tensor.external_data}.get("location", "")
        target = path.parent / location
        if not location or Path(location).is_absolute() or not is_inside(target, base):
            raise EffprofError(
                f"{shown} keeps tensor {tensor.name[:60]!r} in {location[:80]!r}, outside "
                f"{str(base)!r}; refused"
            )
        try:
            check_file(target, MAX_ONNX_BYTES, "ONNX external data")
        except FileNotFoundError:
            raise EffprofError(
                f"{shown} keeps tensors in {location[:80]!r}, which is absent"
            ) from None
    return path


# --- writing -----------------------------------------------------------------------------------


def _file_mode() -> int:
    """0o666 less the process umask: what ``open()`` would give a new file."""
    mask = os.umask(0)
    os.umask(mask)
    return 0o666 & ~mask


@contextlib.contextmanager
def temporary_beside(path: str | Path, suffix: str = ".tmp") -> Iterator[Path]:
    """A fresh, exclusively created, uniquely named empty file in ``path``'s folder (the same
    filesystem, so it can be renamed over ``path``); removed on exit unless it was moved away."""
    path = Path(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.close(fd)
    try:
        yield Path(name)
    finally:
        Path(name).unlink(missing_ok=True)


def _open_for_writing(path: Path) -> Any:
    """``path`` (a temporary just made) opened for writing, never through a link swapped in."""
    flags = os.O_WRONLY | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_CLOEXEC", 0)
    return os.fdopen(os.open(path, flags), "wb")


def write_bytes_atomic(path: str | Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that readers see the old file or the new one, never half; a
    link at ``path`` is replaced, not followed; the file gets the umask's mode (as ``open()``
    would give it), and a failure leaves nothing behind."""
    path = Path(path)
    with temporary_beside(path) as tmp:
        with _open_for_writing(tmp) as fh:
            os.fchmod(fh.fileno(), _file_mode())
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)


def write_text_atomic(path: str | Path, text: str) -> None:
    """:func:`write_bytes_atomic` of ``text`` in UTF-8."""
    write_bytes_atomic(path, text.encode("utf-8"))


def move_file(source: str | Path, destination: str | Path) -> Path:
    """Move ``source`` to ``destination`` atomically: a rename on one filesystem; across
    filesystems (a TMPDIR elsewhere) a copy into a temporary beside ``destination``, renamed in
    place, then ``source`` removed. Returns ``destination``."""
    source, destination = Path(source), Path(destination)
    try:
        os.replace(source, destination)
        return destination
    except OSError as err:
        if err.errno != errno.EXDEV:
            raise
    with temporary_beside(destination) as tmp:
        with open(source, "rb") as src, _open_for_writing(tmp) as dst:
            shutil.copyfileobj(src, dst, 2**20)
            dst.flush()
            os.fsync(dst.fileno())
        os.replace(tmp, destination)
    source.unlink(missing_ok=True)
    return destination


# --- reasons -----------------------------------------------------------------------------------


def disk_full(err: OSError) -> bool:
    """True when ``err`` says the disk (or the user's quota) is full."""
    return err.errno in (errno.ENOSPC, errno.EDQUOT)


def os_reason(err: OSError) -> str:
    """A short reason for an OSError: ``no space left on the device``, ``Permission denied``..."""
    if disk_full(err):
        return "no space left on the device"
    return err.strerror or type(err).__name__


def _reason(err: Exception) -> str:
    return getattr(err, "strerror", None) or str(err) or type(err).__name__


def size_text(limit: int) -> str:
    """``16 MiB``, ``4 KiB``, ``2 GiB``: a size limit as a message says it."""
    if limit >= 2**30:
        return f"{limit / 2**30:g} GiB"
    return f"{limit / 2**20:g} MiB" if limit >= 2**20 else f"{limit / 2**10:g} KiB"
