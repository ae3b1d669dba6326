// siegeflow report: sortable and filterable tables, fragment links that open <details>.
// Reads the page through textContent, data attributes and form values only; writes only
// textContent, `hidden`, `open` and aria attributes. It never parses data as markup.
(function () {
  "use strict";

  // A grid: .gh holds the header row, .gb the body rows; a row's children are its cells.
  function bodyOf(grid) { return grid.querySelector(".gb"); }

  function cellKey(row, col, numeric) {
    var cell = row.children[col];
    if (!cell) return numeric ? -Infinity : "";
    var raw = cell.getAttribute("data-v");
    if (numeric) {
      var n = parseFloat(raw === null ? cell.textContent : raw);
      return isNaN(n) ? -Infinity : n;
    }
    return (raw === null ? cell.textContent : raw).toLowerCase();
  }

  function sortBy(grid, head, col) {
    var numeric = head.getAttribute("data-type") === "num";
    var asc = head.getAttribute("aria-sort") !== "ascending";
    var heads = grid.querySelectorAll("[role=columnheader]");
    for (var i = 0; i < heads.length; i++) heads[i].removeAttribute("aria-sort");
    head.setAttribute("aria-sort", asc ? "ascending" : "descending");
    var body = bodyOf(grid);
    var rows = Array.prototype.slice.call(body.children);
    var keyed = rows.map(function (row, i) { return [cellKey(row, col, numeric), i, row]; });
    keyed.sort(function (a, b) {
      if (a[0] < b[0]) return asc ? -1 : 1;
      if (a[0] > b[0]) return asc ? 1 : -1;
      return a[1] - b[1];
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k[2]); });
    body.appendChild(frag);
  }

  function setupSorting(grid) {
    var heads = grid.querySelectorAll("[role=columnheader]");
    Array.prototype.forEach.call(heads, function (head, col) {
      var button = head.querySelector("button");
      if (button) button.addEventListener("click", function () { sortBy(grid, head, col); });
    });
  }

  function setupFilters(box) {
    var grid = document.getElementById(box.getAttribute("data-for"));
    if (!grid) return;
    var rows = Array.prototype.slice.call(bodyOf(grid).children);
    var texts = null;
    var controls = box.querySelectorAll("[data-filter]");
    var count = box.querySelector("output");
    var timer = 0;

    function apply() {
      var query = "", wanted = {};
      Array.prototype.forEach.call(controls, function (c) {
        var name = c.getAttribute("data-filter");
        if (name === "text") query = c.value.trim().toLowerCase();
        else if (c.value) wanted[name] = c.value;
      });
      if (query && texts === null) texts = rows.map(function (r) { return r.textContent.toLowerCase(); });
      var shown = 0;
      rows.forEach(function (row, i) {
        var ok = !query || texts[i].indexOf(query) !== -1;
        for (var name in wanted) {
          if (ok && row.getAttribute("data-" + name) !== wanted[name]) ok = false;
        }
        row.hidden = !ok;
        if (ok) shown++;
      });
      if (count) count.textContent = shown + " of " + rows.length + " shown";
    }

    Array.prototype.forEach.call(controls, function (c) {
      c.addEventListener("input", function () {
        clearTimeout(timer);
        timer = setTimeout(apply, rows.length > 1000 ? 150 : 0);
      });
    });
  }

  function openTarget() {
    var id = location.hash.slice(1);
    if (!id) return;
    try { id = decodeURIComponent(id); } catch (e) { return; }
    var el = document.getElementById(id);
    for (; el; el = el.parentElement) if (el.tagName === "DETAILS") el.open = true;
  }

  // Clicking a clipped text shows it whole (and again clips it).
  document.addEventListener("click", function (event) {
    var el = event.target;
    if (el && el.closest && (el = el.closest(".clip")) && !window.getSelection().toString()) {
      el.classList.toggle("open");
    }
  });

  Array.prototype.forEach.call(document.querySelectorAll(".grid.sortable"), setupSorting);
  Array.prototype.forEach.call(document.querySelectorAll(".filters[data-for]"), setupFilters);
  window.addEventListener("hashchange", openTarget);
  openTarget();
})();
