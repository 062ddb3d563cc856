// Infernet's browser wallet: a self-custodial Lightning wallet (the Breez
// SDK, Spark, web build) that lives in this browser. The Wallet page loads
// this module only when asked, and it loads the SDK (≈ 4.7 MB gzipped) only
// then: never on first paint.
//
// Two kinds of wallet. A passkey wallet is derived, by the SDK's passkey
// client, from the WebAuthn PRF output of the account's passkey (this site's
// own relying party): no words to write down, nothing secret in storage, and
// the same wallet wherever the passkey is (synced passkeys, or a security
// key). A words wallet's seed is a BIP39 mnemonic kept in this browser's
// storage; the backup step shows the words once, and a wallet can be
// restored from them. Balance,
// receive (BOLT11 with a QR code), send (BOLT11, Lightning address,
// LNURL-pay), the payment list, and "Top up Infernet": pay the server's top-up
// invoice from this wallet in one click.
//
// mount(element, {network, apiKey}) renders into `element`. After a top-up
// it dispatches `infernet:billing-changed` on `window`.

const SDK_URL = "/vendor/breez-sdk-spark/index.js";
const PASSKEY_URL = "/vendor/breez-sdk-spark/passkey-prf-provider/index.js";
const QR_URL = "/vendor/qrcode/qrcode.mjs";
const WORDS_URL = "/wallet/bip39-english.txt";
const SEED_KEY = "infernet.wallet.mnemonic";
const BACKED_UP_KEY = "infernet.wallet.backed-up";
// The passkey a passkey wallet came from (its credential id, base64url: not
// a secret), so the next unlock asks for that one and no other.
const PASSKEY_KEY = "infernet.wallet.passkey";
// The SDK's wallet label: a passkey's PRF outputs for it give the seed.
const PASSKEY_LABEL = "Infernet";

let sdkModule; // the SDK, once loaded
let sdk; // the connected wallet

const el = (tag, attrs = {}, ...children) => {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (k === "onclick" || k === "onsubmit") node.addEventListener(k.slice(2), v);
    else if (v !== undefined && v !== null) node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
};

const sats = (n) => `${Number(n).toLocaleString("en")} sat`;

/** A new 12-word BIP39 mnemonic from 128 random bits. */
async function newMnemonic() {
  const words = (await (await fetch(WORDS_URL)).text()).trim().split("\n");
  if (words.length !== 2048) throw new Error("the word list did not load");
  const entropy = crypto.getRandomValues(new Uint8Array(16));
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", entropy));
  // 128 bits of entropy + 4 bits of checksum = 12 × 11 bits.
  let bits = "";
  for (const b of entropy) bits += b.toString(2).padStart(8, "0");
  bits += hash[0].toString(2).padStart(8, "0").slice(0, 4);
  const out = [];
  for (let i = 0; i < 12; i++) out.push(words[parseInt(bits.slice(i * 11, i * 11 + 11), 2)]);
  return out.join(" ");
}

/** Checks a typed mnemonic against the word list and its checksum. */
async function checkMnemonic(text) {
  const words = (await (await fetch(WORDS_URL)).text()).trim().split("\n");
  const typed = text.trim().toLowerCase().split(/\s+/);
  if (![12, 15, 18, 21, 24].includes(typed.length)) throw new Error("a backup is 12 to 24 words");
  let bits = "";
  for (const w of typed) {
    const i = words.indexOf(w);
    if (i < 0) throw new Error(`"${w}" is not a backup word`);
    bits += i.toString(2).padStart(11, "0");
  }
  const entBits = (typed.length * 11 * 32) / 33;
  const entropy = new Uint8Array(entBits / 8);
  for (let i = 0; i < entropy.length; i++) entropy[i] = parseInt(bits.slice(i * 8, i * 8 + 8), 2);
  const hash = new Uint8Array(await crypto.subtle.digest("SHA-256", entropy));
  const want = hash[0].toString(2).padStart(8, "0").slice(0, typed.length / 3);
  if (bits.slice(entBits) !== want) throw new Error("the words do not check out: a typo?");
  return typed.join(" ");
}

