// The serial console: xterm.js on the Compute API's serial-console websocket.
(function () {
  var el = document.getElementById("terminal");
  var state = document.getElementById("console-state");
  var csrf = document.body.getAttribute("data-csrf");
  var term = new Terminal({convertEol: true, cursorBlink: true, rows: 30, scrollback: 5000,
                           fontFamily: "ui-monospace, Menlo, Consolas, monospace", fontSize: 14});
  term.open(el);
  window.onestackTerminal = term;
  function show(text, cls) { state.textContent = text; state.className = "badge " + (cls || ""); }
  fetch(el.getAttribute("data-url"), {method: "POST", headers: {"X-CSRF-Token": csrf}})
    .then(function (r) { return r.json().then(function (d) { return {ok: r.ok, d: d}; }); })
    .then(function (res) {
      if (!res.ok) { show(res.d.error || "refused", "s-error"); term.write(res.d.error || ""); return; }
      var scheme = window.location.protocol === "https:" ? "wss://" : "ws://";
      var ws = new WebSocket(scheme + window.location.host + res.d.path, ["binary"]);
      ws.binaryType = "arraybuffer";
      var encoder = new TextEncoder();
      ws.onopen = function () { show("connected", "s-active"); term.focus(); ws.send(encoder.encode("\r")); };
      ws.onmessage = function (m) {
        term.write(typeof m.data === "string" ? m.data : new Uint8Array(m.data));
      };
      ws.onclose = function () { show("disconnected", "s-shutoff"); };
      term.onData(function (data) { if (ws.readyState === 1) { ws.send(encoder.encode(data)); } });
    });
})();
