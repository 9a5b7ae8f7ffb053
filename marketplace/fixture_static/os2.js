// The fixture's collection page, imitating OpenSea's 2025 redesign ("OS2") as public scrapers measured it:
// - page 1 (50 rows) is inlined by the server into window[Symbol.for("urql_transport")], not fetched;
//   only about 30 of its rows become cards at first (the grid is virtualized);
// - later pages come from the GraphQL operation CollectionItemsListQuery, a GET with persisted-query
//   extensions and app_id=os2-web, answered as application/graphql-response+json;
// - the default ordering is price ascending, whose cursor ends where the listed items end;
// - a sort menu switches the ordering (page 1 of the new ordering is then fetched);
// - a "Featured collections" carousel shows items of other collections.
(() => {
  "use strict";
  const cfg = window.FIXTURE;
  const grid = document.getElementById("grid");
  const status = document.getElementById("status");
  const sortMenu = document.getElementById("sort");
  const GAP = 6, LABEL = 20;
  let items = [];
  const rendered = new Map(); // item index -> card element
  let cursor = null, done = false, loading = false, failures = 0, revealAll = false;
  let sort = { by: "PRICE", direction: "ASC" };
  let generation = 0;

  const cols = () => Math.max(1, Math.floor((grid.clientWidth + GAP) / (cfg.cardPx + GAP)));
  const rowPx = () => cfg.cardPx + LABEL + GAP;

  function inlinedPage() {
    for (const push of window[Symbol.for("urql_transport")] || []) {
      for (const op of Object.values(push.rehydrate || {})) {
        const conn = op && op.data && op.data.collectionItems;
        if (conn) return conn;
      }
    }
    return null;
  }

  function feedUrl(cur) {
    const url = new URL(cfg.gql, location.href);
    url.searchParams.set("operationName", "CollectionItemsListQuery");
    url.searchParams.set("variables", JSON.stringify({
      collectionSlug: cfg.slug, cursor: cur, limit: cfg.pageSize, sort, filter: {},
    }));
    url.searchParams.set("extensions", JSON.stringify({ persistedQuery: { version: 1, sha256Hash: cfg.queryHash } }));
    url.searchParams.set("app_id", "os2-web");
    return url;
  }

  async function loadMore() {
    if (loading || done) return;
    loading = true;
    const mine = generation;
    try {
      const response = await fetch(feedUrl(cursor), {
        headers: { "x-app-id": "os2-web", "accept": "application/graphql-response+json, application/json" },
      });
      if (!response.ok) throw new Error(`feed answered ${response.status}`);
      const doc = await response.json();
      if (doc.errors) throw new Error(doc.errors.map((e) => e.message).join("; "));
      if (mine !== generation) return;  // the ordering changed meanwhile
      const conn = doc.data.collectionItems;
      for (const it of conn.items) items.push(it);
      cursor = conn.nextPageCursor;
      done = cursor === null;
      failures = 0;
    } catch (err) {
      failures += 1;
      status.textContent = `Could not load more (${err.message})`;
      loading = false;
      if (failures < 4 && !/cursor/i.test(err.message)) setTimeout(loadMore, Math.min(2000, 200 * 2 ** failures));
      return;
    }
    loading = false;
    status.textContent = done ? `${items.length} items shown.` : `${items.length} items…`;
    render();
  }

  function thumb(url) {
    const u = new URL(url, location.href);
    if (u.protocol.startsWith("http") && u.pathname.startsWith("/cdn/")) u.searchParams.set("w", cfg.thumbPx);
    return u.href;
  }

  function itemPath(it) {
    const chain = it.chain.identifier;
    return chain === "solana" ? `/item/solana/${it.tokenId}` : `/item/${chain}/${it.contractAddress}/${it.tokenId}`;
  }

  function card(it) {
    const el = document.createElement("a");
    el.href = itemPath(it);
    el.className = "card";
    el.style.width = `${cfg.cardPx}px`;
    const img = document.createElement("img");
    img.width = img.height = cfg.cardPx;
    img.alt = it.name;
    img.dataset.src = thumb(it.imageUrl);
    lazy.observe(img);
    const label = document.createElement("span");
    label.textContent = it.bestListing ? `${it.name} · ${it.bestListing.pricePerItem.token.unit} ETH` : it.name;
    el.append(img, label);
    return el;
  }

  const lazy = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      e.target.src = e.target.dataset.src;
      lazy.unobserve(e.target);
    }
  });

  function render() {
    const shown = revealAll ? items.length : Math.min(items.length, cfg.firstCards);
    const c = cols(), rh = rowPx();
    const rows = Math.ceil(shown / c);
    grid.style.height = `${rows * rh}px`;
    const top = window.scrollY - grid.offsetTop;
    const first = Math.max(0, Math.floor((top - cfg.overscanPx) / rh));
    const last = Math.min(rows - 1, Math.floor((top + window.innerHeight + cfg.overscanPx) / rh));
    const wanted = new Set();
    for (let r = first; r <= last; r++) {
      for (let k = 0; k < c; k++) if (r * c + k < shown) wanted.add(r * c + k);
    }
    for (const [i, el] of rendered) {
      if (!wanted.has(i)) { lazy.unobserve(el.firstChild); el.remove(); rendered.delete(i); }
    }
    for (const i of wanted) {
      if (rendered.has(i)) continue;
      const el = card(items[i]);
      el.style.transform = `translate(${(i % c) * (cfg.cardPx + GAP)}px, ${Math.floor(i / c) * rh}px)`;
      grid.appendChild(el);
      rendered.set(i, el);
    }
    if (top + window.innerHeight + cfg.overscanPx >= rows * rh - rh) {
      if (!revealAll && shown < items.length) { revealAll = true; requestAnimationFrame(render); }
      else if (!done) loadMore();
    }
  }

  function carousel() {
    const box = document.getElementById("featured");
    for (const it of cfg.featured) {
      const a = document.createElement("a");
      a.href = itemPath(it);
      a.className = "feature";
      const img = document.createElement("img");
      img.src = thumb(it.imageUrl);
      img.alt = it.name;
      a.append(img, document.createTextNode(it.name));
      box.appendChild(a);
    }
  }

  sortMenu.addEventListener("change", () => {
    const [by, direction] = sortMenu.value.split(":");
    sort = { by, direction };
    generation += 1;
    for (const el of rendered.values()) el.remove();
    rendered.clear();
    items = []; cursor = null; done = false; loading = false; revealAll = true;
    loadMore();
  });

  let scheduled = false;
  window.addEventListener("scroll", () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => { scheduled = false; render(); });
  }, { passive: true });
  window.addEventListener("resize", render);

  const first = inlinedPage();
  if (first) {
    items = first.items.slice();
    cursor = first.nextPageCursor;
    done = cursor === null;
    status.textContent = `${items.length} items…`;
  }
  carousel();
  render();
})();
