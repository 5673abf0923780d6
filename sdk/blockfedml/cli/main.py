"""The ``blockfedml`` command: one sub-command per kind of user."""

from __future__ import annotations

import typer

from blockfedml.cli import admin, audit, ledger, member, org, vertical
from blockfedml.cli.demo import demo

app = typer.Typer(
    help="BlockFedML: federated machine learning governed by a permissioned ledger.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(admin.app, name="admin")
app.add_typer(org.app, name="org")
app.add_typer(member.app, name="member")
app.add_typer(audit.app, name="audit")
app.add_typer(ledger.app, name="ledger")
app.add_typer(vertical.app, name="vertical")
app.command("demo")(demo)

if __name__ == "__main__":
    app()
