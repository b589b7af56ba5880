// cairnflow's own front-end code: JSON writes for the action buttons and the Run form.
// Live updates are htmx's (vendored in htmx.min.js); writes go out as
// application/json from this origin, which is all the server accepts.
(function () {
  "use strict";

  function flash(html, isError) {
    var box = document.getElementById("flash");
    if (!box) return;
    box.innerHTML = html;
    box.className = "flash" + (isError ? " error" : "");
    box.hidden = false;
    clearTimeout(flash.timer);
    flash.timer = setTimeout(function () { box.hidden = true; }, isError ? 10000 : 6000);
  }

  function escapeHtml(text) {
    var d = document.createElement("div");
    d.textContent = String(text);
    return d.innerHTML;
  }

  function send(method, url, body) {
    return fetch(url, {
      method: method,
      headers: { "Content-Type": "application/json", "Accept": "application/json" },
      body: JSON.stringify(body || {}),
      credentials: "same-origin",
    }).then(function (resp) {
      return resp.json().catch(function () { return {}; }).then(function (data) {
        if (!resp.ok) throw new Error(data.detail || resp.statusText);
        return data;
      });
    });
  }

  function refreshLive() {
    var live = document.getElementById("live");
    if (live && window.htmx) window.htmx.trigger(live, "refresh");
  }

  // <button data-action="/api/..." data-method="POST" [data-confirm] [data-then="/runs"]>
  document.addEventListener("click", function (ev) {
    var button = ev.target.closest("button[data-action]");
    if (!button) return;
    ev.preventDefault();
    if (button.dataset.confirm && !window.confirm(button.dataset.confirm)) return;
    button.disabled = true;
    send(button.dataset.method || "POST", button.dataset.action).then(function (data) {
      if (button.dataset.then) { window.location.assign(button.dataset.then); return; }
      flash(escapeHtml(button.textContent.trim()) + ": " + escapeHtml(data.state || "done"));
      refreshLive();
    }).catch(function (err) {
      button.disabled = false;
      flash(escapeHtml(err.message), true);
    });
  });

  // The Run form: each input has data-type (string, integer, number, boolean, json, auto).
  function value(input) {
    var type = input.dataset.type || "string";
    if (type === "boolean") return input.checked;
    var text = input.value;
    if (type === "string") return text;
    if (type === "auto") {  // as the CLI's --param: JSON when it parses, else the text
      if (text === "") return undefined;
      try { return JSON.parse(text); } catch (e) { return text; }
    }
    if (text.trim() === "") return undefined;
    if (type === "integer" || type === "number") {
      var n = Number(text);
      if (!isFinite(n) || (type === "integer" && !Number.isInteger(n)))
        throw new Error(input.name + " must be " + (type === "integer" ? "an integer" : "a number"));
      return n;
    }
    try { return JSON.parse(text); }
    catch (e) { throw new Error(input.name + " is not valid JSON: " + e.message); }
  }

  function parameters(form) {
    var raw = form.querySelector("textarea[name=__json__]");
    if (raw && raw.value.trim() !== "") {
      var parsed = JSON.parse(raw.value);
      if (parsed === null || typeof parsed !== "object" || Array.isArray(parsed))
        throw new Error("the JSON parameters must be an object");
      return parsed;
    }
    var params = {};
    form.querySelectorAll("[data-param]").forEach(function (input) {
      if (input.dataset.type !== "boolean" && input.value === "" && input.dataset.optional === "1") return;
      var v = value(input);
      if (v !== undefined) params[input.name] = v;
    });
    return params;
  }

  document.addEventListener("submit", function (ev) {
    var form = ev.target.closest("form[data-run-form]");
    if (!form) return;
    ev.preventDefault();
    var params;
    try { params = parameters(form); }
    catch (err) { flash(escapeHtml(err.message), true); return; }
    var button = form.querySelector("button[type=submit]");
    if (button) button.disabled = true;
    send("POST", form.dataset.runForm, { parameters: params }).then(function (data) {
      flash('Run <a href="' + escapeHtml(data.url) + '">' + escapeHtml(data.id.slice(0, 8)) +
            "</a> created: " + escapeHtml(data.state));
      refreshLive();
    }).catch(function (err) {
      flash(escapeHtml(err.message), true);
    }).finally(function () { if (button) button.disabled = false; });
  });

  // The schedule toggle: <input type="checkbox" data-toggle-url="/api/flows/ID/schedule">
  document.addEventListener("change", function (ev) {
    var box = ev.target.closest("input[data-toggle-url]");
    if (box) {
      send("POST", box.dataset.toggleUrl, { active: box.checked }).then(function () {
        flash("Schedule " + (box.checked ? "on" : "off"));
        refreshLive();
      }).catch(function (err) { box.checked = !box.checked; flash(escapeHtml(err.message), true); });
      return;
    }
    syncDownload(ev.target.closest("form#log-filters"));
  });
  document.addEventListener("input", function (ev) { syncDownload(ev.target.closest("form#log-filters")); });

  // The logs' Download link follows the filters.
  function syncDownload(form) {
    if (!form) return;
    var link = document.getElementById("log-download");
    if (!link) return;
    var query = new URLSearchParams(new FormData(form)).toString();
    link.href = link.dataset.base + (query ? "?" + query : "");
  }
})();
