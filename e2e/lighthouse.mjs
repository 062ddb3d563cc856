// The PWA benchmark: Lighthouse (mobile preset: a mid-range phone, slow 4G,
// 4x CPU slowdown, all simulated) against the local platform's Nodes page,
// in Debian's Chromium. Prints the category scores, the largest contentful
// paint and what the first visit transfers, against the goals (performance
// >= 90, accessibility >= 95, LCP < 2.5 s, < 400 KB on the wire).
// Run with scripts/bench-pwa.sh, which installs Lighthouse from npm.
import { mkdirSync, mkdtempSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, dirname } from "node:path";
import { fileURLToPath, pathToFileURL } from "node:url";
import { serverArgs, startProcess, stopAll } from "./platform.mjs";

const here = dirname(fileURLToPath(import.meta.url));
const lhDir = process.env.LIGHTHOUSE_DIR;
if (!lhDir) throw new Error("LIGHTHOUSE_DIR: where npm installed lighthouse (scripts/bench-pwa.sh sets it)");
const load = (path) => import(pathToFileURL(join(lhDir, "node_modules", path)).href);
const { default: lighthouse } = await load("lighthouse/core/index.js");
const chromeLauncher = await load("chrome-launcher/dist/index.js");

const data = mkdtempSync(join(tmpdir(), "infernet-lighthouse-"));
let chrome;
try {
  const server = await startProcess("server", serverArgs(join(data, "server")));
  const url = `${server.public_url}/`;
  // A node, so that the page has a row (its models are what it finds).
  if (process.env.INFERNET_MODELS_DIR) {
    await startProcess("infernet-node", [
      "--server", server.public_url, "--models-dir", process.env.INFERNET_MODELS_DIR,
      "--key-file", join(data, "node.key"), "--p2p-host", "127.0.0.1", "--device", "cpu",
    ]);
  }
  mkdirSync(join(data, "chromium"), { recursive: true });
  chrome = await chromeLauncher.launch({
    chromePath: process.env.CHROMIUM ?? "/usr/bin/chromium",
    chromeFlags: ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run"],
    userDataDir: join(data, "chromium"),
  });
  const runs = Number(process.env.RUNS ?? 3);
  const results = [];
  for (let i = 0; i < runs; i++) {
    const { lhr } = await lighthouse(url, {
      port: chrome.port,
      output: "json",
      logLevel: "error",
      onlyCategories: ["performance", "accessibility", "best-practices"],
    });
    results.push(lhr);
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const score = (c) => median(results.map((r) => Math.round((r.categories[c]?.score ?? 0) * 100)));
  const audit = (a) => median(results.map((r) => r.audits[a]?.numericValue ?? NaN));
  const perf = score("performance");
  const a11y = score("accessibility");
  const lcp = audit("largest-contentful-paint");
  const bytes = audit("total-byte-weight");
  writeFileSync(join(here, "artifacts", "lighthouse.json"), JSON.stringify(results.at(-1), null, 1));
  const goal = (ok) => (ok ? "ok" : "MISSED");
  console.log(`Lighthouse ${results[0].lighthouseVersion}, mobile preset, median of ${runs} runs, ${url}`);
  console.log(`  performance     ${String(perf).padStart(4)}   goal >= 90   ${goal(perf >= 90)}`);
  console.log(`  accessibility   ${String(a11y).padStart(4)}   goal >= 95   ${goal(a11y >= 95)}`);
  console.log(`  best practices  ${String(score("best-practices")).padStart(4)}`);
  console.log(`  LCP          ${(lcp / 1000).toFixed(2).padStart(7)} s goal < 2.5 s  ${goal(lcp < 2500)}`);
  console.log(`  FCP          ${(audit("first-contentful-paint") / 1000).toFixed(2).padStart(7)} s`);
  console.log(`  TBT          ${audit("total-blocking-time").toFixed(0).padStart(7)} ms`);
  console.log(`  transferred  ${(bytes / 1000).toFixed(1).padStart(7)} KB goal < 400 KB ${goal(bytes < 400_000)}`);
  const failed = Object.values(results.at(-1).audits)
    .filter((a) => a.score !== null && a.score < 0.9 && a.scoreDisplayMode !== "informative" && a.scoreDisplayMode !== "notApplicable")
    .map((a) => `${a.id} (${a.displayValue ?? a.score})`);
  if (failed.length) console.log(`  audits below 0.9: ${failed.join(", ")}`);
} finally {
  await chrome?.kill();
  stopAll();
}
