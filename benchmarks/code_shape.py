"""The shape of the code: what issue-style refactoring is judged by.

    python -m benchmarks.code_shape [folders…]   (default: core gui)

Prints the modules over 400 lines, the functions over 50 and over 100 lines, and the
largest cyclomatic complexities (ruff's mccabe rule, C901). Pairs of repeated code come
from the workplace's `duplicates --repo gui`, which is not part of the project.
"""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def functions(path: Path) -> list[tuple[str, int]]:
    """(qualified name, lines) of every function and method in a module."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: list[tuple[str, int]] = []

    def visit(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef):
                name = f"{prefix}{child.name}"
                found.append((name, child.end_lineno - child.lineno + 1))
                visit(child, f"{name}.")
            elif isinstance(child, ast.ClassDef):
                visit(child, f"{prefix}{child.name}.")

    visit(tree, "")
    return found


def complexities(folders: list[str]) -> list[tuple[int, str]]:
    """(complexity, where) of every function, from ruff's C901 at threshold 0."""
    command = [
        sys.executable,
        "-m",
        "ruff",
        "check",
        "--select",
        "C901",
        "--output-format",
        "json",
        "--config",
        "lint.mccabe.max-complexity = 0",
        *folders,
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, check=False)
    out = []
    for item in json.loads(result.stdout or "[]"):
        match = re.search(r"`(.+)` is too complex \((\d+) > 0\)", item["message"])
        if match:
            where = f"{Path(item['filename']).relative_to(ROOT)}:{match.group(1)}"
            out.append((int(match.group(2)), where))
    return sorted(out, reverse=True)


def main() -> None:
    folders = sys.argv[1:] or ["core", "gui"]
    modules = sorted(p for folder in folders for p in (ROOT / folder).rglob("*.py"))
    long_modules, long_functions = [], []
    for path in modules:
        lines = len(path.read_text(encoding="utf-8").splitlines())
        where = path.relative_to(ROOT)
        if lines > 400:
            long_modules.append((lines, str(where)))
        long_functions += [(n, f"{where}:{name}") for name, n in functions(path) if n > 50]
    print(f"Modules over 400 lines: {len(long_modules)}")
    for lines, where in sorted(long_modules, reverse=True):
        print(f"  {lines:5}  {where}")
    over_100 = [f for f in long_functions if f[0] > 100]
    print(f"Functions over 50 lines: {len(long_functions)}; over 100 lines: {len(over_100)}")
    for lines, where in sorted(long_functions, reverse=True)[:15]:
        print(f"  {lines:5}  {where}")
    ranked = complexities(folders)
    print(f"Largest cyclomatic complexity: {ranked[0][0] if ranked else 0}")
    for value, where in ranked[:8]:
        print(f"  {value:5}  {where}")


if __name__ == "__main__":
    main()