async function loadSdk() {
  if (!sdkModule) {
    sdkModule = await import(SDK_URL);
    await sdkModule.default();
  }
  return sdkModule;
}

const b64url = (bytes) => btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
const fromB64url = (s) => Uint8Array.from(atob(s.replace(/-/g, "+").replace(/_/g, "/")), (c) => c.charCodeAt(0));

async function connect(network, apiKey, mnemonic) {
  const m = await loadSdk();
  const config = m.defaultConfig(network);
  if (apiKey) config.apiKey = apiKey;
  // Each wallet keeps its own SDK storage: a fingerprint of its seed (not
  // the seed) names it, so two wallets in one browser never mix payments.
  const digest = new Uint8Array(await crypto.subtle.digest("SHA-256", new TextEncoder().encode(mnemonic)));
  const tag = Array.from(digest.slice(0, 6), (b) => b.toString(16).padStart(2, "0")).join("");
  sdk = await m.connect({ config, seed: { type: "mnemonic", mnemonic }, storageDir: `infernet-wallet-${network}-${tag}` });
  return sdk;
}

/** Whether this browser can ask a passkey for a PRF output at all. */
function passkeysAvailable() {
  return typeof window !== "undefined" && !!window.PublicKeyCredential && !!navigator.credentials;
}

/** The passkey wallet's mnemonic: one WebAuthn ceremony with this site's
 * passkey (the account's), its PRF outputs turned into a seed by the SDK's
 * passkey client. `credentialId` (base64url) pins the passkey used before.
 * Returns the mnemonic and the credential id that answered. */
async function passkeyMnemonic(apiKey, credentialId) {
  const m = await loadSdk();
  const { PasskeyProvider } = await import(PASSKEY_URL);
  const provider = new PasskeyProvider({ rpId: location.hostname, rpName: "Infernet" }, { hints: ["client-device"] });
  const client = new m.PasskeyClient(provider, apiKey || undefined, { defaultLabel: PASSKEY_LABEL });
  try {
    // With a label, sign-in is the SDK's fast path: one ceremony and no
    // label-store (Nostr) round trip, so it works wherever the passkey does.
    const { wallet, credential } = await client.signIn({
      label: PASSKEY_LABEL,
      allowCredentials: credentialId ? [fromB64url(credentialId)] : undefined,
    });
    if (wallet.seed.type !== "mnemonic") throw new Error("the passkey gave no wallet seed");
    const id = credential?.credentialId ? b64url(new Uint8Array(credential.credentialId)) : credentialId;
    return { mnemonic: wallet.seed.mnemonic, credentialId: id };
  } catch (e) {
    throw passkeyError(e);
  } finally {
    client.free?.();
  }
}

/** The SDK's and the browser's passkey errors, in words. */
function passkeyError(e) {
  const text = String(e?.message ?? e);
  if (/prf/i.test(text) && /support/i.test(text)) {
    return new Error(
      "This passkey cannot make a wallet (its authenticator has no PRF support). Add a new passkey in Settings, or use backup words.",
    );
  }
  if (e?.name === "PasskeyUserCancelledError" || e?.name === "NotAllowedError" || /cancel/i.test(text)) {
    return new Error("The passkey request was cancelled or timed out.");
  }
  if (e?.name === "PasskeyCredentialNotFoundError" || /not found/i.test(text)) {
    return new Error("No passkey for this site on this device: sign in with your passkey first, or use backup words.");
  }
  return e instanceof Error ? e : new Error(text);
}

async function qrSvg(text) {
  const { qrcode } = await import(QR_URL);
  const qr = qrcode(0, "L");
  qr.addData(text.toUpperCase(), "Alphanumeric");
  qr.make();
  return qr.createSvgTag({ cellSize: 4, margin: 4, scalable: true, alt: "QR code of the invoice" });
}

