/* kiln page script: live jobs table, job page (progress, curves, log stream, cancel/retry), model page
   (word map, nearest words, aliases, tags). Requests go to /api with the session cookie; changes carry
   X-Requested-With: kiln (the server's CSRF guard). */
(function () {
  "use strict";
  function data(id) { var el = document.getElementById(id); return el ? JSON.parse(el.textContent) : null; }
  function api(method, path, body) {
    var opts = {method: method, headers: {"X-Requested-With": "kiln", "Accept": "application/json"},
                credentials: "same-origin"};
    if (body !== undefined) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(path, opts).then(function (r) {
      return r.json().then(function (j) {
        if (!r.ok) throw new Error((j && j.error && j.error.message) || ("HTTP " + r.status));
        return j;
      });
    });
  }
  function text(id, v) { var el = document.getElementById(id); if (el) el.textContent = (v === null || v === undefined) ? "" : v; }
  function esc(s) { var d = document.createElement("div"); d.textContent = s; return d.innerHTML; }
  function fill(tableId, obj) {
    var t = document.getElementById(tableId); if (!t) return;
    var rows = Object.keys(obj || {}).sort().map(function (k) {
      var v = obj[k]; if (typeof v === "number") v = +v.toPrecision(4); if (typeof v === "object") v = JSON.stringify(v);
      return "<tr><th>" + esc(k) + "</th><td>" + esc(String(v)) + "</td></tr>";
    });
    t.innerHTML = rows.join("");
  }
  var TERMINAL = {SUCCEEDED: 1, FAILED: 1, CANCELLED: 1};

  function jobsTable() {
    var q = data("kiln-query") || {}, params = new URLSearchParams();
    if (q.state) params.set("state", q.state);
    if (!q.user) params.set("limit", "200");
    function tick() {
      api("GET", "/api/jobs?" + params.toString()).then(function (views) {
        if (q.user) views = views.filter(function (v) { return v.user === q.user; }).slice(0, 200);
        var tbody = document.querySelector("#jobs tbody"), html = views.map(function (v) {
          var pct = Math.round(v.progress * 100), model = v.model ? v.model.name + ":" + v.model.version : "";
          var cell = model ? '<a href="/models/' + encodeURIComponent(model) + '">' + esc(model) + "</a>" : esc((v.error || "").slice(0, 80));
          return '<tr data-job="' + esc(v.id) + '"><td><a href="/jobs/' + esc(v.id) + '">' + esc(v.id) + "</a></td><td>" +
            esc(v.name) + "</td><td>" + esc(v.kind) + "</td><td>" + esc(v.user) + '</td><td class="state s-' + esc(v.state) +
            '">' + esc(v.state) + '</td><td class="progress"><progress max="100" value="' + pct + '"></progress> <span>' +
            pct + "%</span></td><td>" + esc((v.submitted_at || "").slice(0, 19).replace("T", " ")) + '</td><td class="model">' +
            cell + "</td></tr>";
        }).join("");
        tbody.innerHTML = html || '<tr class="empty"><td colspan="8">no jobs</td></tr>';
      }).catch(function () {}).then(function () { setTimeout(tick, 1500); });
    }
    setTimeout(tick, 1500);
  }

  function jobPage() {
    var job = data("kiln-job"), id = job.id, after = "0-0";
    var pts = {t: [], loss: [], thr: []};
    function show(v) {
      ["state", "user", "kind", "attempt", "message", "epoch", "eta_s", "submitted_at", "started_at", "finished_at", "error"].forEach(function (k) { text("f-" + k, v[k]); });
      text("f-loss", v.loss === null ? "" : (+v.loss).toFixed(4));
      text("f-throughput", v.throughput === null ? "" : Math.round(v.throughput));
      var bar = document.getElementById("bar"); bar.value = Math.round(v.progress * 100);
      text("pct", (v.progress * 100).toFixed(1) + "%");
      if (v.throughput_unit) text("unit", v.throughput_unit);
      fill("metrics", v.metrics);
      if (v.model) {
        var ref = v.model.name + ":" + v.model.version, link = document.getElementById("model-link");
        link.innerHTML = 'Model: <a id="model-link-a" href="/models/' + encodeURIComponent(ref) + '">' + esc(ref) + "</a>";
      }
      var st = document.getElementById("f-state"); st.className = "state s-" + v.state;
      var cancel = document.getElementById("cancel"), retry = document.getElementById("retry");
      if (cancel) cancel.hidden = !!TERMINAL[v.state];
      if (retry) retry.hidden = !(v.state === "FAILED" || v.state === "CANCELLED");
    }
    function curves() {
      return api("GET", "/api/jobs/" + id + "/series?after=" + after).then(function (s) {
        s.points.forEach(function (p) {
          pts.t.push(p.t); pts.loss.push(p.loss === undefined ? NaN : p.loss); pts.thr.push(p.throughput === undefined ? NaN : p.throughput);
        });
        after = s.last;
        var t0 = pts.t.length ? pts.t[0] : 0, xs = pts.t.map(function (t) { return t - t0; });
        KilnChart.line(document.getElementById("loss"), xs, pts.loss, {color: "#c62828"});
        KilnChart.line(document.getElementById("throughput"), xs, pts.thr, {color: "#1565c0"});
      });
    }
    function tick() {
      Promise.all([api("GET", "/api/jobs/" + id).then(function (v) { show(v); job = v; }), curves()])
        .catch(function () {}).then(function () { if (!TERMINAL[job.state]) setTimeout(tick, 1000); });
    }
    show(job); tick();
    var log = document.getElementById("log"), es = new EventSource("/api/jobs/" + id + "/logs?follow=true");
    es.onmessage = function (ev) {
      var e = JSON.parse(ev.data), t = new Date(parseFloat(e.t) * 1000).toTimeString().slice(0, 8);
      log.textContent += t + " " + (e.level + "       ").slice(0, 8) + e.msg + "\n"; log.scrollTop = log.scrollHeight;
    };
    es.addEventListener("end", function () { es.close(); });
    document.querySelectorAll("[data-action]").forEach(function (b) {
      b.addEventListener("click", function () {
        var action = b.getAttribute("data-action");
        api("POST", "/api/jobs/" + id + "/" + action).then(function (v) {
          if (action === "retry") { window.location = "/jobs/" + v.id; } else { show(v); text("action-result", id + " " + v.state); }
        }).catch(function (err) { text("action-result", err.message); });
      });
    });
  }

  function modelPage() {
    var m = data("kiln-model"), ref = encodeURIComponent(m.ref);
    if (m.kind === "word2vec") {
      api("GET", "/api/models/" + ref + "/map?n=150").then(function (d) {
        KilnChart.scatter(document.getElementById("map"), d.x, d.y, d.words);
      }).catch(function (err) { text("model-result", err.message); });
      document.getElementById("nearest").addEventListener("submit", function (ev) {
        ev.preventDefault();
        var w = document.getElementById("word").value.trim(); if (!w) return;
        api("GET", "/api/models/" + ref + "/similar?top=10&word=" + encodeURIComponent(w)).then(function (rows) {
          document.getElementById("neighbours").innerHTML = rows.map(function (r) {
            return "<tr><td>" + esc(r.word) + "</td><td>" + r.similarity.toFixed(4) + "</td></tr>"; }).join("");
        }).catch(function (err) { document.getElementById("neighbours").innerHTML = '<tr><td class="error">' + esc(err.message) + "</td></tr>"; });
      });
    }
    if (m.kind === "cnn") {
      var drop = document.getElementById("drop"), input = document.getElementById("image");
      var send = function (file) {
        if (!file) return;
        var form = new FormData(); form.append("image", file, file.name);
        text("predicted", "…");
        fetch("/api/models/" + ref + "/predict?top=5", {method: "POST", body: form, credentials: "same-origin",
                                                         headers: {"X-Requested-With": "kiln"}})
          .then(function (r) { return r.json().then(function (j) { if (!r.ok) throw new Error(j.error.message); return j; }); })
          .then(function (p) {
            text("predicted", p.label + " (" + (p.score * 100).toFixed(1) + "%)");
            document.getElementById("prediction").innerHTML = p.top.map(function (t) {
              return "<tr><td>" + esc(t.label) + "</td><td>" + (t.score * 100).toFixed(1) + "%</td></tr>"; }).join("");
          }).catch(function (err) { text("predicted", err.message); });
      };
      input.addEventListener("change", function () { send(input.files[0]); });
      drop.addEventListener("dragover", function (ev) { ev.preventDefault(); drop.classList.add("over"); });
      drop.addEventListener("dragleave", function () { drop.classList.remove("over"); });
      drop.addEventListener("drop", function (ev) {
        ev.preventDefault(); drop.classList.remove("over"); send(ev.dataTransfer.files[0]);
      });
    }
    document.getElementById("alias-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      api("POST", "/api/models/" + ref + "/aliases", {alias: document.getElementById("alias").value.trim()})
        .then(function (d) { text("aliases", d.aliases.join(", ")); text("model-result", "alias set"); })
        .catch(function (err) { text("model-result", err.message); });
    });
    document.getElementById("tag-form").addEventListener("submit", function (ev) {
      ev.preventDefault();
      var tags = {}; tags[document.getElementById("tag-key").value.trim()] = document.getElementById("tag-value").value;
      api("POST", "/api/models/" + ref + "/tags", {tags: tags})
        .then(function () { window.location.reload(); })
        .catch(function (err) { text("model-result", err.message); });
    });
  }

  if (document.getElementById("kiln-query")) jobsTable();
  if (document.getElementById("kiln-job")) jobPage();
  if (document.getElementById("kiln-model")) modelPage();
})();
