// carledger: verification of a vehicle report (carledger.report.v1) in the browser.
//
// The JavaScript twin of carledger/verifier.py. It trusts only what the page shipped
// from the chain's genesis (chain id, validator keys, quorum) and checks, in order,
// failing with the same codes as the Python verifier:
//
//   1. shape and chain ............ report_malformed, report_chain_mismatch
//   2. checkpoint: a quorum of genesis validators signed it (checkpoint_not_certified);
//      the block header hashes to it (header_mismatch)
//   3. the VIN's state entry against the header's state root: the collapsed sparse
//      Merkle tree proof of carledger/ledger/smt.py (state_proof_invalid, vin_mismatch)
//   3b. each signer's membership entry against the same root (state_proof_invalid)
//   4. every record: canonical body, id = sha256(body), every signer's Ed25519
//      signature (record_signature_invalid), it is about this VIN (vin_mismatch), the
//      organisations shown for its signers are the proven ones (signer_mismatch), its
//      RFC 9162 log leaf (id, height, block time, "ok") is included under the
//      header's log root (inclusion_proof_invalid)
//   5. the per-VIN hash chain: each record names the one before (chain_broken), and
//      the proven state's head and record count are the report's last record and
//      count (report_incomplete): nothing was left out
//   6. the proven state against the records (state_mismatch) and the summary against
//      the proven state (summary_mismatch).
//
// Step 6 is narrower than Python's: Python replays the vehicle fold and recomputes
// the whole summary byte for byte; here the proven state's record log must list
// exactly the report's records (type and signers), the summary's counts and open
// items must agree with the proven state, and so must the number of flags of every
// code (each warning the facts of carledger/vehicle/facts.py derive from the state
// as of the checkpoint's time), except odometer gaps (informational). The flags'
// wording is not compared. `carledger verify-report FILE` does the full replay.
//
// verifyReport() resolves to a result, or rejects with a VerifyError naming the code.

import {
  canonicalize, canonicalBytes, concat, equalBytes, ed25519Verify, fromBase64, fromHex,
  sha256, sha256Hex, utf8, utf8Strict,
} from "./canon.js";

export const REPORT_FORMAT = "carledger.report.v1";
const CHECKPOINT_KIND = "carledger.checkpoint.v1";
const HEADER_FIELDS = ["chain", "height", "prev", "time", "proposer", "tx_count", "tx_root",
  "state_root", "log_size", "log_root"];
const CHECKPOINT_FIELDS = ["chain", "height", "block_hash", "state_root", "log_size", "log_root"];
const ENVELOPE_FIELDS = ["chain", "created", "nonce", "payload", "signers", "type"];
const HEX64 = /^[0-9a-f]{64}$/;
const HEX128 = /^[0-9a-f]{128}$/;
const BLOCK_TIME = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z$/;
const EMPTY = new Uint8Array(32);

export class VerifyError extends Error {
  constructor(code, message, detail = {}) {
    super(message);
    this.name = "VerifyError";
    this.code = code;
    this.detail = detail;
  }
}

function fail(code, message, detail) {
  throw new VerifyError(code, message, detail);
}

function need(doc, key, kind, where = "report") {
  const value = doc === null || typeof doc !== "object" ? undefined : doc[key];
  const ok = kind === "array" ? Array.isArray(value)
    : kind === "int" ? Number.isSafeInteger(value) && value >= 0
      : kind === "object" ? value !== null && typeof value === "object" && !Array.isArray(value)
        : typeof value === kind;
  if (!ok) fail("report_malformed", `${where}.${key} is missing or has the wrong type.`);
  return value;
}

function hex32(value, where) {
  if (typeof value !== "string" || !HEX64.test(value)) {
    fail("report_malformed", `${where} is not a 64-digit lowercase hex hash.`);
  }
  return fromHex(value, 32);
}

