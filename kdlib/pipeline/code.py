"""The code a stage is built by, and its digest: what `kdlib.pipeline.graph` records in a manifest, so that a
changed builder makes its stage stale ("code changed").

The code of a stage is its builder's module and every kdlib module that module imports, transitively (imports
inside functions included, and the packages the imported modules lie in), found by an AST scan of the package
(`import_graph`, also what `tests/test_architecture.py` checks the layers with). Left out: the reports
(`kdlib.report`, which make pages from products, not products) and the entry points (`kdlib`, `kdlib.__main__`,
`kdlib.cli`, `kdlib.run`). Each module is digested by its bytes (`stage_code`), keyed by its name, so a copy of
the repository elsewhere has the same digests.

The import graph and a builder's digests are worked out once per process (the code a process runs is the code it
imported); `forget` clears them (tests that edit a module).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # the kdlib folder
ENTRY_POINTS = frozenset({"kdlib", "kdlib.__main__", "kdlib.cli", "kdlib.run"})
LEFT_OUT = ("kdlib.report",)  # with its submodules


def module_name(path: Path, package: Path = PACKAGE) -> str:
    """`kdlib/stages/filtering.py` → `kdlib.stages.filtering` (a package's `__init__.py` → the package)."""
    parts = Path(path).relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def package_modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Every module of the package, by name."""
    return {module_name(path, package): path for path in sorted(package.rglob("*.py"))}


def imports(path: Path, known: set[str] | dict[str, Path], package: Path = PACKAGE) -> set[str]:
    """The modules of `package` that the file `path` imports, anywhere in it: `import a.b`, `from a import b`
    (the submodule `a.b` when it is one of the `known` modules, else `a`) and relative imports."""
    prefix = package.name
    own = module_name(path, package) if Path(path).is_relative_to(package.parent) else ""
    is_package = Path(path).name == "__init__.py"
    found = set()
    for node in ast.walk(ast.parse(Path(path).read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names if alias.name.split(".")[0] == prefix)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: against the importing module's package
                anchor = own.split(".") if is_package else own.split(".")[:-1]
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            if base.split(".")[0] != prefix:
                continue
            for alias in node.names:
                child = f"{base}.{alias.name}"
                found.add(child if child in known else base)
    return found


_modules = functools.cache(package_modules)


@functools.cache
def import_graph(package: Path = PACKAGE) -> dict[str, frozenset[str]]:
    """Each module of the package → the package's modules it imports (itself left out)."""
    modules = _modules(package)
    return {name: frozenset(imports(path, modules, package) - {name}) for name, path in modules.items()}


def _counted(module: str) -> bool:
    return module not in ENTRY_POINTS and not any(module == left or module.startswith(left + ".") for left in LEFT_OUT)


def dependencies(module: str, package: Path = PACKAGE) -> dict[str, Path]:
    """The code of a builder `module` (a kdlib module, or one outside kdlib such as a test's): its file and every
    counted kdlib module it imports, transitively, with the packages they lie in; by name, sorted."""
    graph = import_graph(package)
    modules = _modules(package)
    if module in modules:
        own, start = {}, {module}
    else:
        spec = importlib.util.find_spec(module)
        if spec is None or spec.origin is None or not Path(spec.origin).is_file():
            raise ModuleNotFoundError(f"no module {module!r}: a stage's builder must be importable")
        own, start = {module: Path(spec.origin)}, imports(Path(spec.origin), modules, package)
    found: dict[str, Path] = {}
    todo = [name for name in start if _counted(name)]
    while todo:
        name = todo.pop()
        if name in found or name not in modules:
            continue
        found[name] = modules[name]
        parents = [".".join(name.split(".")[:cut]) for cut in range(1, name.count(".") + 1)]
        todo += [other for other in (*graph[name], *parents) if _counted(other) and other not in found]
    return dict(sorted({**own, **found}.items()))


@functools.cache
def _stage_code(module: str, origin: str | None, package: Path) -> tuple[tuple[str, str], ...]:
    files = dependencies(module, package)
    return tuple((name, hashlib.sha256(path.read_bytes()).hexdigest()[:16]) for name, path in files.items())


def stage_code(builder: str, package: Path = PACKAGE) -> dict[str, str]:
    """The code of a stage whose builder is `builder` (`"module:function"`): each module's name → the sha256
    (16 hex digits) of its bytes. Worked out once per process and builder file (`forget` clears it)."""
    module = builder.split(":")[0]
    if module in _modules(package):
        origin = None
    else:
        spec = importlib.util.find_spec(module)
        origin = spec.origin if spec is not None else None
    return dict(_stage_code(module, origin, package))


def changed_modules(recorded: dict[str, str], current: dict[str, str]) -> list[str]:
    """The modules whose code differs between two `stage_code`s (added and removed ones included), sorted."""
    return sorted(name for name in set(recorded) | set(current) if recorded.get(name) != current.get(name))


def forget() -> None:
    """Forget the import graph and the digests worked out so far (after editing a module in this process)."""
    for cached in (_modules, import_graph, _stage_code):
        cached.cache_clear()
