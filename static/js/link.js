/* Share link landing page: after a download starts, show the server's state again.
 *
 * A download leaves the page where it was, so without this it would keep showing the
 * count of downloads left (and any "Wrong password.") from before. The page is fetched
 * again with GET, which never counts as a download, and its content replaces ours.
 */
(function () {
  "use strict";
  var REFRESH_AFTER_MS = [1000, 3000];

  function refresh() {
    fetch(window.location.href, {credentials: "same-origin", cache: "no-store"})
      .then(function (response) { return response.text(); })
      .then(function (html) {
        var fresh = new DOMParser().parseFromString(html, "text/html");
        var main = document.querySelector("main");
        var freshMain = fresh.querySelector("main");
        if (!main || !freshMain) { return; }
        main.replaceChildren.apply(main, Array.prototype.slice.call(freshMain.childNodes));
        document.title = fresh.title;
        bind();
      })
      .catch(function () { /* offline: the page stays as it is */ });
  }

  function bind() {
    var form = document.querySelector("form.link-download");
    if (!form) { return; }
    form.addEventListener("submit", function () {
      REFRESH_AFTER_MS.forEach(function (delay) { window.setTimeout(refresh, delay); });
    });
  }

  bind();
}());