/** Pays `input` (BOLT11, Lightning address, LNURL-pay) for `amountSat` if
 * it names no amount. */
async function pay(input, amountSat) {
  const parsed = await sdk.parse(input.trim());
  if (parsed.type === "lightningAddress" || parsed.type === "lnurlPay") {
    if (!amountSat) throw new Error("say how many sat to send");
    const payRequest = parsed.type === "lightningAddress" ? parsed.payRequest : parsed;
    const prepared = await sdk.prepareLnurlPay({ amount: BigInt(amountSat), payRequest });
    return sdk.lnurlPay({ prepareResponse: prepared });
  }
  const prepared = await sdk.prepareSendPayment({
    paymentRequest: { type: "input", input: input.trim() },
    amount: amountSat ? BigInt(amountSat) : undefined,
  });
  return sdk.sendPayment({ prepareResponse: prepared });
}

/** Renders the wallet into `root`. */
export async function mount(root, { network, apiKey } = {}) {
  root.replaceChildren(el("p", { class: "muted", id: "wallet-loading" }, "Loading the wallet…"));
  const net = network === "bitcoin" ? "mainnet" : network === "regtest" ? "regtest" : null;
  if (!net) {
    root.replaceChildren(el("p", { class: "error" }, `The browser wallet does not run on ${network}.`));
    return;
  }
  const status = el("p", { class: "muted", id: "wallet-status", role: "status" });
  const fail = (e) => {
    status.className = "error";
    status.textContent = String(e?.message ?? e);
  };
  try {
    await loadSdk();
  } catch (e) {
    root.replaceChildren(el("p", { class: "error" }, `The wallet could not load: ${e}`));
    return;
  }
  const env = { root, net, apiKey, status, fail };
  const passkey = localStorage.getItem(PASSKEY_KEY);
  if (passkey) {
    renderUnlock(env, passkey);
    return;
  }
  const stored = localStorage.getItem(SEED_KEY);
  if (!stored) {
    renderSetup(env);
    return;
  }
  try {
    await connect(net, apiKey, stored);
  } catch (e) {
    root.replaceChildren(status);
    fail(e);
    return;
  }
  renderWallet(env, "words");
}

/** Derives the passkey wallet (one passkey prompt) and opens it. */
async function openPasskeyWallet(env, credentialId) {
  const { root, net, apiKey, status } = env;
  status.className = "muted";
  status.textContent = "Asking your passkey…";
  const derived = await passkeyMnemonic(apiKey, credentialId);
  status.textContent = "Opening the wallet…";
  await connect(net, apiKey, derived.mnemonic);
  if (derived.credentialId) localStorage.setItem(PASSKEY_KEY, derived.credentialId);
  status.textContent = "";
  renderWallet(env, "passkey");
  return root;
}

/** A passkey wallet is never stored: each visit asks the passkey again. */
function renderUnlock(env, credentialId) {
  const { root, status, fail } = env;
  const unlock = el("button", { id: "wallet-unlock", type: "button" }, "Unlock with your passkey");
  unlock.addEventListener("click", () => openPasskeyWallet(env, credentialId).catch(fail));
  const forget = el("button", { id: "wallet-forget", type: "button", class: "secondary" }, "Use another wallet");
  forget.addEventListener("click", () => {
    localStorage.removeItem(PASSKEY_KEY);
    renderSetup(env);
  });
  root.replaceChildren(
    el("p", {}, "Your wallet comes from your passkey: unlock it to see your balance and pay."),
    el("div", { class: "row" }, unlock, forget),
    status,
  );
}

