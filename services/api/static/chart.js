/* KilnChart: a very small canvas chart library (line and labelled scatter), vendored with kiln so the
   page needs no network. KilnChart.line(canvas, xs, ys, opts); KilnChart.scatter(canvas, xs, ys, labels). */
(function (root) {
  "use strict";
  function extent(v) {
    var lo = Infinity, hi = -Infinity;
    for (var i = 0; i < v.length; i++) { if (isFinite(v[i])) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i]; } }
    if (lo === Infinity) { lo = 0; hi = 1; }
    if (lo === hi) { lo -= 1; hi += 1; }
    return [lo, hi];
  }
  function fmt(x) {
    var a = Math.abs(x);
    if (a >= 1e6) return (x / 1e6).toFixed(1) + "M";
    if (a >= 1e3) return (x / 1e3).toFixed(1) + "k";
    if (a >= 10 || a === 0) return x.toFixed(0);
    return x.toPrecision(3);
  }
  function frame(canvas, xr, yr, pad) {
    var ctx = canvas.getContext("2d"), w = canvas.width, h = canvas.height;
    ctx.clearRect(0, 0, w, h);
    ctx.font = "11px sans-serif"; ctx.fillStyle = "#4b5468"; ctx.strokeStyle = "#e3e6ec"; ctx.lineWidth = 1;
    for (var k = 0; k <= 4; k++) {
      var y = pad.t + (h - pad.t - pad.b) * k / 4, v = yr[1] - (yr[1] - yr[0]) * k / 4;
      ctx.beginPath(); ctx.moveTo(pad.l, y); ctx.lineTo(w - pad.r, y); ctx.stroke();
      ctx.fillText(fmt(v), 4, y + 4);
    }
    ctx.fillText(fmt(xr[0]), pad.l, h - 6);
    var last = fmt(xr[1]); ctx.fillText(last, w - pad.r - ctx.measureText(last).width, h - 6);
    return {
      ctx: ctx,
      x: function (v) { return pad.l + (v - xr[0]) / (xr[1] - xr[0]) * (w - pad.l - pad.r); },
      y: function (v) { return h - pad.b - (v - yr[0]) / (yr[1] - yr[0]) * (h - pad.t - pad.b); }
    };
  }
  function line(canvas, xs, ys, opts) {
    opts = opts || {};
    var f = frame(canvas, extent(xs), extent(ys), {l: 46, r: 10, t: 10, b: 22}), ctx = f.ctx;
    if (!xs.length) { ctx.fillText(opts.empty || "no data yet", 60, canvas.height / 2); return; }
    ctx.strokeStyle = opts.color || "#1565c0"; ctx.lineWidth = 2; ctx.beginPath();
    var started = false;
    for (var i = 0; i < xs.length; i++) {
      if (!isFinite(ys[i])) continue;
      if (!started) { ctx.moveTo(f.x(xs[i]), f.y(ys[i])); started = true; } else ctx.lineTo(f.x(xs[i]), f.y(ys[i]));
    }
    ctx.stroke();
  }
  function scatter(canvas, xs, ys, labels) {
    var f = frame(canvas, extent(xs), extent(ys), {l: 46, r: 30, t: 10, b: 22}), ctx = f.ctx;
    ctx.fillStyle = "#1d2330";
    for (var i = 0; i < xs.length; i++) {
      var px = f.x(xs[i]), py = f.y(ys[i]);
      ctx.fillStyle = "#ff8f00"; ctx.beginPath(); ctx.arc(px, py, 2, 0, 2 * Math.PI); ctx.fill();
      if (labels) { ctx.fillStyle = "#1d2330"; ctx.fillText(labels[i], px + 3, py - 2); }
    }
  }
  root.KilnChart = {line: line, scatter: scatter};
})(window);
