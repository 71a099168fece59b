/* Upload with a progress bar per file, speed, time left and cancel.
 * Choosing or dropping files only queues them: nothing is sent before Upload is pressed,
 * so the options the form shows then ("Delete after") are the ones every queued file is
 * stored with; while uploads run, the options are locked. Each file goes in its own
 * request, so one refusal (too large, over quota) does not cost the others. After every
 * answer the page shows the server's state: the stored files in the list, the usage the
 * server reports, or the server's own reason for a refusal. Without JavaScript the form
 * posts as usual. */
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var input = document.getElementById("id_file");
  var zone = document.getElementById("dropzone");
  var list = document.getElementById("upload-list");
  var days = document.getElementById("id_expires_in_days");
  var message = document.getElementById("upload-message");
  var usageText = document.getElementById("usage-text");
  var usageMeter = document.getElementById("usage-meter");
  var headerUsage = document.getElementById("header-usage");
  var msg = form.dataset;
  var maxBytes = parseInt(msg.maxBytes, 10) || 0;
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var queued = [];   // {file, ui} chosen but not sent yet
  var running = 0;   // requests in flight: the options stay locked meanwhile
  input.required = false;

  // Binary units with IEC names (1 KiB = 1024 bytes), as sharing/display.py shows sizes.
  function humanSize(bytes) {
    var units = ["KiB", "MiB", "GiB", "TiB", "PiB"], i = -1;
    bytes = Math.max(Math.floor(bytes) || 0, 0);
    if (bytes < 1024) { return bytes + "\u00a0" + (bytes === 1 ? "byte" : "bytes"); }
    while (i < 0 || (bytes >= 1024 && i < units.length - 1)) { bytes /= 1024; i += 1; }
    return bytes.toFixed(1) + "\u00a0" + units[i];
  }

  function humanTime(seconds) {
    if (!isFinite(seconds) || seconds < 0) { return ""; }
    if (seconds < 60) { return Math.ceil(seconds) + " s"; }
    return Math.floor(seconds / 60) + " min " + Math.ceil(seconds % 60) + " s";
  }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) { node.className = className; }
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function say(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  function lockOptions(locked) {
    if (!days) { return; }
    days.disabled = locked;
    days.title = locked ? msg.msgLocked : "";
  }

  function showUsage(usage) {
    if (!usage) { return; }
    if (usageText) { usageText.textContent = usage.text; }
    if (usageMeter) { usageMeter.value = usage.bytes; }
    if (headerUsage && usage.short) { headerUsage.textContent = usage.short; }
  }

  function addRow(file) {
    var row = el("li", "upload-item queued");
    var name = el("span", "upload-name", file.name);
    var status = el("span", "upload-status", humanSize(file.size) + " · " + msg.msgReady);
    var cancel = el("button", "link upload-cancel", msg.msgRemove);
    cancel.type = "button";
    row.append(name, status, cancel);
    list.appendChild(row);
    return { row: row, name: name, bar: null, status: status, cancel: cancel };
  }

  function fail(ui, text) {
    // A refusal shows its reason and no progress: a full bar would read as "done".
    if (ui.bar) { ui.bar.remove(); ui.bar = null; }
    ui.row.classList.remove("queued");
    ui.row.classList.add("error");
    ui.status.textContent = text;
    ui.status.setAttribute("role", "alert");
    ui.cancel.remove();
  }

  function addToTable(file) {
    var body = document.querySelector("#my-files tbody");
    if (!body) { return; }
    var empty = body.querySelector("tr.empty");
    if (empty) { empty.remove(); }
    var row = el("tr");
    var cell = el("td");
    var icon = el("span", "icon icon-" + file.kind);
    icon.setAttribute("aria-hidden", "true");
    var link = el("a", "filename", file.name);
    link.href = file.download_url;
    cell.append(icon, link);
    var details = el("a", "", msg.msgDetails);
    details.href = file.detail_url;
    var detailsCell = el("td");
    detailsCell.appendChild(details);
    var when = el("time", "", "now");
    when.dateTime = file.created_at;
    var whenCell = el("td");
    whenCell.appendChild(when);
    row.append(cell, el("td", "", file.size_display), whenCell, detailsCell);
    body.insertBefore(row, body.firstChild);
  }

  function queue(files) {
    say("");
    Array.prototype.forEach.call(files, function (file) {
      var item = { file: file, ui: addRow(file) };
      if (maxBytes && file.size > maxBytes) { fail(item.ui, msg.msgTooLarge); return; }
      item.ui.cancel.addEventListener("click", function () {
        var at = queued.indexOf(item);
        if (at !== -1) { queued.splice(at, 1); }
        item.ui.row.remove();
      });
      queued.push(item);
    });
  }

  function finished() {
    running -= 1;
    if (running === 0) { lockOptions(false); }
  }

  function refusal(xhr, reply) {
    if (reply.error) { return reply.error; }
    if (xhr.responseURL && xhr.responseURL.indexOf("/accounts/login/") !== -1) {
      return msg.msgLogin;
    }
    return msg.msgHttp.replace("%(status)s", String(xhr.status));
  }

  function send(item, expiresInDays) {
    var file = item.file, ui = item.ui;
    ui.row.classList.remove("queued");
    ui.bar = el("progress");
    ui.bar.max = file.size || 1;
    ui.bar.value = 0;
    ui.bar.setAttribute("aria-label", file.name);
    ui.name.after(ui.bar);
    ui.status.textContent = humanSize(file.size);
    // A new button: the queued row's one removes it from the queue.
    var cancel = el("button", "link upload-cancel", msg.msgCancel);
    cancel.type = "button";
    ui.cancel.replaceWith(cancel);
    ui.cancel = cancel;
    var data = new FormData();
    data.append("csrfmiddlewaretoken", csrf);
    if (expiresInDays) { data.append("expires_in_days", expiresInDays); }
    data.append("file", file, file.name);
    var xhr = new XMLHttpRequest();
    var started = Date.now();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable || !ui.bar) { return; }
      var elapsed = (Date.now() - started) / 1000;
      var rate = elapsed > 0 ? event.loaded / elapsed : 0;
      var ratio = event.loaded / event.total;
      // The last bytes sent are not yet a stored file: the bar fills only on the answer.
      ui.bar.value = Math.min(ratio, 0.99) * ui.bar.max;
      ui.status.textContent = ratio >= 1 ? msg.msgStoring :
        Math.round(ratio * 100) + "% · " + humanSize(rate) + "/s · " +
        humanTime((event.total - event.loaded) / rate) + " " + msg.msgLeft;
    });
    xhr.addEventListener("load", function () {
      var reply = {};
      try { reply = JSON.parse(xhr.responseText); } catch (e) { reply = {}; }
      showUsage(reply.usage);
      if (xhr.status === 201 && reply.files) {
        ui.bar.value = ui.bar.max;
        ui.row.classList.add("done");
        ui.status.textContent = msg.msgDone + " " +
          reply.files.map(function (stored) { return stored.expires_display; }).join(" ");
        ui.cancel.remove();
        reply.files.forEach(addToTable);
      } else {
        fail(ui, refusal(xhr, reply));
      }
      finished();
    });
    xhr.addEventListener("error", function () { fail(ui, msg.msgNetwork); finished(); });
    xhr.addEventListener("abort", function () { fail(ui, msg.msgCancelled); finished(); });
    ui.cancel.addEventListener("click", function () { xhr.abort(); });
    running += 1;
    xhr.send(data);
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!queued.length) { say(msg.msgChooseFirst); return; }
    say("");
    // Read once, as the form shows it now; locked until these requests are answered.
    var expiresInDays = days ? days.value : "";
    var sending = queued;
    queued = [];
    lockOptions(true);
    sending.forEach(function (item) { send(item, expiresInDays); });
  });
  input.addEventListener("change", function () {
    queue(input.files);
    input.value = "";
  });
  ["dragenter", "dragover"].forEach(function (type) {
    zone.addEventListener(type, function (event) {
      event.preventDefault();
      zone.classList.add("dragging");
    });
  });
  ["dragleave", "drop"].forEach(function (type) {
    zone.addEventListener(type, function () { zone.classList.remove("dragging"); });
  });
  zone.addEventListener("drop", function (event) {
    event.preventDefault();
    if (event.dataTransfer && event.dataTransfer.files.length) { queue(event.dataTransfer.files); }
  });
}());
