// carledger: the vehicle page re-checks its report in the browser.
//
// It fetches /v1/vehicles/{vin}/report, verifies it with verify.js against the genesis
// validator keys this page shipped, and says what it found in the "verified" panel:
// success (with the checkpoint, its signers and whether this page shows exactly the
// report just verified) or a failure naming the check that failed. A printed report's
// QR parameters (?h=&c=) are then judged against the verified report.

import { messages, pageData, ed25519Supported } from "./canon.js";
import { verifyReport, printedStatus, VerifyError } from "./verify.js";

const t = messages();
const data = pageData();
const box = document.getElementById("browser-check");
const stateLine = box.querySelector(".state");
const steps = box.querySelector(".steps");

function setState(kind, text) {
  box.classList.remove("pending", "ok", "failed", "unavailable");
  box.classList.add(kind);
  box.dataset.result = kind;
  stateLine.textContent = text;
}

function step(name) {
  steps.hidden = false;
  for (const li of steps.querySelectorAll("li.running")) {
    li.classList.replace("running", "done");
    li.querySelector(".mark").textContent = "✔";
  }
  const li = document.createElement("li");
  li.className = "running";
  li.dataset.step = name;
  const mark = document.createElement("span");
  mark.className = "mark";
  mark.setAttribute("aria-hidden", "true");
  mark.textContent = "…";
  li.append(mark, " ", t(`js.verify.step.${name}`));
  steps.append(li);
}

function finishSteps(ok) {
  for (const li of steps.querySelectorAll("li.running")) {
    li.classList.replace("running", ok ? "done" : "failed");
    li.querySelector(".mark").textContent = ok ? "✔" : "✘";
  }
}

function addLine(text, cls) {
  const p = document.createElement("p");
  if (cls) p.className = cls;
  p.textContent = text;
  box.append(p);
  return p;
}

function showPrinted(result) {
  const printed = data.printed;
  const section = document.getElementById("printed");
  if (!printed || !section) return;
  const h = printed.h ?? null;
  const c = printed.c ?? null;
  const status = printedStatus(result, h, c);
  if (!status) return;
  section.className = `panel printed-${status.state}`;
  section.dataset.verified = status.state;
  section.querySelector(".printed-text").textContent = t(`js.printed.${status.state}`,
    { h, n: status.newRecords ?? 0, height: result.height });
}

async function run() {
  if (!(await ed25519Supported())) {
    setState("unavailable", t("js.verify.unavailable"));
    return;
  }
  setState("pending", t("js.verify.running"));
  let report;
  try {
    const response = await fetch(`/v1/vehicles/${encodeURIComponent(data.vin)}/report`,
      { cache: "no-store", headers: { Accept: "application/json" } });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    report = await response.json();
  } catch (err) {
    setState("failed", t("js.verify.fetch_failed"));
    addLine(String(err.message || err), "muted small");
    return;
  }
  try {
    const result = await verifyReport(report, data.trust, { onStep: step });
    finishSteps(true);
    setState("ok", t("js.verify.ok", {
      n: result.records, height: result.height, validators: result.validators.join(", "),
    }));
    if (result.contentHash === data.content_hash) {
      addLine(t("js.verify.same_as_page"));
    } else if (result.records === data.records) {
      addLine(t("js.verify.page_older_same_records", { height: result.height }));
    } else {
      addLine(t("js.verify.page_outdated", { n: result.records - data.records }), "warning-text");
    }
    addLine(t("js.verify.hash", { hash: result.contentHash }), "muted small hash");
    showPrinted(result);
  } catch (err) {
    finishSteps(false);
    const code = err instanceof VerifyError ? err.code : "verifier_error";
    setState("failed", t("js.verify.failed"));
    box.dataset.code = code;
    const what = addLine(t(`js.fail.${code}`), "fail-what");
    what.prepend(Object.assign(document.createElement("strong"), { textContent: `${code}: ` }));
    addLine(err.message, "muted small fail-detail").lang = "en";
    document.getElementById("verified")?.classList.add("tampered");
  }
}

run();
