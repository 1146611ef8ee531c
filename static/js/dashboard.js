/*
 * Organizer pages, progressive enhancement only: every page works without this file.
 * 1. The territory table: filter as you type, sort by a column header without reloading
 *    (the server does the same with ?q= and ?sort=).
 * 2. Export progress: poll the status URL and move the bar; show the download link at the end.
 */
(function () {
  "use strict";

  function fold(text) {
    return text.toLowerCase().normalize("NFKD").replace(/[\u0300-\u036f]/g, "");
  }

  // --- 1. Filter and sort ------------------------------------------------------------------
  var table = document.querySelector("table[data-sortable]");
  if (table && table.tBodies.length) {
    var body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows).filter(function (row) {
      return row.id;
    });

    var filter = document.querySelector("[data-table-filter='" + table.id + "']");
    if (filter) {
      filter.addEventListener("input", function () {
        var needle = fold(filter.value.trim());
        rows.forEach(function (row) {
          var code = fold(row.cells[0].textContent.trim());
          var name = fold(row.cells[1].textContent.trim());
          row.hidden = needle !== "" && code.indexOf(needle) !== 0 && name.indexOf(needle) === -1;
        });
      });
    }

    var headers = table.tHead.rows[0].cells;
    Array.prototype.forEach.call(headers, function (header, index) {
      var link = header.querySelector("a");
      if (!link || !header.hasAttribute("data-sort-key")) {
        return;
      }
      link.addEventListener("click", function (event) {
        event.preventDefault();
        var numeric = header.classList.contains("num") || index === 0;
        var descending = header.getAttribute("aria-sort") === "ascending" ||
          (!header.hasAttribute("aria-sort") && header.classList.contains("num"));
        Array.prototype.forEach.call(headers, function (other) {
          other.removeAttribute("aria-sort");
        });
        header.setAttribute("aria-sort", descending ? "descending" : "ascending");
        var keyed = rows.map(function (row, position) {
          var raw = row.cells[index].getAttribute("data-value");
          var value = raw === null || raw === "" ? null : numeric ? parseFloat(raw) : fold(raw);
          return { row: row, value: value, position: position };
        });
        keyed.sort(function (a, b) {
          // Empty values last, whichever the direction; ties keep the official order.
          if (a.value === null || b.value === null) {
            return (a.value === null) - (b.value === null) || a.position - b.position;
          }
          var order = a.value < b.value ? -1 : a.value > b.value ? 1 : 0;
          return (descending ? -order : order) || a.position - b.position;
        });
        keyed.forEach(function (item) {
          body.appendChild(item.row);
        });
        if (window.history && window.history.replaceState && window.URLSearchParams) {
          var params = new URLSearchParams(window.location.search);
          params.set("sort", (descending ? "-" : "") + header.getAttribute("data-sort-key"));
          window.history.replaceState(null, "", "?" + params.toString() + "#territories");
        }
      });
    });
  }

  // --- 2. Export progress ------------------------------------------------------------------
  var progress = document.querySelector("[data-progress-url]");
  if (progress && window.fetch) {
    var url = progress.getAttribute("data-progress-url");
    var bar = progress.querySelector("[data-progress-bar]");
    var done = progress.querySelector("[data-progress-done]");
    var total = progress.querySelector("[data-progress-total]");
    var status = progress.querySelector("[data-progress-status]");
    var ready = progress.querySelector("[data-progress-ready]");
    var link = progress.querySelector("[data-progress-link]");
    var failed = progress.querySelector("[data-progress-failed]");
    var delay = 1000;

    var poll = function () {
      fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
        .then(function (response) {
          if (!response.ok) {
            throw new Error(response.status);
          }
          return response.json();
        })
        .then(function (data) {
          bar.value = data.percent;
          bar.textContent = data.percent + " %";
          done.textContent = data.done;
          total.textContent = data.total;
          status.textContent = data.status_label;
          if (data.status === "done") {
            progress.classList.add("progress--reached");
            link.href = data.download_url;
            ready.hidden = false;
            link.focus();
            return;
          }
          if (data.status === "failed") {
            failed.hidden = false;
            return;
          }
          window.setTimeout(poll, delay);
        })
        .catch(function () {
          // A network hiccup: try again, more slowly, up to every 10 s.
          delay = Math.min(delay * 2, 10000);
          window.setTimeout(poll, delay);
        });
    };
    var current = progress.querySelector("[data-progress-status]");
    if (current && ready.hidden && failed.hidden) {
      window.setTimeout(poll, delay);
    }
  }
})();
