// Times: each <time datetime> the server wrote in UTC is shown in the reader's own time zone.
function localTimes(root) {
  const format = new Intl.DateTimeFormat(undefined, {
    year: "numeric", month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", timeZoneName: "short",
  });
  root.querySelectorAll("time[datetime]").forEach(function (node) {
    const at = new Date(node.getAttribute("datetime"));
    if (isNaN(at)) return;
    node.title = node.title || node.textContent;
    node.textContent = format.format(at);
  });
}
document.addEventListener("DOMContentLoaded", function () {
  localTimes(document);
  document.querySelectorAll("[data-print]").forEach(function (b) { b.addEventListener("click", function () { window.print(); }); });
});
// Live pages: every `data-refresh` seconds, fetch this page again and swap in its live part.
// No framework and nothing from a CDN; a page with data-refresh="0" (sign-in, a replay) stays still.
(function () {
  const live = document.getElementById("live");
  const seconds = Number(live && live.dataset.refresh);
  if (!live || !seconds) return;
  async function refresh() {
    if (document.activeElement && ["INPUT", "SELECT"].includes(document.activeElement.tagName)) return;
    try {
      const response = await fetch(location.href, { credentials: "same-origin", headers: { "Accept": "text/html" } });
      if (!response.ok || response.redirected) return;
      const page = new DOMParser().parseFromString(await response.text(), "text/html");
      const fresh = page.getElementById("live");
      if (fresh) { live.innerHTML = fresh.innerHTML; localTimes(live); }
      live.dataset.refreshed = String(Date.now());
    } catch (error) { /* the server may be restarting; try again next time */ }
  }
  setInterval(refresh, seconds * 1000);
})();
