"""``blockfedml admin network|chaincode|channel``: a local Fabric network from release binaries.

These commands wrap ``scripts/network.sh`` (the same verbs a Fabric user knows
from the samples' ``network.sh``), which drives Fabric's own ``cryptogen``,
``configtxgen``, ``orderer``, ``peer`` and ``osnadmin`` from ``FABRIC_BIN``.
``network attach`` then creates a consortium work directory on the running
network, after which every ``admin``/``member`` command works on Fabric.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import typer

from blockfedml.cli.common import JsonOption, console, emit, handle_errors, parse_settings, records_table
from blockfedml.consortium import Consortium
from blockfedml.errors import NotFoundError
from blockfedml.fl.task import TaskSpec

REPO = Path(__file__).resolve().parents[3]
SCRIPT = REPO / "scripts" / "network.sh"
DEFAULT_RUN_DIR = Path("runs") / "fabric"  # relative to where the command runs, as the profile paths of demo and attach

network_app = typer.Typer(help="A local Fabric v3 network (FABRIC_BIN's binaries, no Docker).", no_args_is_help=True)
chaincode_app = typer.Typer(help="Deploy the federation contract as a chaincode service.", no_args_is_help=True)
channel_app = typer.Typer(help="Channel membership of the organizations' peers.", no_args_is_help=True)
#: What ``admin.py`` registers, by sub-command name.
SUBAPPS = {"network": network_app, "chaincode": chaincode_app, "channel": channel_app}

RunDirOption = typer.Option(DEFAULT_RUN_DIR, "--run-dir", help="Where the network's state, logs and PIDs live.")
OrgOption = typer.Option("Org1", "--org", help="Organization whose peer to act on (Org1, Org2, Org3).")


def run_script(verb: str, *args: str, run_dir: Path, capture: bool = False) -> str:
    """Run ``scripts/network.sh VERB ARGS``; its own error message is the user's guide."""
    if not SCRIPT.is_file():
        raise NotFoundError(f"{SCRIPT} is missing: the Fabric commands need a checkout of the BlockFedML "
                            "repository (network/ and scripts/)")
    env = {**os.environ, "FABRIC_RUN_DIR": str(Path(run_dir).resolve())}
    done = subprocess.run(["bash", str(SCRIPT), verb, *args], env=env, text=True,
                          stdout=subprocess.PIPE if capture else None)
    if done.returncode != 0:
        raise typer.Exit(code=done.returncode)
    return done.stdout or ""


@network_app.command("up")
def network_up(run_dir: Path = RunDirOption) -> None:
    """Crypto material, channel block, a raft cluster of three orderers and three peers joined to fedchannel."""
    run_script("up", run_dir=run_dir)


@network_app.command("down")
def network_down(
    run_dir: Path = RunDirOption,
    keep: bool = typer.Option(False, "--keep", help="Stop the processes but keep the state and logs."),
) -> None:
    """Stop the processes `up` and `deploy` started (by recorded PID) and delete the run folder."""
    run_script("down", *(["--keep"] if keep else []), run_dir=run_dir)


@network_app.command("status")
def network_status(run_dir: Path = RunDirOption) -> None:
    """Which of the network's recorded processes are running."""
    run_script("status", run_dir=run_dir)


NodeArgument = typer.Argument(..., help="orderer, orderer2, orderer3, peer0.Org1, peer0.Org2 or peer0.Org3.")


@network_app.command("stop")
def network_stop(node: str = NodeArgument, run_dir: Path = RunDirOption) -> None:
    """Stop one node of the running network, keeping its state (to try the loss of a node)."""
    run_script("stop", node, run_dir=run_dir)


@network_app.command("start")
def network_start(node: str = NodeArgument, run_dir: Path = RunDirOption) -> None:
    """Start a stopped node again from its state; it catches up with the others."""
    run_script("start", node, run_dir=run_dir)


@network_app.command("attach")
@handle_errors
def network_attach(
    workdir: Path = typer.Option(Path("runs/fabric-consortium"), "--workdir", "-w", help="Consortium work directory to create."),
    run_dir: Path = RunDirOption,
    orgs: int = typer.Option(3, "--orgs", min=1, help="Member organizations (Org1 is also admin)."),
    dataset: str = typer.Option("breast_cancer", help="breast_cancer or digits."),
    partition: str = typer.Option("iid", help="iid or non-iid."),
    setting: list[str] = typer.Option([], "--setting", "-s", help="Federation setting key=value (repeatable)."),
    force: bool = typer.Option(False, "--force", help="Replace an existing work directory."),
    as_json: bool = JsonOption,
) -> None:
    """Create a consortium on the running network: InitConsortium and RegisterOrg through the Gateway."""
    consortium = Consortium.attach_fabric(
        workdir, Path(run_dir) / "network.json", n_orgs=orgs,
        task=TaskSpec(dataset=dataset, partition=partition), settings=parse_settings(setting), overwrite=force)
    rows = [{"name": o.name, "msp_id": o.msp_id, "roles": list(o.roles)} for o in consortium.orgs]
    consortium.close()
    emit({"workdir": str(workdir), "orgs": rows}, as_json,
         lambda _: records_table(f"Consortium on Fabric in {workdir}", rows, ["name", "msp_id", "roles"]))


@chaincode_app.command("deploy")
def chaincode_deploy(run_dir: Path = RunDirOption) -> None:
    """Package (CCaaS), install, approve per org, commit (majority policy) and start the server."""
    run_script("deploy", run_dir=run_dir)


@channel_app.command("join")
def channel_join(org: str = OrgOption, run_dir: Path = RunDirOption) -> None:
    """Join the organization's peer to fedchannel (from the channel's genesis block)."""
    run_script("channel-join", org, run_dir=run_dir)


@channel_app.command("list")
def channel_list(org: str = OrgOption, run_dir: Path = RunDirOption, as_json: bool = JsonOption) -> None:
    """Channels the organization's peer has joined."""
    output = run_script("channel-list", org, run_dir=run_dir, capture=True)
    channels = [line.strip() for line in output.splitlines()
                if line.strip() and not line.startswith("Channels peers has joined")]
    if as_json:
        emit({"org": org, "channels": channels}, True)
    else:
        console.print(f"{org}: " + (", ".join(channels) or "no channel"))
