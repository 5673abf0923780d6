"""Every command in README.md and docs/ runs as written (doc_commands says how blocks are found and marked)."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from doc_commands import (
    REPO,
    DocTestError,
    blockfedml_args,
    blocks_of,
    documents,
    parse_directives,
    script,
)
from typer.testing import CliRunner

from blockfedml.cli.main import app

VENV = Path(sys.prefix)
FABRIC = bool(os.environ.get("FABRIC_BIN"))


def test_every_document_parses_and_the_readme_blocks_are_found():
    found = {str(path.relative_to(REPO)): blocks_of(path) for path in documents()}
    readme = found["README.md"]
    assert readme[0].commands == ["make demo", "make test", ". .venv/bin/activate"]
    assert readme[0].args("skip-line") == ["make test"]
    assert any("blockfedml audit verify -w runs/c1" in c for b in readme for c in b.commands)
    assert sum(len(b) for b in found.values()) >= 15
    for name, blocks in found.items():  # output and diagrams are not taken for commands
        assert not any(c.startswith(("FAIL", "PASS", "OK:", "round ", "{")) for b in blocks for c in b.commands), name


def test_an_unknown_or_incomplete_directive_is_an_error_not_a_silent_skip():
    with pytest.raises(DocTestError, match="unknown docs-test directive 'skp'"):
        parse_directives(" skp (typo)")
    with pytest.raises(DocTestError, match="needs a code"):
        parse_directives(" exit blockfedml audit verify")
    assert parse_directives(" options-only (waits; one terminal each)") == [("options-only", "")]
    assert parse_directives(" skip-line make test (the suite); exit 3 blockfedml audit verify ") == [
        ("skip-line", "make test"), ("exit", "3 blockfedml audit verify")]


def test_the_script_applies_each_directive(tmp_path):
    doc = tmp_path / "doc.md"
    doc.write_text(
        "<!-- docs-test: skip-line make test; exit 3 blockfedml audit verify; background blockfedml ledger serve -->\n"
        "```\nmake demo\nmake test\nblockfedml ledger serve -w runs/c1\nblockfedml audit verify -w runs/c1  # 3\n```\n"
        "<!-- docs-test: options-only (one terminal each) -->\n```\nblockfedml member round -w runs/c1 --org Org2 &\n```\n"
        "<!-- docs-test: fabric -->\n```sh\nblockfedml admin network up\n```\n"
        "```text\nblockfedml this is output\n```\n")
    blocks = blocks_of(doc)
    assert len(blocks) == 3
    text = script(blocks, fabric=False)
    assert "make demo\n" in text and "make test" not in text
    assert "blockfedml ledger serve -w runs/c1 &\n" in text
    assert '{ blockfedml audit verify -w runs/c1 ; } || { rc=$?; case " 3 "' in text
    assert "blockfedml member round -w runs/c1 --org Org2 --help >/dev/null" in text
    assert "network up" not in text and "not run (fabric)" in text and "this is output" not in text
    assert "blockfedml admin network up" in script(blocks, fabric=True)
    result = subprocess.run(["bash", "-c", "f() { return 3; }\n{ f ; } || { rc=$?; case \" 3 \" in *\" $rc \"*) "
                             "echo allowed;; *) exit $rc;; esac; }\necho after"], capture_output=True, text=True)
    assert result.stdout == "allowed\nafter\n"


def _inline_commands() -> list[tuple[str, str]]:
    """Inline code spans that are whole blockfedml commands (``blockfedml demo --attack ...``)."""
    found = []
    for path in documents():
        for span in re.findall(r"`(blockfedml [^`]+)`", path.read_text()):
            for command in span.split(";"):
                if command.strip().startswith("blockfedml ") and "<" not in command and "..." not in command:
                    found.append((path.name, command.strip()))
    return found


def test_every_documented_blockfedml_command_exists_with_its_options():
    """Fast: each command and option named in the docs is parsed (``--help`` appended, nothing runs)."""
    runner = CliRunner()
    commands = [(b.where, c) for path in documents() for b in blocks_of(path) if not b.has("skip")
                for c in b.commands] + _inline_commands()
    checked = 0
    for where, command in commands:
        args = blockfedml_args(command)
        if args is None:
            continue
        result = runner.invoke(app, [*args, "--help"], env={"COLUMNS": "200"})
        assert result.exit_code == 0, f"{where}: `{command}` does not parse:\n{result.output}"
        checked += 1
    assert checked >= 40


def _run(doc: Path, clone: Path, prelude: str = "") -> subprocess.CompletedProcess:
    bin_dir = str(VENV / "bin")
    path = os.pathsep.join(p for p in os.environ.get("PATH", "").split(os.pathsep) if p != bin_dir)
    env = {**os.environ, "PATH": path, "COLUMNS": "200", "VIRTUAL_ENV": ""}
    # make: the clone's venv is this one, installed already (-o: never reinstall it from the clone)
    text = (f"make() {{ command make -o {shlex.quote(str(VENV))}/.installed VENV={shlex.quote(str(VENV))} \"$@\"; }}\n"
            + prelude + script(blocks_of(doc), FABRIC))
    try:
        return subprocess.run(["bash", "-c", text], cwd=clone, env=env, capture_output=True, text=True, timeout=1200)
    finally:
        _stop_ledger_services(clone)


def _stop_ledger_services(clone: Path) -> None:
    """A doc that left a background ledger service running (its `admin round drive` started one and
    no `ledger stop` followed) must not leave it behind the test."""
    from blockfedml import ledger_host, org_host

    for host, pid_name in ((ledger_host, ledger_host.PID_FILE), (org_host, org_host.PID_FILE)):
        for pid_file in (clone / "runs").rglob(pid_name) if (clone / "runs").is_dir() else ():
            try:
                host.stop_background(pid_file.parent)
            except Exception:  # noqa: BLE001 - already gone
                pass


def _explain(result: subprocess.CompletedProcess) -> str:
    return f"exit {result.returncode}\n--- stdout (tail)\n{result.stdout[-6000:]}\n--- stderr\n{result.stderr[-4000:]}"


@pytest.fixture(scope="module")
def after_readme(tmp_path_factory):
    """A fresh clone where the README's blocks ran, as the docs assume."""
    from repo_copy import fresh_checkout

    clone = fresh_checkout(tmp_path_factory.mktemp("docs") / "clone")
    (clone / ".venv").symlink_to(VENV)
    return clone, _run(REPO / "README.md", clone)


@pytest.mark.slow
def test_the_readme_runs_as_written(after_readme):
    clone, result = after_readme
    assert result.returncode == 0, _explain(result)
    assert "Centralized baseline" in result.stdout
    assert "OK: 0 failed" in result.stdout or "PARTLY VERIFIED" in result.stdout  # audit verify said which
    assert (clone / "report.html").exists() and (clone / "prov.json").exists()


DOCS = [p for p in documents()[1:] if blocks_of(p)]


@pytest.mark.slow
@pytest.mark.parametrize("doc", DOCS, ids=[str(p.relative_to(REPO)) for p in DOCS])
def test_each_doc_runs_as_written_after_the_readme(after_readme, doc):
    clone, readme = after_readme
    assert readme.returncode == 0, "the README did not run: " + _explain(readme)
    result = _run(doc, clone, prelude=". .venv/bin/activate\n")
    assert result.returncode == 0, _explain(result)
