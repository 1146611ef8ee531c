/*
 * Advance a server-rendered progress bar without reloading the page.
 * Markup: an element with data-progress-url (a JSON status: status, status_label, done, total,
 * percent, download_url) holding [data-progress-status], [data-progress-done],
 * [data-progress-total], <progress data-progress-bar>, [data-progress-ready] (shown when done,
 * with an <a data-progress-link>) and [data-progress-failed] (shown on failure).
 * Progressive enhancement: without JavaScript the page offers a refresh link instead.
 */
(function () {
  "use strict";

  var DELAY_MS = 1500;
  var FINISHED = { done: true, failed: true };

  function start(root) {
    var url = root.getAttribute("data-progress-url");
    if (!url || !window.fetch) {
      return;
    }
    function find(name) {
      return root.querySelector("[data-progress-" + name + "]");
    }
    function setText(name, value) {
      var element = find(name);
      if (element && value !== undefined && value !== null) {
        element.textContent = String(value);
      }
    }
    function render(data) {
      setText("status", data.status_label);
      setText("done", data.done);
      setText("total", data.total);
      var bar = find("bar");
      if (bar && typeof data.percent === "number") {
        bar.value = data.percent;
        bar.textContent = data.percent + " %";
      }
      var ready = find("ready");
      if (ready && data.status === "done") {
        var link = find("link");
        if (link && data.download_url) {
          link.setAttribute("href", data.download_url);
        }
        ready.hidden = false;
      }
      var failed = find("failed");
      if (failed && data.status === "failed") {
        failed.hidden = false;
      }
      var refresh = find("refresh");
      if (refresh && FINISHED[data.status]) {
        refresh.hidden = true;
      }
    }
    function poll() {
      window
        .fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error("status " + response.status);
          }
          return response.json();
        })
        .then(function (data) {
          render(data);
          if (!FINISHED[data.status]) {
            window.setTimeout(poll, DELAY_MS);
          }
        })
        .catch(function () {
          // A network hiccup: try again, more slowly; the refresh link still works.
          window.setTimeout(poll, DELAY_MS * 4);
        });
    }
    var status = root.getAttribute("data-progress-initial");
    if (!FINISHED[status]) {
      window.setTimeout(poll, DELAY_MS);
    }
  }

  var roots = document.querySelectorAll("[data-progress-url]");
  for (var i = 0; i < roots.length; i += 1) {
    start(roots[i]);
  }
})();
