/* Upload with a progress bar per file, speed, time left and cancel.
 * Each file goes in its own request, so one refusal (too large, over quota) does not
 * cost the others. Without JavaScript the form posts as usual. */
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var input = document.getElementById("id_file");
  var zone = document.getElementById("dropzone");
  var list = document.getElementById("upload-list");
  var days = document.getElementById("id_expires_in_days");
  var maxBytes = parseInt(form.dataset.maxBytes, 10) || 0;
  var csrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
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

  function addRow(file) {
    var row = el("li", "upload-item");
    var name = el("span", "upload-name", file.name);
    var bar = el("progress");
    bar.max = file.size || 1;
    bar.value = 0;
    bar.setAttribute("aria-label", file.name);
    var status = el("span", "upload-status", humanSize(file.size));
    var cancel = el("button", "link upload-cancel", form.dataset.msgCancel);
    cancel.type = "button";
    row.append(name, bar, status, cancel);
    list.appendChild(row);
    return { row: row, bar: bar, status: status, cancel: cancel };
  }

  function fail(ui, message) {
    ui.row.classList.add("error");
    ui.status.textContent = message;
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
    var details = el("a", "", form.dataset.msgDetails);
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

  function send(file) {
    var ui = addRow(file);
    if (maxBytes && file.size > maxBytes) { fail(ui, form.dataset.msgTooLarge); return; }
    var data = new FormData();
    data.append("csrfmiddlewaretoken", csrf);
    if (days && days.value) { data.append("expires_in_days", days.value); }
    data.append("file", file, file.name);
    var xhr = new XMLHttpRequest();
    var started = Date.now();
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrf);
    xhr.upload.addEventListener("progress", function (event) {
      if (!event.lengthComputable) { return; }
      var elapsed = (Date.now() - started) / 1000;
      var rate = elapsed > 0 ? event.loaded / elapsed : 0;
      var ratio = event.loaded / event.total;
      ui.bar.value = ratio * ui.bar.max;
      ui.status.textContent = Math.round(ratio * 100) + "% · " + humanSize(rate) + "/s · " +
        humanTime((event.total - event.loaded) / rate) + " " + form.dataset.msgLeft;
    });
    xhr.addEventListener("load", function () {
      var reply = {};
      try { reply = JSON.parse(xhr.responseText); } catch (e) { reply = {}; }
      if (xhr.status === 201 && reply.files) {
        ui.bar.value = ui.bar.max;
        ui.row.classList.add("done");
        ui.status.textContent = form.dataset.msgDone;
        ui.cancel.remove();
        reply.files.forEach(addToTable);
      } else {
        fail(ui, reply.error || ("HTTP " + xhr.status));
      }
    });
    xhr.addEventListener("error", function () { fail(ui, form.dataset.msgNetwork); });
    xhr.addEventListener("abort", function () { fail(ui, form.dataset.msgCancelled); });
    ui.cancel.addEventListener("click", function () { xhr.abort(); });
    xhr.send(data);
  }

  function sendAll(files) { Array.prototype.forEach.call(files, send); }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    sendAll(input.files);
    input.value = "";
  });
  input.addEventListener("change", function () {
    sendAll(input.files);
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
    if (event.dataTransfer && event.dataTransfer.files.length) { sendAll(event.dataTransfer.files); }
  });
}());
