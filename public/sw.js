// Infernet's service worker: keeps the app shell (wasm, JS, CSS, icons) and
// the last copy of each page the app rendered, so that the installed app
// opens offline with the last data it saw (the page says it is offline).
// API calls and server functions always go to the network: prices and
// results must be live.
//
// A new version waits until the user accepts it (the app offers "Reload to
// update"), so nobody is switched to new code in the middle of a task.
const SHELL_CACHE = "infernet-shell-__BUILD_ID__";
const PAGES_CACHE = "infernet-pages";
const SHELL = __SHELL_FILES__;

self.addEventListener("install", (event) => {
  event.waitUntil(caches.open(SHELL_CACHE).then((c) => c.addAll(SHELL)));
});

self.addEventListener("message", (event) => {
  if (event.data === "skip-waiting") self.skipWaiting();
});

self.addEventListener("activate", (event) => {
  // Pages kept by an older version name its assets: they go with it.
  event.waitUntil(
    caches
      .keys()
      .then((keys) => Promise.all(keys.filter((k) => k !== SHELL_CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

// A page never opened before, asked for offline: say so (another page's
// copy would not match its address).
function notSaved() {
  const html =
    '<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">' +
    '<title>Offline · Infernet</title><style>body{font:16px/1.5 system-ui,sans-serif;background:#0f172a;color:#e2e8f0;padding:1.5rem}a{color:#38bdf8}</style></head>' +
    '<body><h1>You are offline</h1><p>This page was not saved on this device. The pages you opened before are here without the network.</p>' +
    '<p><a href="/">Open the Nodes page</a></p></body></html>';
  return new Response(html, { status: 503, headers: { "content-type": "text/html; charset=utf-8" } });
}

function isLive(url) {
  return (
    url.pathname.startsWith("/api/") ||
    url.pathname.startsWith("/nodes") ||
    url.pathname.startsWith("/v1/") ||
    url.pathname === "/healthz" ||
    url.pathname === "/metrics"
  );
}

self.addEventListener("fetch", (event) => {
  const req = event.request;
  const url = new URL(req.url);
  if (req.method !== "GET" || url.origin !== self.location.origin || isLive(url)) return;

  if (req.mode === "navigate") {
    // Pages: the network first (they are rendered with live data), the
    // last copy when offline, else a page that says it was not saved.
    event.respondWith(
      fetch(req)
        .then((res) => {
          if (res.ok) {
            const copy = res.clone();
            event.waitUntil(caches.open(PAGES_CACHE).then((c) => c.put(req, copy)));
          }
          return res;
        })
        .catch(() =>
          caches
            .open(PAGES_CACHE)
            .then((c) => c.match(req, { ignoreSearch: true }))
            .then((hit) => hit || (url.pathname === "/" && caches.match("/", { cacheName: SHELL_CACHE })))
            .then((hit) => hit || notSaved()),
        ),
    );
    return;
  }
  // Static assets: named per build, so a cached copy is always right.
  event.respondWith(caches.match(req).then((hit) => hit || fetch(req)));
});
