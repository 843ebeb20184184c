// The operator console's one script (served as /ops/console.js; the pages' CSP allows no
// other, and no inline script). It holds no data: what it sends comes from the page's
// attributes, the operator's name and the text boxes. Every action is a JSON POST to the
// /ops endpoint the button names, same origin, with the session cookie and the CSRF token
// of <meta name="csrf-token">, after the operator confirms it in the page's confirm bar.
(function () {
  "use strict";
  var meta = document.querySelector('meta[name="csrf-token"]');
  var csrf = meta ? meta.getAttribute("content") : "";
  var out = document.getElementById("result");
  var bar = document.getElementById("confirm");
  var nameInput = document.querySelector("[data-operator]");
  var saved = window.localStorage && localStorage.getItem("lead-agent-operator");
  if (nameInput && saved && !nameInput.value) { nameInput.value = saved; }

  function say(text) { if (out) { out.textContent = text; } }

  function operator() {
    var name = nameInput ? nameInput.value.trim() : "";
    if (name && window.localStorage) { localStorage.setItem("lead-agent-operator", name); }
    return name;
  }

  function post(url, body, what) {
    say(what + " …");
    return fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: {"Content-Type": "application/json", "X-CSRF-Token": csrf},
      body: JSON.stringify(body)
    }).then(function (r) {
      return r.text().then(function (text) {
        say(what + ": " + r.status + " " + text);
        if (r.ok) { window.setTimeout(function () { window.location.reload(); }, 600); }
      });
    }, function (e) { say(what + " failed: " + e); });
  }

  // The confirm bar: the action waits in `pending` until Confirm (or is dropped by Cancel).
  var pending = null;
  function ask(question, action) {
    if (!bar) { action(); return; }
    pending = action;
    bar.querySelector("[data-question]").textContent = question;
    bar.hidden = false;
    bar.querySelector("[data-confirm-yes]").focus();
  }

  function fromButton(button) {
    var body = {};
    var raw = button.getAttribute("data-body");
    if (raw) { body = JSON.parse(raw); }
    if (button.hasAttribute("data-with-operator")) {
      var name = operator();
      if (!name) { say("Type your name in the Operator box first."); return null; }
      body.operator = name;
    }
    var from = button.getAttribute("data-text-from");
    if (from) {
      var box = document.querySelector(from);
      var text = box ? box.value.trim() : "";
      if (!text) { say("The text is empty: nothing was sent."); return null; }
      body[button.getAttribute("data-text-key") || "text"] = text;
    }
    return body;
  }

  document.addEventListener("click", function (ev) {
    var t = ev.target;
    if (!t.getAttribute) { return; }
    if (t.hasAttribute("data-confirm-yes")) {
      bar.hidden = true;
      var action = pending; pending = null;
      if (action) { action(); }
      return;
    }
    if (t.hasAttribute("data-confirm-no")) {
      bar.hidden = true; pending = null; say("Cancelled.");
      return;
    }
    var url = t.getAttribute("data-post");
    if (url) {
      var body = fromButton(t);
      if (body === null) { return; }
      var what = t.getAttribute("data-what") || t.textContent.trim();
      ask(t.getAttribute("data-confirm") || (what + "?"), function () { post(url, body, what); });
      return;
    }
    // The system section's Release buttons.
    var lead = t.getAttribute("data-takeover-release");
    if (lead) {
      var name = operator();
      ask("Release " + lead + " to the AI?", function () {
        post("/ops/leads/" + encodeURIComponent(lead) + "/release", name ? {operator: name} : {}, "release " + lead);
      });
    }
  });

  // Live without polling the world: while the page is visible, ask every 10 s whether
  // anything changed (GET /ops/changes: a stamp of the newest message, the open messages
  // and the attention set) and reload when it did — unless the operator is in the middle
  // of something (the confirm bar open, a text box focused or holding text). A hidden
  // page asks nothing.
  var stamp = document.body.getAttribute("data-stamp") || "";
  function busy() {
    if (bar && !bar.hidden) { return true; }
    var active = document.activeElement;
    if (active && (active.tagName === "TEXTAREA" || active.tagName === "INPUT")) { return true; }
    var boxes = document.querySelectorAll("textarea[data-draft]");
    for (var i = 0; i < boxes.length; i++) { if (boxes[i].value.trim()) { return true; } }
    return false;
  }
  function check() {
    if (!stamp || document.visibilityState !== "visible" || busy()) { return; }
    fetch("/ops/changes", {credentials: "same-origin"}).then(function (r) {
      return r.ok ? r.json() : null;
    }).then(function (v) {
      if (v && v.stamp && v.stamp !== stamp && !busy()) { window.location.reload(); }
    }, function () {});
  }
  window.setInterval(check, 10000);
  document.addEventListener("visibilitychange", check);

  // The system section's Take over form (any lead by number).
  document.addEventListener("submit", function (ev) {
    var form = ev.target;
    if (!form.hasAttribute("data-takeover-form")) { return; }
    ev.preventDefault();
    var lead = form.elements.lead.value.trim();
    var name = operator();
    if (!name) { say("Type your name in the Operator box first."); return; }
    ask("Take over " + lead + " as " + name + "?", function () {
      post("/ops/leads/" + encodeURIComponent(lead) + "/takeover", {operator: name}, "take over " + lead);
    });
  });
})();
