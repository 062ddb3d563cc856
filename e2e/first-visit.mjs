// What a first visit downloads: starts the server (and a node, so the
// Nodes page has a row, when INFERNET_MODELS_DIR is set), opens the Nodes page in a fresh Chromium profile,
// and prints every response's transfer size (bytes on the wire, after
// compression) and the total. Run from e2e/ after scripts/build-site.sh and
// `cargo build --workspace --bins`:  node first-visit.mjs
import { mkdtempSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { chromium } from "playwright-core";
import { serverArgs, startProcess, stopAll } from "./platform.mjs";

const data = mkdtempSync(join(tmpdir(), "infernet-first-visit-"));

try {
  const server = await startProcess("server", serverArgs(join(data, "server")));
  if (process.env.INFERNET_MODELS_DIR) {
    await startProcess("infernet-node", [
      "--server", server.public_url, "--models-dir", process.env.INFERNET_MODELS_DIR,
      "--key-file", join(data, "node.key"), "--p2p-host", "127.0.0.1", "--device", "cpu",
    ]);
  }
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
  stopAll();
}
