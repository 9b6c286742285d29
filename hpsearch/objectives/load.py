"""Find, import and hash a user's objective; the record a study keeps of it.

``--objective FILE.py:NAME`` imports the file as a module (its directory goes on
``sys.path`` first, so it can import its neighbours; ``if __name__ == "__main__":`` blocks
do not run); ``--objective package.module:NAME`` imports the module from ``sys.path`` and
the current directory (uvicorn's and Hydra's convention). The study stores the spec, the
absolute path and a sha256 of the file (:data:`hpsearch.schema.OBJECTIVE`), so ``verify``
and ``best`` find the objective again, and refuse a file that changed since: its results
would not be the study's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hpsearch import schema
from hpsearch.errors import ObjectiveError

_MODULE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")


@dataclass(frozen=True)
class LoadedObjective:
    """An imported objective and where it came from."""

    fn: Callable[..., Any]
    spec: str              # as the user gave it
    name: str              # the function's name in its module
    path: str | None       # absolute path of the file that defines it
    module: str | None     # ``package.module`` when named so, else None
    sha256: str            # of that file ("" when it has none)

    def record(self) -> dict[str, Any]:
        """What a study stores (:data:`hpsearch.schema.OBJECTIVE`)."""
        return {"spec": self.spec, "path": self.path, "module": self.module,
                "name": self.name, "sha256": self.sha256}

    def study_name(self) -> str:
        """The default study name: ``<file stem>-<name>`` (``svm-objective``)."""
        stem = Path(self.path).stem if self.path else (self.module or "objective")
        return f"{stem.rsplit('.', 1)[-1]}-{self.name}"


def file_hash(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def split_spec(spec: str, flag: str = "--objective") -> tuple[str, str]:
    """``FILE.py:NAME`` or ``package.module:NAME`` -> (target, name)."""
    target, sep, name = str(spec).rpartition(":")
    if not sep or not target or not name.isidentifier():
        raise ObjectiveError(f"{flag} {spec!r}: give FILE.py:NAME or package.module:NAME "
                             "(NAME: a function objective(trial) -> float)")
    return target, name


def load_objective(spec: str, *, flag: str = "--objective") -> LoadedObjective:
    """Import ``spec``'s module and check that its NAME is a callable taking the trial.

    Every failure is one :class:`ObjectiveError` that names the file and what went wrong
    (a missing file, an import that raised: its exception and line, a missing or
    non-callable name, a signature that does not take the trial).
    """
    target, name = split_spec(spec, flag)
    where = f"{flag} {spec}"
    path: Path | None
    if target.endswith(".py") or "/" in target or "\\" in target:
        path = Path(target).expanduser().resolve()
        if not path.is_file():
            raise ObjectiveError(f"{where}: there is no file {path}")
        module = _import_file(path, where)
        module_name = None
    else:
        if not _MODULE.match(target):
            raise ObjectiveError(f"{where}: {target!r} is neither a .py file nor a module "
                                 "name (package.module)")
        module = _import_module(target, where)
        file = getattr(module, "__file__", None)
        path = Path(file).resolve() if file else None
        module_name = target
    if not hasattr(module, name):
        defined = sorted(k for k, v in vars(module).items()
                         if callable(v) and not k.startswith("_")
                         and getattr(v, "__module__", None) == module.__name__)
        shown = ", ".join(defined[:8]) or "no functions"
        raise ObjectiveError(f"{where}: {path or target} has no {name!r} (it defines {shown})")
    fn = getattr(module, name)
    if not callable(fn):
        raise ObjectiveError(f"{where}: {name} is a {type(fn).__name__}, not a function; an "
                             f"objective is def {name}(trial) -> float")
    check_signature(fn, where)
    return LoadedObjective(fn, str(spec), name, str(path) if path else None, module_name,
                           file_hash(path) if path else "")


def check_signature(fn: Callable[..., Any], where: str) -> None:
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):  # a builtin without a signature: let the call tell
        return
    try:
        sig.bind(object())
    except TypeError:
        raise ObjectiveError(f"{where}: it takes {sig}, and an objective takes the trial: "
                             "def objective(trial) -> float (seed= and split= may follow "
                             "as keywords)") from None


def _import_file(path: Path, where: str) -> Any:
    folder = str(path.parent)
    if folder not in sys.path:
        sys.path.insert(0, folder)  # its own imports of neighbouring files
    module_name = "hpsearch_objective_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ObjectiveError(f"{where}: {path} cannot be imported as Python")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module  # dataclasses and pickle look their module up
    try:
        spec.loader.exec_module(module)
    except (Exception, SystemExit) as exc:
        sys.modules.pop(module_name, None)
        raise ObjectiveError(f"{where}: importing {path} failed: {describe(exc, path)}"
                             ) from None
    return module


def _import_module(name: str, where: str) -> Any:
    if "" not in sys.path and str(Path.cwd()) not in sys.path:
        sys.path.insert(0, str(Path.cwd()))
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        if exc.name and name.startswith(exc.name):
            raise ObjectiveError(f"{where}: no module {exc.name!r} here (looked on sys.path "
                                 "and in the current directory)") from None
        raise ObjectiveError(f"{where}: importing {name} failed: {describe(exc)}") from None
    except (Exception, SystemExit) as exc:
        raise ObjectiveError(f"{where}: importing {name} failed: {describe(exc)}") from None


def describe(exc: BaseException, path: str | Path | None = None) -> str:
    """``ValueError: bad (svm.py, line 12)``: the exception and the deepest line of the
    user's file (of ``path``, else of any file outside hpsearch, Python and site-packages)."""
    text = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
    if isinstance(exc, SyntaxError) and exc.lineno:
        return f"SyntaxError: {exc.msg} ({Path(exc.filename or '?').name}, line {exc.lineno})"
    frames = traceback.extract_tb(exc.__traceback__)
    here = Path(__file__).resolve().parent.parent
    mine = [f for f in frames
            if (path is not None and Path(f.filename).resolve() == Path(path).resolve())
            or (path is None and not Path(f.filename).resolve().is_relative_to(here)
                and "site-packages" not in f.filename and "/lib/python" not in f.filename
                and not f.filename.startswith("<"))]
    if mine:
        text += f" ({Path(mine[-1].filename).name}, line {mine[-1].lineno})"
    return text[:400]


