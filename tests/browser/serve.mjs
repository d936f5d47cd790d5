// The browser tests of `atf serve`: playwright-core drives headless
// chromium through the pages as a user would. Run by
// runner/tests/it/browser.rs, one phase at a time:
//
//   node serve.mjs PHASE URL [ARGS...]
//
// Environment: ATF_BROWSER_TOOLS (the folder scripts/test-deps.sh installs
// playwright-core into), ATF_CHROMIUM (default /usr/bin/chromium),
// ATF_PROJECT (the project folder), ATF_SECRET (a secret no page may
// show), ATF_SCREENSHOTS (a folder: write screenshots of the main pages).
//
// Phase `login` expects a server with the token ATF_TOKEN.
//
// It prints `RESULT {json}` on success and exits 0; on a failure it prints
// `FAIL message` and exits 1. Phase `kill` prints `KILL run-id` and waits
// for a line on stdin before it goes on.
import { createRequire } from "node:module";
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { join } from "node:path";
import { createInterface } from "node:readline";

const [phase, base, ...rest] = process.argv.slice(2);
const tools = process.env.ATF_BROWSER_TOOLS;
const require = createRequire(join(tools, "package.json"));
const { chromium } = require("playwright-core");
const project = process.env.ATF_PROJECT || "";
const secret = process.env.ATF_SECRET || "";
const shots = process.env.ATF_SCREENSHOTS || "";
// Deadlines only, so that a broken page fails instead of hanging; no
// timing is asserted.
const WAIT = 90_000;

class Fail extends Error {}
function check(ok, message) {
  if (!ok) throw new Fail(message);
}

