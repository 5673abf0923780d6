"""The shell command blocks of README.md and docs/*.md, as scripts a test runs, so the docs cannot drift.

A fenced block is a shell block when its language is sh, bash, shell or console,
or when it has none and every line starts with a command (``blockfedml``,
``make``, ``python``, ``export``, ``.``, ``wait``, ...); output, diagrams, JSON
and Python are left alone. The blocks of one document run in order as one bash
script (``set -e``), so ``&`` and ``wait`` work as a reader's shell would.

What a test must not or cannot run as written is said in the document itself,
in an HTML comment on the line before the block (invisible when rendered)::

    <!-- docs-test: DIRECTIVE; DIRECTIVE ... -->

    skip (why)               the block is not run
    fabric                   run only where FABRIC_BIN names Fabric's binaries
    skip-line PREFIX         commands starting with PREFIX are not run
    exit CODE PREFIX         commands starting with PREFIX may also exit with CODE
    options-only [PREFIX]    blockfedml commands (all, or those starting with PREFIX) are only
                             checked to exist with their options (``--help`` appended): for
                             processes that wait for others, one terminal each
    background PREFIX        commands starting with PREFIX start in the background (a service),
                             stopped when the document's script ends

A trailing ``(...)`` in a directive is a note for readers. An unknown
directive is an error, so a typo cannot switch a check off.
"""

from __future__ import annotations

import re
import shlex
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SHELL_LANGUAGES = {"sh", "bash", "shell", "console"}
COMMANDS = {"blockfedml", "make", "python", "python3", "export", ".", "source", "wait", "cd", "pip", "mkdir", "rm"}
DIRECTIVES = {"skip", "fabric", "skip-line", "exit", "options-only", "background"}

_FENCE = re.compile(r"^```([\w-]*)[^\n]*\n(.*?)^```[ \t]*$", re.S | re.M)
_MARKER = re.compile(r"<!--\s*docs-test:(.*?)-->\s*$", re.S)
_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=\S*$")


class DocTestError(ValueError):
    """A docs-test marker that cannot be understood."""


@dataclass
class Block:
    """One shell block: where it is, its commands (continuations joined) and its directives."""

    path: Path
    line: int
    commands: list[str]
    directives: list[tuple[str, str]] = field(default_factory=list)

    @property
    def where(self) -> str:
        name = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path.name
        return f"{name}:{self.line}"

    def has(self, name: str) -> bool:
        return any(n == name for n, _ in self.directives)

    def args(self, name: str) -> list[str]:
        return [a for n, a in self.directives if n == name]


def documents() -> list[Path]:
    """README.md first (the others may use what it made), then docs/ in name order."""
    return [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]


def parse_directives(text: str) -> list[tuple[str, str]]:
    directives = []
    for part in filter(None, (p.strip() for p in re.split(r";(?![^()]*\))", text))):  # not a ; inside a note
        part = re.sub(r"\s*\([^()]*\)$", "", part)  # a note for readers
        name, _, arg = part.partition(" ")
        if name not in DIRECTIVES:
            raise DocTestError(f"unknown docs-test directive {name!r} (known: {', '.join(sorted(DIRECTIVES))})")
        if name in ("skip-line", "exit", "background") and not arg.strip():
            raise DocTestError(f"docs-test directive {name!r} needs a command prefix")
        if name == "exit" and not re.fullmatch(r"\d+ \S.*", arg.strip()):
            raise DocTestError(f"docs-test directive 'exit' needs a code and a command prefix, got {arg!r}")
        directives.append((name, arg.strip()))
    return directives


def join_lines(body: str) -> list[str]:
    """The block's commands: backslash continuations joined, blank and comment-only lines dropped."""
    commands, pending = [], ""
    for raw in body.splitlines():
        line = pending + raw.strip() if pending else raw.rstrip()
        if line.endswith("\\"):
            pending = line[:-1].rstrip() + " "
            continue
        pending = ""
        if line.strip() and not line.strip().startswith("#"):
            commands.append(line.strip())
    return commands


def is_command(line: str) -> bool:
    words = line.split()
    while words and _ASSIGNMENT.match(words[0]):  # VAR=value command
        words = words[1:]
    return bool(words) and (words[0] in COMMANDS or words[0].startswith(("./", ".venv/bin/")))


def blocks_of(path: Path) -> list[Block]:
    """Every shell block of one document, with the directives of the comment just before it."""
    text = path.read_text()
    found = []
    for match in _FENCE.finditer(text):
        language, body = match.group(1).lower(), match.group(2)
        commands = join_lines(body)
        if not commands:
            continue
        if language not in SHELL_LANGUAGES and (language or not all(is_command(c) for c in commands)):
            continue
        before = text[:match.start()].rstrip("\n").rsplit("\n", 1)[-1]
        marker = _MARKER.search(before)
        line = text[:match.start()].count("\n") + 1
        found.append(Block(path, line, commands, parse_directives(marker.group(1)) if marker else []))
    return found


def _bare(command: str) -> str:
    """The command without its trailing comment."""
    return command.split(" #")[0].rstrip()


def _starts(command: str, prefixes: list[str]) -> bool:
    return any(command.startswith(p) for p in prefixes)


def blockfedml_args(command: str) -> list[str] | None:
    """The arguments after ``blockfedml`` of a command line (comments, ``&`` and redirections dropped)."""
    words = shlex.split(command, comments=True)
    if not words or words[0] != "blockfedml":
        return None
    args = []
    for word in words[1:]:
        if word in ("&", "&&", "|", ";") or word.startswith((">", "2>")):
            break
        args.append(word)
    return args


def script(blocks: list[Block], fabric: bool) -> str:
    """One bash script that runs these blocks in order, as the directives say."""
    lines = ["set -e", "trap 'kill $(jobs -p) 2>/dev/null || true' EXIT"]
    for block in blocks:
        if block.has("skip") or (block.has("fabric") and not fabric):
            lines.append(f"echo '### {block.where}: not run ({'skip' if block.has('skip') else 'fabric'})'")
            continue
        lines.append(f"echo '### {block.where}'")
        options_only = block.args("options-only")
        for command in block.commands:
            if _starts(command, block.args("skip-line")):
                continue
            if options_only and (options_only == [""] or _starts(command, options_only)):
                args = blockfedml_args(command)
                if args is not None:
                    lines.append(shlex.join(["blockfedml", *args, "--help"]) + " >/dev/null")
                continue
            if _starts(command, block.args("background")):
                lines.append(f"{_bare(command).rstrip(' &')} &")
                continue
            codes = [a.split(" ", 1)[0] for a in block.args("exit") if command.startswith(a.split(" ", 1)[1])]
            if codes:
                allowed = " ".join(codes)
                command = (f"{{ {_bare(command)} ; }} || {{ rc=$?; case \" {allowed} \" in "
                           f"*\" $rc \"*) echo \"(exit $rc, allowed here)\";; *) exit $rc;; esac; }}")
            lines.append(command)
    return "\n".join(lines) + "\n"
