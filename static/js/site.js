/* Small page helpers, no inline script anywhere (the CSP forbids it). */
(function () {
  "use strict";
  // Copy buttons: <button data-copy-target="id-of-input">.
  document.querySelectorAll("[data-copy-target]").forEach(function (button) {
    button.addEventListener("click", function () {
      var field = document.getElementById(button.dataset.copyTarget);
      if (!field) { return; }
      var done = function () {
        button.textContent = button.dataset.copiedLabel || "Copied";
      };
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(field.value).then(done, function () {
          field.select();
        });
      } else {
        field.select();
        if (document.execCommand && document.execCommand("copy")) { done(); }
      }
    });
  });
  // Relative times ("3 minutes ago") are rendered by the server; nothing to do here.
}());
