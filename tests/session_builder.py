"""One finished session that audit and ledger-service tests copy before touching.

Three rounds with everything an audit must recompute: round 1 run by two of
the three members (Org3 sits out), a settings change (reward 50 -> 5), round 2
poisoned by Org2 and rolled back (penalty 65 bans Org3, whose balance was
lowest), round 3 accepted again without the banned member. Training is slow
(small learning rate) so that round 3 still improves the model: no reward
without improvement.
"""

from __future__ import annotations

from pathlib import Path

from blockfedml.consortium import Consortium
from blockfedml.fl.session import Session
from blockfedml.fl.task import TaskSpec

SETTINGS = {"reward": 50, "penalty": 65}


def poison(member, factor: float = -8.0) -> None:
    """Make a member send a sign-flipped, scaled update (a model-replacement attack)."""
    honest_fit = member.model.fit

    def fit(*args, **kwargs):
        model = honest_fit(*args, **kwargs)
        model.set_params(factor * model.get_params())
        return model

    member.model.fit = fit


def sit_out(member) -> None:
    """The member takes no action this round (it does not even report screening)."""
    member.act = lambda round_: None


def build_session(workdir: Path) -> Path:
    consortium = Consortium.create(workdir, n_orgs=3, task=TaskSpec(lr=0.0005, epochs=1), settings=SETTINGS)
    try:
        session = Session(consortium)
        session.join_all()
        org1, org2, org3 = session.members
        honest_act, honest_fit = org3.act, org2.model.fit
        sit_out(org3)
        assert session.run_round().status == "accepted"
        consortium.contract("Org1").submit_json("SetSettings", {"reward": 5})
        org3.act = honest_act
        poison(org2)
        assert session.run_round().status == "rolled_back"
        org2.model.fit = honest_fit
        sit_out(org3)  # banned now: its writes would be refused
        assert session.run_round().status == "accepted"
    finally:
        consortium.close()
    return workdir
