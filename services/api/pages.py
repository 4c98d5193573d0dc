"""The web page: server-rendered HTML for jobs and models, with a little vendored JavaScript
(static/kiln.js, static/chart.js) that keeps tables and curves live. No CDN: it works offline.

Pages use the session cookie set by /login (or no credential on an open loopback server); the data
they render comes from the same services as /api.
"""
from __future__ import annotations

import html
import json
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from services.api.auth import COOKIE, Principal, identify
from services.api.errors import PermissionDenied, Unauthenticated
from shared.errors import KilnError

router = APIRouter(include_in_schema=False)
STATES = ("QUEUED", "STARTING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED")


def e(value) -> str:
    return html.escape("" if value is None else str(value), quote=True)


def _page(title: str, body: str, who: Principal | None, *, script: str = "", status: int = 200) -> HTMLResponse:
    user = (f'<span class="who">{e(who.user)}{" (admin)" if who.admin else ""}'
            f'{"" if who.via == "open" else " · <a href=/logout>log out</a>"}</span>') if who else ""
    doc = f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{e(title)} · kiln</title>
<meta name="viewport" content="width=device-width, initial-scale=1"><link rel="stylesheet" href="/static/kiln.css">
</head><body><header><a class="brand" href="/">kiln</a><nav><a href="/">Jobs</a><a href="/models">Models</a>
<a href="/api/docs">API</a></nav>{user}</header><main>{body}</main>
{script}<script src="/static/chart.js"></script><script src="/static/kiln.js"></script></body></html>"""
    return HTMLResponse(doc, status_code=status, headers={"Cache-Control": "no-store",
                                                          "Content-Security-Policy": "default-src 'self'; "
                                                          "style-src 'self'; img-src 'self' data:"})


def _who(request: Request) -> Principal | Response:
    try:
        return identify(request)
    except (Unauthenticated, PermissionDenied):
        return RedirectResponse(f"/login?next={quote(request.url.path)}", status_code=303)


def _error_page(who, err: KilnError) -> HTMLResponse:
    from services.api.errors import status_for  # noqa: PLC0415

    return _page("error", f'<p class="error">{e(err.message)}</p>', who, status=status_for(err))


def _json_script(name: str, value) -> str:
    # Data for the page's script, inert JSON (a <script> of type application/json is never executed).
    text = json.dumps(value).replace("<", "\\u003c")
    return f'<script type="application/json" id="{name}">{text}</script>'


# -- login -----------------------------------------------------------------------------------------
@router.get("/login")
def login_form(request: Request, next: str = "/") -> HTMLResponse:
    return _page("log in", f"""<h1>Log in</h1><form method="post" action="/login" class="login">
