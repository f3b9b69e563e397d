"""Private attachments: files kept off chain, served only to members whose role grants them.

A record carries only an attachment's SHA-256 (``contract_hash``, ``claim_hash``,
``evidence_hash``...); the file itself (a contract scan, an insurance claim's
details, dispute evidence) is stored by the node, content-addressed, and never
replicated through blocks::

    DIR/attachments/<sha256>        the bytes, exactly as uploaded
    DIR/attachments/<sha256>.json   {"kind", "org", "uploader", "size", "content_type"}

Every request is signed by a member key (:func:`sign_request`), with three headers:
``X-Carledger-Key`` (the public key), ``X-Carledger-Time`` (UTC, within
:data:`MAX_SKEW_MS` of the node's clock) and ``X-Carledger-Signature`` (Ed25519 over
:func:`request_signing_bytes`: chain, method, path, time and the body's SHA-256,
so a signature is good for one request on one chain only). The key must be an
active member at the head (``unknown_signer``, ``signer_revoked``,
``signer_expired``).

Who may store and read an attachment is the table :data:`KINDS`: a kind names the
roles that may; the organisation that uploaded an attachment may always read it.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from carledger.crypto.keys import SigningKey, is_public_key_hex, verify_signature
from carledger.encoding import canonical
from carledger.errors import Conflict, InvalidInput, NotFound, StorageError, Unauthorized
from carledger.ledger.block import parse_time
from carledger.ledger.contracts import BlockContext, Signer
from carledger.ledger.membership import resolve_signer

__all__ = [
    "KINDS",
    "MAX_ATTACHMENT_BYTES",
    "AttachmentStore",
    "authenticate",
    "request_signing_bytes",
    "sign_request",
]

#: kind -> the roles that may store and read attachments of that kind.
KINDS: dict[str, frozenset[str]] = {
    "sale_contract": frozenset({"registry", "dealer", "lender"}),
    "insurance_claim": frozenset({"insurer", "registry", "police"}),
    "inspection_photo": frozenset({"inspector", "dealer", "market_operator", "registry"}),
    "dispute_evidence": frozenset({"registry", "market_operator"}),
    "lien_document": frozenset({"lender", "registry"}),
    "scrap_certificate": frozenset({"scrapyard", "registry"}),
}
MAX_ATTACHMENT_BYTES = 4 * 1024 * 1024
MAX_SKEW_MS = 300_000
REQUEST_KIND = "carledger.request.v1"
KEY_HEADER, TIME_HEADER, SIGNATURE_HEADER = (
    "x-carledger-key",
    "x-carledger-time",
    "x-carledger-signature",
)
_SHA256 = re.compile(r"[0-9a-f]{64}")
_SIGNATURE = re.compile(r"[0-9a-f]{128}")


def request_signing_bytes(chain: str, method: str, path: str, time: str, body: bytes) -> bytes:
    """What a member signs to make one request (never parses as a transaction body)."""
    return canonical.encode(
        {
            "kind": REQUEST_KIND,
            "chain": chain,
            "method": method.upper(),
            "path": path,
            "time": time,
            "body": hashlib.sha256(body).hexdigest(),
        }
    )


def sign_request(
    key: SigningKey, chain: str, method: str, path: str, time: str, body: bytes = b""
) -> dict[str, str]:
    """The headers of a request signed by ``key`` at ``time`` (``YYYY-MM-DDTHH:MM:SSZ``)."""
    signature = key.sign(request_signing_bytes(chain, method, path, time, body))
    return {KEY_HEADER: key.public_hex, TIME_HEADER: time, SIGNATURE_HEADER: signature.hex()}


def authenticate(
    headers: Mapping[str, str],
    *,
    state: Any,
    ctx: BlockContext,
    method: str,
    path: str,
    body: bytes,
    now_ms: int,
) -> Signer:
    """The active member who signed this request, or raise :class:`Unauthorized`:
    ``request_unsigned`` (headers missing or malformed), ``request_expired`` (time
    too far from ``now_ms``), ``request_signature_invalid``, then the membership
    codes of :func:`carledger.ledger.membership.resolve_signer`."""
    key, time, signature = (headers.get(h) for h in (KEY_HEADER, TIME_HEADER, SIGNATURE_HEADER))
    if (
        not is_public_key_hex(key)
        or not isinstance(time, str)
        or not isinstance(signature, str)
        or not _SIGNATURE.fullmatch(signature)
    ):
        raise Unauthorized(
            "request_unsigned",
            "Attachments are served to members only: sign the request with your member key "
            f"({KEY_HEADER}, {TIME_HEADER}, {SIGNATURE_HEADER}).",
        )
    assert key is not None
    try:
        at = parse_time(time[:-1] + ".000Z" if len(time) == 20 else time)
    except InvalidInput:
        at = None
    if at is None or abs(now_ms - at) > MAX_SKEW_MS:
        raise Unauthorized(
            "request_expired",
            f"The request's time {time!r} is not within {MAX_SKEW_MS // 1000} s of the node's "
            "clock; sign it again now.",
        )
    data = request_signing_bytes(ctx.chain, method, path, time, body)
    if not verify_signature(bytes.fromhex(key), data, bytes.fromhex(signature)):
        raise Unauthorized(
            "request_signature_invalid",
            "The request signature does not verify for this chain, method, path, time and body.",
        )
    return resolve_signer(state, key, ctx)


def _may(signer: Signer, kind: str) -> bool:
    return signer.has_role(*KINDS[kind])


@dataclass(frozen=True, slots=True)
class Attachment:
    sha256: str
    data: bytes
    meta: dict[str, Any]


class AttachmentStore:
    """Content-addressed files under ``root``; writes are atomic (temporary file, rename)."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def check_id(sha256: str) -> str:
        if not _SHA256.fullmatch(sha256):
            raise InvalidInput(
                "invalid_attachment_id", "An attachment is named by its SHA-256 in lowercase hex."
            )
        return sha256

    def put(
        self, sha256: str, data: bytes, kind: str, signer: Signer, content_type: str
    ) -> tuple[dict[str, Any], bool]:
        """Store ``data`` as ``sha256``; returns its metadata and whether it was new.

        Raises :class:`InvalidInput` (``unknown_attachment_kind``,
        ``attachment_too_large``, ``attachment_hash_mismatch``),
        :class:`Unauthorized` (``unauthorized_role``) and :class:`Conflict`
        (``attachment_exists``: stored before as another kind).
        """
        self.check_id(sha256)
        if kind not in KINDS:
            raise InvalidInput(
                "unknown_attachment_kind",
                f"Attachment kinds are {', '.join(sorted(KINDS))}; not {kind!r}.",
            )
        if not _may(signer, kind):
            raise Unauthorized(
                "unauthorized_role",
                f"A {kind} attachment is stored by a member with role "
                f"{' or '.join(sorted(KINDS[kind]))}.",
            )
        if len(data) > MAX_ATTACHMENT_BYTES:
            raise InvalidInput(
                "attachment_too_large", f"An attachment is at most {MAX_ATTACHMENT_BYTES} bytes."
            )
        if hashlib.sha256(data).hexdigest() != sha256:
            raise InvalidInput(
                "attachment_hash_mismatch", "The uploaded bytes do not hash to the attachment id."
            )
        existing = self._meta(sha256)
        if existing is not None:
            if existing["kind"] != kind:
                raise Conflict(
                    "attachment_exists", f"This attachment is stored as {existing['kind']}."
                )
            return existing, False
        meta = {
            "kind": kind,
            "org": signer.org,
            "uploader": signer.key,
            "size": len(data),
            "content_type": content_type[:100] or "application/octet-stream",
        }
        self.root.mkdir(parents=True, exist_ok=True)
        for name, content in ((sha256, data), (f"{sha256}.json", json.dumps(meta).encode())):
            tmp = self.root / f".{name}.tmp"
            tmp.write_bytes(content)
            os.replace(tmp, self.root / name)
        return meta, True

    def get(self, sha256: str, signer: Signer) -> Attachment:
        """The attachment, if ``signer`` may read it. Raises :class:`NotFound`
        (``unknown_attachment``) and :class:`Unauthorized` (``attachment_forbidden``)."""
        self.check_id(sha256)
        meta = self._meta(sha256)
        if meta is None:
            raise NotFound("unknown_attachment", "This node stores no such attachment.")
        if not (_may(signer, meta["kind"]) or (signer.org and signer.org == meta["org"])):
            raise Unauthorized(
                "attachment_forbidden",
                f"A {meta['kind']} attachment is served to its organisation and to members "
                f"with role {' or '.join(sorted(KINDS[meta['kind']]))}.",
            )
        data = (self.root / sha256).read_bytes()
        if hashlib.sha256(data).hexdigest() != sha256:
            raise StorageError(
                "store_damaged", "The stored attachment does not hash to its id; it is damaged."
            )
        return Attachment(sha256, data, meta)

    def _meta(self, sha256: str) -> dict[str, Any] | None:
        path = self.root / f"{sha256}.json"
        if not path.exists() or not (self.root / sha256).exists():
            return None
        meta: dict[str, Any] = json.loads(path.read_text())
        return meta
