"""Shared options, output and error handling of the command line."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from blockfedml.errors import BlockFedMLError

console = Console()
err_console = Console(stderr=True)

F = TypeVar("F", bound=Callable[..., Any])

WorkdirOption = typer.Option(
    Path("runs/consortium"), "--workdir", "-w", help="Consortium work directory (ledger, store, identities)."
)
JsonOption = typer.Option(False, "--json", help="Print machine-readable JSON instead of a table.")


def handle_errors(fn: F) -> F:
    """Turn a BlockFedMLError into one red line and exit code 1, not a traceback."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except BlockFedMLError as exc:
            err_console.print(f"[bold red]error:[/] {type(exc).__name__}: {exc}", markup=True, highlight=False)
            raise typer.Exit(code=1) from None

    return wrapper  # type: ignore[return-value]


def cli_command() -> str:
    """How to call ``blockfedml`` from here: its name when it is on PATH, else the path of the
    virtual environment's script (after ``make demo`` the venv is not activated), so every hint
    the command line prints can be pasted as is."""
    if shutil.which("blockfedml"):
        return "blockfedml"
    script = Path(sys.executable).parent / "blockfedml"
    if not script.exists():
        return "blockfedml"
    try:
        return os.path.relpath(script)
    except ValueError:  # another drive (Windows)
        return str(script)


def emit(data: Any, as_json: bool, table: Callable[[Any], Table] | None = None) -> None:
    """Print ``data`` as JSON (for scripts) or as a rich table (for people)."""
    if as_json or table is None:
        sys.stdout.write(json.dumps(data, indent=2, sort_keys=True) + "\n")
    else:
        console.print(table(data))


def records_table(title: str, rows: list[dict[str, Any]], columns: list[str]) -> Table:
    table = Table(title=title)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*[_cell(row.get(c)) for c in columns])
    return table


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, sort_keys=True)
    return str(value)


def parse_settings(pairs: list[str]) -> dict[str, int]:
    """``key=value`` pairs into the contract's integer settings."""
    settings: dict[str, int] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"setting {pair!r} is not of the form key=value")
        try:
            settings[key.strip()] = int(value)
        except ValueError:
            raise typer.BadParameter(f"setting {key!r} must be an integer, got {value!r}") from None
    return settings
