// The local platform for the browser tests and benchmarks: the workspace's
// built binaries (`cargo build --workspace --bins`) and web app
// (`scripts/build-site.sh`), started as real processes on loopback ports
// the OS picks.
import { spawn } from "node:child_process";
import { join, dirname } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
export const targetDir = process.env.CARGO_TARGET_DIR ?? join(here, "..", "target");
export const siteRoot = process.env.INFERNET_SITE_ROOT ?? join(here, "..", "target", "site");

const children = [];

/** Starts one of the workspace's binaries and resolves with its one-line
 * JSON "ready" event (plus its `pid`); rejects with the end of its log if
 * it exits or is not ready within 3 minutes. */
export function startProcess(name, args) {
  const child = spawn(join(targetDir, "debug", name), args, {
    stdio: ["ignore", "pipe", "pipe"],
    env: { ...process.env, INFERNET_LOG: process.env.INFERNET_LOG ?? "info" },
  });
  children.push(child);
  const log = [];
  createInterface({ input: child.stderr }).on("line", (l) => {
    log.push(l);
    if (log.length > 200) log.shift();
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${name} did not start:\n${log.slice(-20).join("\n")}`)), 180_000);
    child.on("exit", (code) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited with ${code}:\n${log.slice(-20).join("\n")}`));
    });
    createInterface({ input: child.stdout }).on("line", (line) => {
      try {
        const event = JSON.parse(line);
        if (event.event === "ready") {
          clearTimeout(timer);
          resolve({ ...event, pid: child.pid });
        }
      } catch {
        /* not our line */
      }
    });
  });
}

/** The arguments of a server on loopback, its data in `dataDir`. */
export function serverArgs(dataDir, ...extra) {
  return [
    "--listen", "127.0.0.1:0", "--data-dir", dataDir,
    "--p2p-port", "0", "--p2p-host", "127.0.0.1", "--site-root", siteRoot,
    ...extra,
  ];
}

/** Stops every process started here. */
export function stopAll() {
  for (const c of children) c.kill("SIGTERM");
}