/** Unix milliseconds of a block time "YYYY-MM-DDTHH:MM:SS.mmmZ" (block.py parse_time). */
export function parseBlockTime(text) {
  const m = typeof text === "string" ? BLOCK_TIME.exec(text) : null;
  if (!m) fail("report_malformed", `Bad block time ${JSON.stringify(text)}.`);
  const [y, mo, d, h, mi, s, ms] = m.slice(1).map(Number);
  const value = Date.UTC(y, mo - 1, d, h, mi, s, ms);
  if (new Date(value).toISOString() !== text) fail("report_malformed", `Bad block time ${text}.`);
  return value;
}

function u64(n) {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, BigInt(n));
  return out;
}

// --- RFC 9162 log (carledger/ledger/merkle.py) -----------------------------------------

export async function leafHash(data) {
  return sha256(concat(new Uint8Array([0]), data));
}

async function nodeHash(left, right) {
  return sha256(concat(new Uint8Array([1]), left, right));
}

/** The log leaf input of an accepted record: id || height || block time ms || "ok". */
export function leafInput(txId, height, time, code = "ok") {
  return concat(fromHex(txId, 32), u64(height), u64(parseBlockTime(time)), utf8.encode(code));
}

/**
 * RFC 9162 §2.1.3.2: the root an inclusion proof implies for leaf `index` of `size`.
 * Arithmetic, not bitwise, operators: indexes may exceed 2^31 on a national ledger.
 */
export async function rootFromInclusion(leaf, index, size, proof) {
  if (!(Number.isSafeInteger(index) && Number.isSafeInteger(size) && index >= 0 && index < size)) {
    throw new Error(`leaf index ${index} is not inside a tree of ${size} leaves`);
  }
  let fn = index;
  let sn = size - 1;
  let r = leaf;
  for (const p of proof) {
    if (sn === 0) throw new Error("the proof is longer than the path");
    if (fn % 2 === 1 || fn === sn) {
      r = await nodeHash(p, r);
      // On the right edge the tree skips levels that have no right sibling.
      while (fn !== 0 && fn % 2 === 0) { fn = Math.floor(fn / 2); sn = Math.floor(sn / 2); }
    } else {
      r = await nodeHash(r, p);
    }
    fn = Math.floor(fn / 2);
    sn = Math.floor(sn / 2);
  }
  if (sn !== 0) throw new Error("the proof is shorter than the path");
  return r;
}

// --- state proof: collapsed binary sparse Merkle tree (carledger/ledger/smt.py) ---------

function bitAt(hash, depth) {
  return (hash[depth >> 3] >> (7 - (depth & 7))) & 1;
}

function parseSparseProof(doc) {
  if (doc === null || typeof doc !== "object" || Array.isArray(doc)
      || Object.keys(doc).sort().join() !== "leaf,siblings") {
    fail("report_malformed", 'The state proof is an object with exactly "siblings" and "leaf".');
  }
  if (!Array.isArray(doc.siblings) || doc.siblings.length > 256) {
    fail("report_malformed", "The state proof's siblings are a list of at most 256.");
  }
  const siblings = doc.siblings.map((s, i) => {
    if (s === null) return EMPTY;
    const h = hex32(s, `state.proof.siblings[${i}]`);
    if (equalBytes(h, EMPTY)) fail("report_malformed", "An empty sibling is written null.");
    return h;
  });
  let leaf = null;
  if (doc.leaf !== null) {
    if (typeof doc.leaf !== "object" || Object.keys(doc.leaf).sort().join() !== "key_hash,value_hash") {
      fail("report_malformed", "The state proof's leaf is null or {key_hash, value_hash}.");
    }
    leaf = [hex32(doc.leaf.key_hash, "leaf.key_hash"), hex32(doc.leaf.value_hash, "leaf.value_hash")];
  }
  return { siblings, leaf };
}

