// The browser test: the real server (embedded SurrealDB), a real node serving
// all-MiniLM-L6-v2 with libtorch, and Debian's Chromium. Signs up with a
// passkey (a CDP virtual authenticator), makes an API key, signs out and in
// again; loads the app, finds the node in the table, runs a job and a chat,
// reads their verified receipts; checks installability; then revokes the key
// and signs out everywhere. Passkeys need a domain name, so the app is
// browsed at http://localhost:<port> (the server's public URL).
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { execFileSync } from "node:child_process";
import { createHmac } from "node:crypto";
import { createServer } from "node:http";
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";
import { serverArgs, siteRoot, startProcess, stopAll, targetDir } from "./platform.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const modelsDir = process.env.INFERNET_MODELS_DIR;
const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });

let browser; // a BrowserContext with a persistent profile
let serverUrl;
let nodeId;
let apiKey; // made in Settings by the first test
let passkeyPage; // the page holding the virtual authenticator
let serverData; // the server's data dir: its admin socket
let farmToken; // the fleet test's enrolment token
let farmId; // the node enrolled with it

/** `server admin <args>` against the running server: its JSON answer. */
function admin(...args) {
  const out = execFileSync(join(targetDir, "debug", "server"), ["--data-dir", serverData, "admin", ...args]);
  return JSON.parse(out.toString());
}

before(async () => {
  assert.ok(modelsDir, "INFERNET_MODELS_DIR must point at the exported models (run scripts/setup.sh)");
  const data = mkdtempSync(join(tmpdir(), "infernet-e2e-"));
  serverData = join(data, "server");
  const server = await startProcess("server", serverArgs(
    serverData,
    // Lightning's network cannot be reached from here: the test stand-in
    // issues real regtest invoices and `admin test-pay` settles them.
    "--lightning", "test",
    // The fleet test's webhook receiver listens on loopback.
    "--allow-private-webhooks",
    // Second opinions would add jobs of the server's own to the counts
    // the fleet test checks (server/tests/it/verify.rs tests them).
    "--redundancy", "0",
  ));
  serverUrl = server.public_url;
  const node = await startProcess("infernet-node", [
    "--server", serverUrl, "--models-dir", modelsDir, "--key-file", join(data, "node.key"),
    "--p2p-host", "127.0.0.1", "--heartbeat-ms", "2000", "--device", "cpu",
  ]);
  nodeId = node.peer_id;
  // A persistent profile (not an incognito context), as an installed PWA has.
  browser = await chromium.launchPersistentContext(join(data, "chromium-profile"), {
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: [
      "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
      "--disable-component-update", "--no-first-run", "--disable-sync", "--disable-quic",
    ],
  });
});

after(async () => {
  await browser?.close();
  stopAll();
});

/** Errors the page logs: a test ends with none. */
function watchErrors(page) {
  const errors = [];
  page.on("console", (m) => m.type() === "error" && errors.push(m.text()));
  page.on("pageerror", (e) => errors.push(String(e)));
  return errors;
}

/** The service worker's state and every open page, for a failure message. */
async function swState(page) {
  const sw = await Promise.race([
    page.evaluate(async () => {
      const r = await navigator.serviceWorker.getRegistration();
      return JSON.stringify({
        active: r?.active?.state, waiting: r?.waiting?.state, installing: r?.installing?.state,
        controller: navigator.serviceWorker.controller?.state, applying: window.__infernet?.applying,
      });
    }).catch((e) => `evaluate failed: ${e.message}`),
    new Promise((r) => setTimeout(() => r("evaluate timed out"), 5_000)),
  ]);
  return `service worker: ${sw}\npages: ${browser.pages().map((p) => p.url()).join(", ")}`;
}

/** Whether the page fits a `width` px screen without sideways scrolling. */
async function fits(page, width) {
  await page.setViewportSize({ width, height: 780 });
  const wide = await page.evaluate(() => {
    if (document.documentElement.scrollWidth <= window.innerWidth) return [];
    // What sticks out, for the failure message.
    return [...document.querySelectorAll("body *")]
      .filter((e) => e.getBoundingClientRect().right > window.innerWidth + 1)
      .slice(0, 8)
      .map((e) => `${e.tagName.toLowerCase()}.${e.className} (${Math.round(e.getBoundingClientRect().right)} px)`);
  });
  if (wide.length) console.error(`wider than ${width} px:`, wide.join(", "));
  return wide.length === 0;
}

/** `GET path` with the browser's cookies (not from the page, which would
 * log the 401 it expects as a console error): the status. */
async function withCookies(page, path) {
  return (await page.context().request.get(`${serverUrl}${path}`)).status();
}

/** `GET path` with `key` as the bearer token: the status. */
async function withKey(path, key) {
  const r = await fetch(`${serverUrl}${path}`, { headers: { authorization: `Bearer ${key}` } });
  return r.status;
}

