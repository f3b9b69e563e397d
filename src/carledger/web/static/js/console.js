// carledger: the dealer console.
//
// Sign in with a member key (it stays in this page's memory), then register a
// purchase, look at inspections, open and close listings, and register a sale that
// the buyer co-signs on another device (/console/sign). Every form first reads the
// vehicle (GET /v1/vehicles/{vin}) and applies the contract's own rules
// (carledger/vehicle/records/trading.py, common.py) so a refusal is explained before
// anything is signed; what the node still refuses is shown with its reason code.

import { ed25519Verify, fromHex, messages, pageData, toBase64, toHex } from "./canon.js";
import { buildBody, importKey, koreanToday, KeyError, submit, wire } from "./keys.js";

const t = messages();
const page = pageData();
const $ = (id) => document.getElementById(id);
const markets = Object.fromEntries(page.markets.map((m) => [m.id, m]));
let session = null; // {key: {publicHex, sign}, member}
let pendingSale = null; // {id, body, signers, signatures}

// --- small views -------------------------------------------------------------------

function clear(el) { while (el.firstChild) el.firstChild.remove(); }

function line(el, text, cls, tag = "p") {
  const node = document.createElement(tag);
  if (cls) node.className = cls;
  node.textContent = text;
  el.append(node);
  return node;
}

function errorText(code, serverDetail) {
  if (t.has(`js.err.${code}`)) return t(`js.err.${code}`);
  return serverDetail || code;
}

function showRefusal(el, code, serverDetail, where) {
  clear(el);
  el.className = "result refused";
  el.dataset.code = code;
  el.dataset.outcome = "refused";
  const p = line(el, "", "refusal");
  p.append(Object.assign(document.createElement("strong"), { textContent: t(`js.console.${where}`) }), " ");
  p.append(Object.assign(document.createElement("code"), { textContent: code }), " — ", errorText(code, serverDetail));
  if (serverDetail && t.has(`js.err.${code}`)) line(el, serverDetail, "muted small").lang = "en";
}

function showCommitted(el, outcome, vin) {
  clear(el);
  el.className = "result committed";
  el.dataset.outcome = "committed";
  el.dataset.tx = outcome.id;
  const p = line(el, t("js.console.committed", { height: outcome.height }), "ok-text");
  const a = document.createElement("a");
  a.href = vin ? `/vehicles/${vin}#r-${outcome.id}` : `/explorer/tx/${outcome.id}`;
  a.textContent = ` ${t("js.console.view_record")} (${outcome.id.slice(0, 12)}…)`;
  p.append(a);
}

function busy(el, text) {
  clear(el);
  el.className = "result busy";
  el.dataset.outcome = "busy";
  line(el, text);
}

// --- the vehicle and the contract's rules -------------------------------------------

const live = (items) => (items || []).filter((e) => !e.void);

export function normaliseVin(text) {
  const vin = String(text || "").trim().toUpperCase();
  return /^[0-9A-HJ-NPR-Z]{17}$/.test(vin) ? vin : null;
}

async function readVehicle(vin) {
  const response = await fetch(`/v1/vehicles/${vin}`, { cache: "no-store" });
  if (response.status === 404) return null;
  if (!response.ok) throw Object.assign(new Error(`HTTP ${response.status}`), { code: "vehicle_unreadable" });
  return response.json();
}

const facts = {
  owner: (s) => { const o = live(s?.owners); return o.length ? o[o.length - 1].ref : null; },
  stock: (s) => { const o = live(s?.owners); const last = o[o.length - 1]; return last && last.stock ? last : null; },
  stolen: (s) => { const th = live(s?.thefts); return th.length > 0 && th[th.length - 1].recovered === null; },
  scrapped: (s) => Boolean(s?.scrapped && !s.scrapped.void),
  inspection: (s) => {
    let best = null;
    for (const e of live(s?.inspections)) if (!best || e.on >= best.on) best = e;
    return best;
  },
};

/** The first rule every VIN record meets (common.py): signer role, scrapped, dates. */
function commonRules(state, payload) {
  const me = session.member;
  if (!me || !me.known) return "unknown_signer";
  if (me.status !== "active") return "signer_revoked";
  if (!me.roles.includes("dealer")) return "unauthorized_role";
  if (facts.scrapped(state)) return "vehicle_scrapped";
  if (payload.date && payload.date > koreanToday()) return "date_in_future";
  return null;
}

async function listingNumberTaken(market, listingNo) {
  let after = "";
  for (let page = 0; page < 50; page++) {
    const q = new URLSearchParams({ market, limit: "500", ...(after ? { after } : {}) });
    const response = await fetch(`/v1/listings?${q}`, { cache: "no-store" });
    if (!response.ok) return false;
    const doc = await response.json();
    if (doc.listings.some((l) => l.listing_no === listingNo)) return true;
    if (!doc.next) return false;
    after = doc.next;
  }
  return false;
}

