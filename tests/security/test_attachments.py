"""Private attachments are served only to members whose role (or organisation) grants them.

Against a running node: for every attachment kind and every role, a member holding
only that role reads the attachment if and only if the kind's table grants the role
or its organisation uploaded it; unsigned, stale, re-targeted, forged and revoked
requests are refused with their codes; uploads are checked (hash, kind, size, role).
"""

from __future__ import annotations

import datetime as dt
import hashlib
from typing import Any

import httpx
import pytest
from security_support import network, report_figures, signed

from carledger.crypto.keys import SigningKey
from carledger.ledger.genesis import ROLES
from carledger.node.attachments import KINDS, MAX_ATTACHMENT_BYTES, sign_request
from tests_support import NodeProcess

pytestmark = pytest.mark.integration


def _now(shift: int = 0) -> str:
    moment = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=shift)
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _request(
    url: str,
    key: SigningKey | None,
    method: str,
    sha: str,
    body: bytes = b"",
    *,
    kind: str | None = None,
    time: str | None = None,
    signed_path: str | None = None,
    chain: str | None = None,
) -> httpx.Response:
    path = f"/v1/attachments/{sha}"
    headers: dict[str, str] = {}
    if key is not None:
        headers = sign_request(
            key,
            chain or network().chain,
            method,
            signed_path or path,
            time or _now(),
            body,
        )
    params = {"kind": kind} if kind else None
    return httpx.request(
        method, url + path, content=body or None, headers=headers, params=params, timeout=30
    )


def _code(r: httpx.Response) -> tuple[int, str]:
    if r.status_code < 300:
        return r.status_code, ""
    return r.status_code, r.json()["code"]


def _only(role: str) -> SigningKey | None:
    members = [m for m in network().with_role(role) if m.roles == (role,)]
    return members[0].key if members else None


def _org(key: SigningKey) -> str:
    return next(m.org for m in network().members.values() if m.key.public_hex == key.public_hex)


def test_attachments_are_served_by_role_only(demo_node: NodeProcess) -> None:
    url = demo_node.url
    net = network()
    uploaders = {kind: _only(sorted(roles)[0]) for kind, roles in KINDS.items()}
    stored: dict[str, tuple[str, bytes, str]] = {}
    for kind, key in uploaders.items():
        assert key is not None, kind
        data = f"{kind} scan, {dt.datetime.now(dt.UTC).isoformat()}".encode()
        sha = hashlib.sha256(data).hexdigest()
        assert _code(_request(url, key, "PUT", sha, data, kind=kind)) == (201, "")
        assert _code(_request(url, key, "PUT", sha, data, kind=kind)) == (200, "")  # idempotent
        org = _org(key)
        stored[kind] = (sha, data, org)
    reads = refused = 0
    for kind, (sha, data, org) in stored.items():
        for role in sorted(ROLES - {"admin"}):
            key = _only(role)
            if key is None:
                continue
            member_org = _org(key)
            r = _request(url, key, "GET", sha)
            if role in KINDS[kind] or member_org == org:
                assert r.status_code == 200 and r.content == data, (kind, role, r.text)
                reads += 1
            else:
                assert _code(r) == (403, "attachment_forbidden"), (kind, role, r.text)
                refused += 1

    sha, data, _ = stored["insurance_claim"]
    insurer, dealer = _only("insurer"), _only("dealer")
    assert insurer is not None and dealer is not None
    cases: dict[str, tuple[tuple[int, str], tuple[int, str]]] = {}

    def case(name: str, r: httpx.Response, expected: tuple[int, str]) -> None:
        cases[name] = (_code(r), expected)

    case("unsigned", _request(url, None, "GET", sha), (403, "request_unsigned"))
    case("stale", _request(url, insurer, "GET", sha, time=_now(-3600)), (403, "request_expired"))
    case("future", _request(url, insurer, "GET", sha, time=_now(3600)), (403, "request_expired"))
    other = hashlib.sha256(b"other").hexdigest()
    case(
        "signed for another path",
        _request(url, insurer, "GET", sha, signed_path=f"/v1/attachments/{other}"),
        (403, "request_signature_invalid"),
    )
    case(
        "signed for another chain",
        _request(url, insurer, "GET", sha, chain="other-chain"),
        (403, "request_signature_invalid"),
    )
    case("stranger", _request(url, SigningKey.generate(), "GET", sha), (403, "unknown_signer"))
    case("unknown attachment", _request(url, insurer, "GET", other), (404, "unknown_attachment"))
    case("bad id", _request(url, insurer, "GET", "XYZ"), (400, "invalid_attachment_id"))
    case(
        "upload: wrong hash",
        _request(url, dealer, "PUT", other, b"x", kind="sale_contract"),
        (400, "attachment_hash_mismatch"),
    )
    case(
        "upload: kind not allowed",
        _request(url, dealer, "PUT", hashlib.sha256(b"y").hexdigest(), b"y", kind="lien_document"),
        (403, "unauthorized_role"),
    )
    case(
        "upload: unknown kind",
        _request(url, dealer, "PUT", hashlib.sha256(b"z").hexdigest(), b"z", kind="diary"),
        (400, "unknown_attachment_kind"),
    )
    big = b"\0" * (MAX_ATTACHMENT_BYTES + 1)
    case(
        "upload: too large",
        _request(url, dealer, "PUT", hashlib.sha256(big).hexdigest(), big, kind="sale_contract"),
        (400, "attachment_too_large"),
    )
    # A revoked key loses access at once.
    admin = net.admins[_org(insurer)]
    revoke = signed(
        net.chain, "member.revoke", {"key": insurer.public_hex, "reason": "Left."}, [admin]
    )
    r = httpx.post(
        f"{url}/v1/transactions", params={"wait": "true"}, json=revoke.to_wire(), timeout=30
    )
    assert r.status_code == 200, r.text
    case("revoked", _request(url, insurer, "GET", sha), (403, "signer_revoked"))
    wrong = {name: got for name, (got, want) in cases.items() if got != want}
    assert not wrong, wrong
    figures: dict[str, Any] = {
        "kinds": len(KINDS),
        "authorised_reads": reads,
        "refused_reads": refused,
        "refused_requests": len(cases),
    }
    report_figures("authorization.attachments", figures)
