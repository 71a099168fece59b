/* Recovery codes page: copy, download as a text file, print. The codes exist only in
   this page (shown once, stored as digests): the file is built here, from the page, as a
   Blob; nothing is fetched. No inline script anywhere (the CSP forbids it). */
(function () {
  "use strict";
  var list = document.getElementById("recovery-codes");
  var actions = document.getElementById("recovery-actions");
  if (!list || !actions) { return; }
  var status = document.getElementById("recovery-status");
  var copyButton = document.getElementById("copy-codes");
  var downloadButton = document.getElementById("download-codes");

  function codes() {
    return Array.prototype.map.call(list.querySelectorAll("code"), function (node) {
      return node.textContent.trim();
    });
  }

  function say(text) { status.textContent = text; }

  // The codes as a list of lines, selected on the page: what execCommand("copy") takes
  // where the asynchronous clipboard is missing (plain http on a non-local host).
  function copyBySelection(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "visually-hidden";
    document.body.appendChild(area);
    area.select();
    var copied = document.execCommand && document.execCommand("copy");
    document.body.removeChild(area);
    return copied;
  }

  copyButton.addEventListener("click", function () {
    var text = codes().join("\n") + "\n";
    var done = function () { say(copyButton.dataset.copiedLabel || "Copied"); };
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(done, function () {
        if (copyBySelection(text)) { done(); }
      });
    } else if (copyBySelection(text)) {
      done();
    }
  });

  downloadButton.addEventListener("click", function () {
    var text = downloadButton.dataset.heading + "\n\n" + codes().join("\n") + "\n";
    var url = URL.createObjectURL(new Blob([text], {type: "text/plain;charset=utf-8"}));
    var link = document.createElement("a");
    link.href = url;
    link.download = downloadButton.dataset.filename || "recovery-codes.txt";
    document.body.appendChild(link);
    link.click();
    document.body.removeChild(link);
    // Revoked after the browser has taken the file, so no URL to the codes lingers.
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  });

  document.getElementById("print-codes").addEventListener("click", function () {
    window.print();
  });

  actions.hidden = false;  // the buttons need this script; without it they stay hidden
}());
