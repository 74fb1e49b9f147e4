// The web chat page: send a message, show the answer, poll for the rest (agent replies).
// Every text from the server goes into the page with textContent, never as HTML.
(function () {
  "use strict";

  var POLL_MS = 2000;
  var POLL_MAX_MS = 30000; // back off to this while the server cannot be reached

  var root = document.getElementById("chat");
  var list = document.getElementById("messages");
  var form = document.getElementById("composer");
  var input = document.getElementById("text");
  var statusLine = document.getElementById("status");
  var texts = root.dataset;
  var url = texts.messagesUrl;
  var maxText = parseInt(texts.maxText, 10);
  var csrf = document.querySelector('meta[name="csrf-token"]').getAttribute("content");

  var cursor = 0; // the server's cursor: everything at or before it has been shown
  var shown = {}; // message id -> its element
  var pollDelay = POLL_MS;
  var pollTimer = null;

  // crypto.randomUUID exists only on https and localhost; the page may be served plainly.
  function uuid() {
    if (window.crypto && typeof window.crypto.randomUUID === "function") {
      return window.crypto.randomUUID();
    }
    var b = new Uint8Array(16);
    window.crypto.getRandomValues(b);
    b[6] = (b[6] & 0x0f) | 0x40;
    b[8] = (b[8] & 0x3f) | 0x80;
    var hex = Array.prototype.map.call(b, function (x) { return (x + 0x100).toString(16).slice(1); }).join("");
    return hex.slice(0, 8) + "-" + hex.slice(8, 12) + "-" + hex.slice(12, 16) + "-" +
      hex.slice(16, 20) + "-" + hex.slice(20);
  }

  function nearBottom() {
    return list.scrollHeight - list.scrollTop - list.clientHeight < 80;
  }

  function scrollDown() {
    list.scrollTop = list.scrollHeight;
  }

  function showStatus(text) {
    statusLine.textContent = text || "";
    statusLine.hidden = !text;
  }

  function timeOf(iso) {
    var d = iso ? new Date(iso) : new Date();
    return ("0" + d.getHours()).slice(-2) + ":" + ("0" + d.getMinutes()).slice(-2);
  }

  // One bubble: <li class="msg msg--customer|bot|agent"><span author/><p bubble/><span meta/></li>
  function bubble(author, text, at) {
    var li = document.createElement("li");
    li.className = "msg msg--" + author;
    if (author !== "customer") {
      var who = document.createElement("span");
      who.className = "msg__author";
      who.textContent = author === "agent" ? texts.textAgent : texts.textBot;
      li.appendChild(who);
    }
    var p = document.createElement("p");
    p.className = "msg__bubble";
    p.textContent = text;
    li.appendChild(p);
    var meta = document.createElement("span");
    meta.className = "msg__meta";
    meta.textContent = timeOf(at);
    li.appendChild(meta);
    return li;
  }

  // Server messages sit in id order; bubbles still being sent (no id yet) stay at the end.
  function place(li, id) {
    var next = null;
    for (var node = list.firstElementChild; node; node = node.nextElementSibling) {
      if (node.classList.contains("msg--intro")) { continue; }
      var other = node.dataset.id ? parseInt(node.dataset.id, 10) : Infinity;
      if (other > id) { next = node; break; }
    }
    list.insertBefore(li, next);
  }

  function show(message) {
    if (shown[message.id]) { return; }
    var li = null;
    if (message.direction === "in" && message.client_id) {
      // Our own message, whose POST answer the poll has overtaken: that bubble, not a second one.
      li = list.querySelector('li[data-client-id="' + message.client_id + '"]');
    }
    var stick = nearBottom();
    if (li) {
      settle(li);
      li.parentNode.removeChild(li);
    } else {
      li = bubble(message.direction === "in" ? "customer" : message.author, message.text, message.at);
    }
    li.dataset.id = String(message.id);
    shown[message.id] = li;
    place(li, message.id);
    if (stick || message.direction === "in") { scrollDown(); }
  }

  function settle(li) {
    li.classList.remove("is-sending", "is-failed");
    var retry = li.querySelector(".msg__retry");
    if (retry) { retry.parentNode.removeChild(retry); }
    li.querySelector(".msg__meta").textContent = timeOf();
  }

  function failed(li, text, canRetry) {
    li.classList.remove("is-sending");
    li.classList.add("is-failed");
    li.querySelector(".msg__meta").textContent = text;
    if (canRetry && !li.querySelector(".msg__retry")) {
      var again = document.createElement("button");
      again.type = "button";
      again.className = "msg__retry";
      again.textContent = texts.textRetry;
      again.addEventListener("click", function () { post(li); });
      li.appendChild(again);
    }
  }

  // Send one bubble's text; a retry sends the same client_id, so the server stores it once.
  function post(li) {
    li.classList.remove("is-failed");
    li.classList.add("is-sending");
    li.querySelector(".msg__meta").textContent = texts.textSending;
    var retry = li.querySelector(".msg__retry");
    if (retry) { retry.parentNode.removeChild(retry); }
    fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRFToken": csrf, "Accept": "application/json" },
      body: JSON.stringify({ text: li.dataset.text, client_id: li.dataset.clientId })
    }).then(function (response) {
      if (response.ok) {
        return response.json().then(function (data) {
          settle(li);
          data.messages.forEach(show);
          showStatus("");
        });
      }
      if (response.status === 429) {
        failed(li, texts.textTooMany, true);
      } else if (response.status === 400) {
        failed(li, texts.textExpired, false); // the page's own checks passed: its session is gone
      } else {
        failed(li, texts.textFailed, true);
      }
    }).catch(function () {
      failed(li, texts.textFailed, true);
    });
  }

  function send(text) {
    var li = bubble("customer", text);
    li.classList.add("is-sending");
    li.dataset.text = text;
    li.dataset.clientId = uuid();
    list.appendChild(li);
    scrollDown();
    post(li);
  }

  function poll() {
    clearTimeout(pollTimer);
    fetch(url + "?after=" + encodeURIComponent(cursor), {
      credentials: "same-origin",
      headers: { "Accept": "application/json" }
    }).then(function (response) {
      if (!response.ok) { throw new Error("poll " + response.status); }
      return response.json();
    }).then(function (data) {
      data.messages.forEach(show);
      var moved = data.cursor > cursor;
      cursor = Math.max(cursor, data.cursor);
      pollDelay = POLL_MS;
      if (statusLine.textContent === texts.textOffline) { showStatus(""); }
      schedule(data.more && moved ? 0 : pollDelay);
    }).catch(function () {
      showStatus(texts.textOffline);
      pollDelay = Math.min(pollDelay * 2, POLL_MAX_MS);
      schedule(pollDelay);
    });
  }

  function schedule(ms) {
    clearTimeout(pollTimer);
    pollTimer = setTimeout(poll, ms);
  }

  function grow() {
    input.style.height = "auto";
    input.style.height = Math.min(input.scrollHeight, 160) + "px";
  }

  form.addEventListener("submit", function (event) {
    event.preventDefault();
    var text = input.value.trim();
    if (!text) { return; }
    if (text.length > maxText) { showStatus(texts.textTooLong); return; }
    showStatus("");
    input.value = "";
    grow();
    send(text);
    input.focus();
  });

  input.addEventListener("keydown", function (event) {
    // Enter sends, Shift+Enter breaks the line; an Enter that confirms a pinyin (IME) word does neither.
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && event.keyCode !== 229) {
      event.preventDefault();
      form.requestSubmit ? form.requestSubmit() : form.dispatchEvent(new Event("submit", { cancelable: true }));
    }
  });
  input.addEventListener("input", grow);

  // A tab in the background is polled rarely by the browser; catch up as soon as it is seen.
  document.addEventListener("visibilitychange", function () {
    if (!document.hidden) { poll(); }
  });

  poll(); // the history of this browser session, then every few seconds
})();
