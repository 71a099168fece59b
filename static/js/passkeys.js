/* Passkeys: the glue between the portal's JSON endpoints and navigator.credentials
   (WebAuthn). No inline script (the CSP forbids it) and nothing from another origin.

   <button data-passkey="register" data-options-url=".." data-url=".."> registers a passkey
   named by the #passkey-name field; <button data-passkey="authenticate" ...> proves one
   (second factor, passwordless sign-in, or confirmation before removing the last factor)
   and follows the server's {"redirect": url}. Errors go to the [data-passkey-status]. */
(function () {
  "use strict";

  function toBytes(base64url) {
    var base64 = base64url.replace(/-/g, "+").replace(/_/g, "/");
    while (base64.length % 4) { base64 += "="; }
    var text = atob(base64), bytes = new Uint8Array(text.length);
    for (var i = 0; i < text.length; i++) { bytes[i] = text.charCodeAt(i); }
    return bytes.buffer;
  }

  function toBase64url(buffer) {
    var bytes = new Uint8Array(buffer), text = "";
    for (var i = 0; i < bytes.length; i++) { text += String.fromCharCode(bytes[i]); }
    return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  function csrfToken() {
    var field = document.querySelector("input[name=csrfmiddlewaretoken]");
    return field ? field.value : "";
  }

  function post(url, body) {
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRFToken": csrfToken()},
      body: JSON.stringify(body || {})
    }).then(function (response) {
      return response.json().then(function (data) {
        if (!response.ok) { throw new Error(data.error || "The request failed."); }
        return data;
      });
    });
  }

  function descriptors(list) {
    return (list || []).map(function (item) {
      return {type: item.type, id: toBytes(item.id), transports: item.transports};
    });
  }

  function creationOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.user.id = toBytes(options.user.id);
    options.excludeCredentials = descriptors(options.excludeCredentials);
    return {publicKey: options};
  }

  function requestOptions(options) {
    options.challenge = toBytes(options.challenge);
    options.allowCredentials = descriptors(options.allowCredentials);
    return {publicKey: options};
  }

  function credentialJSON(credential) {
    var response = credential.response, json = {
      id: credential.id,
      rawId: toBase64url(credential.rawId),
      type: credential.type,
      clientExtensionResults: credential.getClientExtensionResults(),
      response: {clientDataJSON: toBase64url(response.clientDataJSON)}
    };
    if (response.attestationObject) {
      json.response.attestationObject = toBase64url(response.attestationObject);
      json.response.transports = response.getTransports ? response.getTransports() : [];
    } else {
      json.response.authenticatorData = toBase64url(response.authenticatorData);
      json.response.signature = toBase64url(response.signature);
      if (response.userHandle) { json.response.userHandle = toBase64url(response.userHandle); }
    }
    return json;
  }

  function show(message) {
    var status = document.querySelector("[data-passkey-status]");
    if (status) { status.textContent = message; status.hidden = false; }
  }

  function register(button) {
    var name = document.getElementById("passkey-name");
    return post(button.dataset.optionsUrl).then(function (options) {
      return navigator.credentials.create(creationOptions(options));
    }).then(function (credential) {
      return post(button.dataset.url, {
        credential: credentialJSON(credential), name: name ? name.value : ""
      });
    });
  }

  function authenticate(button) {
    return post(button.dataset.optionsUrl).then(function (options) {
      return navigator.credentials.get(requestOptions(options));
    }).then(function (credential) {
      return post(button.dataset.url, {credential: credentialJSON(credential)});
    });
  }

  document.querySelectorAll("[data-passkey]").forEach(function (button) {
    if (!window.PublicKeyCredential) {
      button.hidden = true;
      return;
    }
    button.hidden = false;
    button.addEventListener("click", function () {
      var ceremony = button.dataset.passkey === "register" ? register : authenticate;
      button.disabled = true;
      ceremony(button).then(function (answer) {
        // data-stay: a fresh proof for an act on this page (creating a token): come back.
        var stay = button.dataset.stay !== undefined;
        window.location.assign(stay ? window.location.href : (answer.redirect || window.location.href));
      }, function (error) {
        button.disabled = false;
        show(error.name === "NotAllowedError"
          ? "No passkey was used (cancelled, timed out, or none for this account here)."
          : error.message);
      });
    });
  });
}());
