// The browser test: the real server (embedded SurrealDB), a real node serving
// all-MiniLM-L6-v2 with libtorch, and Debian's Chromium. Loads the app, waits
// for hydration, finds the node in the table, runs a job from the Run page,
// reads the result and its verified receipt, and checks installability.
import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { mkdtempSync, mkdirSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const targetDir = process.env.CARGO_TARGET_DIR ?? join(here, "..", "target");
const siteRoot = process.env.INFERNET_SITE_ROOT ?? join(here, "..", "target", "site");
const modelsDir = process.env.INFERNET_MODELS_DIR;
const artifacts = join(here, "artifacts");
mkdirSync(artifacts, { recursive: true });

const children = [];
let browser; // a BrowserContext with a persistent profile
let serverUrl;
let nodeId;

/** Starts a binary and resolves with its one-line JSON "ready" event. */
function startProcess(name, args) {
  const child = spawn(join(targetDir, "debug", name), args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, INFERNET_LOG: "info" },
  });
  children.push(child);
  const log = [];
  createInterface({ input: child.stderr }).on("line", (l) => log.push(l));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${log.slice(-20).join("\n")}`)), 180_000);
    child.on("exit", (code) => reject(new Error(`${name} exited with ${code}:\n${log.slice(-20).join("\n")}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        const event = JSON.parse(line);
        if (event.event === "ready") {
          clearTimeout(timer);
          resolve(event);
        }
      } catch {
        /* not our line */
      }
    });
  });
}

before(async () => {
  assert.ok(modelsDir, "INFERNET_MODELS_DIR must point at the exported models (run scripts/setup.sh)");
  const data = mkdtempSync(join(tmpdir(), "infernet-e2e-"));
  const server = await startProcess("server", [
    "--listen", "127.0.0.1:0", "--data-dir", join(data, "server"),
    "--p2p-port", "0", "--p2p-host", "127.0.0.1", "--site-root", siteRoot,
  ]);
  serverUrl = server.http;
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
  for (const c of children) c.kill("SIGTERM");
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

  assert.deepEqual(consoleErrors, []);
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
  await page.locator("input[name=max_tokens]").fill("24");
  await page.locator("input[name=max_tokens]").dispatchEvent("change");

  // Count how often the reply grows: it streams in several pieces.
  await page.evaluate(() => {
    window.__growths = 0;
    new MutationObserver(() => window.__growths++).observe(document.querySelector(".chat .messages"), {
      subtree: true, childList: true, characterData: true,
    });
  });
  await page.getByRole("button", { name: "Send" }).click();
  const receipt = page.getByTestId("receipt");
  await receipt.waitFor({ timeout: 120_000 });
  assert.match(await receipt.innerText(), /signature verified/);
  const tokens = Number((await receipt.innerText()).match(/(\d+) output tokens/)[1]);
  assert.ok(tokens >= 1 && tokens <= 24, `${tokens} output tokens`);
  assert.match(await page.getByTestId("job-result").innerText(), /sat/);
  const reply = await page.locator(".chat .message.assistant pre").innerText();
  const generated = await page.getByTestId("generated").innerText();
  assert.ok(reply.length > 0, "the reply is shown");
  assert.equal(reply, generated, "the streamed reply is the job's output");
  const growths = await page.evaluate(() => window.__growths);
  assert.ok(growths > 3, `the reply streamed in pieces (${growths} updates)`);
  await page.screenshot({ path: join(artifacts, "chat.png"), fullPage: true });
  assert.deepEqual(consoleErrors, []);
});

test("the app is installable as a PWA and its service worker takes control", { timeout: 60_000 }, async () => {
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
});
