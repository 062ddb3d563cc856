// Infernet's service worker: keeps the app shell (wasm, JS, CSS, icons and
// the last rendered pages) so the app opens offline. API calls and server
// functions always go to the network: prices and results must be live.
const CACHE = "infernet-shell-__BUILD_ID__";
const SHELL = [
  "/",
  "/pkg/app.js",
  "/pkg/app_bg.wasm",
  "/pkg/app.css",
  "/manifest.webmanifest",
  "/icons/icon-192.png",
  "/icons/icon-512.png",
];

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener("activate", (event) => {
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

function isLive(url) {
  return url.pathname.startsWith("/api/") || url.pathname.startsWith("/nodes") || url.pathname === "/healthz";
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin || isLive(url)) return;

  if (req.mode === "navigate") {
    // Pages: the network first (they are server-rendered with live data),
    // the cached copy when offline.
    event.respondWith(
      fetch(req)
        .then((res) => {
          const copy = res.clone();
          caches.open(CACHE).then((c) => c.put(req, copy));
          return res;
        })
        .catch(() => caches.match(req).then((hit) => hit || caches.match("/"))),
    );
    return;
  }
  // Static assets: named per build above, so the cache is always right.
  event.respondWith(caches.match(req).then((hit) => hit || fetch(req)));
});