const RULES = {
  // trade.purchase
  async purchase(state, p) {
    if (!markets[p.market]) return "unknown_market";
    if (facts.stolen(state)) return "vehicle_stolen";
    if (state && state.listing) return "vehicle_listed";
    const owner = facts.owner(state);
    if (owner === `org:${session.member.org}`) return "already_in_stock";
    if (owner !== null && p.seller_ref !== owner) return "seller_not_owner";
    return null;
  },
  // listing.open
  async open(state, p) {
    if (!markets[p.market]) return "unknown_market";
    if (facts.stolen(state)) return "vehicle_stolen";
    if (state && state.listing) return "already_listed";
    const held = facts.stock(state);
    if (!held || held.ref !== `org:${session.member.org}`) return "not_in_stock";
    if (await listingNumberTaken(p.market, p.listing_no)) return "listing_no_taken";
    const insp = facts.inspection(state);
    const today = koreanToday();
    if (!insp || !(insp.valid_from <= today && today <= insp.valid_until)) return "no_valid_inspection";
    if (markets[p.market].gated) {
      const gate = state.gate;
      if (!gate || !gate.inside || gate.market !== p.market) return "car_not_in_market";
    }
    return null;
  },
  // listing.close
  async close(state) {
    const listing = state && state.listing;
    if (!listing) return "not_listed";
    const market = markets[listing.market];
    const operator = market && market.operator === session.member.org
      && session.member.roles.includes("market_operator");
    if (listing.dealer !== session.member.org && !operator) return "not_listing_party";
    return null;
  },
  // trade.sale
  async sale(state, p) {
    if (facts.stolen(state)) return "vehicle_stolen";
    const held = facts.stock(state);
    if (!held || held.ref !== `org:${session.member.org}`) return "not_in_stock";
    if (p.buyer_ref === `org:${session.member.org}`) return "same_owner";
    return null;
  },
};

const TYPES = { purchase: "trade.purchase", open: "listing.open", close: "listing.close", sale: "trade.sale" };

function readForm(form) {
  const data = Object.fromEntries(new FormData(form).entries());
  for (const k of ["price", "odometer_km"]) {
    if (k in data) {
      const n = Number(data[k]);
      data[k] = Number.isSafeInteger(n) && n >= 0 && data[k] !== "" ? n : null;
    }
  }
  return data;
}

function payloadOf(action, data) {
  switch (action) {
    case "purchase":
      return { dealer: session.member.org, seller_ref: data.seller_ref.trim(), date: data.date,
        price: data.price, odometer_km: data.odometer_km, market: data.market };
    case "open":
      return { market: data.market, listing_no: data.listing_no.trim(), price: data.price };
    case "close":
      return { reason: data.reason };
    case "sale": {
      const hex = data.buyer.trim().replace(/^key:/, "");
      return { buyer_ref: `key:${hex}`, date: data.date, price: data.price, odometer_km: data.odometer_km };
    }
    default:
      throw new Error(action);
  }
}

/** Field checks the schema does (fields.py): the code a node would answer. */
function fieldRules(action, p) {
  for (const k of ["price", "odometer_km"]) if (k in p && p[k] === null) return "invalid_field";
  if (action === "purchase" && !/^(key:[0-9a-f]{64}|org:[a-z0-9][a-z0-9-]{0,63}|ref:[0-9a-f]{16,64})$/.test(p.seller_ref)) return "invalid_ref";
  if (action === "open" && !/^[A-Za-z0-9][A-Za-z0-9-]{0,31}$/.test(p.listing_no)) return "invalid_field";
  if (action === "open" && !(p.price >= 1)) return "invalid_field";
  if (action === "sale" && !/^key:[0-9a-f]{64}$/.test(p.buyer_ref)) return "invalid_buyer_key";
  if ("date" in p && !/^\d{4}-\d{2}-\d{2}$/.test(p.date || "")) return "invalid_date";
  return null;
}

/** Read the vehicle, apply the rules, build the payload. {vin, view, payload} or a code. */
async function prepare(action, form) {
  const data = readForm(form);
  const vin = normaliseVin(data.vin);
  if (!vin) return { code: "invalid_vin" };
  const payload = payloadOf(action, data);
  const bad = fieldRules(action, payload);
  if (bad) return { code: bad };
  let view;
  try { view = await readVehicle(vin); } catch (err) { return { code: err.code || "network_error", detail: err.message }; }
  const state = view ? view.state : null;
  if (!view && action !== "purchase") return { code: "unknown_vehicle" };
  const code = commonRules(state, payload) || await RULES[action](state, payload);
  if (code) return { code };
  return { vin, view, payload: { vin, prev: view ? view.head : null, ...payload } };
}

