/*
 * Refresh the national counter from count.json without reloading the page.
 * Progressive enhancement: the server-rendered number stays if anything here fails.
 * Polls every counting interval while the tab is visible, and stops while it is hidden.
 */
(function () {
  "use strict";

  var root = document.querySelector("[data-counter-url]");
  if (!root || !window.fetch || !window.Intl) {
    return;
  }

  var url = root.getAttribute("data-counter-url");
  var seconds = parseInt(root.getAttribute("data-counter-interval"), 10);
  var delay = Math.max(1, isNaN(seconds) ? 5 : seconds) * 1000;
  var valueElement = root.querySelector("[data-counter-value]");
  var labelElement = root.querySelector("[data-counter-label]");
  var lang = document.documentElement.lang || "fr";
  var numbers = new Intl.NumberFormat(lang);
  var plurals = new Intl.PluralRules(lang);
  var dates = new Intl.DateTimeFormat(lang, {
    day: "numeric",
    month: "long",
    year: "numeric",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    timeZone: root.getAttribute("data-counter-timezone") || undefined,
  });
  var timer = null;

  function render(data) {
    if (!data || !valueElement) {
      return;
    }
    if (data.pledges === null) {
      valueElement.textContent = root.getAttribute("data-counter-suppressed");
      setLabel("other");
    } else if (typeof data.pledges === "number") {
      valueElement.textContent = numbers.format(data.pledges);
      setLabel(plurals.select(data.pledges) === "one" ? "one" : "other");
    }
    var updatedElement = root.querySelector("[data-counter-updated]");
    if (updatedElement && data.updated_at) {
      updatedElement.setAttribute("datetime", data.updated_at);
      updatedElement.textContent = dates.format(new Date(data.updated_at));
    }
  }

  function setLabel(form) {
    var label = root.getAttribute("data-counter-label-" + form);
    if (labelElement && label) {
      labelElement.textContent = label;
    }
  }

  function poll() {
    fetch(url, { headers: { Accept: "application/json" }, credentials: "omit" })
      .then(function (response) {
        return response.ok ? response.json() : null;
      })
      .then(render)
      .catch(function () {
        // A failed poll keeps the last number; the next one tries again.
      });
  }

  function start() {
    if (timer === null) {
      timer = window.setInterval(poll, delay);
    }
  }

  function stop() {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
  }

  document.addEventListener("visibilitychange", function () {
    if (document.hidden) {
      stop();
    } else {
      poll();
      start();
    }
  });

  if (!document.hidden) {
    start();
  }
})();
