// Berth's console script: progressive enhancement only; every page works without it.
// - <time datetime> elements show the viewer's local time (the UTC value stays on hover);
// - [data-copy] buttons copy their command to the clipboard;
// - [data-filter] inputs filter the rows of the table they name;
// - forms marked [data-live-preview] post themselves to their preview URL as they change and
//   show the answer (an HTML fragment) in the element they name.
(function () {
  "use strict";

  function localTimes(root) {
    root.querySelectorAll("time[datetime]").forEach(function (el) {
      var d = new Date(el.getAttribute("datetime"));
      if (!isNaN(d.getTime())) {
        el.textContent = d.toLocaleString(undefined, {
          year: "numeric", month: "short", day: "numeric",
          hour: "2-digit", minute: "2-digit", second: "2-digit", timeZoneName: "short"
        });
      }
    });
  }

  function copyButtons(root) {
    root.querySelectorAll("button[data-copy]").forEach(function (button) {
      if (!navigator.clipboard) { return; }
      button.hidden = false;
      button.addEventListener("click", function () {
        navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
          var before = button.textContent;
          button.textContent = "Copied";
          setTimeout(function () { button.textContent = before; }, 1500);
        });
      });
    });
  }

  function filters(root) {
    root.querySelectorAll("input[data-filter]").forEach(function (input) {
      var table = document.getElementById(input.getAttribute("data-filter"));
      if (!table) { return; }
      input.hidden = false;
      var label = document.querySelector("label[for='" + input.id + "']");
      if (label) { label.hidden = false; }
      input.addEventListener("input", function () {
        var needle = input.value.trim().toLowerCase();
        table.querySelectorAll("tbody tr").forEach(function (row) {
          row.hidden = needle !== "" && row.textContent.toLowerCase().indexOf(needle) === -1;
        });
      });
    });
  }

  function livePreviews(root) {
    root.querySelectorAll("form[data-live-preview]").forEach(function (form) {
      var target = document.getElementById(form.getAttribute("data-preview-target"));
      var url = form.getAttribute("data-live-preview");
      if (!target || !url) { return; }
      var timer = null;
      var seq = 0;
      function run() {
        var mine = ++seq;
        var body = new URLSearchParams(new FormData(form));
        target.setAttribute("aria-busy", "true");
        fetch(url, {
          method: "POST", body: body, credentials: "same-origin",
          headers: { "Content-Type": "application/x-www-form-urlencoded" }
        }).then(function (r) { return r.text(); }).then(function (html) {
          if (mine !== seq) { return; }
          target.innerHTML = html;
          target.removeAttribute("aria-busy");
          localTimes(target);
        }).catch(function () { target.removeAttribute("aria-busy"); });
      }
      function schedule() { clearTimeout(timer); timer = setTimeout(run, 300); }
      form.addEventListener("input", schedule);
      form.addEventListener("change", schedule);
      form.addEventListener("live-preview", run);
      form.querySelectorAll("[data-preview-button]").forEach(function (b) { b.hidden = true; });
    });
  }

  function ready() {
    localTimes(document);
    copyButtons(document);
    filters(document);
    livePreviews(document);
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", ready);
  } else {
    ready();
  }
})();
