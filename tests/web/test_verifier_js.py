"""The browser verifier (``static/js/verify.js``) agrees with ``carledger.verifier``.

Every report of the demo chain is verified by both: both accept it and compute the
same content hash. Then each report is mutated in the ways an attacker or a bug
would (a byte of a signed body, a signature, a checkpoint signature, the header, the
state proof, an inclusion path, dropped, reordered and foreign records, a hidden
warning) and both must refuse it with the same code.
"""

from __future__ import annotations

import base64
import copy
import json
from collections.abc import Callable
from typing import Any

import pytest
from web_support import Api

from carledger.errors import VerificationFailure
from carledger.ledger.genesis import Genesis
from carledger.verifier import content_hash, verify_report
from tests_support import NodeProcess

pytestmark = pytest.mark.integration

Report = dict[str, Any]


def _flip_hex(text: str, at: int = 5) -> str:
    return text[:at] + ("0" if text[at] != "0" else "1") + text[at + 1 :]


def _body_digit(r: Report) -> None:
    rec = r["records"][len(r["records"]) // 2]
    body = bytearray(base64.b64decode(rec["tx"]["body"]))
    i = body.index(b'"nonce":"') - 3  # a character inside the payload or created time
    while not chr(body[i]).isdigit():
        i -= 1
    body[i] = ord("1") if body[i] != ord("1") else ord("2")
    rec["tx"]["body"] = base64.b64encode(bytes(body)).decode()


def _record_signature(r: Report) -> None:
    sig = r["records"][0]["tx"]["signatures"]
    sig[0] = _flip_hex(sig[0], 70)


def _checkpoint_signature(r: Report) -> None:
    s = r["checkpoint"]["signatures"][0]
    s["signature"] = _flip_hex(s["signature"], 10)


def _header(r: Report) -> None:
    r["header"]["tx_count"] += 1


def _state_value(r: Report) -> None:
    state = json.loads(base64.b64decode(r["state"]["value"]))
    state["records"] += 1
    r["state"]["value"] = base64.b64encode(json.dumps(state).encode()).decode()


def _sibling(r: Report) -> None:
    siblings = r["state"]["proof"]["siblings"]
    i = next(k for k, s in enumerate(siblings) if s is not None)
    siblings[i] = _flip_hex(siblings[i], 0)


def _inclusion(r: Report) -> None:
    rec = next(x for x in r["records"] if x["inclusion"])
    rec["inclusion"][0] = _flip_hex(rec["inclusion"][0], 3)


def _height(r: Report) -> None:
    r["records"][0]["height"] += 1


def _drop_last(r: Report) -> None:
    r["records"].pop()


def _drop_middle(r: Report) -> None:
    del r["records"][1]


def _swap(r: Report) -> None:
    recs = r["records"]
    recs[1], recs[2] = recs[2], recs[1]


def _signer_org(r: Report) -> None:
    r["records"][0]["signers"][0]["org"] = "a-trusted-dealer"


def _member_proof(r: Report) -> None:
    entry = next(iter(r["members"].values()))
    state = json.loads(base64.b64decode(entry["value"]))
    state["org"] = "a-trusted-dealer"
    entry["value"] = base64.b64encode(json.dumps(state).encode()).decode()


def _genesis(r: Report) -> None:
    r["genesis_hash"] = "00" * 32


def _chain(r: Report) -> None:
    r["chain"] = "another-chain"


def _format(r: Report) -> None:
    r["format"] = "carledger.report.v0"


def _hide_flags(r: Report) -> None:
    """Hide every warning (odometer gaps aside); with none to hide, invent a theft."""
    flags = r["summary"]["flags"]
    kept = [f for f in flags if f["code"] == "odometer_gap"]
    if len(kept) == len(flags):
        kept.append({"code": "stolen", "severity": "critical", "message": "-", "records": []})
    r["summary"]["flags"] = kept


def _rollbacks(r: Report) -> None:
    r["summary"]["odometer"]["rollbacks"] = 0


def _records_count(r: Report) -> None:
    r["summary"]["records"] -= 1


MUTATIONS: dict[str, tuple[Callable[[Report], None], str]] = {
    "body byte": (_body_digit, "record_signature_invalid"),
    "record signature": (_record_signature, "record_signature_invalid"),
    "checkpoint signature": (_checkpoint_signature, "checkpoint_not_certified"),
    "header": (_header, "header_mismatch"),
    "state value": (_state_value, "state_proof_invalid"),
    "state sibling": (_sibling, "state_proof_invalid"),
    "inclusion path": (_inclusion, "inclusion_proof_invalid"),
    "record height": (_height, "inclusion_proof_invalid"),
    "last record dropped": (_drop_last, "report_incomplete"),
    "middle record dropped": (_drop_middle, "chain_broken"),
    "records swapped": (_swap, "chain_broken"),
    "signer organisation": (_signer_org, "signer_mismatch"),
    "membership proof": (_member_proof, "state_proof_invalid"),
    "chain": (_chain, "report_chain_mismatch"),
    "genesis": (_genesis, "report_chain_mismatch"),
    "format": (_format, "report_malformed"),
    "warnings hidden or invented": (_hide_flags, "summary_mismatch"),
    "rollback count": (_rollbacks, "summary_mismatch"),
    "record count": (_records_count, "summary_mismatch"),
}

JS_VERIFY_ALL = """
async ([reports, trust]) => {
  const { verifyReport } = await import("/static/js/verify.js");
  const out = [];
  for (const report of reports) {
    try {
      const r = await verifyReport(report, trust);
      out.push({ ok: true, hash: r.contentHash, records: r.records, height: r.height });
    } catch (err) {
      out.push({ ok: false, code: err.code || String(err) });
    }
  }
  return out;
}
"""


def _python(report: Report, genesis: Genesis) -> dict[str, Any]:
    try:
        done = verify_report(report, genesis)
    except VerificationFailure as exc:
        return {"ok": False, "code": exc.code}
    return {"ok": True, "hash": done.content_hash, "records": done.records, "height": done.height}


@pytest.fixture(scope="module")
def reports(api: Api) -> dict[str, Report]:
    return {vin: api.get(f"/v1/vehicles/{vin}/report") for vin in api.vins()}


def test_js_and_python_verifiers_agree(
    demo_node: NodeProcess,
    api: Api,
    reports: dict[str, Report],
    browser_factory: Callable[..., Any],
) -> None:
    genesis = Genesis.from_dict(json.loads((demo_node.data / "genesis.json").read_bytes()))
    trust = {
        "chain": genesis.chain_id,
        "genesis_hash": genesis.hash,
        "validators": genesis.validator_keys(),
        "quorum": len(genesis.validator_keys()) * 2 // 3 + 1,
    }
    page = browser_factory().new_page()
    page.goto(f"{demo_node.url}/explorer")  # any page of the node: same origin for import()

    # Every genuine report: both accept, same hash, same counts.
    genuine = list(reports.values())
    js = page.evaluate(JS_VERIFY_ALL, [genuine, trust])
    for report, result in zip(genuine, js, strict=True):
        expected = _python(report, genesis)
        assert expected["ok"], expected
        assert result == expected
        assert result["hash"] == content_hash(report)

    # Every mutation of a few reports (the rollback car, and long histories): both refuse.
    chosen = [api.vins()[0], max(reports, key=lambda v: len(reports[v]["records"]))]
    cases: list[tuple[str, str, str, Report]] = []
    for vin in chosen:
        for name, (mutate, code) in MUTATIONS.items():
            bad = copy.deepcopy(reports[vin])
            if name == "rollback count" and bad["summary"]["odometer"]["rollbacks"] == 0:
                bad["summary"]["odometer"]["rollbacks"] = 1
            else:
                mutate(bad)
            cases.append((vin, name, code, bad))
    js = page.evaluate(JS_VERIFY_ALL, [[c[3] for c in cases], trust])
    for (vin, name, code, bad), result in zip(cases, js, strict=True):
        expected = _python(bad, genesis)
        assert expected == {"ok": False, "code": code}, (vin, name, expected)
        assert result == expected, (vin, name, result)