function renderSetup(env) {
  const { root, net, apiKey, status, fail } = env;
  const create = el("button", { id: "wallet-create", type: "button", class: passkeysAvailable() ? "secondary" : undefined }, "Create with backup words");
  const restoreWords = el("textarea", { id: "wallet-restore-words", rows: "3", placeholder: "your 12 to 24 backup words", "aria-label": "Backup words" });
  const restore = el("button", { id: "wallet-restore", type: "button", class: "secondary" }, "Restore");
  create.addEventListener("click", async () => {
    try {
      const mnemonic = await newMnemonic();
      const words = el("ol", { id: "wallet-words", class: "words" }, ...mnemonic.split(" ").map((w) => el("li", {}, w)));
      const done = el("button", { id: "wallet-backed-up", type: "button" }, "I wrote them down");
      done.addEventListener("click", async () => {
        localStorage.setItem(SEED_KEY, mnemonic);
        localStorage.setItem(BACKED_UP_KEY, "1");
        root.replaceChildren(el("p", { class: "muted" }, "Opening the wallet…"));
        try {
          await connect(net, apiKey, mnemonic);
          renderWallet(env, "words");
        } catch (e) {
          root.replaceChildren(status);
          fail(e);
        }
      });
      root.replaceChildren(
        el("h3", {}, "Your backup words"),
        el("p", {}, "Write these words down, in order, and keep them safe: they are the only way to restore this wallet. Infernet never sees them."),
        words,
        done,
      );
    } catch (e) {
      fail(e);
    }
  });
  restore.addEventListener("click", async () => {
    try {
      const mnemonic = await checkMnemonic(restoreWords.value);
      localStorage.setItem(SEED_KEY, mnemonic);
      localStorage.setItem(BACKED_UP_KEY, "1");
      await connect(net, apiKey, mnemonic);
      renderWallet(env, "words");
    } catch (e) {
      fail(e);
    }
  });
  const choices = [create];
  const intro = [el("p", {}, "A Lightning wallet that lives in this browser: pay Infernet (or anyone) from it, receive into it.")];
  if (passkeysAvailable()) {
    const withPasskey = el("button", { id: "wallet-passkey", type: "button" }, "Use my passkey");
    withPasskey.addEventListener("click", () => openPasskeyWallet(env, null).catch(fail));
    choices.unshift(withPasskey);
    intro.push(
      el(
        "p",
        { class: "muted" },
        "With your passkey, the wallet is derived from the passkey you sign in with: no words to write down or lose, and the same wallet on any device that has the passkey. With backup words, the wallet lives in this browser and the words restore it.",
      ),
    );
  }
  root.replaceChildren(
    ...intro,
    el("div", { class: "row" }, ...choices),
    el("details", {}, el("summary", {}, "Restore from backup words"), restoreWords, restore),
    status,
  );
}