/** Check that the state under `root` maps `key` to `value` (bytes), or has no `key` (null). */
export async function verifyStateEntry(root, key, value, proof) {
  const keyHash = await sha256(utf8.encode(key));
  const valueHash = value === null ? null : await sha256(value);
  const depth = proof.siblings.length;
  const found = proof.leaf;
  const bad = (message) => fail("state_proof_invalid", message);
  if (valueHash !== null) {
    if (found === null) bad("The proof ends at an empty subtree: it shows the key is absent.");
    if (!equalBytes(found[0], keyHash)) bad("The proof ends at another key's leaf.");
    if (!equalBytes(found[1], valueHash)) bad("The proof holds a different value for this key.");
  } else if (found !== null) {
    if (equalBytes(found[0], keyHash)) bad("The proof holds a leaf for this key: it is not absent.");
    for (let d = 0; d < depth; d++) {
      if (bitAt(found[0], d) !== bitAt(keyHash, d)) {
        bad(`The proof's leaf does not share the key's first ${depth} bits.`);
      }
    }
  }
  let node = found === null ? EMPTY
    : await sha256(concat(new Uint8Array([0]), found[0], found[1]));
  for (let d = depth - 1; d >= 0; d--) {
    const sibling = proof.siblings[d];
    node = bitAt(keyHash, d)
      ? await sha256(concat(new Uint8Array([1]), sibling, node))
      : await sha256(concat(new Uint8Array([1]), node, sibling));
  }
  if (!equalBytes(node, root)) bad("The proof does not lead to the state root.");
}

// --- records --------------------------------------------------------------------------

/** Decode a wire transaction as the node does (Transaction.from_wire), strictly. */
export async function decodeTransaction(wire, where) {
  if (wire === null || typeof wire !== "object" || Object.keys(wire).sort().join() !== "body,signatures") {
    fail("report_malformed", `${where}.tx is not {body, signatures}.`);
  }
  let body;
  let envelope;
  try {
    body = fromBase64(wire.body);
    const text = utf8Strict.decode(body);
    envelope = JSON.parse(text);
    if (canonicalize(envelope) !== text) throw new Error("the body is not canonical JSON");
  } catch (err) {
    fail("report_malformed", `${where} is not a transaction: ${err.message}`);
  }
  if (envelope === null || typeof envelope !== "object"
      || Object.keys(envelope).sort().join() !== ENVELOPE_FIELDS.join()) {
    fail("report_malformed", `${where} is not a transaction envelope.`);
  }
  const { signers } = envelope;
  if (!Array.isArray(signers) || signers.length < 1 || signers.length > 8
      || !signers.every((s) => typeof s === "string" && HEX64.test(s))
      || new Set(signers).size !== signers.length) {
    fail("report_malformed", `${where} has malformed signers.`);
  }
  if (!Array.isArray(wire.signatures) || wire.signatures.length !== signers.length
      || !wire.signatures.every((s) => typeof s === "string" && HEX128.test(s))) {
    fail("report_malformed", `${where} needs one 128-hex signature per signer.`);
  }
  return { body, envelope, id: await sha256Hex(body) };
}

/** The previous record of `vin` a record names (vehicle/fold.py named_prev). */
function namedPrev(vin, payload, where) {
  if (Array.isArray(payload.vehicles)) {
    const item = payload.vehicles.find((v) => v && v.vin === vin);
    if (!item) fail("vin_mismatch", `${where} is not a record about ${vin}.`);
    return item.prev ?? null;
  }
  return payload.prev ?? null;
}

/**
 * Each signer's proven membership {key, org, member, roles} (nulls when the key is no
 * member), every entry checked against the state root (verifier.py _members).
 */
async function provenMembers(doc, root) {
  const out = new Map();
  for (const [key, entry] of Object.entries(doc)) {
    if (!HEX64.test(key) || entry === null || typeof entry !== "object") {
      fail("report_malformed", "members maps public keys to proven entries.");
    }
    let value = null;
    try {
      if (entry.value !== null) value = fromBase64(entry.value);
    } catch (err) {
      fail("report_malformed", `The proof of members[${key.slice(0, 16)}...] is malformed: ${err.message}`);
    }
    await verifyStateEntry(root, `member/${key}`, value, parseSparseProof(entry.proof));
    if (value === null) {
      out.set(key, { key, org: null, member: null, roles: [] });
      continue;
    }
    let m;
    try { m = JSON.parse(utf8Strict.decode(value)); } catch { m = null; }
    if (!m || !("org" in m) || !("member" in m) || !("roles" in m)) {
      fail("report_malformed", `The proven entry member/${key} is not a membership.`);
    }
    out.set(key, { key, org: m.org, member: m.member, roles: m.roles });
  }
  return out;
}

