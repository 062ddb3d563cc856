// Another libp2p implementation finds an Infernet node by its model's CID:
// js-libp2p (npm) dials a real node and asks its DHT for the providers of
// the CIDv1 (raw, sha2-256) of the MiniLM model file with the standard
// `findProviders`, over Infernet's Kademlia protocol id. Run by
// scripts/test.sh after the browser test; `node dht-interop.mjs` alone
// after `cargo build --workspace --bins`.
import assert from "node:assert/strict";
import { createHash } from "node:crypto";
import { mkdtempSync, readFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { startProcess, serverArgs, stopAll } from "./platform.mjs";

// Node 20 lacks Promise.withResolvers, which js-libp2p 3 calls at run time.
Promise.withResolvers ??= function () {
  let resolve, reject;
  const promise = new Promise((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
};
const { createLibp2p } = await import("libp2p");
const { tcp } = await import("@libp2p/tcp");
const { noise } = await import("@chainsafe/libp2p-noise");
const { yamux } = await import("@chainsafe/libp2p-yamux");
const { kadDHT } = await import("@libp2p/kad-dht");
const { identify } = await import("@libp2p/identify");
const { ping } = await import("@libp2p/ping");
const { multiaddr } = await import("@multiformats/multiaddr");
const { CID } = await import("multiformats/cid");
const Digest = await import("multiformats/hashes/digest");

const modelsDir = process.env.INFERNET_MODELS_DIR;
assert.ok(modelsDir, "INFERNET_MODELS_DIR must point at the exported models (run scripts/setup.sh)");
const data = mkdtempSync(join(tmpdir(), "infernet-dht-"));
let js;
try {
  const server = await startProcess("server", serverArgs(join(data, "server")));
  const node = await startProcess("infernet-node", [
    "--server", server.public_url, "--models-dir", modelsDir, "--key-file", join(data, "node.key"),
    "--p2p-host", "127.0.0.1", "--device", "cpu",
  ]);
  const tcpAddr = node.p2p.find((a) => a.includes("/tcp/"));
  const file = readFileSync(join(modelsDir, "all-minilm-l6-v2", "model.pt"));
  const sha256 = createHash("sha256").update(file).digest();
  // CIDv1, raw codec (0x55), sha2-256 multihash (0x12).
  const cid = CID.createV1(0x55, Digest.create(0x12, sha256));

  js = await createLibp2p({
    transports: [tcp()],
    connectionEncrypters: [noise()],
    streamMuxers: [yamux()],
    services: {
      identify: identify(),
      ping: ping(),
      dht: kadDHT({ protocol: "/infernet/kad/1.0.0", clientMode: true }),
    },
  });
  await js.start();
  const conn = await js.dial(multiaddr(`${tcpAddr}/p2p/${node.peer_id}`));
  // As a peer it bootstrapped from: the DHT's first contact.
  await js.services.dht.routingTable.add(conn.remotePeer);
  const found = new Set();
  const deadline = Date.now() + 30_000;
  while (!found.has(node.peer_id) && Date.now() < deadline) {
    try {
      for await (const p of js.contentRouting.findProviders(cid, { signal: AbortSignal.timeout(5_000) })) {
        found.add(p.id.toString());
      }
    } catch {
      // Not there yet: the node puts its records as its models load.
    }
    if (!found.has(node.peer_id)) await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(found.has(node.peer_id), `js-libp2p did not find ${node.peer_id} for ${cid}`);
  console.log(`js-libp2p found node ${node.peer_id} as a provider of ${cid} (the MiniLM model file)`);
} finally {
  await js?.stop();
  stopAll();
}
process.exit(0);
