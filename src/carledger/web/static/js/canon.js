// carledger: the byte-level building blocks every page script shares.
//
// canonicalize() is RFC 8785 (JSON Canonicalization Scheme) for carledger's JSON
// subset, exactly as docs/transaction-format.md §2 and §11 describe it: no floats,
// safe integers only, keys sorted by UTF-16 code units (JavaScript's default sort),
// strings escaped as JSON.stringify does (which is what RFC 8785 requires).
// Hashing and Ed25519 use WebCrypto (crypto.subtle), available in secure contexts
// (https:, or http://localhost / 127.0.0.1) of current browsers.

export const utf8 = new TextEncoder();
export const utf8Strict = new TextDecoder("utf-8", { fatal: true });

export function canonicalize(value) {
  if (value === null || typeof value === "boolean" || typeof value === "string") {
    return JSON.stringify(value);
  }
  if (typeof value === "number") {
    if (!Number.isSafeInteger(value)) throw new Error(`not a safe integer: ${value}`);
    return JSON.stringify(value);
  }
  if (Array.isArray(value)) return "[" + value.map(canonicalize).join(",") + "]";
  if (typeof value === "object") {
    return "{" + Object.keys(value).sort()
      .map((k) => JSON.stringify(k) + ":" + canonicalize(value[k])).join(",") + "}";
  }
  throw new Error(`not signable JSON: ${typeof value}`);
}

export function canonicalBytes(value) {
  return utf8.encode(canonicalize(value));
}

const HEX = /^(?:[0-9a-f]{2})*$/;

/** Lowercase hex to bytes; throws on anything else (upper case, odd length). */
export function fromHex(text, length) {
  if (typeof text !== "string" || !HEX.test(text)) throw new Error("not lowercase hex");
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
  if (length !== undefined && out.length !== length) throw new Error(`not ${length} bytes`);
  return out;
}

export function toHex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Standard base64 (RFC 4648 §4, padded) to bytes; refuses any other spelling. */
export function fromBase64(text) {
  if (typeof text !== "string") throw new Error("not base64");
  const raw = atob(text);
  const out = Uint8Array.from(raw, (c) => c.charCodeAt(0));
  if (toBase64(out) !== text) throw new Error("not canonical base64");
  return out;
}

export function toBase64(bytes) {
  let raw = "";
  for (const b of bytes) raw += String.fromCharCode(b);
  return btoa(raw);
}

export function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

export function webCryptoReady() {
  return Boolean(globalThis.isSecureContext && globalThis.crypto && crypto.subtle);
}

export async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

export async function sha256Hex(bytes) {
  return toHex(await sha256(bytes));
}

const ED25519 = { name: "Ed25519" };
const keyCache = new Map();

/** Pure Ed25519 (RFC 8032) verification of `signature` over `data` by a raw public key. */
export async function ed25519Verify(publicKey, signature, data) {
  if (publicKey.length !== 32 || signature.length !== 64) return false;
  const id = toHex(publicKey);
  let key = keyCache.get(id);
  if (!key) {
    try {
      key = await crypto.subtle.importKey("raw", publicKey, ED25519, false, ["verify"]);
    } catch {
      return false; // not a point on the curve: no signature by it verifies
    }
    keyCache.set(id, key);
  }
  return crypto.subtle.verify(ED25519, key, signature, data);
}

/** Whether this browser's WebCrypto knows Ed25519 (Chromium 137+, Firefox 129+, Safari 17+). */
export async function ed25519Supported() {
  if (!webCryptoReady()) return false;
  try {
    await crypto.subtle.importKey("raw", new Uint8Array(32), ED25519, false, ["verify"]);
    return true;
  } catch (err) {
    return err && err.name !== "NotSupportedError";
  }
}

/** The catalogue strings a page shipped (keys "js.*"), with {name} parameters filled. */
export function messages() {
  const el = document.getElementById("i18n");
  const table = el ? JSON.parse(el.textContent) : {};
  const t = (key, params = {}) => {
    const text = table[key];
    if (text === undefined) return `⟦${key}⟧`;
    return text.replace(/\{(\w+)\}/g, (m, name) => (name in params ? String(params[name]) : m));
  };
  t.has = (key) => key in table;
  return t;
}

export function pageData() {
  const el = document.getElementById("page-data");
  return el ? JSON.parse(el.textContent) : {};
}
