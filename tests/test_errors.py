"""The one exception hierarchy (issue 9 items 1 and 6), kept: every exception
class defined in dmwsi/ derives from DmwsiError, and no handler swallows an
exception silently (an ``except`` whose body only passes, continues or
returns hides the failure from the log and the caller)."""
import ast
import inspect
from pathlib import Path

import pytest

import dmwsi
from dmwsi.errors import DmwsiError
from tests.test_layers import modules

PACKAGE_DIR = Path(dmwsi.__file__).parent


def exception_classes():
    import importlib
    for module, path in modules():
        mod = importlib.import_module(module)
        for name, obj in vars(mod).items():
            if inspect.isclass(obj) and issubclass(obj, BaseException) and obj.__module__ == module:
                yield f"{module}.{name}", obj


@pytest.mark.parametrize("name, cls", list(exception_classes()), ids=lambda v: v if isinstance(v, str) else "")
def test_every_exception_derives_from_dmwsi_error(name, cls):
    assert issubclass(cls, DmwsiError), f"{name} does not derive from dmwsi.errors.DmwsiError"


def _silent(handler):
    body = [n for n in handler.body if not (isinstance(n, ast.Expr) and isinstance(n.value, ast.Constant))]
    return all(isinstance(n, (ast.Pass, ast.Continue)) or (isinstance(n, ast.Return) and n.value is None)
               for n in body)


def _broad(handler):
    names = []
    for node in ([handler.type] if not isinstance(handler.type, ast.Tuple) else handler.type.elts):
        if node is None:
            names.append("BaseException")
        elif isinstance(node, ast.Name):
            names.append(node.id)
    return handler.type is None or bool({"Exception", "BaseException"} & set(names))


def test_no_broad_handler_swallows_silently():
    offenders = []
    for module, path in modules():
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.ExceptHandler) and _broad(node) and _silent(node):
                offenders.append(f"{path.relative_to(PACKAGE_DIR.parent)}:{node.lineno}")
    assert not offenders, "broad except that only passes: " + ", ".join(offenders)


def test_the_checks_can_fail():
    tree = ast.parse("try:\n    x()\nexcept Exception:\n    pass\n")
    handler = next(n for n in ast.walk(tree) if isinstance(n, ast.ExceptHandler))
    assert _broad(handler) and _silent(handler)
    logged = ast.parse("try:\n    x()\nexcept Exception:\n    log.exception('x')\n")
    assert not _silent(next(n for n in ast.walk(logged) if isinstance(n, ast.ExceptHandler)))
