/* Uploads on the "My files" page, resumable (tus 1.0.0 through the vendored tus-js-client,
 * static/vendor/tus-js-client/) with a progress bar, speed, time left, Pause, Resume and
 * Cancel per file.
 *
 * Choosing or dropping files only queues them: nothing is sent before Upload is pressed,
 * so the options the form shows then ("Delete after") are the ones every queued file is
 * stored with; while uploads are being sent, the options are locked. Each file is its own
 * upload, so one refusal (too large, over quota) does not cost the others. A network drop
 * is retried by itself (retryDelays, then again when the browser is back online); an
 * upload cut by a reload or a closed tab is remembered in localStorage (tus-js-client's
 * fingerprint: name, type, size, date, endpoint) and offered for resuming when the same
 * file is chosen again. After every answer the page shows the server's state: the list and
 * the usage as the server renders them, or the reason for a refusal.
 *
 * Without tus support (or where the server cannot take resumable uploads: 501) a file goes
 * as one form request, with a progress bar and Cancel. Without JavaScript the form posts
 * as usual. */
(function () {
  "use strict";
  var form = document.getElementById("upload-form");
  if (!form || !window.XMLHttpRequest || !window.FormData) { return; }
  var input = document.getElementById("id_file");
  var zone = document.getElementById("dropzone");
  var list = document.getElementById("upload-list");
  var unfinishedList = document.getElementById("upload-unfinished");
  var days = document.getElementById("id_expires_in_days");
  var message = document.getElementById("upload-message");
  var usageText = document.getElementById("usage-text");
  var usageMeter = document.getElementById("usage-meter");
  var headerUsage = document.getElementById("header-usage");
  var msg = form.dataset;
  var maxBytes = parseInt(msg.maxBytes, 10) || 0;
  var formCsrf = form.querySelector("input[name=csrfmiddlewaretoken]").value;
  var tus = window.tus;
  var endpoint = msg.tusEndpoint ? new URL(msg.tusEndpoint, window.location.href).href : "";
  var useTus = Boolean(endpoint && tus && tus.isSupported && window.fetch && window.DOMParser);
  // No chunkSize: tus-js-client's default (Infinity) sends a file in one PATCH. The
  // server seals it in 1 MiB segments and acknowledges them in batches as they are
  // stored (on S3 in parts of 8 segments), so without interruptions nothing is sent
  // twice, and a cut PATCH resumes from what the server stored. Each PATCH costs a
  // request and its database round trips: 8 MiB chunks made tus uploads ~1.5x dearer
  // in server CPU (bench/README.md).
  var RETRY_DELAYS = [0, 1000, 3000, 5000, 10000, 20000, 30000];
  var queued = [];   // items chosen but not sent yet
  var sending = [];  // items whose bytes are on the way: the options stay locked meanwhile
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

  function button(className, text, onClick) {
    var node = el("button", "link " + className, text);
    node.type = "button";
    node.addEventListener("click", onClick);
    return node;
  }

  function say(text) {
    message.textContent = text;
    message.hidden = !text;
  }

  // Read for every request: a login in another tab rotates the token.
  function csrfToken() {
    var match = document.cookie.match(/(?:^|;\s*)csrftoken=([^;]+)/);
    return match ? decodeURIComponent(match[1]) : formCsrf;
  }

  function setSending(item, on) {
    var at = sending.indexOf(item);
    if (on && at === -1) { sending.push(item); }
    if (!on && at !== -1) { sending.splice(at, 1); }
    if (!days) { return; }
    days.disabled = sending.length > 0;
    days.title = days.disabled ? msg.msgLocked : "";
  }

  function showUsage(usage) {
    if (!usage) { return; }
    if (usageText) { usageText.textContent = usage.text; }
    if (usageMeter) { usageMeter.value = usage.bytes; }
    if (headerUsage && usage.short) { headerUsage.textContent = usage.short; }
  }

  // ------------------------------------------------------------------ rows

  function addRow(file) {
    var row = el("li", "upload-item queued");
    var ui = {
      row: row,
      name: el("span", "upload-name", file.name),
      bar: null,
      status: el("span", "upload-status", humanSize(file.size) + " · " + msg.msgReady),
      actions: el("span", "upload-actions")
    };
    row.append(ui.name, ui.status, ui.actions);
    list.appendChild(row);
    return ui;
  }

  function setButtons(ui, buttons) {
    ui.actions.replaceChildren.apply(ui.actions, buttons);
  }

  function showBar(ui, file) {
    ui.row.classList.remove("queued");
    if (ui.bar) { return; }
    ui.bar = el("progress");
    ui.bar.max = file.size || 1;
    ui.bar.value = 0;
    ui.bar.setAttribute("aria-label", file.name);
    ui.name.after(ui.bar);
  }

  function fail(ui, text) {
    // A refusal shows its reason and no progress: a full bar would read as "done".
    if (ui.bar) { ui.bar.remove(); ui.bar = null; }
    ui.row.classList.remove("queued", "paused");
    ui.row.classList.add("error");
    ui.status.textContent = text;
    ui.status.setAttribute("role", "alert");
    setButtons(ui, []);
  }

  function succeed(ui, text) {
    if (ui.bar) { ui.bar.value = ui.bar.max; }
    ui.row.classList.remove("paused");
    ui.row.classList.add("done");
    ui.status.textContent = text;
    setButtons(ui, []);
  }

  // Progress with the speed over the last few seconds, not since the start: a pause or a
  // retry would otherwise drag it down for the rest of the upload.
  function progress(item, sent, total) {
    var ui = item.ui, now = Date.now(), samples = item.samples;
    if (!ui.bar) { return; }
    if (samples.length && sent < samples[samples.length - 1].sent) { samples.length = 0; }
    samples.push({ at: now, sent: sent });
    while (samples.length > 2 && now - samples[0].at > 5000) { samples.shift(); }
    var first = samples[0];
    var rate = now > first.at ? (sent - first.sent) / ((now - first.at) / 1000) : 0;
    var ratio = total ? sent / total : 1;
    // The last bytes sent are not yet a stored file: the bar fills only on the answer.
    ui.bar.value = Math.min(ratio, 0.99) * ui.bar.max;
    if (ratio >= 1) { ui.status.textContent = msg.msgStoring; return; }
    var text = Math.round(ratio * 100) + "%";
    if (rate > 0) {
      text += " · " + humanSize(rate) + "/s · " + humanTime((total - sent) / rate) + " " +
        msg.msgLeft;
    }
    ui.status.textContent = text;
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

  // ------------------------------------------------------------------ the server's state

  function fetchPage(url) {
    return fetch(url, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (response) {
        if (!response.ok || response.redirected) { throw new Error(String(response.status)); }
        return response.text();
      })
      .then(function (html) { return new DOMParser().parseFromString(html, "text/html"); });
  }

  // The list and the usage as the server renders this very page (same search, sort, page).
  function refresh() {
    return fetchPage(window.location.href).then(function (doc) {
      [["#my-files tbody", document.querySelector("#my-files tbody")],
       ["#usage-text", usageText], ["#header-usage", headerUsage]].forEach(function (pair) {
        var fresh = doc.querySelector(pair[0]);
        if (fresh && pair[1]) {
          pair[1].replaceChildren.apply(pair[1], Array.prototype.map.call(
            fresh.childNodes, function (node) { return document.importNode(node, true); }));
        }
      });
      var meter = doc.querySelector("#usage-meter");
      if (meter && usageMeter) { usageMeter.value = meter.getAttribute("value"); }
    }).catch(function () { /* the page still shows the row's own outcome */ });
  }

  // "Deleted automatically: <when>." as the file's own page says it.
  function expiryOf(detailUrl) {
    return fetchPage(detailUrl).then(function (doc) {
      var found = "";
      doc.querySelectorAll("dl.details dt").forEach(function (dt) {
        if (dt.textContent.trim() === msg.msgExpiryLabel && dt.nextElementSibling) {
          found = dt.nextElementSibling.textContent.trim();
        }
      });
      return found ? msg.msgExpiry.replace("%(when)s", found) : "";
    }).catch(function () { return ""; });
  }

  // ------------------------------------------------------------------ tus uploads

  function statusOf(error) {
    var response = error && error.originalResponse;
    return response ? response.getStatus() : 0;
  }

  function refusalText(item, status, error) {
    // 422: the file itself is refused (malware found); the server's plain-text answer
    // names the signature.
    var body = status === 422 && error.originalResponse.getBody();
    if (body) { return String(body).slice(0, 500); }
    if (status === 413) {
      if (maxBytes && item.file.size > maxBytes) { return msg.msgTooLarge; }
      return msg.msgQuota || msg.msgTooLarge;
    }
    if (status === 429) { return msg.msgTooMany; }
    if (status === 403) { return msg.msgSession; }
    return msg.msgHttp.replace("%(status)s", String(status));
  }

  function tusOptions(item) {
    return {
      endpoint: endpoint,
      retryDelays: RETRY_DELAYS,
      removeFingerprintOnSuccess: true,
      metadata: {
        filename: item.file.name,
        filetype: item.file.type || "application/octet-stream"
      },
      onBeforeRequest: function (req) { req.setHeader("X-CSRFToken", csrfToken()); },
      // Retry server errors, a busy upload (423), a stale offset (409) and no answer at
      // all, also while the browser says it is offline: the delays bridge a short drop.
      onShouldRetry: function (error) {
        var status = statusOf(error);
        return status === 0 || status >= 500 && status !== 501 || status === 409 ||
          status === 423;
      },
      // Pause or Cancel pressed while the upload was being created wait for its URL:
      // aborting the creation could leave an upload on the server the page cannot name.
      onUploadUrlAvailable: function () {
        if (item.wanted === "cancel") { cancel(item); }
        if (item.wanted === "pause") { pause(item); }
        item.wanted = "";
      },
      onProgress: function (sent, total) { progress(item, sent, total); },
      onSuccess: function () { stored(item); },
      onError: function (error) { tusFailed(item, error); }
    };
  }

  function queueTus(item) {
    item.upload = new tus.Upload(item.file, tusOptions(item));
    item.upload.findPreviousUploads().then(function (previous) {
      previous = previous.filter(function (p) {
        return p.uploadUrl && p.uploadUrl.indexOf(endpoint) === 0;
      }).sort(function (a, b) { return a.creationTime < b.creationTime ? 1 : -1; });
      if (!previous.length || !item.queued) { return; }
      item.previous = previous[0];
      forgetUnfinished(item.previous.urlStorageKey);
      item.ui.status.textContent = humanSize(item.file.size) + " · " + msg.msgResumeOffer;
      item.ui.row.classList.add("resumable");
      setButtons(item.ui, [
        button("upload-resume", msg.msgResume, function () { start([item], ""); }),
        item.ui.actions.lastChild
      ]);
    }).catch(function () { /* no storage: a new upload then */ });
  }

  function sendTus(item, expiresInDays) {
    var ui = item.ui, upload = item.upload;
    if (item.previous) {
      upload.resumeFromPreviousUpload(item.previous);
    } else if (expiresInDays) {
      upload.options.metadata.expires_in_days = expiresInDays;
    }
    item.expiresInDays = expiresInDays;
    showBar(ui, item.file);
    ui.status.textContent = humanSize(item.file.size);
    item.pause = button("upload-pause", msg.msgPause, function () { pause(item); });
    item.resume = button("upload-resume", msg.msgResume, function () { resume(item); });
    item.cancel = button("upload-cancel", msg.msgCancel, function () { cancel(item); });
    item.resume.hidden = true;
    setButtons(ui, [item.pause, item.resume, item.cancel]);
    resume(item);
  }

  function pause(item, text) {
    if (!item.upload.url && !text && sending.indexOf(item) !== -1) {
      item.wanted = "pause";
      return;
    }
    item.upload.abort(false);
    setSending(item, false);
    item.pause.hidden = true;
    item.resume.hidden = false;
    item.ui.row.classList.add("paused");
    item.ui.status.textContent = text || msg.msgPaused;
    if (!text) { item.resume.focus(); }
  }

  function resume(item) {
    item.samples = [];
    setSending(item, true);
    item.pause.hidden = false;
    item.resume.hidden = true;
    item.ui.row.classList.remove("paused");
    item.ui.status.removeAttribute("role");
    item.upload.start();
  }

  function cancel(item) {
    setButtons(item.ui, []);
    item.ui.status.textContent = msg.msgCancelling;
    if (!item.upload.url && sending.indexOf(item) !== -1) {
      item.wanted = "cancel";
      return;
    }
    setSending(item, false);
    // Terminate on the server (tus DELETE): its row and blob go, and the stored resume.
    item.upload.abort(true).then(function () {
      fail(item.ui, msg.msgCancelled);
      refresh();
    }, function () {
      fail(item.ui, msg.msgCancelFailed);
    });
  }

  function tusFailed(item, error) {
    var status = statusOf(error);
    setSending(item, false);
    if (item.wanted === "cancel") { fail(item.ui, msg.msgCancelled); return; }
    item.wanted = "";
    if (status === 501) {  // no resumable uploads on this server's storage (yet)
      useTus = false;
      sendForm(item, item.expiresInDays);
      return;
    }
    if (status === 0 || status === 403 || status >= 500) {
      // What is stored stays: Resume continues from there (after a new login for 403).
      pause(item, status === 403 ? msg.msgSession : msg.msgOffline);
      item.ui.status.setAttribute("role", "alert");
      if (status === 0) {
        window.addEventListener("online", function () {
          if (item.ui.row.classList.contains("paused")) { resume(item); }
        }, { once: true });
      }
      return;
    }
    fail(item.ui, refusalText(item, status, error));
    refresh();
  }

  function stored(item) {
    setSending(item, false);
    var id = item.upload.url.replace(/\/+$/, "").split("/").pop();
    var detailUrl = msg.detailUrl.replace("00000000-0000-0000-0000-000000000000", id);
    expiryOf(detailUrl).then(function (expiry) {
      succeed(item.ui, msg.msgDone + (expiry ? " " + expiry : ""));
      return refresh();
    });
  }

  // ------------------------------------------------------------------ unfinished uploads

  // Uploads cut by a reload or a closed tab, as this browser remembers them: listed when
  // the server still has them for this user (HEAD), with Discard (tus DELETE).
  function listUnfinished() {
    if (!useTus || !unfinishedList) { return; }
    var storage = tus.defaultOptions.urlStorage;
    storage.findAllUploads().then(function (all) {
      all.forEach(function (entry) {
        if (!entry.uploadUrl || entry.uploadUrl.indexOf(endpoint) !== 0) { return; }
        fetch(entry.uploadUrl, {
          method: "HEAD", credentials: "same-origin", headers: { "Tus-Resumable": "1.0.0" }
        }).then(function (response) {
          if (response.ok) { showUnfinished(entry, response); }
        }).catch(function () { /* offline: nothing to offer now */ });
      });
    }).catch(function () { /* no storage */ });
  }

  function showUnfinished(entry, response) {
    var offset = parseInt(response.headers.get("Upload-Offset"), 10) || 0;
    var length = parseInt(response.headers.get("Upload-Length"), 10) || entry.size || 0;
    var name = (entry.metadata && entry.metadata.filename) || "";
    var row = el("li", "upload-item unfinished");
    row.dataset.key = entry.urlStorageKey;
    var status = el("span", "upload-status", humanSize(offset) + " / " + humanSize(length) +
      " · " + msg.msgUnfinished);
    var discard = button("upload-discard", msg.msgDiscard, function () {
      discard.disabled = true;
      tus.Upload.terminate(entry.uploadUrl, {
        headers: { "X-CSRFToken": csrfToken() }, retryDelays: [0, 1000]
      }).catch(function () { /* gone already */ }).then(function () {
        return tus.defaultOptions.urlStorage.removeUpload(entry.urlStorageKey);
      }).then(function () { row.remove(); unfinishedList.hidden = !unfinishedList.children.length; });
    });
    var actions = el("span", "upload-actions");
    actions.appendChild(discard);
    row.append(el("span", "upload-name", name), status, actions);
    unfinishedList.appendChild(row);
    unfinishedList.hidden = false;
  }

  function forgetUnfinished(key) {
    if (!unfinishedList) { return; }
    Array.prototype.forEach.call(unfinishedList.children, function (row) {
      if (row.dataset.key === key) { row.remove(); }
    });
    unfinishedList.hidden = !unfinishedList.children.length;
  }

  // ------------------------------------------------------------------ form uploads

  function sendForm(item, expiresInDays) {
    var file = item.file, ui = item.ui;
    showBar(ui, file);
    ui.status.textContent = humanSize(file.size);
    var data = new FormData();
    data.append("csrfmiddlewaretoken", csrfToken());
    if (expiresInDays) { data.append("expires_in_days", expiresInDays); }
    data.append("file", file, file.name);
    var xhr = new XMLHttpRequest();
    item.samples = [];
    xhr.open("POST", form.action);
    xhr.setRequestHeader("Accept", "application/json");
    xhr.setRequestHeader("X-CSRFToken", csrfToken());
    xhr.upload.addEventListener("progress", function (event) {
      if (event.lengthComputable) { progress(item, event.loaded, event.total); }
    });
    xhr.addEventListener("load", function () {
      var reply = {};
      try { reply = JSON.parse(xhr.responseText); } catch (e) { reply = {}; }
      showUsage(reply.usage);
      if (xhr.status === 201 && reply.files) {
        succeed(ui, msg.msgDone + " " +
          reply.files.map(function (stored) { return stored.expires_display; }).join(" "));
        reply.files.forEach(addToTable);
      } else if (reply.error) {
        fail(ui, reply.error);
      } else if (xhr.responseURL && xhr.responseURL.indexOf("/accounts/login/") !== -1) {
        fail(ui, msg.msgLogin);
      } else {
        fail(ui, msg.msgHttp.replace("%(status)s", String(xhr.status)));
      }
      setSending(item, false);
    });
    xhr.addEventListener("error", function () { fail(ui, msg.msgNetwork); setSending(item, false); });
    xhr.addEventListener("abort", function () { fail(ui, msg.msgCancelled); setSending(item, false); });
    setButtons(ui, [button("upload-cancel", msg.msgCancel, function () { xhr.abort(); })]);
    setSending(item, true);
    xhr.send(data);
  }

  // ------------------------------------------------------------------ choosing, sending

  function queue(files) {
    say("");
    Array.prototype.forEach.call(files, function (file) {
      var item = { file: file, ui: addRow(file), queued: true, samples: [] };
      if (maxBytes && file.size > maxBytes) { fail(item.ui, msg.msgTooLarge); return; }
      setButtons(item.ui, [button("upload-remove", msg.msgRemove, function () {
        var at = queued.indexOf(item);
        if (at !== -1) { queued.splice(at, 1); }
        item.queued = false;
        item.ui.row.remove();
      })]);
      queued.push(item);
      if (useTus) { queueTus(item); }
    });
  }

  function start(items, expiresInDays) {
    items.forEach(function (item) {
      var at = queued.indexOf(item);
      if (at !== -1) { queued.splice(at, 1); }
      item.queued = false;
      if (useTus) { sendTus(item, expiresInDays); } else { sendForm(item, expiresInDays); }
    });
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    if (!queued.length) { say(msg.msgChooseFirst); return; }
    say("");
    // Read once, as the form shows it now; locked until these files are sent.
    start(queued.slice(), days ? days.value : "");
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
  listUnfinished();
}());
