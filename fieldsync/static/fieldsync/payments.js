// A <select data-autosubmit> submits its form when changed (not an inline onchange: the Content-Security-Policy
// allows no inline script).
document.querySelectorAll("select[data-autosubmit]").forEach(function (select) {
  select.addEventListener("change", function () { select.form.submit(); });
});

// The Payments page: tick rows, select the whole page, or every payment matching the filters; keep the Export
// button's label honest about what will be sent. Plain JavaScript, no build step.
(function () {
  "use strict";
  const form = document.getElementById("export-form");
  const button = document.getElementById("export-button");
  if (!form || !button) return;
  const scope = document.getElementById("export-scope");
  const pageBox = document.getElementById("select-page");
  const info = document.getElementById("selection-info");
  const banner = document.getElementById("select-all-banner");
  const bannerText = document.getElementById("select-all-text");
  const selectMatching = document.getElementById("select-matching");
  const clearSelection = document.getElementById("clear-selection");
  const boxes = Array.from(form.querySelectorAll('input[name="payment"]'));
  const number = new Intl.NumberFormat("en-US");
  let matching = null; // how many matching payments can be selected (not in QuickBooks yet), once counted

  function plural(n, word) { return number.format(n) + " " + word + (n === 1 ? "" : "s"); }

  function readCount() {
    const counted = document.querySelector("#match-count [data-count]");
    if (counted) matching = parseInt(counted.dataset.selectable, 10);
  }

  function update() {
    const ticked = boxes.filter((box) => box.checked);
    const held = ticked.filter((box) => box.hasAttribute("data-held")).length;
    const allOnPage = boxes.length > 0 && ticked.length === boxes.length;
    if (pageBox) {
      pageBox.checked = allOnPage;
      pageBox.indeterminate = ticked.length > 0 && !allOnPage;
    }
    const more = matching === null || matching > boxes.length;
    banner.hidden = !(allOnPage && more);
    if (scope.value === "matching") {
      const what = matching === null ? "every matching payment" : plural(matching, "matching payment");
      bannerText.textContent = "All " + (matching === null ? "" : number.format(matching) + " ") + "payments matching these filters are selected.";
      selectMatching.hidden = true;
      clearSelection.hidden = false;
      info.textContent = "Selected: " + what + ". Held ones will be reported as skipped, with the reason.";
      button.textContent = matching === null ? "Export all matching" : "Export " + plural(matching, "payment");
      button.disabled = false;
      return;
    }
    bannerText.textContent = "All " + plural(boxes.length, "payment") + " on this page are selected.";
    selectMatching.hidden = false;
    clearSelection.hidden = true;
    selectMatching.querySelector(".matching-number").textContent = matching === null ? "matching" : number.format(matching) + " matching";
    if (ticked.length === 0) {
      info.textContent = "Nothing selected";
      button.textContent = "Export Payments";
      button.disabled = true;
      return;
    }
    // The button counts only what will go; held payments are named beside it (the export skips them).
    const ready = ticked.length - held;
    info.textContent = plural(ticked.length, "payment") + " selected" +
      (held ? " · " + number.format(held) + " held will be skipped" : "");
    if (ready === 0) {
      button.textContent = "Nothing ready to export";
      button.disabled = true;
      return;
    }
    button.textContent = "Export " + plural(ready, "payment");
    button.disabled = false;
  }

  boxes.forEach((box) => box.addEventListener("change", () => { scope.value = "page"; update(); }));
  if (pageBox) {
    pageBox.addEventListener("change", () => {
      boxes.forEach((box) => { box.checked = pageBox.checked; });
      scope.value = "page";
      update();
    });
  }
  selectMatching.addEventListener("click", () => { boxes.forEach((box) => { box.checked = true; }); scope.value = "matching"; update(); });
  clearSelection.addEventListener("click", () => { boxes.forEach((box) => { box.checked = false; }); scope.value = "page"; update(); });
  form.addEventListener("submit", (event) => {
    if (scope.value === "matching") {
      const what = matching === null ? "every payment matching these filters" : plural(matching, "payment");
      if (!window.confirm("Export " + what + " to QuickBooks?")) { event.preventDefault(); return; }
    }
    button.disabled = true;
    button.textContent = "Starting export…";
  });
  document.body.addEventListener("htmx:afterSwap", (event) => {
    if (event.detail.target && event.detail.target.id === "match-count") { readCount(); update(); }
  });
  // Back/forward can restore ticked boxes: start from what the browser shows.
  readCount();
  update();
})();
