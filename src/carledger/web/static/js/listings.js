// carledger: the verified mark of each listed car, checked in the browser.
//
// For every listing on the page, fetch that car's report and verify it (verify.js),
// a few at a time, then turn the listing's mark into "verified" or "check failed".
// The mark is what a buyer scanning the market's list relies on, so it is never
// shown before the check passed.

import { messages, pageData, ed25519Supported } from "./canon.js";
import { verifyReport, VerifyError } from "./verify.js";

const t = messages();
const { trust } = pageData();
const PARALLEL = 4;

function mark(el, kind, text, title) {
  el.classList.remove("pending");
  el.classList.add(kind);
  el.dataset.result = kind;
  el.textContent = text;
  if (title) el.title = title;
}

async function check(item) {
  const el = item.querySelector("[data-mark]");
  try {
    const response = await fetch(`/v1/vehicles/${encodeURIComponent(item.dataset.vin)}/report`,
      { cache: "no-store" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const result = await verifyReport(await response.json(), trust);
    mark(el, "ok", t("js.mark.ok", { height: result.height }));
  } catch (err) {
    const code = err instanceof VerifyError ? err.code : "fetch_failed";
    mark(el, "failed", t("js.mark.failed", { code }), err.message);
  }
}

async function run() {
  const items = [...document.querySelectorAll("li.listing[data-vin]")];
  if (!(await ed25519Supported())) {
    for (const item of items) mark(item.querySelector("[data-mark]"), "unavailable", t("js.mark.unavailable"));
    return;
  }
  const queue = [...items];
  const workers = Array.from({ length: PARALLEL }, async () => {
    while (queue.length) await check(queue.shift());
  });
  await Promise.all(workers);
}

run();