<input type="hidden" name="next" value="{e(_safe_next(next))}">
<label>API token <input type="password" name="token" id="token" autocomplete="off" size="50"></label>
<button type="submit" id="login">Log in</button></form>
<p class="hint">Create one with <code>kiln tokens create --user NAME</code>.</p>""", None)


def _safe_next(target: str) -> str:
    return target if target.startswith("/") and not target.startswith("//") else "/"


@router.post("/login")
def login(request: Request, token: str = Form(..., max_length=200), next: str = Form("/")) -> Response:
    if request.app.state.kiln.tokens.authenticate(token.strip()) is None:
        return _page("log in", '<p class="error">unknown or revoked token</p><p><a href="/login">try again</a></p>',
                     None, status=401)
    resp = RedirectResponse(_safe_next(next), status_code=303)
    resp.set_cookie(COOKIE, token.strip(), httponly=True, samesite="strict", max_age=30 * 24 * 3600)
    return resp


@router.get("/logout")
def logout() -> Response:
    resp = RedirectResponse("/login", status_code=303)
    resp.delete_cookie(COOKIE)
    return resp


# -- jobs ------------------------------------------------------------------------------------------
def _job_row(v: dict) -> str:
    model = f"{v['model']['name']}:{v['model']['version']}" if v.get("model") else ""
    model_cell = f'<a href="/models/{quote(model)}">{e(model)}</a>' if model else e((v.get("error") or "")[:80])
    pct = f"{v['progress'] * 100:.0f}"
    return (f'<tr data-job="{e(v["id"])}"><td><a href="/jobs/{e(v["id"])}">{e(v["id"])}</a></td><td>{e(v["name"])}</td>'
            f'<td>{e(v["kind"])}</td><td>{e(v["user"])}</td><td class="state s-{e(v["state"])}">{e(v["state"])}</td>'
            f'<td class="progress"><progress max="100" value="{pct}"></progress> <span>{pct}%</span></td>'
            f'<td>{e((v.get("submitted_at") or "")[:19].replace("T", " "))}</td><td class="model">{model_cell}</td></tr>')


@router.get("/")
def jobs_page(request: Request, state: str = "", user: str = "") -> Response:
    who = _who(request)
    if isinstance(who, Response):
        return who
    st = request.app.state.kiln
    try:
        views = st.job_service(who.user).list(state=state or None, limit=None if user else 200)
    except KilnError as err:
        return _error_page(who, err)
    if user:
        views = [v for v in views if v["user"] == user][:200]
    options = "".join(f'<option{" selected" if s == state.upper() else ""}>{s}</option>' for s in STATES)
    rows = "".join(_job_row(v) for v in views) or '<tr class="empty"><td colspan="8">no jobs</td></tr>'
    body = f"""<h1>Jobs</h1><form class="filters" method="get"><select name="state"><option value="">any state</option>
{options}</select><input name="user" placeholder="user" value="{e(user)}"><button>Filter</button></form>
<table class="jobs" id="jobs"><thead><tr><th>Job</th><th>Name</th><th>Kind</th><th>User</th><th>State</th>
<th>Progress</th><th>Submitted</th><th>Model / error</th></tr></thead><tbody>{rows}</tbody></table>"""
    query = {"state": state, "user": user}
    return _page("jobs", body, who, script=_json_script("kiln-query", query))


@router.get("/jobs/{job_id}")
def job_page(request: Request, job_id: str) -> Response:
    who = _who(request)
    if isinstance(who, Response):
        return who
    try:
        v = request.app.state.kiln.job_service(who.user).get(job_id)
    except KilnError as err:
        return _error_page(who, err)
    may_act = who.admin or who.user == v["user"]
    buttons = ('<div class="actions"><button id="cancel" data-action="cancel">Cancel</button>'
               '<button id="retry" data-action="retry">Retry</button></div>') if may_act else ""
    fields = "".join(f'<tr><th>{label}</th><td id="f-{key}">{e(v.get(key))}</td></tr>' for key, label in (
        ("state", "state"), ("user", "user"), ("kind", "kind"), ("attempt", "attempt"), ("message", "message"),
        ("epoch", "epoch"), ("loss", "loss"), ("throughput", "throughput"), ("eta_s", "ETA (s)"),
        ("submitted_at", "submitted"), ("started_at", "started"), ("finished_at", "finished"), ("error", "error")))
    model = v.get("model")
    model_link = (f'<p>Model: <a id="model-link" href="/models/{quote(model["name"])}:{model["version"]}">'
                  f'{e(model["name"])}:{model["version"]}</a></p>') if model else '<p id="model-link"></p>'
    body = f"""<h1>{e(v['name'])} <small>{e(v['id'])}</small></h1>
<p><progress id="bar" max="100" value="{v['progress'] * 100:.0f}"></progress>
<span id="pct">{v['progress'] * 100:.1f}%</span></p>
{buttons}<p id="action-result" class="hint"></p>
<div class="cols"><table class="fields">{fields}</table><div>{model_link}<h3>Metrics</h3>
<table id="metrics" class="fields"></table></div></div>
<div class="cols"><figure><figcaption>loss</figcaption><canvas id="loss" width="520" height="240"></canvas></figure>
<figure><figcaption>throughput (<span id="unit">{e(v.get('throughput_unit') or 'per s')}</span>)</figcaption>
<canvas id="throughput" width="520" height="240"></canvas></figure></div>
<h3>Log</h3><pre id="log" class="log"></pre>"""
    return _page(v["id"], body, who, script=_json_script("kiln-job", v))


# -- models ----------------------------------------------------------------------------------------
@router.get("/models")
def models_page(request: Request, q: str = "", filter: str = "", kind: str = "") -> Response:
    who = _who(request)
    if isinstance(who, Response):
        return who
    svc = request.app.state.kiln.model_service()
    try:
        rows = svc.list(svc.query(kind=kind or None, name=(q if any(c in q for c in "*?[") else f"*{q}*") if q else None,
                                  filters=[filter] if filter else [], all_versions=True, limit=500))
    except KilnError as err:
        return _error_page(who, err)
    trs = "".join(
        f'<tr><td><a href="/models/{quote(r["name"])}:{r["version"]}">{e(r["name"])}:{r["version"]}</a></td>'
        f'<td>{e(r["kind"])}</td><td>{e((r.get("created_at") or "")[:19].replace("T", " "))}</td>'
        f'<td>{e(", ".join(r.get("aliases") or []))}</td>'
        f'<td>{e(", ".join(f"{k}={v}" for k, v in (r.get("tags") or {}).items()))}</td>'
        f'<td>{e(", ".join(f"{k}={_num(v)}" for k, v in (r.get("metrics") or {}).items()))}</td></tr>' for r in rows)
    body = f"""<h1>Models</h1><form class="filters" method="get"><input name="q" placeholder="name" value="{e(q)}">
