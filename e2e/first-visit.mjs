// What a first visit downloads: starts the server (and a node, so the
// Nodes page has a row), opens the Nodes page in a fresh Chromium profile,
// and prints every response's transfer size (bytes on the wire, after
// compression) and the total. Run from e2e/ after scripts/build-site.sh and
// `cargo build --workspace --bins`:  node first-visit.mjs
import { spawn } from "node:child_process";
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { chromium } from "playwright-core";

const here = dirname(fileURLToPath(import.meta.url));
const targetDir = process.env.CARGO_TARGET_DIR ?? join(here, "..", "target");
const siteRoot = process.env.INFERNET_SITE_ROOT ?? join(here, "..", "target", "site");
const data = mkdtempSync(join(tmpdir(), "infernet-first-visit-"));
const children = [];

function start(name, args) {
  const child = spawn(join(targetDir, "debug", name), args, { stdio: ["ignore", "pipe", "ignore"] });
  children.push(child);
  return new Promise((resolve, reject) => {
    child.on("exit", (code) => reject(new Error(`${name} exited with ${code}`)));
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        const event = JSON.parse(line);
        if (event.event === "ready") resolve(event);
      } catch {
        /* not our line */
      }
    });
  });
}

try {
  const server = await start("server", [
    "--listen", "127.0.0.1:0", "--data-dir", join(data, "server"),
    "--p2p-port", "0", "--p2p-host", "127.0.0.1", "--site-root", siteRoot,
  ]);
  const url = server.public_url;
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic"],
  });
  const context = await browser.newContext({ viewport: { width: 360, height: 740 } });
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  await cdp.send("Network.enable");
  const responses = new Map();
  cdp.on("Network.responseReceived", (e) => {
    responses.set(e.requestId, {
      url: e.response.url,
      encoding: e.response.headers["content-encoding"] ?? e.response.headers["Content-Encoding"] ?? "",
    });
  });
  cdp.on("Network.loadingFinished", (e) => {
    const r = responses.get(e.requestId);
    if (r) r.bytes = e.encodedDataLength;
  });
  const started = Date.now();
  await page.goto(`${url}/`);
  await page.locator("body[data-hydrated=true]").waitFor({ timeout: 60_000 });
  await page.waitForLoadState("networkidle");
  const hydrated = Date.now() - started;
  let total = 0;
  for (const r of [...responses.values()].sort((a, b) => (b.bytes ?? 0) - (a.bytes ?? 0))) {
    total += r.bytes ?? 0;
    const path = r.url.replace(url, "");
    console.log(`${String(r.bytes ?? 0).padStart(9)} B  ${(r.encoding || "identity").padEnd(8)} ${path}`);
  }
  console.log(`first visit of the Nodes page: ${(total / 1024).toFixed(1)} KiB transferred in ${responses.size} responses; hydrated after ${hydrated} ms (loopback, debug server)`);
  await browser.close();
} finally {
  for (const c of children) c.kill("SIGTERM");
}
