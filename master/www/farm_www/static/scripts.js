// The PyPI test farm's plugin for Buildbot's UI (master/www/farm_www/__init__.py says why).
(function () {
  "use strict";

  // Buildbot sorts names as text, linux-py3.10 before linux-py3.6: its views with
  // a.localeCompare(b), its data queries ordered by name (the waterfall's builders, the lists)
  // with "<". Compare numbers in names by their value instead.
  const numeric = new Intl.Collator(undefined, {numeric: true});
  const localeCompare = String.prototype.localeCompare;
  String.prototype.localeCompare = function (that, locales, options) {
    if (locales === undefined && options === undefined) {
      return numeric.compare(String(this), String(that));
    }
    return localeCompare.call(this, that, locales, options);
  };
  const DataQuery = (window.BuildbotDataJs || {}).DataQuery;  // buildbot-data-js, as the UI exports it
  if (DataQuery) {
    const applySort = DataQuery.prototype.applySort;
    DataQuery.prototype.applySort = function (array) {
      if (this.order === "name" || this.order === "-name") {
        const sign = this.order === "name" ? 1 : -1;
        array.sort((a, b) => sign * numeric.compare(String(a.name), String(b.name)));
        return;
      }
      applySort.call(this, array);
    };
  }

  // Controls a visitor who is not logged in may not use: Buildbot refuses the click, so do not
  // offer it. The buttons are found by their caption (Buildbot gives them no other name).
  // "Rebuild" is also the caption of the farm's force scheduler (master/schedulers.py).
  const ADMIN_ONLY = new Set(["Rebuild", "Stop", "Cancel", "Cancel whole queue", "Actions..."]);
  const user = (window.buildbotFrontendConfig || {}).user;
  if (!user || user.anonymous) {
    const hide = root => {
      for (const button of root.querySelectorAll("button, a.btn")) {
        if (ADMIN_ONLY.has(button.textContent.trim()) && !button.hidden) {
          button.hidden = true;
          button.classList.add("farm-admin-only");
        }
      }
    };
    document.documentElement.classList.add("farm-anonymous");
    const start = () => {
      hide(document.body);
      new MutationObserver(() => hide(document.body)).observe(document.body, {childList: true, subtree: true});
    };
    if (document.body) { start(); } else { document.addEventListener("DOMContentLoaded", start); }
  }
})();