def recorded_spec(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """The objective record of a study (its user attrs), or None for hpsearch's own."""
    rec = attrs.get(schema.OBJECTIVE)
    return rec if isinstance(rec, dict) and isinstance(rec.get("name"), str) else None


def load_recorded(record: Mapping[str, Any], override: str | None, *, study: str,
                  command: str) -> LoadedObjective:
    """The objective a study ran, found from its record; ``override`` (``--objective``)
    points at it when the file moved. A file that changed since the study ran it is
    refused unless named with ``--objective`` (then it is the user's call)."""
    how = (f"point at it with `hpsearch {command} STORAGE --objective FILE.py:NAME` "
           f"(or package.module:NAME)")
    if override is not None:
        return load_objective(override)
    spec, path, module = record.get("spec"), record.get("path"), record.get("module")
    name = str(record["name"])
    if module:
        target = f"{module}:{name}"
    elif isinstance(path, str) and Path(path).is_file():
        target = f"{path}:{name}"
    else:
        raise ObjectiveError(f"study {study!r} ran the objective {spec} ({path}), which is not "
                             f"there any more; {how}")
    try:
        loaded = load_objective(target, flag="the study's objective")
    except ObjectiveError as exc:
        raise ObjectiveError(f"{exc}; {how}") from None
    if isinstance(spec, str):  # shown as the user gave it
        loaded = dataclasses.replace(loaded, spec=spec)
    old = record.get("sha256")
    if old and loaded.sha256 and loaded.sha256 != old:
        raise ObjectiveError(
            f"study {study!r} ran the objective {spec}, and {loaded.path} has changed since "
            f"(sha256 {str(old)[:12]} then, {loaded.sha256[:12]} now), so its results would "
            f"not be the study's; restore the file, or {how} to use it as it is now")
    return loaded
