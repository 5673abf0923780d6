"""Membership: each organization's own folder and card, the founder-signed consortium bundle."""

from blockfedml.membership.bundle import Bundle, LedgerCard, Member, build_bundle, init_ledger_node, read_bundle
from blockfedml.membership.cards import OrgCard, OrgFolder, init_org, read_card

__all__ = ["Bundle", "LedgerCard", "Member", "OrgCard", "OrgFolder", "build_bundle", "init_ledger_node",
           "init_org", "read_bundle", "read_card"]
