"""Any PyTorch model named as ``package.module:callable`` or ``path/to/file.py:callable``.

The callable takes no arguments and returns an ``nn.Module``, or ``(module, example_inputs)``
where the example is a tensor, a tuple of tensors, a dict of tensors or an
:class:`~effprof.models.inputs.InputSpec` (several tensors, token ids, point coordinates). The
current folder is importable, as it is for ``python -m``. Everything that can go wrong while
importing the module or calling the factory is a one-line error naming the model.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import inspect
import re
import sys
from dataclasses import replace
from pathlib import Path
from typing import Any

from torch import nn

from effprof.models.inputs import InputSpec, from_example, image_inputs
from effprof.results import EffprofError

_MODULE_SPEC = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")
_FILE_SPEC = re.compile(r"^(?P<path>.+\.py):(?P<attr>[A-Za-z_]\w*)$")
MAX_MESSAGE = 300
FACTORY_ORIGIN = "the model factory's example inputs"


def is_import_spec(name: str) -> bool:
    """True for ``package.module:callable`` or ``file.py:callable`` (not a registered name)."""
    return bool(_MODULE_SPEC.match(name) or _FILE_SPEC.match(name))


def _first_line(error: BaseException) -> str:
    text = (str(error).strip().splitlines() or [""])[0]
    text = f"{type(error).__name__}: {text}" if text else type(error).__name__
    return text if len(text) <= MAX_MESSAGE else text[: MAX_MESSAGE - 3] + "..."


@contextlib.contextmanager
def _cwd_importable():
    """The current folder on ``sys.path`` while importing (``python -m`` does the same)."""
    added = "" not in sys.path and str(Path.cwd()) not in sys.path
    if added:
        sys.path.insert(0, str(Path.cwd()))
    try:
        yield
    finally:
        if added:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(Path.cwd()))


def _guarded(spec: str, what: str, call: Any) -> Any:
    """``call()``, with any failure (SystemExit included) turned into one line naming the model."""
    try:
        return call()
    except EffprofError:
        raise
    except (SystemExit, KeyboardInterrupt) as stop:
        if isinstance(stop, KeyboardInterrupt):
            raise
        raise EffprofError(f"--model {spec!r}: {what} called sys.exit({stop.code!r})") from None
    except SyntaxError as error:
        where = f"{Path(error.filename).name}:{error.lineno}" if error.filename else "?"
        raise EffprofError(f"--model {spec!r}: syntax error in {where}: {error.msg}") from None
    except Exception as error:
        raise EffprofError(f"--model {spec!r}: {what} failed: {_first_line(error)}") from None


def _import_module(spec: str) -> Any:
    match = _FILE_SPEC.match(spec)
    if match:
        path = Path(match["path"]).expanduser()
        if not path.is_file():
            raise EffprofError(f"--model {spec!r}: no such file {str(path)!r}")
        name = f"effprof_user_{re.sub(r'[^0-9A-Za-z_]', '_', path.stem)}"
        loader_spec = importlib.util.spec_from_file_location(name, path)
        if loader_spec is None or loader_spec.loader is None:
            raise EffprofError(f"--model {spec!r}: cannot load {str(path)!r} as a Python module")
        module = importlib.util.module_from_spec(loader_spec)
        with _cwd_importable():
            sys.path.insert(0, str(path.resolve().parent))
            try:
                _guarded(
                    spec, f"importing {path.name}", lambda: loader_spec.loader.exec_module(module)
                )
            finally:
                with contextlib.suppress(ValueError):
                    sys.path.remove(str(path.resolve().parent))
        return module
    module_name = spec.split(":")[0]
    with _cwd_importable():
        try:
            found = importlib.util.find_spec(module_name.split(".")[0]) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            raise EffprofError(
                f"cannot import {module_name!r} for --model {spec!r}: no such module "
                "(looked in the current folder and on sys.path)"
            )
        return _guarded(
            spec, f"importing {module_name}", lambda: importlib.import_module(module_name)
        )


def _factory(spec: str) -> Any:
    module = _import_module(spec)
    attr = spec.rsplit(":", 1)[1]
    factory = getattr(module, attr, None)
    if factory is None or not callable(factory):
        raise EffprofError(f"--model {spec!r}: {module.__name__!r} has no callable {attr!r}")
    try:
        signature = inspect.signature(factory)
    except (TypeError, ValueError):
        return factory
    required = [
        p.name for p in signature.parameters.values()
        if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
    ]  # fmt: skip
    if required:
        raise EffprofError(
            f"--model {spec!r}: {attr}() needs argument(s) {', '.join(required)}; a model factory "
            f"takes none (wrap it: def make(): return {attr}(...))"
        )
    return factory


def build_from_spec(spec: str) -> tuple[nn.Module, InputSpec | None]:
    """Import the module, call the factory: (model, its example inputs or None)."""
    factory = _factory(spec)
    result = _guarded(spec, f"{spec.rsplit(':', 1)[1]}()", factory)
    example: Any = None
    if isinstance(result, tuple) and len(result) == 2 and isinstance(result[0], nn.Module):
        result, example = result
    if not isinstance(result, nn.Module):
        raise EffprofError(
            f"--model {spec!r} returned {type(result).__name__}, not a torch.nn.Module "
            "(or a (module, example_inputs) pair)"
        )
    if isinstance(example, InputSpec):
        return result, example if example.origin else replace(example, origin=FACTORY_ORIGIN)
    if example is None:
        return result, declared_inputs(result)
    try:
        return result, replace(from_example(example), origin=FACTORY_ORIGIN)
    except EffprofError as error:
        raise EffprofError(f"--model {spec!r}: {error}") from None


def declared_inputs(model: nn.Module) -> InputSpec | None:
    """The image a model's own configuration declares (a transformers ``config`` with
    ``image_size`` and ``num_channels``), or None."""
    config = getattr(model, "config", None)
    size, channels = getattr(config, "image_size", None), getattr(config, "num_channels", None)
    if isinstance(size, int):
        size = (size, size)
    if not (isinstance(channels, int) and isinstance(size, (tuple, list)) and len(size) == 2):
        return None
    if not all(isinstance(d, int) and d > 0 for d in (channels, *size)):
        return None
    return image_inputs(
        (1, channels, *size), origin="the model's config (image_size, num_channels)"
    )
