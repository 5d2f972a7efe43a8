"""The layout is the architecture: the core never imports the GPS trainer, the analysis or the
figures; GPS never imports the analysis; nothing in lto_ref imports paper_figures."""
import ast
import pathlib

import pytest

import lto_ref

ROOT = pathlib.Path(lto_ref.__file__).parent


def _imports(path):
    """Every module name a file imports (``from a.b import c`` gives a.b and a.b.c)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names |= {node.module} | {f"{node.module}.{a.name}" for a in node.names}
    return names


def _forbidden(path):
    if path.parent == ROOT and not path.name.startswith("benchmark"):   # the core (entries aside)
        return ("lto_ref.gps", "lto_ref.analysis", "paper_figures")
    if path.parent.name == "gps":
        return ("lto_ref.analysis", "paper_figures")
    return ("paper_figures",)


@pytest.mark.parametrize("path", sorted(ROOT.rglob("*.py")), ids=lambda p: str(p.relative_to(ROOT)))
def test_lower_layers_never_import_higher_ones(path):
    bad = [name for name in _imports(path) for prefix in _forbidden(path)
           if name == prefix or name.startswith(prefix + ".")]
    assert not bad, f"{path.name} imports {bad}"


def test_the_check_sees_a_forbidden_import(tmp_path):
    fake = tmp_path / "core.py"
    fake.write_text("from lto_ref.gps import lqr\nimport paper_figures._train\n")
    assert {"lto_ref.gps", "paper_figures._train"} <= _imports(fake)
