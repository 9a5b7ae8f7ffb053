// The fixture's collection page: an infinite, virtualized grid like a marketplace's.
// Items arrive page by page from the feed as the reader nears the end; only cards near the viewport are
// in the DOM (the rest are removed); images are lazy (data-src, set when the card becomes visible).
(() => {
  "use strict";
  const cfg = window.FIXTURE;
  const grid = document.getElementById("grid");
  const status = document.getElementById("status");
  const GAP = 6, LABEL = 20;
  const items = [];
  const rendered = new Map(); // item index -> card element
  let cursor = null, done = false, loading = false, failures = 0;

  const cols = () => Math.max(1, Math.floor((grid.clientWidth + GAP) / (cfg.cardPx + GAP)));
  const rowPx = () => cfg.cardPx + LABEL + GAP;

  function fromFeed(data) {
    if (cfg.opaque) {  // [token_id, name, image]: nothing a network listener could recognize
      cursor = data.c || null;
      return data.r.map(([token, name, image]) => ({ token, name, image }));
    }
    const conn = data.data.collectionItems;
    cursor = conn.pageInfo.hasNextPage ? conn.pageInfo.endCursor : null;
    return conn.edges.map(({ node }) => ({ token: node.tokenId, name: node.name, image: node.imageUrl }));
  }

  async function loadMore() {
    if (loading || done) return;
    loading = true;
    const url = new URL(cfg.feed, location.href);
    url.searchParams.set("limit", cfg.pageSize);
    if (cursor) url.searchParams.set("cursor", cursor);
    try {
      const response = await fetch(url);
      if (!response.ok) throw new Error(`feed answered ${response.status}`);
      for (const it of fromFeed(await response.json())) items.push(it);
      done = cursor === null;
      failures = 0;
    } catch (err) {
      failures += 1;
      status.textContent = `Could not load more (${err.message}); retrying…`;
      loading = false;
      setTimeout(loadMore, Math.min(2000, 200 * 2 ** failures));
      return;
    }
    loading = false;
    status.textContent = done ? `All ${items.length} items loaded.` : `${items.length} items…`;
    render();
  }

  function thumb(it) {
    const url = new URL(it.image, location.href);
    if (url.protocol.startsWith("http") && url.pathname.startsWith("/cdn/")) url.searchParams.set("w", cfg.thumbPx);
    return url.href;
  }

  function card(it, index) {
    const el = document.createElement(cfg.cardLinks ? "a" : "div");
    const kind = index % 7 === 3 ? "assets" : "item";  // both link forms real marketplaces use
    if (cfg.cardLinks) el.href = `/${kind}/${cfg.chain}/${cfg.contract}/${it.token}`;
    el.className = "card";
    el.style.width = `${cfg.cardPx}px`;
    const isVideo = /\.mp4(\?|$)/.test(it.image);
    const media = document.createElement(isVideo ? "video" : "img");
    media.width = media.height = cfg.cardPx;
    if (!isVideo) media.alt = it.name;
    if (index % 5 === 1 && !isVideo) {
      media.dataset.srcset = `${thumb(it)} 1x, ${thumb(it).replace(/w=\d+/, `w=${2 * cfg.thumbPx}`)} 2x`;
    } else {
      media.dataset.src = isVideo ? it.image : thumb(it);
    }
    lazy.observe(media);
    const label = document.createElement("span");
    label.textContent = it.name;
    el.append(media, label);
    return el;
  }

  const lazy = new IntersectionObserver((entries) => {
    for (const e of entries) {
      if (!e.isIntersecting) continue;
      const m = e.target;
      if (m.dataset.srcset) m.srcset = m.dataset.srcset;
      else m.src = m.dataset.src;
      lazy.unobserve(m);
    }
  });

  function render() {
    const c = cols(), rh = rowPx();
    const rows = Math.ceil(items.length / c);
    grid.style.height = `${rows * rh}px`;
    const top = window.scrollY - grid.offsetTop;
    const first = Math.max(0, Math.floor((top - cfg.overscanPx) / rh));
    const last = Math.min(rows - 1, Math.floor((top + window.innerHeight + cfg.overscanPx) / rh));
    const wanted = new Set();
    for (let r = first; r <= last; r++) {
      for (let k = 0; k < c; k++) if (r * c + k < items.length) wanted.add(r * c + k);
    }
    for (const [i, el] of rendered) {
      if (!wanted.has(i)) { lazy.unobserve(el.firstChild); el.remove(); rendered.delete(i); }
    }
    for (const i of wanted) {
      if (rendered.has(i)) continue;
      const el = card(items[i], i);
      el.style.transform = `translate(${(i % c) * (cfg.cardPx + GAP)}px, ${Math.floor(i / c) * rh}px)`;
      grid.appendChild(el);
      rendered.set(i, el);
    }
    if (!done && top + window.innerHeight + cfg.overscanPx >= rows * rh - rh) loadMore();
  }

  let scheduled = false;
  window.addEventListener("scroll", () => {
    if (scheduled) return;
    scheduled = true;
    requestAnimationFrame(() => { scheduled = false; render(); });
  }, { passive: true });
  window.addEventListener("resize", render);
  loadMore();
})();