const browser = await chromium.launch({
  executablePath: process.env.ATF_CHROMIUM || "/usr/bin/chromium",
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const page = await browser.newPage({ viewport: { width: 1280, height: 860 } });
page.setDefaultTimeout(WAIT);
const pageErrors = [];
page.on("pageerror", (e) => pageErrors.push(String(e)));

async function noSecret(where) {
  if (!secret) return;
  const html = await page.content();
  check(!html.includes(secret), `${where} shows the secret`);
}

async function shot(name) {
  if (!shots) return;
  mkdirSync(shots, { recursive: true });
  await page.screenshot({ path: join(shots, `serve-${name}.png`), fullPage: false });
}

// Waits until an element matching `selector` has `text` in its text.
async function waitText(selector, text) {
  try {
    await page.waitForFunction(
      ([sel, t]) => [...document.querySelectorAll(sel)].some((e) => e.textContent.includes(t)),
      [selector, text],
      { timeout: WAIT },
    );
  } catch (e) {
    const seen = await page.$$eval(selector, (es) => es.map((e) => e.textContent.trim()).join(" | ")).catch(() => "");
    throw new Fail(`no ${selector} with "${text}" on ${page.url()} (seen: ${seen || "nothing"})`);
  }
}

async function gotoPath(path) {
  await page.goto(base + path, { waitUntil: "domcontentloaded" });
}

// The run page's id, once the form or button took us there.
async function runId() {
  await page.waitForURL(/\/runs\/\d+$/);
  return Number(page.url().match(/\/runs\/(\d+)$/)[1]);
}

// Runs a selection from the index page's form.
async function runFromForm(fields) {
  await gotoPath("/");
  await page.click("#run-form-box summary");
  for (const [name, value] of Object.entries(fields)) {
    await page.fill(`#run-form [name=${name}]`, value);
  }
  await page.click("#run-form button[type=submit]");
  return runId();
}

// The run page shows `name` passed, live, and the run passed.
async function seePassed(name) {
  await waitText("#cases tr", name);
  await page.waitForFunction(
    (n) => [...document.querySelectorAll("#cases tr")].some((tr) => tr.textContent.includes(n) && tr.querySelector(".st-passed")),
    name,
  );
  await waitText("#status", "passed");
}

const editorText = () => page.$eval("#source", (t) => t.value);

async function phaseEdit() {
  const out = {};
  // The case tree, and search.
  await gotoPath("/");
  await waitText("li.case", "ping answers");
  await shot("cases");
  await noSecret("the case tree");
  await page.fill("#search", "ping");
  const visible = await page.$$eval("li.case", (ls) => ls.filter((l) => !l.hidden).map((l) => l.textContent));
  check(visible.length === 1 && visible[0].includes("ping answers"), `search "ping" shows: ${JSON.stringify(visible)}`);
  await page.click("li.case:not([hidden]) a");
  await page.waitForURL(/\/cases\/api\/ok\.case\.json$/);
  await page.waitForFunction(() => !document.getElementById("source").readOnly);
  await noSecret("the case page");

  // Break the keyword: the diagnostic appears at its line as we type.
  const original = await editorText();
  const broken = original.replace("http.request", "http.requets");
  const line = broken.split("\n").findIndex((l) => l.includes("http.requets")) + 1;
  check(line > 0, "the case has an http.request step");
  await page.fill("#source", broken);
  await waitText(`#diagnostics li[data-line="${line}"]`, "http.requets");
  await page.waitForSelector(`#gutter span.bad[data-line="${line}"]`);
  await waitText("#check-summary", "1 problem");
  await shot("editor");

  // Fix it with completion: the caret in the keyword, Ctrl+Space, Enter.
  const at = broken.indexOf("http.requets") + "http.re".length;
  await page.focus("#source");
  await page.$eval("#source", (t, at) => t.setSelectionRange(at, at), at);
  await page.keyboard.press("Control+Space");
  await page.waitForSelector('#complete li[data-name="http.request"]');
  const offered = await page.$$eval("#complete li", (ls) => ls.map((l) => l.dataset.name));
  check(offered.every((n) => n.startsWith("http.re")), `completion for "http.re" offers ${offered}`);
  while ((await page.$eval("#complete li.chosen", (l) => l.dataset.name)) !== "http.request") {
    await page.keyboard.press("ArrowDown");
  }
  await page.keyboard.press("Enter");
  check((await editorText()) === original, "completion put `http.request` back exactly");
  await waitText("#check-summary", "no problems");
  check((await page.$$("#diagnostics li")).length === 0, "no diagnostics after the fix");

  // Argument names come from the step's keyword.
  const argsAt = original.indexOf('"args": {') + '"args": {'.length;
  await page.$eval("#source", (t, at) => t.setSelectionRange(at, at), argsAt);
  await page.keyboard.type('"me');
  await page.waitForSelector('#complete li[data-name="method"]');
  await page.keyboard.press("Escape");
  await page.fill("#source", original);

  // Save a change: written to the file as shown.
  const edited = original.replace("ping answers", "ping answers from the page");
  await page.fill("#source", edited);
  await page.click("#save");
  await waitText("#ed-status", "Saved");
  check(readFileSync(join(project, "api/ok.case.json"), "utf8") === edited, "the file holds the saved text");

  // A change on disk meanwhile: the save is refused, the text kept.
  writeFileSync(join(project, "api/ok.case.json"), edited + "\n");
  await page.fill("#source", edited.replace("smoke", "smoke-tagged"));
  await page.click("#save");
  await waitText("#ed-status", "changed on disk");
  check((await editorText()).includes("smoke-tagged"), "the text is kept after a conflict");
  check(readFileSync(join(project, "api/ok.case.json"), "utf8") === edited + "\n", "the conflict overwrote nothing");
  page.once("dialog", (d) => d.accept());
  await page.reload({ waitUntil: "domcontentloaded" });
  check((await editorText()) === edited + "\n", "after a reload the editor shows the file as on disk");

  // Run it from its page: it passes, live.
  await page.click("#run");
  out.run = await runId();
  await seePassed("ping answers from the page");
  await shot("run");
  await noSecret("the run page");

  // A new case from a template, and a refusal to overwrite it.
  await gotoPath("/");
  await page.click("#new-case-box summary");
  await page.waitForSelector('#new-case select option[value="empty"]', { state: "attached" });
  await page.fill("#new-case [name=path]", "api/fresh.case.json");
  await page.selectOption("#new-case [name=template]", "empty");
  await page.click("#new-case button[type=submit]");
  await page.waitForURL(/\/cases\/api\/fresh\.case\.json$/);
  check((await editorText()).includes('"name": "fresh"'), "the new case is named after its file");
  await gotoPath("/");
  await page.click("#new-case-box summary");
  await page.fill("#new-case [name=path]", "api/fresh.case.json");
  await page.click("#new-case button[type=submit]");
  await waitText("#new-case .form-error", "exists already");

  // A selection by tag from the run form.
  out.tagged = await runFromForm({ tags: "smoke" });
  await seePassed("ping answers from the page");

  await gotoPath("/runs");
  await shot("runs");
  return out;
}

async function phaseHistory(id) {
  // After a restart: the run is in the list, replays, and is in the
  // case's history.
  await gotoPath("/runs");
  await page.waitForSelector(`a[href="/runs/${id}"]`);
  const row = await page.$eval(`a[href="/runs/${id}"]`, (a) => a.closest("tr").textContent);
  check(row.includes("passed"), `run ${id} in the list: ${row}`);
  await page.click(`a[href="/runs/${id}"]`);
  await seePassed("ping answers from the page");
  await gotoPath("/");
  await page.fill("#search", "from the page");
  await page.click("li.case:not([hidden]) a");
  await page.waitForSelector(`table.list a[href="/runs/${id}"]`);
  await noSecret("the history");
  // Its results as a strip and a duration trend chart.
  await page.waitForSelector(`.strip a.sq[href="/runs/${id}"]`, { state: "attached" });
  await page.waitForSelector("svg.trend circle", { state: "attached" });
  await page.$eval(".case-history", (e) => e.scrollIntoView());
  await shot("history");
  await gotoPath("/stats");
  await page.waitForSelector("#slowest");
  await shot("stats");
  return { id };
}

async function phaseWorker(name) {
  const id = await runFromForm({ paths: "api/ok.case.json" });
  await seePassed("ping answers");
  await gotoPath("/runs");
  const row = await page.$eval(`a[href="/runs/${id}"]`, (a) => a.closest("tr").textContent);
  check(row.includes(`on worker ${name}`), `run ${id} says its worker: ${row}`);
  await gotoPath("/workers");
  await waitText(`tr[data-name="${name}"]`, "idle");
  await shot("workers");
  return { id };
}

async function phaseKill(second) {
  const id = await runFromForm({ paths: "slow" });
  // Its case is under way on the first worker.
  await page.waitForFunction(() => document.querySelector("#cases tr .st-running"));
  console.log(`KILL ${id}`);
  const rl = createInterface({ input: process.stdin });
  await new Promise((resolve) => rl.once("line", resolve));
  rl.close();
  // The page says so, follows the next attempt and ends passed.
  await waitText("#requeued", "queued again");
  await seePassed("waits");
  const rows = await page.$$eval("#cases tr", (trs) => trs.length - 1);
  check(rows === 1, `the run page shows ${rows} case rows, not the one of the last attempt`);
  await gotoPath("/runs");
  const row = await page.$eval(`a[href="/runs/${id}"]`, (a) => a.closest("tr").textContent);
  check(row.includes(`on worker ${second}`), `run ${id} says its worker: ${row}`);
  return { id };
}

async function phaseLogin() {
  const token = process.env.ATF_TOKEN || "";
  // A page without a session: the login form, then back to the page.
  await gotoPath("/cases/api/ok.case.json");
  await page.waitForURL(/\/login\?next=/);
  await shot("login");
  await page.fill("#token", "not-the-token");
  await page.click("#login button[type=submit]");
  await waitText("#login-error", "Wrong token");
  await page.fill("#token", token);
  await page.click("#login button[type=submit]");
  await page.waitForURL(/\/cases\/api\/ok\.case\.json$/);
  await page.waitForFunction(() => !document.getElementById("source").readOnly);
  const html = await page.content();
  check(!html.includes(token), "a page shows the token");
  const cookies = await page.context().cookies();
  const session = cookies.find((c) => c.name === "atf_session");
  check(session && session.httpOnly && session.sameSite === "Strict", `the session cookie: ${JSON.stringify(session)}`);
  check(!html.includes(session.value), "a page shows the session id");

  // Save through the editor: its PUT carries the CSRF token.
  const original = await editorText();
  const edited = original.replace("ping answers", "ping answers after login");
  await page.fill("#source", edited);
  await page.click("#save");
  await waitText("#ed-status", "Saved");
  check(readFileSync(join(project, "api/ok.case.json"), "utf8") === edited, "the file holds the saved text");

  // Run it from its page, followed live over the session.
  await page.click("#run");
  const id = await runId();
  await seePassed("ping answers after login");

  // A request that changes something without the CSRF token is refused.
  const foreign = await page.evaluate(async () => {
    const r = await fetch("/api/runs", { method: "POST", headers: { "content-type": "application/json" }, body: "{}" });
    return r.status;
  });
  check(foreign === 403, `a POST without the CSRF token got ${foreign}`);

  // Log out: the pages ask for the token again.
  await page.click("#logout");
  await page.waitForURL(/\/login/);
  await gotoPath("/runs");
  await page.waitForURL(/\/login\?next=/);
  return { id };
}

let code = 0;
try {
  let result;
  if (phase === "edit") result = await phaseEdit();
  else if (phase === "history") result = await phaseHistory(Number(rest[0]));
  else if (phase === "worker") result = await phaseWorker(rest[0]);
  else if (phase === "kill") result = await phaseKill(rest[0]);
  else if (phase === "login") result = await phaseLogin();
  else throw new Fail(`unknown phase ${phase}`);
  check(pageErrors.length === 0, `script errors on the pages: ${pageErrors.join("; ")}`);
  console.log(`RESULT ${JSON.stringify(result)}`);
} catch (e) {
  console.log(`FAIL ${e instanceof Fail ? e.message : e.stack || e}`);
  code = 1;
} finally {
  await browser.close();
}
process.exit(code);
