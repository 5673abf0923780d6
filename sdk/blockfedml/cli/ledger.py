"""``blockfedml ledger``: run the embedded ledger as a service (docs/ledger-service.md)."""

from __future__ import annotations

from pathlib import Path

import typer

from blockfedml.cli.common import JsonOption, WorkdirOption, console, emit, handle_errors
from blockfedml.consortium import Consortium, service_reachable

app = typer.Typer(help="The embedded ledger as a service: the only process that writes the ledger.",
                  no_args_is_help=True)


@app.command("init")
@handle_errors
def init(output: Path = typer.Option(..., "--output", "-o", help="The ledger node's own folder (created, mode 0700)."),
         address: str = typer.Option(..., "--address", help="host:port the ledger service listens on and is "
                                                          "reached at."),
         as_json: bool = JsonOption) -> None:
    """Issue the ledger node's keys (its peer endorses, its orderer signs blocks) and its public card."""
    from blockfedml.membership.bundle import LEDGER_CARD_FILE, init_ledger_node

    card = init_ledger_node(output, address)
    emit({"folder": str(output), "card": str(output / LEDGER_CARD_FILE), "address": card.address}, as_json,
         lambda i: f"ledger node created in {i['folder']}; give {i['card']} to the founder")


@app.command("create")
@handle_errors
def create(bundle: Path = typer.Option(..., "--bundle", help="The consortium bundle the founder made."),
           folder: Path = typer.Option(..., "--dir", "-d", help="The ledger node's folder (from `ledger init`)."),
           genesis: str = typer.Option(None, "--genesis", help="The genesis hash you were given out of band (or a "
                                                       "file holding it)."),
           as_json: bool = JsonOption) -> None:
    """Create the ledger from the bundle: its genesis block must be the bundle's."""
    from blockfedml.consortium import create_ledger
    from blockfedml.membership.bundle import genesis_argument, read_bundle

    verified = read_bundle(bundle, genesis_argument(genesis))
    path = create_ledger(folder, verified)
    emit({"ledger": str(path), "genesis_hash": verified.genesis_hash}, as_json,
         lambda i: f"ledger {i['ledger']} created, genesis block {i['genesis_hash']}; "
                   f"start it with `blockfedml ledger start -w {folder}`")


@app.command("serve")
@handle_errors
def serve(workdir: Path = WorkdirOption,
          address: str = typer.Option(None, "--address", help="host:port to listen on (default: the "
                                      "consortium's, from consortium.json).")) -> None:
    """Serve the ledger in the foreground until Ctrl-C or SIGTERM."""
    from blockfedml import ledger_host

    def ready(service) -> None:
        console.print(f"ledger service of {workdir} listening on {service.address} "
                      f"(height {service.ledger.height()}); Ctrl-C stops it", highlight=False)

    ledger_host.serve(workdir, address, ready)


@app.command("start")
@handle_errors
def start(workdir: Path = WorkdirOption) -> None:
    """Start the service in the background and return once it accepts connections."""
    from blockfedml import ledger_host

    pid = ledger_host.start_background(workdir)
    console.print(f"ledger service started (pid {pid}); log: {workdir / ledger_host.LOG_FILE}; "
                  f"stop it with `blockfedml ledger stop -w {workdir}`", highlight=False)


@app.command("stop")
@handle_errors
def stop(workdir: Path = WorkdirOption) -> None:
    """Stop the service that `ledger start` started."""
    from blockfedml import ledger_host

    pid = ledger_host.stop_background(workdir)
    console.print(f"ledger service (pid {pid}) stopped", highlight=False)


@app.command("status")
@handle_errors
def status(workdir: Path = WorkdirOption, as_json: bool = JsonOption) -> None:
    """Whether the service answers, where, and the ledger's height."""
    from blockfedml import ledger_host

    consortium = Consortium.open(workdir)
    address = consortium.service.address if consortium.service else None
    up = bool(address) and service_reachable(address)
    record = {"address": address, "up": up, "pid": ledger_host.running_pid(workdir),
              "height": consortium.ledger_height() if up else None}
    emit(record, as_json)
    if not up:
        raise typer.Exit(code=3)
