"""Transactions of secure aggregation: key publication, mask keys and shares, authorized decryptions.

See docs/secure-aggregation.md: the key holder decrypts only what these records authorize."""

from __future__ import annotations

from . import rules
from .errors import EXISTS, INVALID, PHASE, UNAUTHORIZED, ContractError
from .shim import TransactionContextInterface
from .state import (
    caller_of,
    canonical,
    get_json,
    get_required,
    get_round,
    get_writer,
    list_by_msp,
    list_decryptions,
    put_json,
    require_absent,
    require_participant,
    round_key,
    round_records,
    tx_of,
)


class SecureAggregationTransactions:
    """Mixed into ``FederationContract`` (contract.py): the same contract, its own module."""

    async def PublishKey(self, ctx: TransactionContextInterface, epoch: str, fingerprint: str, bits: str) -> str:
        """A key holder publishes its Paillier key's fingerprint (the key itself lives off-chain).

        Each round pins the key in force at Allocate; a higher epoch rotates it for later rounds.
        """
        stub, caller = ctx.get_stub(), caller_of(ctx)
        key = {"epoch": rules.parse_int("epoch", epoch, minimum=1),
               "fingerprint": rules.parse_digest("fingerprint", fingerprint),
               "bits": rules.parse_key_bits("bits", bits)}
        org = await get_writer(stub, caller)
        if org["status"] != rules.ACTIVE or not rules.has_role(org, "keyholder"):
            raise ContractError(UNAUTHORIZED, f"{caller} is not an active key holder "
                                              f"(status {org['status']}, roles {org['roles']})")
        current = await get_json(stub, f"pkey~{caller}")
        if current is not None and key["epoch"] <= current["epoch"]:
            raise ContractError(EXISTS, f"{caller} already published key epoch {current['epoch']}; a new key "
                                        f"needs epoch {current['epoch'] + 1} or later")
        tx, now = tx_of(ctx)
        key = {**key, "tx": tx, "time": now}
        await put_json(stub, f"pkey~{caller}", key)
        return canonical(key)

    async def AdvertiseMaskKey(self, ctx: TransactionContextInterface, round: str, mask_key: str,
                               share_key: str) -> str:
        """Masking, selection phase: a member's X25519 public keys for this round (masks, shares)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        keys = {"mask_key": rules.parse_public_key_hex("mask_key", mask_key),
                "share_key": rules.parse_public_key_hex("share_key", share_key)}
        if keys["mask_key"] == keys["share_key"]:
            raise ContractError(INVALID, "mask_key and share_key must be two different keys")
        org = await get_writer(stub, caller)
        if org["status"] != rules.ACTIVE or not rules.has_role(org, "member"):
            raise ContractError(UNAUTHORIZED, f"{caller} is not an active member "
                                              f"(status {org['status']}, roles {org['roles']})")
        record = await get_round(stub, round)
        rules.require_phase(record, "selection")
        rules.require_mode(record, ("masking",), "AdvertiseMaskKey")
        key = round_key("maskkey", record["round"], caller)
        await require_absent(stub, key, f"{caller} already advertised its mask keys for round {record['round']}")
        await put_json(stub, key, keys)
        return canonical(keys)

    async def ShareMaskKeys(self, ctx: TransactionContextInterface, round: str, digest: str, size: str) -> str:
        """Masking, configuration phase: the digest of a selected member's encrypted Shamir shares."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        shares = {"digest": rules.parse_digest("digest", digest), "size": rules.parse_int("size", size, minimum=1)}
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        rules.require_phase(record, "configuration")
        rules.require_mode(record, ("masking",), "ShareMaskKeys")
        if caller not in record["selected"]:
            raise ContractError(UNAUTHORIZED, f"{caller} is not selected for round {record['round']}")
        key = round_key("shares", record["round"], caller)
        await require_absent(stub, key, f"{caller} already shared its mask keys for round {record['round']}")
        await put_json(stub, key, shares)
        return canonical(shares)

    async def RequestDecryption(self, ctx: TransactionContextInterface, round: str, sum_digest: str,
                                contributors_json: str) -> str:
        """The aggregator asks for one sum to be opened; the ledger fixes who is in it.

        Contributors that committed updates, at least min_group_size of them besides the
        aggregator and besides each contributor (everyone who sees the opened sum), never
        overlapping an earlier sum of the round (see rules.check_decryption_request).
        """
        stub, caller = ctx.get_stub(), caller_of(ctx)
        digest = rules.parse_digest("sum_digest", sum_digest)
        contributors = rules.parse_msp_list("contributors_json", contributors_json)
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        rules.require_phase(record, "update")
        rules.require_mode(record, rules.SECURE_MODES, "RequestDecryption")
        if caller != record["aggregator"]:
            raise ContractError(UNAUTHORIZED, f"{caller} is not the aggregator of round {number}; "
                                              f"{record['aggregator']} is")
        updates = await list_by_msp(stub, "update", number)
        earlier = await list_decryptions(stub, number)
        settings = await get_json(stub, "settings")
        rules.check_decryption_request(record, contributors, {u["msp_id"]: u["digest"] for u in updates},
                                       earlier, digest, settings["min_group_size"], caller,
                                       group_masks=rules.group_masks(record, settings))
        weights = {u["msp_id"]: u["num_samples"] for u in updates}
        tx, _ = tx_of(ctx)
        request = {"index": len(earlier), "digest": digest, "contributors": contributors,
                   "weight": sum(weights[msp] for msp in contributors), "requested_by": caller,
                   "tx": tx, "result": None}
        await put_json(stub, f"{round_key('decrypt', number)}~{len(earlier):04d}", request)
        return canonical(request)

    async def RevealMaskShares(self, ctx: TransactionContextInterface, round: str, digest: str, size: str) -> str:
        """Masking: a participant releases its shares for the recorded contributor set (sealed to the aggregator)."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        reveal = {"digest": rules.parse_digest("digest", digest), "size": rules.parse_int("size", size, minimum=1)}
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        rules.require_phase(record, "update")
        rules.require_mode(record, ("masking",), "RevealMaskShares")
        require_participant(record, caller)
        requests = await list_decryptions(stub, number)
        if all(r["result"] is not None for r in requests):  # with attribution: one request per group
            raise ContractError(PHASE, f"round {number} has no pending unmasking request "
                                       f"({'already unmasked' if requests else 'none yet'})")
        key = round_key("reveal", number, caller)
        await require_absent(stub, key, f"{caller} already revealed its shares for round {number}")
        await put_json(stub, key, reveal)
        return canonical(reveal)

    async def RecordDecryption(self, ctx: TransactionContextInterface, round: str, index: str,
                               result_digest: str, opening_digest: str) -> str:
        """Whoever opens the round's sums (the key holder; the aggregator for masking) records the result
        and the opening that lets anyone re-check it: for Paillier every plaintext with its randomness r,
        for masking the rebuilt self-mask seeds and dropped members' mask keys."""
        stub, caller = ctx.get_stub(), caller_of(ctx)
        position = rules.parse_int("index", index, minimum=0, maximum=9999)
        result = rules.parse_digest("result_digest", result_digest)
        opening = rules.parse_digest("opening_digest", opening_digest)
        if opening == result:
            raise ContractError(INVALID, "opening_digest must name the opening (what re-checks the result), "
                                         "not the result itself")
        await get_writer(stub, caller)
        record = await get_round(stub, round)
        number = record["round"]
        rules.require_phase(record, "update")
        rules.require_mode(record, rules.SECURE_MODES, "RecordDecryption")
        opener = record["keyholder"] if record["mode"] == "paillier" else record["aggregator"]
        if caller != opener:
            raise ContractError(UNAUTHORIZED, f"{caller} does not open the sums of round {number}; {opener} does")
        key = f"{round_key('decrypt', number)}~{position:04d}"
        request = await get_required(stub, key, f"decryption request {position} of round {number}")
        if request["result"] is not None:
            raise ContractError(EXISTS, f"decryption request {position} of round {number} is already recorded")
        if record["mode"] == "masking":
            reveals = await list_by_msp(stub, "reveal", number)
            if len(reveals) < record["mask_threshold"]:
                raise ContractError(PHASE, f"round {number} has {len(reveals)} revealed shares, the masking "
                                           f"threshold is {record['mask_threshold']}")
        tx, _ = tx_of(ctx)
        request = {**request, "result": {"digest": result, "opening": opening, "by": caller, "tx": tx}}
        await put_json(stub, key, request)
        return canonical(request)

    async def GetPublicKey(self, ctx: TransactionContextInterface, msp_id: str) -> str:
        msp_id = rules.check_msp_id("msp_id", msp_id)
        return canonical(await get_required(ctx.get_stub(), f"pkey~{msp_id}",
                                            f"the public key of {msp_id} (has it published one?)"))

    async def GetMaskKeys(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "maskkey", round)

    async def GetMaskShares(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "shares", round)

    async def GetMaskReveals(self, ctx: TransactionContextInterface, round: str) -> str:
        return await round_records(ctx, "reveal", round)

    async def GetDecryptions(self, ctx: TransactionContextInterface, round: str) -> str:
        stub = ctx.get_stub()
        return canonical(await list_decryptions(stub, (await get_round(stub, round))["round"]))
