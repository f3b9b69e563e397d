// carledger: member keys in the browser, transaction bodies, signing and submission.
//
// A key is read from an unencrypted PKCS#8 PEM file (RFC 8410, as `carledger keys new
// --no-encrypt` writes it) or from its raw 32-byte seed in hex, imported into WebCrypto
// as a non-extractable Ed25519 key, and kept in this page's memory only: it is never
// sent anywhere, never stored; closing or reloading the page forgets it.
//
// Bodies are built exactly as docs/transaction-format.md says: the six-field envelope,
// RFC 8785 canonical bytes, id = sha256(body), one Ed25519 signature per signer over
// the body bytes, wire form {body: base64, signatures: [hex]}.

import { canonicalBytes, fromBase64, fromHex, sha256Hex, toBase64, toHex } from "./canon.js";

const ED25519 = { name: "Ed25519" };
// PKCS#8 (RFC 8410) prefix of an Ed25519 private key: the seed follows.
const PKCS8_PREFIX = fromHex("302e020100300506032b657004220420");

export class KeyError extends Error {
  constructor(code, message) {
    super(message);
    this.code = code;
  }
}

function b64urlToBytes(text) {
  const b64 = text.replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(b64 + "===".slice((b64.length + 3) % 4)), (c) => c.charCodeAt(0));
}

/** The PKCS#8 DER of a key given as PEM text or 64 hex digits (the seed). */
export function keyDer(text) {
  const trimmed = text.trim();
  if (/^[0-9a-fA-F]{64}$/.test(trimmed)) {
    const der = new Uint8Array(48);
    der.set(PKCS8_PREFIX);
    der.set(fromHex(trimmed.toLowerCase()), 16);
    return der;
  }
  if (trimmed.includes("ENCRYPTED PRIVATE KEY")) {
    throw new KeyError("key_encrypted", "encrypted key files cannot be read in the browser");
  }
  const m = /-----BEGIN PRIVATE KEY-----([\s\S]+?)-----END PRIVATE KEY-----/.exec(trimmed);
  if (!m) throw new KeyError("key_unreadable", "neither a PKCS#8 PEM key nor a 64-hex seed");
  try {
    return fromBase64(m[1].replace(/\s+/g, ""));
  } catch {
    throw new KeyError("key_unreadable", "the PEM body is not base64");
  }
}

/**
 * Import a key: {publicHex, sign(bytes) -> Uint8Array}. The private key object is
 * non-extractable; the public key comes from a one-time extractable import.
 */
export async function importKey(text) {
  const der = keyDer(text);
  let publicHex;
  let key;
  try {
    const probe = await crypto.subtle.importKey("pkcs8", der, ED25519, true, ["sign"]);
    const jwk = await crypto.subtle.exportKey("jwk", probe);
    publicHex = toHex(b64urlToBytes(jwk.x));
    key = await crypto.subtle.importKey("pkcs8", der, ED25519, false, ["sign"]);
  } catch {
    throw new KeyError("key_unreadable", "not an Ed25519 private key");
  } finally {
    der.fill(0);
  }
  return {
    publicHex,
    async sign(bytes) {
      return new Uint8Array(await crypto.subtle.sign(ED25519, key, bytes));
    },
  };
}

/** A fresh random seed (hex) for a citizen's own key. */
export function newSeedHex() {
  return toHex(crypto.getRandomValues(new Uint8Array(32)));
}

export function nonce() {
  return toHex(crypto.getRandomValues(new Uint8Array(12)));
}

/** The UTC time now as the envelope's `created` (second precision). */
export function createdNow() {
  return new Date().toISOString().replace(/\.\d{3}Z$/, "Z");
}

/** Today's Korean local date (UTC+9), the date the ledger's rules use. */
export function koreanToday() {
  return new Date(Date.now() + 9 * 3600 * 1000).toISOString().slice(0, 10);
}

/** Canonical body bytes of an envelope, and its id. */
export async function buildBody({ chain, type, payload, signers }) {
  const envelope = { chain, type, payload, signers, nonce: nonce(), created: createdNow() };
  const body = canonicalBytes(envelope);
  return { envelope, body, id: await sha256Hex(body) };
}

export function wire(body, signatures) {
  return { body: toBase64(body), signatures: signatures.map(toHex) };
}

/**
 * POST one wire transaction and wait for its block. Resolves to
 * {ok: true, id, height, index} or {ok: false, code, detail, status, context}.
 */
export async function submit(wireTx) {
  let response;
  try {
    response = await fetch("/v1/transactions?wait=true", {
      method: "POST",
      headers: { "Content-Type": "application/json", Accept: "application/json" },
      body: JSON.stringify(wireTx),
    });
  } catch (err) {
    return { ok: false, code: "network_error", detail: String(err.message || err), status: 0 };
  }
  let doc = {};
  try { doc = await response.json(); } catch { /* an empty or non-JSON answer */ }
  if (response.status === 200 && doc.status === "committed") {
    return { ok: true, id: doc.id, height: doc.height, index: doc.index };
  }
  if (response.status === 202) {
    return { ok: false, code: "still_pending", detail: "queued, not yet committed", status: 202, context: doc };
  }
  return {
    ok: false,
    code: doc.code || `http_${response.status}`,
    detail: doc.detail || response.statusText,
    status: response.status,
    context: doc.context || {},
  };
}