/**
 * A record is about `vin`: by VIN, in its `vehicles` list, or (a gate device reading
 * a plate) by a plate an earlier record of this VIN gave it. Python compares with the
 * plate current at that record; this is the same for every history without a voided
 * registration.
 */
function checkVin(payload, vin, plates, where) {
  let ok;
  if (Array.isArray(payload.vehicles)) ok = payload.vehicles.some((v) => v && v.vin === vin);
  else if ("vin" in payload) ok = payload.vin === vin;
  else if ("plate" in payload) ok = plates.has(payload.plate);
  else ok = false;
  if (!ok) fail("vin_mismatch", `${where} is not a record about ${vin}.`);
}

// --- the summary against the proven state (facts.py, but for odometer gaps) ----------

const live = (items) => items.filter((e) => !e.void);

/** Whole seconds of a UTC time "YYYY-MM-DDTHH:MM:SS[.fff]Z" (vehicle/clock.py seconds). */
function seconds(text) {
  return Math.floor(Date.parse(text) / 1000);
}

/** The Korean local date (UTC+9) of a UTC time (vehicle/clock.py local_date). */
function localDate(text) {
  return new Date(Date.parse(text) + 9 * 3600 * 1000).toISOString().slice(0, 10);
}

/**
 * How many flags of each code the facts of carledger/vehicle/facts.py raise for this
 * state as of `asOf`: every code but odometer_gap, whose trailing gap needs calendar
 * arithmetic this page does not repeat. A summary that hides or invents one of these
 * warnings fails.
 */
export function expectedFlagCounts(state, asOf) {
  const n = {};
  const add = (code, k = 1) => { n[code] = (n[code] || 0) + k; };
  const readings = live(state.odometer.readings);
  for (const r of readings) {
    if (r.flags.includes("rollback")) {
      add("odometer_rollback");
      if (state.log[r.id] && state.log[r.id].type === "inspection.record") add("inspection_odometer_below_earlier");
    } else if (r.flags.includes("implausible")) {
      add("odometer_implausible");
    }
  }
  add("odometer_exception", live(state.odometer.exceptions).length);
  add("car_not_present", state.absences.length);
  const { listing, gate } = state;
  if (listing) {
    if (gate && !gate.inside && gate.market === listing.market
        && seconds(gate.time) >= seconds(listing.opened)
        && seconds(asOf) - seconds(gate.time) > 24 * 3600) add("car_not_present");
    let current = null;
    for (const e of live(state.inspections)) if (!current || e.on >= current.on) current = e;
    if (!current || localDate(asOf) > current.valid_until) add("listing_inspection_expired");
  }
  const inspections = live(state.inspections);
  const accidents = live(state.accidents);
  for (const i of inspections) {
    if (i.accident) add("inspection_accident");
    else if (i.simple_repair) add("inspection_simple_repair");
    else add("inspection_missed_frame_damage", accidents.filter((a) => a.frame && a.on <= i.on).length);
    if (i.vin_marking !== "good") add("vin_marking_suspect");
    if (i.tuning === "illegal") add("illegal_tuning");
  }
  add("accident_record", accidents.length);
  if (accidents.some((a) => a.total_loss)) add("total_loss");
  if (accidents.some((a) => a.flood) || inspections.some((i) => i.flood)) add("flood");
  if (accidents.some((a) => a.fire) || inspections.some((i) => i.fire)) add("fire");
  if (state.scrapped !== null && !state.scrapped.void) add("scrapped");
  const thefts = live(state.thefts);
  if (thefts.length > 0 && thefts[thefts.length - 1].recovered === null) add("stolen");
  add("active_lien", Object.values(state.liens).filter((l) => l.released === null && !l.void).length);
  add("open_recall", Object.values(state.recalls).filter((r) => r.done === null && !r.void).length);
  for (const d of Object.values(state.disputes)) {
    if (d.status === "open") add("open_dispute");
    else if (d.status === "upheld") add("void_record");
  }
  if (live(state.uses).some((u) => u.use !== "private") || live(state.usage).length) add("commercial_use");
  return n;
}

