"""docs/dm-conformance.rst names only tests that exist: a rule whose test
is renamed or deleted shows here instead of silently losing its test."""
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "dm-conformance.rst"
PREFIXES = {"dm/": "tests/dm/", "e2e/": "tests/e2e/", "sim/": "tests/sim/"}


def references(text):
    for match in re.finditer(r"``((?:dm|e2e|sim)/[\w/]+\.py)(?:::(\w+))?``", text):
        yield match.group(1), match.group(2)


def test_every_test_the_conformance_table_names_exists():
    text = DOC.read_text()
    refs = list(references(text))
    assert len(refs) > 40
    missing = []
    for path, name in refs:
        prefix = next(p for p in PREFIXES if path.startswith(p))
        file = ROOT / (PREFIXES[prefix] + path[len(prefix):])
        if not file.exists():
            missing.append(path)
        elif name and not re.search(rf"^def {name}\(", file.read_text(), re.M):
            missing.append(f"{path}::{name}")
    assert not missing, missing


def test_the_check_sees_a_missing_test():
    assert list(references("``dm/test_x.py::test_nothing``")) == [("dm/test_x.py", "test_nothing")]
