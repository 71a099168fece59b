/* Tells the server the browser's time zone, so times are shown in it (with the zone named).
   Sets the `tz` cookie to the IANA name ("Europe/Berlin"); the server accepts only names in
   its zone database (sharing.middleware.BrowserTimezoneMiddleware). No inline script: CSP. */
(function () {
  "use strict";
  var zone;
  try {
    zone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  } catch (error) {
    return;
  }
  if (!zone || !/^[A-Za-z0-9_+\-\/]{1,64}$/.test(zone)) { return; }
  var current = document.cookie.split("; ").filter(function (part) {
    return part.indexOf("tz=") === 0;
  })[0];
  if (current === "tz=" + zone) { return; }
  var secure = window.location.protocol === "https:" ? "; Secure" : "";
  document.cookie = "tz=" + zone + "; Path=/; Max-Age=31536000; SameSite=Lax" + secure;
}());