function summaryChecks(summary, state, asOf) {
  const readings = live(state.odometer.readings);
  const thefts = live(state.thefts);
  const stolen = thefts.length > 0 && thefts[thefts.length - 1].recovered === null;
  const scrapped = state.scrapped !== null && !state.scrapped.void;
  const liens = Object.keys(state.liens).filter((k) => state.liens[k].released === null
    && !state.liens[k].void).sort();
  const recalls = Object.keys(state.recalls).filter((k) => state.recalls[k].done === null
    && !state.recalls[k].void).sort();
  const flags = Array.isArray(summary.flags) ? summary.flags : [];
  const checks = [
    ["as_of", summary.as_of, asOf],
    ["vin", summary.vin, state.vin],
    ["records", summary.records, state.records],
    ["status", summary.status, state.status],
    ["odometer.readings", summary.odometer?.readings, readings.length],
    ["odometer.rollbacks", summary.odometer?.rollbacks, readings.filter((r) => r.flags.includes("rollback")).length],
    ["odometer.implausible", summary.odometer?.implausible,
      readings.filter((r) => r.flags.includes("implausible")).length],
    ["stolen", summary.stolen, stolen],
    ["scrapped", summary.scrapped, scrapped],
    ["liens", JSON.stringify(summary.liens), JSON.stringify(liens)],
    ["recalls", JSON.stringify(summary.recalls?.open), JSON.stringify(recalls)],
    ["inspection accident", summary.accidents?.inspection_accident,
      live(state.inspections).some((i) => i.accident)],
    ["accidents reported", summary.accidents?.reported, live(state.accidents).length],
  ];
  const expected = expectedFlagCounts(state, asOf);
  const got = {};
  for (const f of flags) {
    if (!f || typeof f.code !== "string") fail("summary_mismatch", "A summary flag has no code.");
    got[f.code] = (got[f.code] || 0) + 1;
  }
  for (const code of new Set([...Object.keys(expected), ...Object.keys(got)])) {
    if (code !== "odometer_gap") checks.push([`flags ${code}`, got[code] || 0, expected[code] || 0]);
  }
  for (const [what, have, want] of checks) {
    if (have !== want) {
      fail("summary_mismatch",
        `The report's summary says ${what} = ${JSON.stringify(have)}; the proven state gives ${JSON.stringify(want)}.`,
        { field: what });
    }
  }
}

// --- the report -----------------------------------------------------------------------

/**
 * Verify `report` against `trust` = {chain, validators: {id: hex key}, quorum}.
 * `onStep(name)` is called as each step starts (checkpoint, state, records, chain,
 * summary) so a page can show progress. Resolves to {vin, height, time, records,
 * signers, validators, contentHash, state}.
 */