async function signAndSubmit(action, form, out, attempt = 0) {
  busy(out, t("js.console.checking"));
  const prepared = await prepare(action, form);
  if (prepared.code) {
    showRefusal(out, prepared.code, prepared.detail, "refused_before");
    return;
  }
  busy(out, t("js.console.signing"));
  const { body } = await buildBody({ chain: page.chain, type: TYPES[action], payload: prepared.payload, signers: [session.key.publicHex] });
  const outcome = await submit(wire(body, [await session.key.sign(body)]));
  if (outcome.ok) {
    showCommitted(out, outcome, prepared.vin);
  } else if (outcome.code === "stale_head" && attempt === 0) {
    await signAndSubmit(action, form, out, 1); // another record came first: re-read, re-sign
  } else {
    showRefusal(out, outcome.code, outcome.detail, "refused_by_node");
  }
}

// --- sale: the signing request for the buyer ----------------------------------------

async function makeSaleRequest(form, out) {
  busy(out, t("js.console.checking"));
  $("sale-request").hidden = true;
  const prepared = await prepare("sale", form);
  if (prepared.code) {
    showRefusal(out, prepared.code, prepared.detail, "refused_before");
    return;
  }
  const buyer = prepared.payload.buyer_ref.slice(4);
  const signers = [session.key.publicHex, buyer];
  const { body, id } = await buildBody({ chain: page.chain, type: "trade.sale", payload: prepared.payload, signers });
  const mine = await session.key.sign(body);
  pendingSale = { id, body, signers, signatures: [mine, null], vin: prepared.vin };
  const request = {
    format: "carledger.signing-request.v1",
    id,
    body: toBase64(body),
    signers,
    signatures: [toHex(mine), null],
  };
  const text = JSON.stringify(request, null, 1);
  $("sale-request-text").value = text;
  const link = $("sale-download");
  link.href = URL.createObjectURL(new Blob([text], { type: "application/json" }));
  $("sale-request").hidden = false;
  clear(out);
  out.className = "result";
  out.dataset.outcome = "request";
  line(out, t("js.console.request_ready", { id: id.slice(0, 12) }));
}

async function combineAndSubmit(out) {
  if (!pendingSale) return;
  let response;
  try {
    response = JSON.parse($("sale-signature").value);
  } catch {
    showRefusal(out, "invalid_signature_response", "", "refused_before");
    return;
  }
  const sale = pendingSale;
  const index = sale.signers.indexOf(response && response.signer);
  if (!response || response.id !== sale.id) {
    showRefusal(out, "signature_for_other_request", "", "refused_before");
    return;
  }
  let signature;
  try { signature = fromHex(response.signature, 64); } catch { signature = null; }
  if (index < 1 || !signature
      || !(await ed25519Verify(fromHex(response.signer, 32), signature, sale.body))) {
    showRefusal(out, "bad_signature", "", "refused_before");
    return;
  }
  const signatures = [...sale.signatures];
  signatures[index] = signature;
  busy(out, t("js.console.submitting"));
  const outcome = await submit(wire(sale.body, signatures));
  if (outcome.ok) {
    showCommitted(out, outcome, sale.vin);
    pendingSale = null;
  } else {
    showRefusal(out, outcome.code, outcome.detail, "refused_by_node");
  }
}

// --- lookups -------------------------------------------------------------------------

function dl(el, rows) {
  const list = document.createElement("dl");
  list.className = "facts compact";
  for (const [k, v] of rows) {
    list.append(Object.assign(document.createElement("dt"), { textContent: k }),
      Object.assign(document.createElement("dd"), { textContent: v }));
  }
  el.append(list);
}