test("a visitor signs up with a passkey, makes an API key, signs out and in again", { timeout: 120_000 }, async () => {
  const page = await browser.newPage();
  passkeyPage = page;
  const errors = watchErrors(page);
  const cdp = await page.context().newCDPSession(page);
  await cdp.send("WebAuthn.enable");
  const { authenticatorId } = await cdp.send("WebAuthn.addVirtualAuthenticator", {
    options: {
      protocol: "ctap2", transport: "internal", hasResidentKey: true,
      hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
      hasPrf: true,
    },
  });

  // A page that needs an account sends a visitor to sign in, and back.
  await page.goto(`${serverUrl}/settings`);
  await page.waitForURL(/\/sign-in\?next=\/settings$/);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  assert.ok(await fits(page, 360), "the sign-in page fits a phone");
  await page.screenshot({ path: join(artifacts, "sign-in-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // Lightning: a QR code and a wallet link, at once.
  await page.locator("#lightning-sign-in").click();
  await page.locator(".qr svg").waitFor();
  assert.match(await page.locator("a.lnurl").getAttribute("href"), /^lightning:LNURL1[0-9A-Z]+$/);

  // Sign up: a display name and a new passkey.
  await page.locator("#display-name").fill("Ada");
  await page.locator("#passkey-sign-up").click();
  await page.waitForURL(/\/settings$/);
  await page.locator("#account-name").waitFor();
  assert.equal(await page.locator("#account-name").innerText(), "Ada");
  assert.equal(await page.locator("#account-menu").innerText(), "Ada");
  const { credentials } = await cdp.send("WebAuthn.getCredentials", { authenticatorId });
  assert.equal(credentials.length, 1);
  assert.ok(credentials[0].isResidentCredential, "the passkey is discoverable");

  // An API key, shown once, that works on the API.
  await page.locator("#key-name").fill("e2e");
  await page.locator("#create-key").click();
  await page.locator("#new-key").waitFor();
  apiKey = (await page.locator("#new-key").innerText()).trim();
  assert.match(apiKey, /^sk-inf-[a-z2-7]{52}$/);
  assert.equal(await withKey("/api/v1/account", apiKey), 200);
  // Jobs cost money: the server's operator grants the new account some.
  const me = await (await fetch(`${serverUrl}/api/v1/account`, { headers: { authorization: `Bearer ${apiKey}` } })).json();
  assert.equal(admin("credit", me.id, "100000000", "--key", "e2e").credited, true);
  await page.locator("li.api-key").first().waitFor();
  assert.ok(await page.locator("#new-key").isVisible(), "the new key stays shown once the list reloads");
  assert.ok(await fits(page, 360), "Settings fits a phone");
  await page.screenshot({ path: join(artifacts, "settings-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // Sign out, then in again with the passkey: no username typed.
  await page.locator("#sign-out").click();
  await page.locator("#sign-in-link").waitFor();
  assert.equal(await withCookies(page, "/api/v1/account"), 401);
  await page.locator("#sign-in-link").click();
  await page.locator("#passkey-sign-in").click();
  await page.locator("#account-menu").waitFor();
  assert.equal(await page.locator("#account-menu").innerText(), "Ada");
  assert.equal(await withCookies(page, "/api/v1/account"), 200);

  // My nodes: none enrolled yet; the page fits a phone.
  await page.getByRole("link", { name: "My nodes" }).click();
  await page.locator("text=No nodes yet").waitFor();
  assert.ok(await fits(page, 360), "My nodes fits a phone");
  await page.setViewportSize({ width: 1280, height: 900 });
  assert.deepEqual(errors, []);
});

test("the browser wallet comes from the account's passkey: nothing stored, the same wallet every time", { timeout: 180_000 }, async () => {
  const page = passkeyPage;
  const errors = watchErrors(page);
  const openWallet = async () => {
    await page.goto(`${serverUrl}/wallet`);
    await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
    await page.locator("#wallet-open").click();
  };
  const walletId = async () => {
    await page.locator("#wallet-balance", { hasText: "0 sat" }).waitFor({ timeout: 60_000 });
    await page.waitForFunction(() => /^[0-9a-f]{66}$/.test(document.querySelector("#wallet-id")?.textContent ?? ""));
    return page.locator("#wallet-id").innerText();
  };
  const stored = () =>
    page.evaluate(() => ({
      mnemonic: localStorage.getItem("infernet.wallet.mnemonic"),
      passkey: localStorage.getItem("infernet.wallet.passkey"),
    }));

  // The passkey made at sign-up (with PRF) gives a wallet: no words shown.
  await openWallet();
  await page.locator("#wallet-passkey").click();
  const first = await walletId();
  assert.equal(await page.locator("#wallet-words").count(), 0, "no backup words to write down");
  const kept = await stored();
  assert.equal(kept.mnemonic, null, "no seed in the browser's storage");
  assert.match(kept.passkey, /^[A-Za-z0-9_-]+$/, "only the passkey's (public) credential id is kept");
  await page.screenshot({ path: join(artifacts, "wallet-passkey.png"), fullPage: true });

  // Next visit: unlocked with the passkey again, the same wallet.
  await openWallet();
  await page.locator("#wallet-unlock").click();
  assert.equal(await walletId(), first, "the same passkey gives the same wallet");

  // Taken off this browser and made again from the passkey: still the same.
  await page.locator("#wallet-forget").click();
  await page.locator("#wallet-passkey").waitFor();
  assert.deepEqual(await stored(), { mnemonic: null, passkey: null });
  await page.locator("#wallet-passkey").click();
  assert.equal(await walletId(), first, "a passkey wallet comes back from the passkey alone");
  await page.locator("#wallet-forget").click();
  await page.locator("#wallet-passkey").waitFor();
  // The wallet syncs with Spark's operators in the background, whose names
  // do not resolve here (no internet): any other error fails the test.
  assert.deepEqual(errors.filter((e) => !e.includes("net::ERR_NAME_NOT_RESOLVED")), []);
});

test("a job submitted in the browser completes with a verified receipt", { timeout: 240_000 }, async () => {
  const page = await browser.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));

  await page.goto(serverUrl);
  // Server-rendered: the node is in the table before any JavaScript runs.
  await page.locator(`tr.node-row[data-peer-id="${nodeId}"]`).waitFor();
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  const row = page.locator(`tr.node-row[data-peer-id="${nodeId}"]`);
  assert.match(await row.innerText(), /online/);
  assert.match(await row.innerText(), /all-minilm-l6-v2/);
  // A model priced only by the token reads with its token prices, not "0 sat".
  assert.match(await row.innerText(), /tiny-gpt2 · text_generation · 1 sat\/1k input tokens \+ 2 sat\/1k output tokens/);

  // Client-side navigation (the hydrated router), then the job.
  await page.getByRole("link", { name: "Run a job" }).click();
  await page.locator("select[name=model] option").first().waitFor({ state: "attached" });
  await page.locator("textarea[name=text_a]").fill("A man is playing a guitar.");
  await page.locator("textarea[name=text_b]").fill("Someone plays a musical instrument.");
  await page.getByRole("button", { name: "Run" }).click();

  const similarity = page.getByTestId("similarity");
  await similarity.waitFor({ timeout: 120_000 });
  const value = Number(await similarity.innerText());
  assert.ok(value > 0.3 && value <= 1.0, `similarity ${value}`);
  const receipt = page.getByTestId("receipt");
  assert.match(await receipt.innerText(), /signature verified/);
  assert.match(await receipt.innerText(), new RegExp(nodeId));
  await page.screenshot({ path: join(artifacts, "run-job.png"), fullPage: true });

  // The job is in the history.
  await page.getByRole("link", { name: "Jobs" }).click();
  await page.locator("tr.job-row").first().waitFor();
  assert.match(await page.locator("tr.job-row").first().innerText(), /succeeded/);
  await page.screenshot({ path: join(artifacts, "jobs.png"), fullPage: true });

  // The node's record counts the job: on its page and in the table.
  await page.goto(`${serverUrl}/node/${nodeId}`);
  await page.locator("#node-reputation").waitFor();
  assert.match(await page.locator("#node-reputation").innerText(), /\d+ of 100/);
  const record = await page.locator("ul.reputation").innerText();
  const done = record.match(/Jobs completed: [\d.]+ % \((\d+) of (\d+)\)/);
  assert.ok(done && Number(done[1]) >= 1 && done[1] === done[2], record);
  assert.match(await page.locator("table.latency").innerText(), /all-minilm-l6-v2/);
  await page.goto(serverUrl);
  const cell = page.locator(`tr.node-row[data-peer-id="${nodeId}"] td.reputation`);
  assert.match(await cell.innerText(), /completed \d+ of \d+ job/);

  assert.deepEqual(consoleErrors, []);
  await page.close();
});

test("a chat streams its reply in the browser and shows its cost and receipt", { timeout: 240_000 }, async () => {
  const page = await browser.newPage();
  const consoleErrors = [];
  page.on("console", (m) => m.type() === "error" && consoleErrors.push(m.text()));
  page.on("pageerror", (e) => consoleErrors.push(String(e)));
  await page.goto(`${serverUrl}/run`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  const option = page.locator("select[name=model] option[value=tiny-gpt2]");
  await option.waitFor({ state: "attached" });
  assert.match(await option.textContent(), /from 1 sat\/1k input tokens \+ 2 sat\/1k output tokens/);
  await page.locator("select[name=model]").selectOption("tiny-gpt2");
  await page.getByTestId("chat").waitFor();
  await page.locator("textarea[name=message]").fill("Tell me a story.");
  await page.locator("input[name=max_tokens]").fill("64");
  await page.locator("input[name=max_tokens]").dispatchEvent("change");

  // Note the reply's length at every change of the conversation: while it
  // streams, the page shows part of it. (How many pieces it comes in
  // depends on how fast the browser reads: text it has no room for yet
  // is sent joined with the next.)
  await page.evaluate(() => {
    window.__lengths = [];
    new MutationObserver(() => {
      const reply = document.querySelector(".chat .message.assistant pre");
      window.__lengths.push(reply ? reply.textContent.length : 0);
    }).observe(document.querySelector(".chat .messages"), {
      subtree: true, childList: true, characterData: true,
    });
  });
  await page.getByRole("button", { name: "Send" }).click();
  const receipt = page.getByTestId("receipt");
  await receipt.waitFor({ timeout: 120_000 });
  assert.match(await receipt.innerText(), /signature verified/);
  const tokens = Number((await receipt.innerText()).match(/(\d+) output tokens/)[1]);
  assert.ok(tokens >= 1 && tokens <= 64, `${tokens} output tokens`);
  assert.match(await page.getByTestId("job-result").innerText(), /sat/);
  const reply = await page.locator(".chat .message.assistant pre").innerText();
  const generated = await page.getByTestId("generated").innerText();
  assert.ok(reply.length > 0, "the reply is shown");
  assert.equal(reply, generated, "the streamed reply is the job's output");
  const lengths = await page.evaluate(() => window.__lengths);
  assert.ok(
    lengths.some((n) => n > 0 && n < reply.length),
    `part of the reply was shown while it streamed (lengths seen: ${lengths.join(", ")} of ${reply.length})`,
  );
  await page.screenshot({ path: join(artifacts, "chat.png"), fullPage: true });
  assert.deepEqual(consoleErrors, []);
  await page.close();
});

test("the wallet: top-ups are credited live, the Lightning SDK loads only when opened, a chat's cost leaves the balance", { timeout: 240_000 }, async () => {
  const page = await browser.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  const requests = [];
  page.on("request", (r) => requests.push(r.url()));
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));
  const balance = async () => Number(await page.locator("#balance").getAttribute("data-msat"));

  await page.goto(`${serverUrl}/wallet`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  const start = await balance();
  assert.ok(start > 0, "the account has its credit");
  assert.equal(await page.locator("#lightning-network").textContent(), "regtest");
  assert.ok(!requests.some((u) => u.includes("/vendor/breez-sdk-spark/")), "the Lightning SDK is not loaded on first paint");
  assert.ok(await fits(page, 360), "the Wallet page fits a phone");
  await page.screenshot({ path: join(artifacts, "wallet-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // A top-up: an invoice with its QR code; paid (by the test backend),
  // it is credited and the balance on screen changes without a reload.
  await page.locator("#topup-amount").fill("5000");
  await page.locator("#topup-create").click();
  await page.locator("#topup-qr svg").waitFor();
  const invoice = (await page.locator("#topup-invoice").innerText()).trim();
  assert.match(invoice, /^lnbcrt50u1/);
  assert.equal(admin("test-pay", invoice).paid, true);
  await page.locator("#topup-status", { hasText: "Paid" }).waitFor({ timeout: 30_000 });
  await page.waitForFunction(
    (want) => Number(document.querySelector("#balance")?.dataset.msat) === want,
    start + 5_000_000,
    { timeout: 30_000 },
  );
  assert.equal(await page.locator("#history li").first().getAttribute("data-kind"), "topup");

  // The browser wallet: its SDK loads now; a new regtest wallet, backed up,
  // with balance 0.
  await page.locator("#wallet-open").click();
  await page.locator("#wallet-create").waitFor({ timeout: 60_000 });
  assert.ok(requests.some((u) => u.endsWith("/vendor/breez-sdk-spark/breez_sdk_spark_wasm_bg.wasm")), "the SDK loaded when opened");
  await page.locator("#wallet-create").click();
  await page.locator("#wallet-words li").nth(11).waitFor();
  assert.equal(await page.locator("#wallet-words li").count(), 12);
  await page.locator("#wallet-backed-up").click();
  await page.locator("#wallet-balance", { hasText: "0 sat" }).waitFor({ timeout: 60_000 });
  await page.screenshot({ path: join(artifacts, "wallet.png"), fullPage: true });
  const topped = await balance();

  // A chat: its cost leaves the balance, and the history says which job.
  await page.getByRole("link", { name: "Run a job" }).click();
  await page.locator("select[name=model] option[value=tiny-gpt2]").waitFor({ state: "attached" });
  await page.locator("select[name=model]").selectOption("tiny-gpt2");
  await page.getByTestId("chat").waitFor();
  await page.locator("textarea[name=message]").fill("Hello.");
  await page.getByRole("button", { name: "Send" }).click();
  await page.getByTestId("receipt").waitFor({ timeout: 120_000 });
  await page.getByRole("link", { name: "Wallet" }).click();
  await page.locator("#balance").waitFor();
  const history = await (await page.context().request.get(`${serverUrl}/api/v1/billing/history?limit=5`)).json();
  const job = history.postings[0].job_id;
  assert.ok(job, "the newest posting is the chat's");
  const cost = -history.postings
    .filter((p) => p.job_id === job && p.book === "balance")
    .reduce((sum, p) => sum + p.amount_msat, 0);
  assert.ok(cost > 0, `the chat cost ${cost} msat`);
  await page.waitForFunction(
    (want) => Number(document.querySelector("#balance")?.dataset.msat) === want,
    topped - cost,
    { timeout: 30_000 },
  );
  assert.equal(await page.locator("#history li").first().getAttribute("data-kind"), "charge");
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test("the fleet: an enrolled node shows live, a pause from the page is acknowledged and done, its charts draw its telemetry", { timeout: 240_000 }, async () => {
  const page = await browser.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  // A farm token, and a second node enrolled with it.
  const made = await page.context().request.post(`${serverUrl}/api/v1/account/enrol-tokens`, {
    data: { name: "e2e rack", reusable: true },
    headers: { origin: serverUrl },
  });
  assert.equal(made.status(), 201);
  const token = (await made.json()).secret;
  const farmDir = join(serverData, "..", "farm");
  mkdirSync(farmDir, { recursive: true });
  const farmNode = await startProcess("infernet-node", [
    "--server", serverUrl, "--models-dir", modelsDir, "--key-file", join(farmDir, "node.key"),
    "--p2p-host", "127.0.0.1", "--heartbeat-ms", "2000", "--device", "cpu",
    "--enroll", token, "--telemetry-ms", "500", "--reachability", "public",
  ]);
  const id = farmNode.peer_id;
  farmToken = token;
  farmId = id;

  await page.goto(`${serverUrl}/my-nodes`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  const card = page.locator(`li.fleet-node[data-node="${id}"]`);
  await card.locator(".badge.online").waitFor({ timeout: 60_000 });
  await page.locator("#fleet-count", { hasText: "live" }).waitFor({ timeout: 30_000 });
  await card.locator("[data-gauge=cpu]").waitFor();
  // Its record, and the earnings CSV.
  await page.locator(`tr.record[data-node="${id}"]`).waitFor();
  const csv = await (await page.context().request.get(`${serverUrl}/api/v1/fleet/earnings?format=csv`)).text();
  assert.match(csv, /^day,node_id,device,model,jobs,earned_msat\n/);
  // Alert settings: the thresholds and the webhook's signing secret.
  await page.locator("details.alert-settings summary").click();
  await page.locator("#alert-secret", { hasText: "whsec_" }).waitFor();
  await page.locator("#fleet-alerts li.empty").waitFor();
  // The team: nobody else yet, and the form to let someone in.
  await page.locator("#team-invite").waitFor();
  assert.equal(await page.locator("#team-members li").count(), 0);
  assert.ok(await fits(page, 360), "My nodes fits a phone");
  await page.screenshot({ path: join(artifacts, "fleet-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // Pause from the page: the command is acknowledged and done, and the
  // node's card says paused, without a reload.
  await card.locator("button.pause").click();
  await page.locator("#fleet-commands li.command[data-status=succeeded]").first().waitFor({ timeout: 30_000 });
  await card.locator("[data-admission=paused]").waitFor({ timeout: 30_000 });
  // Resume it with the bulk bar: select, then Resume.
  await card.locator("input[type=checkbox]").check();
  await page.locator("#bulk-resume").click();
  await page.waitForFunction(() => document.querySelectorAll("#fleet-commands li.command[data-status=succeeded]").length >= 2, null, { timeout: 30_000 });
  await card.locator("[data-admission]").waitFor({ state: "detached", timeout: 30_000 });
  await page.screenshot({ path: join(artifacts, "fleet.png"), fullPage: true });

  // Its charts: real telemetry points, drawn.
  await card.locator("a.mono").click();
  await page.waitForURL(new RegExp(`/my-nodes/${id}$`));
  await page.locator("#node-charts figure.chart polyline").first().waitFor({ timeout: 30_000 });
  const cpu = await page.locator("#node-charts figure.chart").first().getAttribute("aria-label");
  assert.match(cpu, /^CPU: \d+(\.\d)? %$/);
  // Its jobs over time: jobs per hour, failure rate, latency, earnings.
  assert.equal(await page.locator("#node-activity figure.chart").count(), 4);
  // A new price from the node's page: /nodes shows it within one ad.
  const form = page.locator('form.price[data-model="all-minilm-l6-v2"]');
  await form.locator("input").first().fill("4321");
  await form.locator("button").click();
  await page.locator(".prices [data-command-status=succeeded]").waitFor({ timeout: 30_000 });
  let advertised;
  for (let i = 0; i < 100 && advertised !== 4321; i++) {
    const info = await (await fetch(`${serverUrl}/nodes/${id}`)).json();
    advertised = info.models.find((m) => m.name === "all-minilm-l6-v2")?.price_msat;
    if (advertised !== 4321) await new Promise((r) => setTimeout(r, 100));
  }
  assert.equal(advertised, 4321, "the new price is in /nodes");
  assert.ok(await fits(page, 360), "a node's charts fit a phone");
  await page.screenshot({ path: join(artifacts, "fleet-node-phone.png"), fullPage: true });
  assert.deepEqual(pageErrors, []);
  await page.close();
});

/** Starts an enrolled node of the farm; resolves with its ready line. */
function farmNode(keyDir, extra = []) {
  return startProcess("infernet-node", [
    "--server", serverUrl, "--models-dir", modelsDir, "--key-file", join(keyDir, "node.key"),
    "--p2p-host", "127.0.0.1", "--heartbeat-ms", "2000", "--device", "cpu",
    "--telemetry-ms", "500", "--reachability", "public", ...extra,
  ]);
}

/** `path` of the API with the browser's session: the JSON answer. Jobs
 * of many long texts on a debug CPU node of a loaded machine take longer
 * than Playwright's 30 s default. */
async function api(page, method, path, data) {
  const r = await page.context().request.fetch(`${serverUrl}${path}`, {
    method, data, headers: { origin: serverUrl }, timeout: 120_000,
  });
  return { status: r.status(), body: await r.json().catch(() => null) };
}

test("the fleet: a schedule closes a node and /nodes says when it is back, pools, a job goes round a paused node, a drain mid-job, a node killed and back with one webhook alert", { timeout: 300_000 }, async () => {
  assert.ok(farmId, "the fleet test ran first");
  const page = await browser.newPage();
  await page.setViewportSize({ width: 1280, height: 900 });
  const pageErrors = [];
  page.on("pageerror", (e) => pageErrors.push(String(e)));

  // The schedule, from the node's page: a maintenance window from a minute
  // ago, for an hour. The node stops taking jobs and says when it is back.
  await page.goto(`${serverUrl}/my-nodes/${farmId}`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  await page.locator("#schedule-status", { hasText: "No schedule" }).waitFor({ timeout: 30_000 });
  await page.locator("#schedule input[name=time_zone]").fill("UTC");
  const from = new Date(Date.now() - 60_000).toISOString().slice(0, 16);
  await page.locator("#schedule input[name=maintenance_from]").fill(from);
  await page.locator("#schedule input[name=maintenance_hours]").fill("1");
  await page.locator("#schedule input[name=maintenance_note]").fill("new fans");
  await page.locator("#add-maintenance").click();
  await page.locator("#schedule ul.maintenance li", { hasText: "new fans" }).waitFor();
  await page.locator("#save-schedule").click();
  await page.locator("#schedule [data-command-status=succeeded]").waitFor({ timeout: 30_000 });
  await page.locator("#schedule-status", { hasText: "Outside its hours: closed · opens in" }).waitFor({ timeout: 30_000 });
  // Pools (public) and tags (private) from the same page.
  await page.locator(".labels input[name=pools]").fill("e2e-farm");
  await page.locator("#save-pools").click();
  await page.locator(".labels [data-command-status=succeeded]").waitFor({ timeout: 30_000 });
  await page.locator(".labels input[name=tags]").fill("rack-1");
  await page.locator("#save-tags").click();
  await page.locator(".labels [data-command-status=succeeded]", { hasText: "set tags" }).waitFor({ timeout: 30_000 });
  assert.ok(await fits(page, 360), "the node's settings fit a phone");
  await page.screenshot({ path: join(artifacts, "fleet-node-settings-phone.png"), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });

  // The Nodes page: closed, and when it opens again; the pool filter.
  await page.goto(`${serverUrl}/`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  const row = page.locator(`tr.node-row[data-peer-id="${farmId}"]`);
  await row.locator(".badge.schedule", { hasText: "closed · opens in" }).waitFor({ timeout: 30_000 });
  await page.locator("input[name=pool]").fill("e2e-farm");
  await page.waitForFunction(() => document.querySelectorAll("tr.node-row").length === 1, null, { timeout: 30_000 });
  await row.locator(".chip.pool", { hasText: "e2e-farm" }).waitFor();
  // A job for that node is refused with when it opens.
  const refused = await api(page, "POST", "/api/v1/jobs", { model: "all-minilm-l6-v2", node: farmId, input: { texts: ["closed?"] } });
  assert.equal(refused.status, 503);
  assert.match(refused.body.error.message, /outside its schedule; it opens again at \d{4}-\d\d-\d\d \d\d:\d\d UTC/);
  // Open again: the maintenance window removed.
  await page.goto(`${serverUrl}/my-nodes/${farmId}`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  await page.locator("#schedule ul.maintenance li button").click();
  await page.locator("#save-schedule").click();
  await page.locator("#schedule-status", { hasText: "No schedule" }).waitFor({ timeout: 30_000 });

  // A second node of the farm, in the same pool from its command line:
  // both live on My nodes.
  const second = await farmNode(join(serverData, "..", "farm-2"), ["--enroll", farmToken, "--pool", "e2e-farm"]);
  const id2 = second.peer_id;
  await page.goto(`${serverUrl}/my-nodes`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  const card1 = page.locator(`li.fleet-node[data-node="${farmId}"]`);
  const card2 = page.locator(`li.fleet-node[data-node="${id2}"]`);
  await card1.locator(".badge.online").waitFor({ timeout: 60_000 });
  await card2.locator(".badge.online").waitFor({ timeout: 60_000 });
  await card1.locator(".chip.tag", { hasText: "rack-1" }).waitFor();
  await card2.locator("[data-gauge=cpu]").waitFor({ timeout: 30_000 });

  // Pause the first: a job for the pool goes to the second.
  await card1.locator("button.pause").click();
  await card1.locator("[data-admission=paused]").waitFor({ timeout: 30_000 });
  for (let i = 0; i < 100; i++) {
    const info = await (await fetch(`${serverUrl}/nodes/${farmId}`)).json();
    if (!info.accepting_jobs) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const routed = await api(page, "POST", "/api/v1/jobs", { model: "all-minilm-l6-v2", pool: "e2e-farm", input: { texts: ["round the paused one"] } });
  assert.equal(routed.status, 200, JSON.stringify(routed.body));
  assert.equal(routed.body.node_id, id2, "the paused node gets no job");
  await card1.locator("button.resume").click();
  await card1.locator("[data-admission]").waitFor({ state: "detached", timeout: 30_000 });

  // Drain the second mid-job: its running jobs finish, then it is drained.
  const texts = Array.from({ length: 64 }, (_, i) => `text ${i} ` + "the quick brown fox jumps over the lazy dog ".repeat(40));
  const running = [0, 1, 2, 3].map(() =>
    api(page, "POST", "/api/v1/jobs", { model: "all-minilm-l6-v2", node: id2, input: { texts } }));
  await page.waitForFunction(
    (id) => /^([4-9]|\d\d+) running/.test(document.querySelector(`li.fleet-node[data-node="${id}"] [data-gauge=jobs]`)?.textContent ?? ""),
    id2, { timeout: 60_000 });
  await card2.locator("button.drain").click();
  await card2.locator("[data-admission=draining]").waitFor({ timeout: 30_000 });
  for (const job of await Promise.all(running)) {
    assert.equal(job.status, 200, JSON.stringify(job.body));
    assert.equal(job.body.status, "succeeded");
  }
  await card2.locator("[data-admission=drained]").waitFor({ timeout: 60_000 });
  // The earnings export adds up to the ledger, to the millisatoshi: every
  // job these two farm nodes ran earned into this account.
  const csv = await (await page.context().request.get(`${serverUrl}/api/v1/fleet/earnings?format=csv`)).text();
  const rows = csv.trim().split("\n");
  const total = Number(rows[rows.length - 1].split(",").pop());
  const summed = rows.slice(1, -1).reduce((sum, r) => sum + Number(r.split(",").pop()), 0);
  const billing = (await api(page, "GET", "/api/v1/billing")).body;
  assert.ok(total > 0, csv);
  assert.equal(summed, total, "the lines add up to the total");
  assert.equal(total, billing.earned_total_msat, "the CSV equals the ledger's earnings");

  // SIGKILL the second, with a webhook for offline alerts: offline on
  // screen at once, one signed alert; back with the same key: online, one
  // card, and the alert resolved once.
  const calls = [];
  const hook = createServer((req, res) => {
    let body = "";
    req.on("data", (c) => (body += c));
    req.on("end", () => {
      calls.push({ headers: req.headers, body });
      res.end();
    });
  });
  await new Promise((r) => hook.listen(0, "127.0.0.1", r));
  hook.unref();
  const settings = await api(page, "PUT", "/api/v1/fleet/alert-settings", {
    webhook_url: `http://127.0.0.1:${hook.address().port}/infernet`,
    offline_after_secs: 5, gpu_temp_c: 85, failure_rate_pct: 50, unreachable_after_secs: 600,
  });
  assert.equal(settings.status, 200, JSON.stringify(settings.body));
  const secret = settings.body.webhook_secret;
  const killed = Date.now();
  process.kill(second.pid, "SIGKILL");
  await card2.locator(".badge.offline").waitFor({ timeout: 10_000 });
  // The promise: at once when the connection resets (TCP), else after
  // three silent telemetry intervals, at least 2 s (QUIC has no reset).
  const offlineAfter = Date.now() - killed;
  console.error(`offline on screen ${offlineAfter} ms after SIGKILL`);
  assert.ok(offlineAfter < 3_000, `offline on screen ${offlineAfter} ms after SIGKILL`);
  await page.locator("#fleet-alerts li.alert[data-kind=offline][data-state=firing]").waitFor({ timeout: 30_000 });
  for (let i = 0; i < 300 && calls.length < 1; i++) await new Promise((r) => setTimeout(r, 100));
  const check = (call) => {
    const want = "sha256=" + createHmac("sha256", secret).update(`${call.headers["x-infernet-timestamp"]}.${call.body}`).digest("hex");
    assert.equal(call.headers["x-infernet-signature"], want, "signed with the account's secret");
    return JSON.parse(call.body);
  };
  const fired = check(calls[0]);
  assert.equal(fired.type, "alert.fired");
  assert.equal(fired.alert.node_id, id2);
  const back = await farmNode(join(serverData, "..", "farm-2"));
  assert.equal(back.peer_id, id2);
  await card2.locator(".badge.online").waitFor({ timeout: 60_000 });
  for (let i = 0; i < 300 && calls.length < 2; i++) await new Promise((r) => setTimeout(r, 100));
  assert.equal(check(calls[1]).type, "alert.resolved");
  await new Promise((r) => setTimeout(r, 2_000));
  assert.equal(calls.length, 2, "one call when it fired, one when it resolved");
  assert.equal(await page.locator(`li.fleet-node[data-node="${id2}"]`).count(), 1, "no duplicate node");
  hook.close();
  await page.screenshot({ path: join(artifacts, "fleet-two-nodes.png"), fullPage: true });
  assert.deepEqual(pageErrors, []);
  await page.close();
});

test("every page fits a 360 px phone and a 1280 px desktop, its controls labelled, the menu usable by touch", { timeout: 240_000 }, async () => {
  // Signed in (the browser's profile keeps the session from the first test).
  const page = await browser.newPage();
  const errors = watchErrors(page);
  const shots = join(artifacts, "pages");
  mkdirSync(shots, { recursive: true });
  const jobs = await (await page.context().request.get(`${serverUrl}/api/v1/jobs?limit=1`)).json();
  assert.ok(jobs.jobs.length > 0, "the earlier tests ran jobs");
  const pages = {
    nodes: "/",
    node: `/node/${nodeId}`,
    run: "/run",
    jobs: "/jobs",
    job: `/jobs/${jobs.jobs[0].id}`,
    settings: "/settings",
    fleet: "/my-nodes",
    "fleet-node": `/my-nodes/${farmId}`,
    wallet: "/wallet",
    "sign-in": "/sign-in",
  };
  const problems = [];
  for (const [width, height] of [[360, 740], [1280, 800]]) {
    await page.setViewportSize({ width, height });
    for (const [name, path] of Object.entries(pages)) {
      await page.goto(`${serverUrl}${path}`);
      await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
      await page.locator("main h1, main .empty, main p").first().waitFor();
      await page.waitForLoadState("networkidle").catch(() => {});
      await page.screenshot({ path: join(shots, `${name}-${width}x${height}.png`), fullPage: true });
      if (!(await fits(page, width))) problems.push(`${name} scrolls sideways at ${width} px`);
      const unlabelled = await page.evaluate(() =>
        [...document.querySelectorAll("input:not([type=hidden]), select, textarea, button")]
          .filter((e) => e.getClientRects().length > 0)
          .filter((e) => {
            const named = e.labels?.length || e.getAttribute("aria-label") || e.getAttribute("aria-labelledby") || e.title;
            return !named && !(e.tagName === "BUTTON" && e.textContent.trim());
          })
          .map((e) => `${e.tagName.toLowerCase()}[name=${e.getAttribute("name")}]`),
      );
      if (unlabelled.length) problems.push(`${name} at ${width} px: unlabelled ${unlabelled.join(", ")}`);
      if (width === 360) {
        // Touch targets: every visible button at least 44 px high (links in
        // running text are exempt, as the guidelines say).
        const small = await page.evaluate(() =>
          [...document.querySelectorAll("main button, header button, main select, main input:not([type=checkbox]):not([type=radio])")]
            .filter((e) => e.getClientRects().length > 0 && e.getBoundingClientRect().height < 43.5)
            .map((e) => `${e.tagName.toLowerCase()}.${e.className} "${e.textContent.trim().slice(0, 20)}" (${Math.round(e.getBoundingClientRect().height)} px)`),
        );
        if (small.length) problems.push(`${name}: small touch targets ${small.slice(0, 6).join(", ")}`);
      }
    }
  }
  assert.deepEqual(problems, []);

  // On a phone the top bar folds into a menu that opens, navigates and closes.
  await page.setViewportSize({ width: 360, height: 740 });
  await page.goto(serverUrl);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  assert.equal(await page.locator("#main-nav").isVisible(), false);
  const toggle = page.locator("button.menu-toggle");
  assert.equal(await toggle.getAttribute("aria-expanded"), "false");
  await toggle.click();
  assert.equal(await toggle.getAttribute("aria-expanded"), "true");
  await page.locator("#main-nav a", { hasText: "Jobs" }).click();
  await page.waitForURL(/\/jobs$/);
  await page.locator("tr.job-row").first().waitFor();
  assert.equal(await page.locator("#main-nav").isVisible(), false, "the menu closes after navigating");
  // The jobs list is a list of cards on a phone, every cell named.
  const cell = page.locator("tr.job-row td").first();
  assert.equal(await cell.evaluate((td) => getComputedStyle(td, "::before").content), '"Job"');
  // Ids are short, with a button that copies the whole one.
  await page.context().grantPermissions(["clipboard-read", "clipboard-write"], { origin: serverUrl });
  const first = page.locator("tr.job-row").first();
  const jobLink = first.locator("td").first().locator(".id a");
  const fullId = await jobLink.getAttribute("title");
  assert.match(fullId, /^[0-9a-f]{32}$/);
  assert.ok((await jobLink.innerText()).length < fullId.length);
  await first.locator("button.copy").first().click();
  await first.locator("button.copy", { hasText: "✓" }).first().waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), fullId);
  assert.deepEqual(errors, []);
  await page.close();
});

test("lists longer than a page: the jobs and the nodes go page by page, newest first, none twice or missing", { timeout: 120_000 }, async () => {
  const page = await browser.newPage();
  const errors = watchErrors(page);
  // Every job of the account, from the API, newest first, by pages of 2.
  const all = [];
  let cursor = null;
  do {
    const r = await page.context().request.get(`${serverUrl}/api/v1/jobs?limit=2${cursor ? `&cursor=${cursor}` : ""}`);
    assert.equal(r.status(), 200);
    const body = await r.json();
    all.push(...body.jobs.map((j) => j.id));
    cursor = body.next_cursor;
  } while (cursor);
  assert.equal(new Set(all).size, all.length, "no job twice");
  const bad = await page.context().request.get(`${serverUrl}/api/v1/jobs?cursor=nonsense`);
  assert.equal(bad.status(), 400);
  assert.match((await bad.json()).error.message, /cursor/);
  // Enough jobs for a second page of the Jobs page (25 a page).
  for (let i = all.length; i < 27; i++) {
    const r = await api(page, "POST", "/api/v1/jobs", { model: "all-minilm-l6-v2", input: { texts: [`page filler ${i}`] } });
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  await page.goto(`${serverUrl}/jobs`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  await page.locator("tr.job-row").first().waitFor();
  const ids = async () => page.locator("tr.job-row td:first-child .id a").evaluateAll((as) => as.map((a) => a.title));
  const first = await ids();
  assert.equal(first.length, 25);
  await page.locator("nav.pager button.next").click();
  await page.locator("nav.pager", { hasText: "Page 2" }).waitFor();
  const second = await ids();
  assert.ok(second.length >= 2);
  assert.equal(first.filter((id) => second.includes(id)).length, 0, "pages do not overlap");
  await page.locator("nav.pager button.prev").click();
  await page.locator("nav.pager", { hasText: "Page 1" }).waitFor();
  assert.deepEqual(await ids(), first);

  // The wallet's history too (each job held and captured: more than a page).
  await page.goto(`${serverUrl}/wallet`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  const postings = async () => page.locator("#history li").evaluateAll((li) => li.map((l) => [l.dataset.kind, l.dataset.book]));
  await page.locator("#history li").first().waitFor();
  const newest = await postings();
  assert.equal(newest.length, 20);
  await page.locator("nav.pager button.next").click();
  await page.locator("nav.pager", { hasText: "Page 2" }).waitFor();
  const older = await postings();
  assert.equal(older.length, 20);
  const history = await (await page.context().request.get(`${serverUrl}/api/v1/billing/history?limit=40`)).json();
  assert.deepEqual([...newest, ...older], history.postings.map((p) => [p.kind, p.book]), "the two pages are the newest 40 postings");
  assert.deepEqual(errors, []);
  await page.close();
});

test("the app is installable as a PWA, its service worker takes control, and its Install button opens the browser's dialog", { timeout: 60_000 }, async () => {
  const page = await browser.newPage();
  await page.goto(serverUrl);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  const scope = await page.evaluate(async () => (await navigator.serviceWorker.ready).scope);
  assert.equal(scope, `${serverUrl}/`);
  const cdp = await page.context().newCDPSession(page);
  const manifest = await cdp.send("Page.getAppManifest");
  assert.equal(manifest.url, `${serverUrl}/manifest.webmanifest`);
  assert.deepEqual(manifest.errors, []);
  const { installabilityErrors } = await cdp.send("Page.getInstallabilityErrors");
  assert.deepEqual(installabilityErrors, []);
  // The in-app button comes with the browser's own offer
  // (`beforeinstallprompt`, which Chromium makes once the app is
  // installable) and hands the choice to the browser's dialog.
  await page.setViewportSize({ width: 1280, height: 800 });
  await page.locator("#install-app").waitFor({ timeout: 30_000 });
  const offered = await page.evaluate(() => window.__infernet.install?.constructor.name);
  assert.equal(offered, "BeforeInstallPromptEvent", "the browser's offer, kept by the page");
  await page.evaluate(() => {
    const offer = window.__infernet.install;
    const prompt = offer.prompt.bind(offer);
    offer.prompt = () => {
      window.__prompted = (window.__prompted ?? 0) + 1;
      return prompt();
    };
  });
  await page.locator("#install-app").click();
  assert.equal(await page.evaluate(() => window.__prompted), 1, "the browser's dialog was asked for");
  // An offer is good once: the button goes.
  await page.locator("#install-app").waitFor({ state: "detached" });
  await page.close();
});

test("offline: the installed app opens with the last nodes, jobs and fleet, marked offline and stale; a new version is offered, not forced", { timeout: 180_000 }, async () => {
  const page = await browser.newPage();
  await page.goto(serverUrl);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  await page.evaluate(async () => navigator.serviceWorker.ready);
  await page.locator(`tr.node-row[data-peer-id="${nodeId}"]`).waitFor();
  // Visited once with the service worker in control: its copy of each page
  // is kept (the account's own jobs and fleet too).
  const opened = async (path) => {
    await page.goto(`${serverUrl}${path}`);
    await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  };
  await opened("/jobs");
  await page.locator("tr.job-row").first().waitFor();
  const jobIds = await page.locator("tr.job-row td[data-label=Job] a").evaluateAll((a) => a.map((x) => x.getAttribute("href")));
  assert.ok(jobIds.length > 0);
  await opened("/my-nodes");
  await page.locator(`li.fleet-node[data-node="${farmId}"]`).waitFor();
  await opened("/");
  assert.ok(await page.evaluate(() => !!navigator.serviceWorker.controller));

  await page.context().setOffline(true);
  try {
    await page.reload();
    await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
    await page.locator("#offline-banner").waitFor();
    assert.ok(await page.locator(`tr.node-row[data-peer-id="${nodeId}"]`).isVisible(), "the last node list");
    // The page's refresh fails: the list stays, marked as not up to date.
    await page.locator("#nodes-stale").waitFor({ timeout: 15_000 });
    assert.ok(await page.locator(`tr.node-row[data-peer-id="${nodeId}"]`).isVisible());
    // The account's own jobs, as last seen, marked so.
    const errors = watchErrors(page);
    await opened("/jobs");
    await page.locator("#offline-banner").waitFor();
    await page.locator("#jobs-stale").waitFor({ timeout: 15_000 });
    assert.deepEqual(
      await page.locator("tr.job-row td[data-label=Job] a").evaluateAll((a) => a.map((x) => x.getAttribute("href"))),
      jobIds,
    );
    // A page never opened on this device says so.
    await page.goto(`${serverUrl}/jobs/${"0".repeat(32)}`);
    await page.locator("h1", { hasText: "You are offline" }).waitFor();
    // The fleet (a page whose code was not loaded yet: it comes from the
    // service worker too), its live stream lost, and the commands that
    // need the network say so.
    await opened("/my-nodes");
    await page.locator("#fleet-stale").waitFor({ timeout: 15_000 });
    assert.ok(await page.locator(`li.fleet-node[data-node="${farmId}"]`).isVisible());
    await page
      .locator("main p.stale", { hasText: "needs the network" })
      .waitFor({ timeout: 10_000 })
      .catch(async (e) => {
        throw new Error(`${e.message}\nerrors: ${errors.join("\n")}\nmain: ${await page.locator("main").innerHTML()}`);
      });
    assert.ok(await page.locator("#fleet-count").evaluate((e) => !e.textContent.includes("live")));
    await page.screenshot({ path: join(artifacts, "offline.png"), fullPage: true });
  } finally {
    await page.context().setOffline(false);
  }
  await page.locator("#offline-banner").waitFor({ state: "detached" });
  // Back online, the fleet page picks its stream up again by itself and
  // reads the whole fleet anew.
  await page.locator("#fleet-count", { hasText: "live" }).waitFor({ timeout: 30_000 });
  await page.locator("#fleet-stale").waitFor({ state: "detached" });
  assert.ok(await page.locator(`li.fleet-node[data-node="${farmId}"]`).isVisible());

  // A new version of the service worker waits until the user takes it.
  const sw = join(siteRoot, "sw.js");
  const original = readFileSync(sw, "utf8");
  writeFileSync(sw, `${original}\n// a new version\n`);
  try {
    await page.goto(serverUrl);
    await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
    const before = await page.evaluate(() => navigator.serviceWorker.controller.scriptURL);
    await page.evaluate(async () => (await navigator.serviceWorker.getRegistration()).update());
    await page.locator("#update-banner").waitFor({ timeout: 30_000 });
    // Not forced: the old version still runs this page.
    assert.ok(await page.evaluate(async () => !!(await navigator.serviceWorker.getRegistration()).waiting));
    await Promise.all([
      page.waitForEvent("load").catch(async (e) => {
        throw new Error(`${e.message}\n${await swState(page)}`);
      }),
      page.locator("#update-banner button", { hasText: "Reload" }).click(),
    ]);
    await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
    const after = await page.evaluate(async () => {
      const reg = await navigator.serviceWorker.getRegistration();
      return { waiting: !!reg.waiting, controller: navigator.serviceWorker.controller?.scriptURL };
    });
    assert.deepEqual(after, { waiting: false, controller: before });
    assert.equal(await page.locator("#update-banner").count(), 0);
  } finally {
    writeFileSync(sw, original);
  }
  await page.close();
});

test("revoking the key and signing out everywhere take effect at once", { timeout: 60_000 }, async () => {
  const page = passkeyPage;
  const errors = watchErrors(page);
  await page.goto(`${serverUrl}/settings`).catch(async (e) => {
    throw new Error(`${e.message}\n${await swState(page)}`);
  });
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  await page.locator("button.revoke-key").first().click();
  await page.locator("li.api-key .badge", { hasText: "revoked" }).waitFor();
  assert.equal(await withKey("/api/v1/account", apiKey), 401);
  await page.locator("#sign-out-everywhere").click();
  await page.waitForURL(/\/sign-in/);
  assert.equal(await withCookies(page, "/api/v1/account"), 401);
  assert.deepEqual(errors, []);
});