export async function verifyReport(report, trust, { onStep = () => {} } = {}) {
  // 1. shape and chain
  if (report === null || typeof report !== "object" || report.format !== REPORT_FORMAT) {
    fail("report_malformed", `This is not a ${REPORT_FORMAT} document.`);
  }
  const vin = need(report, "vin", "string");
  if (report.chain !== trust.chain) {
    fail("report_chain_mismatch", `The report is for chain ${JSON.stringify(report.chain)}; this page trusts ${JSON.stringify(trust.chain)}.`);
  }
  if (report.genesis_hash !== trust.genesis_hash) {
    fail("report_chain_mismatch", "The report was made on a chain that started from another genesis.");
  }

  // 2. the checkpoint and its header
  onStep("checkpoint");
  const cpDoc = need(report, "checkpoint", "object");
  const cp = need(cpDoc, "checkpoint", "object", "checkpoint");
  for (const f of CHECKPOINT_FIELDS) {
    if (["height", "log_size"].includes(f)) need(cp, f, "int", "checkpoint");
    else if (f === "chain") need(cp, f, "string", "checkpoint");
    else hex32(cp[f], `checkpoint.${f}`);
  }
  if (cp.chain !== trust.chain) fail("report_chain_mismatch", "The checkpoint is for another chain.");
  const signed = canonicalBytes({ kind: CHECKPOINT_KIND, ...Object.fromEntries(CHECKPOINT_FIELDS.map((f) => [f, cp[f]])) });
  const good = new Set();
  for (const sig of need(cpDoc, "signatures", "array", "checkpoint")) {
    if (!sig || typeof sig.signature !== "string" || !HEX128.test(sig.signature)
        || typeof sig.validator !== "string") {
      fail("report_malformed", "A checkpoint signature is {validator, signature: 128 hex}.");
    }
    const key = trust.validators[sig.validator];
    if (key && await ed25519Verify(fromHex(key, 32), fromHex(sig.signature, 64), signed)) {
      good.add(sig.validator);
    }
  }
  if (good.size < trust.quorum) {
    fail("checkpoint_not_certified", `The checkpoint at height ${cp.height} has ${good.size} valid validator signatures; ${trust.quorum} are needed.`,
      { valid: good.size, quorum: trust.quorum });
  }
  const header = need(report, "header", "object");
  for (const f of HEADER_FIELDS) {
    if (!(f in header)) fail("report_malformed", `header.${f} is missing.`);
  }
  for (const f of ["height", "tx_count", "log_size"]) need(header, f, "int", "header");
  for (const f of ["prev", "tx_root", "state_root", "log_root"]) hex32(header[f], `header.${f}`);
  const headerHash = await sha256Hex(canonicalBytes(Object.fromEntries(HEADER_FIELDS.map((f) => [f, header[f]]))));
  if (headerHash !== cp.block_hash
      || CHECKPOINT_FIELDS.some((f) => f !== "block_hash" && header[f] !== cp[f])) {
    fail("header_mismatch", "The block header does not hash to the certified checkpoint.");
  }
  const checkpointMs = parseBlockTime(header.time);

  // 3. the VIN's state entry
  onStep("state");
  const stateDoc = need(report, "state", "object");
  const key = `vehicle/${vin}`;
  if (stateDoc.key !== key) fail("vin_mismatch", `The state entry is not ${key}.`);
  let value = null;
  if (stateDoc.value !== null) {
    try { value = fromBase64(stateDoc.value); } catch (err) {
      fail("report_malformed", `The state value is malformed: ${err.message}`);
    }
  }
  const stateRoot = fromHex(header.state_root, 32);
  await verifyStateEntry(stateRoot, key, value, parseSparseProof(stateDoc.proof));
  const members = await provenMembers(need(report, "members", "object"), stateRoot);

  // 4. records, 5. the per-VIN chain
  onStep("records");
  const records = need(report, "records", "array");
  const logRoot = fromHex(header.log_root, 32);
  let prev = null;
  const plates = new Set();
  const signers = new Set();
  const seen = [];
  for (const [i, rec] of records.entries()) {
    const where = `records[${i}]`;
    const tx = await decodeTransaction(need(rec, "tx", "object", where), where);
    const env = tx.envelope;
    for (const [j, signer] of env.signers.entries()) {
      const ok = await ed25519Verify(fromHex(signer, 32), fromHex(rec.tx.signatures[j], 64), tx.body);
      if (!ok) {
        fail("record_signature_invalid", `${where} (${tx.id.slice(0, 16)}...) has a signature that does not verify.`, { index: i });
      }
    }
    if (env.chain !== trust.chain) fail("report_chain_mismatch", `${where} is for another chain.`);
    if (rec.type !== env.type) fail("report_malformed", `${where}.type is not the signed record's type.`);
    if (env.payload === null || typeof env.payload !== "object") {
      fail("report_malformed", `${where} has no payload object.`);
    }
    checkVin(env.payload, vin, plates, where);
    if (env.type === "registration.record" && typeof env.payload.plate === "string") {
      plates.add(env.payload.plate);
    }
    const proven = env.signers.map((k) => {
      if (!members.has(k)) fail("report_malformed", `${where} is signed by ${k.slice(0, 16)}..., whose membership the report does not prove.`);
      return members.get(k);
    });
    if (canonicalize(rec.signers ?? null) !== canonicalize(proven)) {
      fail("signer_mismatch", `${where} (${tx.id.slice(0, 16)}...) names signers' organisations that differ from the membership the checkpoint's state proves.`);
    }
    const height = need(rec, "height", "int", where);
    const time = need(rec, "time", "string", where);
    const seq = need(rec, "seq", "int", where);
    const path = need(rec, "inclusion", "array", where).map((h, k) => hex32(h, `${where}.inclusion[${k}]`));
    let root;
    try {
      root = await rootFromInclusion(await leafHash(leafInput(tx.id, height, time)), seq, header.log_size, path);
    } catch (err) {
      if (err instanceof VerifyError) throw err;
      fail("inclusion_proof_invalid", `${where} (${tx.id.slice(0, 16)}...): ${err.message}.`, { index: i });
    }
    if (!equalBytes(root, logRoot)) {
      fail("inclusion_proof_invalid", `${where} (${tx.id.slice(0, 16)}...) is not proven to be in the log as an accepted record at height ${height}.`, { index: i });
    }
    if (height > header.height) fail("report_malformed", `${where} claims a height after the checkpoint.`);
    const named = namedPrev(vin, env.payload, where);
    if (named !== prev) {
      fail("chain_broken", `${where} names ${String(named).slice(0, 16)}... as the previous record of ${vin}, but the report's previous record is ${String(prev).slice(0, 16)}... (reordered, dropped or inserted records).`, { index: i });
    }
    prev = tx.id;
    env.signers.forEach((s) => signers.add(s));
    seen.push({ id: tx.id, type: env.type, signers: env.signers });
  }

  // completeness: the proven head and count are the report's
  onStep("chain");
  let state = null;
  if (value === null) {
    if (records.length) fail("report_incomplete", `The state proves ${vin} has no records.`);
  } else {
    try { state = JSON.parse(utf8Strict.decode(value)); } catch {
      fail("report_malformed", "The proven state entry is not JSON.");
    }
    if (!state || typeof state !== "object" || !("head" in state) || !("records" in state)) {
      fail("report_malformed", "The proven state entry is not a vehicle state.");
    }
    if (state.head !== prev || state.records !== records.length) {
      fail("report_incomplete", `The state commits to ${state.records} records ending with ${String(state.head).slice(0, 16)}...; the report has ${records.length} ending with ${String(prev).slice(0, 16)}... Records were left out.`);
    }
    // 6a. the proven state's record log is exactly these records
    const log = state.log || {};
    if (Object.keys(log).length !== seen.length) {
      fail("state_mismatch", "The proven state's record log does not list exactly the report's records.");
    }
    for (const r of seen) {
      const entry = log[r.id];
      if (!entry || entry.type !== r.type || JSON.stringify(entry.by) !== JSON.stringify(r.signers)) {
        fail("state_mismatch", `The proven state does not record ${r.id.slice(0, 16)}... as a ${r.type} signed by its signers.`);
      }
    }
  }

  // 6b. the summary a person reads
  onStep("summary");
  const summary = need(report, "summary", "object");
  if (state === null) {
    if (summary.records !== 0 || summary.as_of !== header.time) {
      fail("summary_mismatch", "The summary of a VIN without records must be empty.");
    }
  } else {
    summaryChecks(summary, state, header.time);
  }
  return {
    vin,
    height: header.height,
    time: header.time,
    timeMs: checkpointMs,
    records: records.length,
    recordHeights: records.map((r) => r.height),
    signers,
    validators: [...good].sort(),
    contentHash: await sha256Hex(canonicalBytes(report)),
    state,
  };
}

/** What a printed report's QR parameters mean against a verified report (vehicle_page.py). */
export function printedStatus(result, h, c) {
  if (h === null && c === null) return null;
  if (h === null || c === null || !Number.isSafeInteger(h) || h < 0 || !HEX64.test(c)) {
    return { state: "invalid" };
  }
  if (c === result.contentHash) return { state: "same" };
  if (h > result.height) return { state: "ahead" };
  if (h === result.height) return { state: "mismatch" };
  return { state: "newer", newRecords: result.recordHeights.filter((x) => x > h).length };
}
