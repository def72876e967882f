// The web app's only script (no inline script: the Content-Security-Policy forbids it).
// Hold-window countdowns, "tick all", and live updates by polling /app/live.
"use strict";

(function () {
  const main = document.getElementById("main");
  const banner = document.getElementById("live");
  const badge = document.getElementById("pending-count");

  function tickCountdowns() {
    const now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      const left = Math.ceil((Date.parse(el.dataset.deadline) - now) / 1000);
      if (left > 0) {
        el.textContent = left + " s left to undo";
      } else {
        el.textContent = "hold window over";
        el.removeAttribute("data-deadline");
        const row = el.closest("li");
        const undo = row && row.querySelector("button.undo");
        if (undo) { undo.disabled = true; }
      }
    });
  }

  document.addEventListener("click", function (event) {
    const target = event.target.closest("[data-tick-all]");
    if (!target) { return; }
    document.querySelectorAll('input[form="' + target.dataset.tickAll + '"]').forEach(function (box) {
      box.checked = true;
    });
  });

  // An edit box gets the card's text when opened: each text is sent once per page.
  document.addEventListener("toggle", function (event) {
    const details = event.target;
    if (!details.open || !details.querySelectorAll) { return; }
    details.querySelectorAll("textarea[data-fill-from]").forEach(function (box) {
      const source = document.getElementById(box.dataset.fillFrom);
      if (source && !box.value) { box.value = source.textContent; }
    });
  }, true);

  // Someone typing or with a form open keeps their page; the banner offers the update.
  function busy() {
    const active = document.activeElement;
    if (active && main.contains(active) && /^(INPUT|TEXTAREA|SELECT)$/.test(active.tagName)) {
      return true;
    }
    return Array.from(main.querySelectorAll("details[open], input[type=checkbox]:checked")).length > 0;
  }

  async function refreshMain() {
    const response = await fetch(window.location.href, {
      headers: { "X-Partial": "main", "Accept": "text/html" },
      credentials: "same-origin",
    });
    if (response.redirected || !response.ok) { return; }
    main.innerHTML = await response.text();
    tickCountdowns();
  }

  let version = null;
  async function poll() {
    let response;
    try {
      response = await fetch("/app/live", {
        headers: { "Accept": "application/json" },
        credentials: "same-origin",
      });
    } catch (err) {
      return; // offline for a moment: the next poll tries again
    }
    if (response.status === 401) {
      window.location.assign("/auth/login?next=" + encodeURIComponent(window.location.pathname));
      return;
    }
    if (!response.ok) { return; }
    const state = await response.json();
    if (badge) { badge.textContent = state.pending ? String(state.pending) : ""; }
    if (version !== null && state.version !== version) {
      if (busy()) {
        banner.hidden = false;
        banner.textContent = "";
        const button = document.createElement("button");
        button.type = "button";
        button.textContent = "New activity: show it";
        button.addEventListener("click", function () {
          banner.hidden = true;
          refreshMain();
        });
        banner.appendChild(button);
      } else {
        await refreshMain();
        banner.hidden = false;
        banner.textContent = "Updated just now.";
      }
    }
    version = state.version;
  }

  tickCountdowns();
  setInterval(tickCountdowns, 1000);
  if (main && main.dataset.live) {
    poll();
    setInterval(poll, 3000);
  }
})();
