// The AI PowerTools dashboard page: follows the server's update events and swaps in the
// panels it renders. No library: EventSource, fetch and the DOM.
"use strict";
(function () {
  const token = new URLSearchParams(window.location.search).get("token");
  const api = (path) =>
    token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
  const $ = (id) => document.getElementById(id);
  const panels = {
    figures: "figures", spend: "panel-spend", burn: "panel-burn", models: "panel-models",
    providers: "panel-providers", users: "panel-users", deployments: "panel-deployments",
    circuits: "panel-circuits", errors: "panel-errors",
  };
  let shown = -1;
  let loading = false;
  let again = false;

  async function refresh() {
    if (loading) { again = true; return; }
    loading = true;
    try {
      const response = await fetch(api("/api/snapshot"), { cache: "no-store" });
      const snapshot = await response.json();
      if (snapshot.version !== shown) {
        shown = snapshot.version;
        render(snapshot);
      }
    } catch (err) {
      $("status").textContent = "cannot reach the dashboard server";
    } finally {
      loading = false;
      if (again) { again = false; refresh(); }
    }
  }

  function render(snapshot) {
    const error = $("error");
    if (snapshot.error) {
      error.textContent = snapshot.error;
      error.hidden = false;
    } else {
      error.hidden = true;
      for (const [key, id] of Object.entries(panels)) {
        if (snapshot.html && key in snapshot.html) $(id).innerHTML = snapshot.html[key];
      }
    }
    document.body.dataset.version = String(snapshot.version);
    document.body.dataset.updates = String(Number(document.body.dataset.updates) + 1);
    $("status").textContent = "live, updated " + new Date().toLocaleTimeString();
  }

  function escapeText(text) {
    const div = document.createElement("div");
    div.textContent = text;
    return div.innerHTML;
  }

  async function search(event) {
    event.preventDefault();
    const q = $("search-text").value;
    const level = $("search-level").value;
    const params = new URLSearchParams();
    if (q) params.set("q", q);
    if (level) params.set("level", level);
    const out = $("search-results");
    const response = await fetch(api("/api/search?" + params.toString()), { cache: "no-store" });
    const body = await response.json();
    if (!response.ok) {
      out.innerHTML = '<div class="error">' + escapeText(body.error || "search failed") + "</div>";
      return;
    }
    out.dataset.count = String(body.events.length);
    out.innerHTML = body.events.length
      ? body.events.map((e) => {
          const rest = Object.entries(e)
            .filter(([k, v]) => !["ts", "time", "level", "event", "kind", "logger", "span_id",
              "correlation_id"].includes(k) && v !== null)
            .map(([k, v]) => k + "=" + (typeof v === "object" ? JSON.stringify(v) : v)).join(" ");
          return '<div class="hit">' + escapeText(String(e.time || "").slice(0, 19) + " " +
            String(e.level || "").toUpperCase() + " " + e.event + " " + rest) + "</div>";
        }).join("")
      : '<div class="hit">no matching events</div>';
  }

  $("search-form").addEventListener("submit", search);
  const source = new EventSource(api("/api/events"));
  source.addEventListener("update", refresh);
  source.onerror = () => { $("status").textContent = "reconnecting…"; };
  refresh();
})();