function renderWallet(env, kind) {
  const { root, status, fail } = env;
  const balance = el("strong", { id: "wallet-balance" }, "…");
  const identity = el("code", { id: "wallet-id", class: "invoice" }, "…");
  const payments = el("ul", { id: "wallet-payments", class: "payments" });
  const refresh = async () => {
    try {
      const info = await sdk.getInfo({ ensureSynced: false });
      balance.textContent = sats(info.balanceSats);
      identity.textContent = info.identityPubkey;
      const list = await sdk.listPayments({ limit: 20 });
      payments.replaceChildren(
        ...(list.payments.length
          ? list.payments.map((p) =>
              el("li", {}, `${p.paymentType === "send" ? "−" : "+"}${sats(p.amount)} · ${p.status} · ${new Date(p.timestamp * 1000).toLocaleString()}`),
            )
          : [el("li", { class: "muted" }, "No payments yet.")]),
      );
    } catch (e) {
      fail(e);
    }
  };

  // Receive: an invoice for an amount, with its QR code.
  const recvAmount = el("input", { type: "number", min: "1", id: "wallet-receive-amount", "aria-label": "Amount to receive, sat", placeholder: "sat" });
  const recvOut = el("div", { id: "wallet-receive-invoice" });
  const recv = el("button", { type: "button", id: "wallet-receive" }, "Receive");
  recv.addEventListener("click", async () => {
    status.textContent = "Making an invoice…";
    status.className = "muted";
    try {
      const r = await sdk.receivePayment({
        paymentMethod: { type: "bolt11Invoice", description: "Infernet browser wallet", amountSats: Number(recvAmount.value) || undefined },
      });
      const qr = el("div", { class: "qr" });
      qr.innerHTML = await qrSvg(r.paymentRequest);
      recvOut.replaceChildren(qr, el("code", { class: "invoice" }, r.paymentRequest));
      status.textContent = "";
    } catch (e) {
      fail(e);
    }
  });

  // Send: BOLT11, Lightning address or LNURL-pay.
  const sendTo = el("input", { type: "text", id: "wallet-send-to", "aria-label": "Invoice, Lightning address or LNURL", placeholder: "lnbc… or name@domain" });
  const sendAmount = el("input", { type: "number", min: "1", id: "wallet-send-amount", "aria-label": "Amount to send, sat", placeholder: "sat (if the invoice names none)" });
  const send = el("button", { type: "button", id: "wallet-send" }, "Send");
  send.addEventListener("click", async () => {
    status.textContent = "Sending…";
    status.className = "muted";
    try {
      await pay(sendTo.value, Number(sendAmount.value) || undefined);
      status.textContent = "Sent.";
      await refresh();
    } catch (e) {
      fail(e);
    }
  });

  // Top up Infernet: the server's invoice, paid from this wallet.
  const topAmount = el("input", { type: "number", min: "1", id: "wallet-topup-amount", "aria-label": "Top-up amount, sat", value: "10000" });
  const top = el("button", { type: "button", id: "wallet-topup" }, "Top up Infernet");
  top.addEventListener("click", async () => {
    status.textContent = "Asking Infernet for an invoice…";
    status.className = "muted";
    try {
      const r = await fetch("/api/v1/billing/topups", {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify({ amount_msat: Number(topAmount.value) * 1000 }),
      });
      const topup = await r.json();
      if (!r.ok) throw new Error(topup?.error?.message ?? `the server answered ${r.status}`);
      status.textContent = "Paying…";
      await pay(topup.invoice);
      status.textContent = "Paid: Infernet credits it as soon as the payment settles.";
      window.dispatchEvent(new CustomEvent("infernet:billing-changed", { detail: topup }));
      await refresh();
    } catch (e) {
      fail(e);
    }
  });

  // Take the wallet off this browser: a passkey wallet comes back with the
  // passkey; a words wallet only with its words, so that asks first.
  const forget = el("button", { type: "button", id: "wallet-forget", class: "secondary" }, "Remove from this browser");
  forget.addEventListener("click", async () => {
    if (kind === "words" && !confirm("Remove this wallet from this browser? Only your backup words can restore it.")) return;
    try {
      await sdk?.disconnect();
    } catch {
      /* already gone */
    }
    sdk = undefined;
    localStorage.removeItem(PASSKEY_KEY);
    localStorage.removeItem(SEED_KEY);
    localStorage.removeItem(BACKED_UP_KEY);
    status.textContent = "";
    renderSetup(env);
  });

  root.replaceChildren(
    el("p", {}, "Balance: ", balance),
    el("p", { class: "muted" }, kind === "passkey" ? "From your passkey · wallet " : "From backup words · wallet ", identity),
    el("div", { class: "row" }, topAmount, top),
    el("h3", {}, "Receive"),
    el("div", { class: "row" }, recvAmount, recv),
    recvOut,
    el("h3", {}, "Send"),
    el("div", { class: "row" }, sendTo, sendAmount, send),
    status,
    el("h3", {}, "Payments"),
    payments,
    el("div", { class: "row" }, forget),
  );
  refresh();
}