async function lookup(form, out, inspectionsOnly) {
  clear(out);
  const vin = normaliseVin(new FormData(form).get("vin"));
  if (!vin) { line(out, errorText("invalid_vin"), "critical-text"); return; }
  let view;
  try { view = await readVehicle(vin); } catch (err) { line(out, err.message, "critical-text"); return; }
  if (!view) { line(out, errorText("unknown_vehicle"), "critical-text"); return; }
  const s = view.state;
  const a = document.createElement("a");
  a.href = `/vehicles/${vin}`;
  a.textContent = `${s.birth ? `${s.birth.make} ${s.birth.model} ${s.birth.model_year}` : vin} →`;
  out.append(a);
  const today = koreanToday();
  if (inspectionsOnly) {
    const items = s.inspections.slice().reverse();
    if (!items.length) line(out, t("js.console.no_inspections"));
    for (const i of items) {
      const valid = i.valid_from <= today && today <= i.valid_until && !i.void;
      const box = document.createElement("div");
      box.className = `inspection-row ${valid ? "ok" : "expired"}`;
      box.dataset.inspection = i.id;
      line(box, `${i.on} · ${i.issue_no} · ${valid ? t("js.console.valid_today") : t("js.console.not_valid_today")}`, "", "h3");
      dl(box, [
        [t("js.console.valid_range"), `${i.valid_from} ~ ${i.valid_until}`],
        [t("js.console.km"), `${i.km.toLocaleString()} km`],
        [t("js.console.accident"), i.accident ? t("js.console.yes") : i.simple_repair ? t("js.console.simple") : t("js.console.no")],
        [t("js.console.signed_by"), (s.log[i.id]?.by || []).map((k) => `${k.slice(0, 12)}…`).join(", ")],
      ]);
      const link = document.createElement("a");
      link.href = `/vehicles/${vin}#insp-${i.id}`;
      link.textContent = t("js.console.open_inspection");
      box.append(link);
      out.append(box);
    }
    return;
  }
  const insp = facts.inspection(s);
  const held = facts.stock(s);
  dl(out, [
    [t("js.console.status"), t(`js.status.${s.status}`)],
    [t("js.console.owner"), facts.owner(s) || "-"],
    [t("js.console.stock"), held ? held.ref.slice(4) : "-"],
    [t("js.console.listing"), s.listing ? `${s.listing.market} ${s.listing.no} (${s.listing.dealer})` : "-"],
    [t("js.console.gate"), s.gate ? `${s.gate.inside ? t("js.console.inside") : t("js.console.outside")} ${s.gate.market} ${s.gate.time}` : "-"],
    [t("js.console.inspection"), insp ? `${insp.valid_from} ~ ${insp.valid_until} (${insp.valid_from <= today && today <= insp.valid_until ? t("js.console.valid_today") : t("js.console.not_valid_today")})` : "-"],
    [t("js.console.head"), `${view.head.slice(0, 16)}… (${view.records})`],
  ]);
  // Help the purchase form: the seller is the recorded owner.
  if (normaliseVin($("purchase-vin").value) === vin && !$("purchase-seller").value && facts.owner(s)) {
    $("purchase-seller").value = facts.owner(s);
  }
}

// --- sign-in --------------------------------------------------------------------------

async function signIn(text, out) {
  clear(out);
  try {
    const key = await importKey(text);
    const response = await fetch(`/console/member/${key.publicHex}`, { cache: "no-store" });
    const member = await response.json();
    session = { key, member };
  } catch (err) {
    const code = err instanceof KeyError ? err.code : "key_unreadable";
    showRefusal(out, code, err.message, "signin_failed");
    return;
  }
  $("key-text").value = "";
  $("key-file").value = "";
  const m = session.member;
  $("who-name").textContent = m.known ? `${m.member} · ${m.org_name}` : t("js.console.not_member");
  $("who-roles").textContent = m.known ? `(${m.roles.join(", ")}${m.status !== "active" ? `, ${m.status}` : ""})` : "";
  $("who-key").textContent = session.key.publicHex;
  $("signin-form").hidden = true;
  $("whoami").hidden = false;
  $("actions").hidden = !m.known;
  if (!m.known) showRefusal(out, "unknown_signer", "", "signin_failed");
  for (const id of ["purchase-date", "sale-date"]) $(id).value = koreanToday();
  $("whoami").querySelector("button").focus();
}

$("signin-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  signIn($("key-text").value, $("signin-result"));
});
$("key-file").addEventListener("change", async () => {
  const file = $("key-file").files[0];
  if (file) signIn(await file.text(), $("signin-result"));
});
$("signout").addEventListener("click", () => {
  session = null;
  pendingSale = null;
  $("actions").hidden = true;
  $("whoami").hidden = true;
  $("signin-form").hidden = false;
  $("key-text").focus();
});

for (const action of ["purchase", "open", "close"]) {
  const form = $(`${action}-form`);
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    signAndSubmit(action, form, form.querySelector(".result"));
  });
}
$("sale-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  makeSaleRequest($("sale-form"), $("sale-form").querySelector(".result"));
});
$("combine-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  combineAndSubmit($("combine-result"));
});
$("sale-copy").addEventListener("click", () => navigator.clipboard?.writeText($("sale-request-text").value));
$("lookup-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  lookup($("lookup-form"), $("lookup-out"), false);
});
$("inspections-form").addEventListener("submit", (ev) => {
  ev.preventDefault();
  lookup($("inspections-form"), $("inspections-out"), true);
});
$("purchase-vin").addEventListener("change", () => {
  const vin = normaliseVin($("purchase-vin").value);
  if (vin) {
    $("lookup-vin").value = vin;
    lookup($("lookup-form"), $("lookup-out"), false);
  }
});
