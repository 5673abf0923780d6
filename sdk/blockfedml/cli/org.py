"""``blockfedml org``: an organization's own folder, its card, joining, serving its blobs (docs/deploy.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from blockfedml.cli.common import JsonOption, console, emit, handle_errors

app = typer.Typer(help="Your organization: its own keys and card, joining a consortium, serving its blobs.",
                  no_args_is_help=True)
FolderOption = typer.Option(..., "--dir", "-d", help="Your organization's own folder (made by `org init`).")


@app.command("init")
@handle_errors
def init(
    name: str = typer.Option(..., "--name", help="Your organization's name, e.g. Hospital2 (MSP ID: <name>MSP)."),
    output: Path = typer.Option(..., "--output", "-o", help="Your organization's own folder (created, mode 0700)."),
    role: list[str] = typer.Option(["member"], "--role", help="Roles you ask for: member, keyholder, auditor "
                                                             "(repeatable)."),
    exchange: str = typer.Option(None, "--exchange", help="host:port your exchange server listens on and is "
                                                          "reached at (members and key holders need one)."),
    as_json: bool = JsonOption,
) -> None:
    """Make your organization's keys in its own folder and its public card (give card.json to the founder)."""
    from blockfedml.membership.cards import CARD_FILE, init_org

    if exchange is None and {"member", "keyholder"} & set(role):
        raise typer.BadParameter("members and key holders serve blobs: give --exchange host:port")
    folder = init_org(output, name, roles=tuple(role), exchange=exchange)
    info = {"name": folder.name, "msp_id": folder.msp_id, "folder": str(folder.root),
            "card": str(folder.root / CARD_FILE), "roles": list(folder.roles), "exchange": exchange}
    emit(info, as_json, lambda i: _kv(f"{i['name']} created", i))


@app.command("join")
@handle_errors
def join(
    bundle: Path = typer.Option(..., "--bundle", help="The consortium bundle the founder sent you."),
    folder: Path = FolderOption,
    genesis: str = typer.Option(None, "--genesis", help="The genesis block hash you were given out of band "
                                                        "(or a file holding it): the bundle must carry exactly it."),
    as_json: bool = JsonOption,
) -> None:
    """Check the bundle whole and import it into your folder (your view of the consortium)."""
    from blockfedml.consortium import Consortium

    from blockfedml.membership.bundle import genesis_argument

    consortium = Consortium.join(folder, bundle, expect_genesis=genesis_argument(genesis))
    info = {"folder": str(folder), "channel": consortium.channel, "genesis_hash": consortium.genesis_hash,
            "ledger_service": consortium.service.address if consortium.service else None,
            "orgs": [o.name for o in consortium.orgs]}
    emit(info, as_json, lambda i: _kv(f"joined the consortium of {', '.join(i['orgs'])}", i))


@app.command("serve")
@handle_errors
def serve(folder: Path = FolderOption) -> None:
    """Serve your blob store to the consortium in the foreground (Ctrl-C stops it)."""
    from blockfedml import org_host

    org_host.serve(folder, lambda server: console.print(
        f"{server.msp_id} serves its blobs on {server.address}; Ctrl-C stops it", highlight=False))


@app.command("start")
@handle_errors
def start(folder: Path = FolderOption) -> None:
    """Serve your blob store in the background (between sessions: auditors fetch from it)."""
    from blockfedml import org_host

    pid = org_host.start_background(folder)
    console.print(f"exchange server started (pid {pid}); stop it with `blockfedml org stop -d {folder}`",
                  highlight=False)


@app.command("stop")
@handle_errors
def stop(folder: Path = FolderOption) -> None:
    """Stop the server `org start` started."""
    from blockfedml import org_host

    console.print(f"exchange server (pid {org_host.stop_background(folder)}) stopped", highlight=False)


def _kv(title: str, info: dict):
    from rich.table import Table

    table = Table(title=title, show_header=False)
    for key, value in info.items():
        table.add_row(key, ", ".join(value) if isinstance(value, list) else str(value))
    return table
