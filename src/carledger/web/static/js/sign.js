// carledger: the buyer's side of a sale, on the buyer's own device.
//
// The buyer loads or creates a key (it stays on this page), gives the dealer the
// reference "key:<public key>", then pastes the dealer's signing request. The page
// shows what the request says, read from the body bytes themselves (never rebuilt:
// re-serialising would change the bytes and the id, docs/transaction-format.md §6),
// and signs exactly those bytes. The answer is a small JSON the dealer pastes back.

import { canonicalize, fromBase64, messages, pageData, sha256Hex, toHex, utf8Strict } from "./canon.js";
import { importKey, newSeedHex } from "./keys.js";

const t = messages();
const page = pageData();
const $ = (id) => document.getElementById(id);
let key = null;
let request = null; // {id, body, signers}

function say(el, text, cls) {
  el.textContent = text;
  el.className = `result ${cls || ""}`;
  el.dataset.outcome = cls || "";
}

async function useKey(text, seed) {
  try {
    key = await importKey(text);
  } catch (err) {
    say($("buyer-key-result"), t("js.sign.bad_key", { reason: err.message }), "refused");
    return;
  }
  $("buyer-key").value = "";
  $("buyer-ref").textContent = `key:${key.publicHex}`;
  $("buyer-seed-box").hidden = !seed;
  $("buyer-seed").textContent = seed || "";
  $("buyer-id").hidden = false;
  say($("buyer-key-result"), t("js.sign.key_ready"), "committed");
}

const FIELDS = ["vin", "date", "price", "odometer_km", "buyer_ref", "prev"];

async function readRequest(text) {
  const out = $("request-result");
  $("request-view").hidden = true;
  $("response-box").hidden = true;
  let doc;
  let envelope;
  let body;
  try {
    doc = JSON.parse(text);
    if (!doc || doc.format !== "carledger.signing-request.v1") throw new Error("format");
    body = fromBase64(doc.body);
    const bodyText = utf8Strict.decode(body);
    envelope = JSON.parse(bodyText);
    if (canonicalize(envelope) !== bodyText) throw new Error("not canonical");
    if (await sha256Hex(body) !== doc.id) throw new Error("id");
  } catch (err) {
    say(out, t("js.sign.bad_request", { reason: err.message }), "refused");
    return;
  }
  if (envelope.chain !== page.chain) {
    say(out, t("js.sign.other_chain", { chain: envelope.chain }), "refused");
    return;
  }
  request = { id: doc.id, body, signers: envelope.signers };
  const facts = $("request-facts");
  while (facts.firstChild) facts.firstChild.remove();
  const type = t.has(`js.type.${envelope.type}`) ? t(`js.type.${envelope.type}`) : envelope.type;
  const rows = [[t("js.sign.type"), type], [t("js.sign.id"), doc.id]];
  for (const f of FIELDS) {
    if (!(f in envelope.payload)) continue;
    const v = envelope.payload[f];
    rows.push([t(`js.sign.f.${f}`), typeof v === "number" ? v.toLocaleString("en-US") : String(v)]);
  }
  // Who asks: the first signer's proven membership, as the node knows it.
  let dealer = `${envelope.signers[0].slice(0, 12)}…`;
  try {
    const who = await (await fetch(`/console/member/${envelope.signers[0]}`)).json();
    if (who.known) dealer = `${who.member} · ${who.org_name}`;
  } catch { /* keep the key */ }
  rows.push([t("js.sign.dealer"), dealer]);
  rows.push([t("js.sign.signers"), envelope.signers.map((s) => `${s.slice(0, 12)}…`).join(", ")]);
  for (const [k, v] of rows) {
    facts.append(Object.assign(document.createElement("dt"), { textContent: k }),
      Object.assign(document.createElement("dd"), { textContent: v }));
  }
  $("request-view").hidden = false;
  const mine = key && envelope.signers.includes(key.publicHex);
  say(out, mine ? t("js.sign.request_ok") : t("js.sign.not_a_signer"), mine ? "committed" : "refused");
  $("request-sign").disabled = !mine;
}

async function signRequest() {
  if (!key || !request || !request.signers.includes(key.publicHex)) return;
  const signature = toHex(await key.sign(request.body));
  const answer = { format: "carledger.signature.v1", id: request.id, signer: key.publicHex, signature };
  $("response-text").value = JSON.stringify(answer);
  $("response-box").hidden = false;
  $("response-text").focus();
}

$("buyer-key-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  useKey($("buyer-key").value, null);
});
$("buyer-new").addEventListener("click", () => {
  const seed = newSeedHex();
  useKey(seed, seed);
});
$("request-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  readRequest($("request-text").value);
});
$("request-sign").addEventListener("click", signRequest);
$("response-copy").addEventListener("click", () => navigator.clipboard?.writeText($("response-text").value));
