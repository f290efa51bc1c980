"""The CLI stays thin: a command parses its arguments, calls the library and prints what a view
in ``edgebench/report/*_view.py`` made of the result (or ``--json``). Rendering that creeps back
into ``edgebench/cli/`` fails here:

- no cli module but ``ui.py`` (the consoles and progress bars) imports Rich: tables, markup
  and text are built in report/;
- no cli module builds a table (calls ``Table``/``RichTable``, ``add_row``, ``add_column``);
- no f-string in a cli module formats a number (``{x:.3f}``): numbers are written in report/;
- no function in a cli module has more than :data:`MAX_STATEMENTS` statements, and no cli module
  more than :data:`MAX_LINES` lines (see there why);
- no cli module but ``ui.py`` names ``err_console``: a command's result goes to stdout
  (``out_console``, ``show``, ``print_json``), stderr carries only progress (``ui.py``) and errors.
"""

from __future__ import annotations

import ast
from pathlib import Path

import edgebench.cli

# Parse, call, print: the largest command body is `devices add` with 14 statements (read the
# --profile file, make the spec, store it, print), `main()` has 16 (one `except` per kind of
# error). 18 leaves room for another option check, not for a view: the views that lived here
# had 16 to 44 (profile's 44, devices check's 32, compare's 29, run's white-box table 19).
MAX_STATEMENTS = 18
# A command module is its help text, its options (one to three lines each) and short bodies:
# the largest, stages.py (four commands), is about 150 lines. 200 leaves room for options, not
# for a view (the old profile.py with its rendering was 258 lines, devices.py 209).
MAX_LINES = 200
RICH_ALLOWED = {"ui.py"}
STDERR_ALLOWED = {"ui.py"}
TABLE_CALLS = {"Table", "RichTable", "add_row", "add_column"}


def _statements(func: ast.FunctionDef | ast.AsyncFunctionDef) -> int:
    """Statements in *func*'s own body: imports and nested functions' bodies do not count."""
    count = 0
    stack: list[ast.AST] = list(func.body)
    while stack:
        node = stack.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            continue
        if isinstance(node, ast.stmt) and not isinstance(node, (ast.Import, ast.ImportFrom)):
            count += 1
        stack.extend(ast.iter_child_nodes(node))
    return count


def thin_violations(name: str, source: str) -> list[str]:
    """Everything in one cli module (file *name*, text *source*) that is rendering, not parse/call/print."""
    out = []
    lines = len(source.splitlines())
    if lines > MAX_LINES:
        out.append(f"{name}: {lines} lines (at most {MAX_LINES}): move the view to edgebench/report/")
    for node in ast.walk(ast.parse(source, name)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, (ast.Import, ast.ImportFrom)) and name not in RICH_ALLOWED:
            modules = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
            out += [
                f"{where}: imports {m} (views live in edgebench/report/)" for m in modules if m.split(".")[0] == "rich"
            ]
        elif isinstance(node, (ast.Name, ast.alias)) and name not in STDERR_ALLOWED:
            named = node.id if isinstance(node, ast.Name) else node.name
            if named == "err_console":
                out.append(f"{where}: prints on err_console (results go to stdout: out_console, show, print_json)")
        elif isinstance(node, ast.Call):
            func = node.func
            called = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if called in TABLE_CALLS:
                out.append(f"{where}: calls {called} (tables are built in edgebench/report/*_view.py)")
        elif isinstance(node, ast.FormattedValue) and node.format_spec is not None:
            parts = getattr(node.format_spec, "values", [])
            spec = "".join(str(v.value) if isinstance(v, ast.Constant) else "{...}" for v in parts)
            out.append(f"{where}: formats a value with ':{spec}' (numbers are written in edgebench/report/)")
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and _statements(node) > MAX_STATEMENTS:
            out.append(f"{where}: {node.name} has {_statements(node)} statements (at most {MAX_STATEMENTS})")
    return out


def test_cli_modules_only_parse_call_and_print() -> None:
    folder = Path(edgebench.cli.__file__).parent
    found = [v for path in sorted(folder.glob("*.py")) for v in thin_violations(path.name, path.read_text())]
    assert found == [], "rendering in edgebench/cli/:\n" + "\n".join(found)


def test_the_guard_finds_a_table_rich_markup_number_formats_and_a_long_function() -> None:
    view = (
        "from rich.table import Table\n"
        "def show(rows):\n"
        "    t = Table(title='x')\n"
        "    t.add_column('p99')\n"
        "    for r in rows:\n"
        "        t.add_row(f\"{r['p99']:.3f}\")\n"
    )
    found = thin_violations("bad.py", view)
    assert any("imports rich.table" in v for v in found)
    assert sum("calls" in v for v in found) == 3
    assert any("':.3f'" in v for v in found)
    long_body = "def f(x):\n" + "".join(f"    x = x + {i}\n" for i in range(MAX_STATEMENTS + 1))
    assert [v for v in thin_violations("long.py", long_body) if "statements" in v]
    assert thin_violations("long.py", long_body + "\n" * MAX_LINES)[0].startswith("long.py: ")
    assert thin_violations("ui.py", "import rich.console\nfrom rich.progress import Progress\n") == []
    stderr = "def f(v):\n    from edgebench.cli.ui import err_console, show\n    show(err_console, v)\n"
    assert len([v for v in thin_violations("err.py", stderr) if "err_console" in v]) == 2
    ok = "def f(cfg):\n    from edgebench.cli.ui import show\n    show(None, [f'run {cfg}'])\n"
    assert thin_violations("ok.py", ok) == []
