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
  // Logging out forgets the upload page's resume data (tus-js-client's "tus::" entries,
  // which hold the names of unfinished uploads): names of confidential files must not
  // outlive the session on a shared computer. The logout answer also sends
  // Clear-Site-Data: "storage", which browsers honour on secure origins only.
  document.querySelectorAll("form[data-logout]").forEach(function (form) {
    form.addEventListener("submit", function () {
      try {
        Object.keys(window.localStorage).forEach(function (key) {
          if (key.indexOf("tus::") === 0) { window.localStorage.removeItem(key); }
        });
      } catch (e) { /* storage disabled: nothing was kept */ }
    });
  });
  // Relative times ("3 minutes ago") are rendered by the server; nothing to do here.
}());
