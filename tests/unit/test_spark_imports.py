"""Only tessera/spark imports pyspark, and not in the modules the serving machine runs."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parents[2] / "tessera"
#: modules of tessera/spark that must work without pyspark installed
WITHOUT_SPARK = {"__init__.py", "component.py", "load.py"}


def _imports_pyspark(path: Path) -> bool:
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import) and any(
            a.name.split(".")[0] == "pyspark" for a in node.names
        ):
            return True
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "pyspark":
            return True
    return False


def test_only_the_spark_package_imports_pyspark() -> None:
    offenders = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if _imports_pyspark(path) and (path.parent.name != "spark" or path.name in WITHOUT_SPARK)
    ]
    assert offenders == []