<input name="filter" placeholder="metric.analogy_accuracy>0.3" value="{e(filter)}" size="30">
<input name="kind" placeholder="kind" value="{e(kind)}" size="10"><button>Search</button></form>
<table class="models" id="models"><thead><tr><th>Version</th><th>Kind</th><th>Created</th><th>Aliases</th><th>Tags</th>
<th>Metrics</th></tr></thead><tbody>{trs or '<tr class="empty"><td colspan="6">no models</td></tr>'}</tbody></table>"""
    return _page("models", body, who)


def _num(v) -> str:
    """A value as the JSON vocabulary writes it (true, null, 0.7312), strings as they are."""
    if isinstance(v, str):
        return v
    return f"{v:.6g}" if isinstance(v, float) else json.dumps(v)


def _kv_table(d: dict, table_id: str) -> str:
    rows = "".join(f"<tr><th>{e(k)}</th><td>{e(_num(v))}</td></tr>"
                   for k, v in sorted((d or {}).items()))
    return f'<table class="fields" id="{table_id}">{rows or "<tr><td>none</td></tr>"}</table>'


@router.get("/models/{ref}")
def model_page(request: Request, ref: str) -> Response:
    who = _who(request)
    if isinstance(who, Response):
        return who
    svc = request.app.state.kiln.model_service()
    try:
        d = svc.show(ref)
    except KilnError as err:
        return _error_page(who, err)
    full = f"{d['name']}:{d['version']}"
    lineage = dict(d.get("lineage") or {})
    job = lineage.get("job_id")
    job_link = f'<p>Trained by job <a href="/jobs/{e(job)}">{e(job)}</a></p>' if job else ""
    extra = ""
    if d["kind"] == "word2vec":
        extra = """<div class="cols"><figure><figcaption>the most frequent words (PCA)</figcaption>
<canvas id="map" width="640" height="480"></canvas></figure><div><h3>Nearest words</h3>
<form id="nearest"><input id="word" placeholder="a word" autocomplete="off"><button>Find</button></form>
<table id="neighbours" class="fields"></table></div></div>"""
    elif d["kind"] == "cnn":
        ref_q = quote(full)
        extra = (f'<div class="cols"><div><h3>Predict</h3><form id="predict-form"><div id="drop" class="drop">drop an '
                 f'image here, or <input type="file" id="image" accept="image/*"></div></form>'
                 f'<p id="predicted" class="predicted"></p><table id="prediction" class="fields"></table></div>'
                 f'<figure><figcaption>confusion matrix</figcaption><img id="confusion" alt="no confusion '
                 f'matrix recorded" src="/api/plot/{ref_q}?what=confusion"></figure><figure><figcaption>first-layer filters'
                 f'</figcaption><img id="filters" alt="no filters" src="/api/plot/{ref_q}?what=filters"></figure></div>')
    body = f"""<h1>{e(full)} <small>{e(d['kind'])}</small></h1>{job_link}
<p>aliases: <span id="aliases">{e(", ".join(d.get("aliases") or [])) or "none"}</span></p>
<form id="alias-form" class="filters"><input id="alias" placeholder="alias (e.g. production)">
<button>Set alias</button></form><form id="tag-form" class="filters"><input id="tag-key" placeholder="tag key">
<input id="tag-value" placeholder="value"><button>Set tag</button></form><p id="model-result" class="hint"></p>{extra}
<div class="cols"><div><h3>Metrics</h3>{_kv_table(d.get("metrics"), "model-metrics")}<h3>Tags</h3>
{_kv_table(d.get("tags"), "tags")}<h3>Lineage</h3>{_kv_table(lineage, "lineage")}</div>
<div><h3>Params</h3>{_kv_table(d.get("params"), "params")}</div></div>"""
    data = {"ref": full, "name": d["name"], "kind": d["kind"]}
    return _page(full, body, who, script=_json_script("kiln-model", data))
