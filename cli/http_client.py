"""The CLI as a thin HTTP client of a kiln server: every command but the ones that administer the stores
(tokens, db, gc, models gc) and those that start or stop the stack.

Used when ``KILN_URL`` is set (with ``KILN_TOKEN``, else the token in ``$KILN_HOME/api_token``), or when
the embedded stack's server (``$KILN_HOME/server.json``, written by `kiln up`) answers. Only the standard
library is imported here: no redis, SQLAlchemy, Ray, torch, numpy or pydantic, so a command starts fast.
Errors come back as the same KilnError classes (same one-line message, same exit code) as the local path.
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from urllib.parse import quote, urlencode, urlsplit

from shared import errors

TIMEOUT_S = 30.0
WORK_TIMEOUT_S = 3600.0
"""How long a request that computes on the server (predict a batch, eval a dataset) may stay silent."""
FLAGS_HEADER = "X-Kiln-Flags"
"""Sent with a spec built from `kiln submit` flags: the server's messages then name the flags (--min-count),
not the spec keys (min_count), as the local path does."""
_ERRORS = {
    "RESOURCE_DOES_NOT_EXIST": errors.NotFound,
    "RESOURCE_ALREADY_EXISTS": errors.AlreadyExists,
    "INVALID_STATE_TRANSITION": errors.InvalidTransition,
    "INVALID_PARAMETER_VALUE": errors.InvalidParameter,
    "MALFORMED_JSON": errors.InvalidParameter,
    "BAD_REQUEST": errors.UserError,
    "UNAUTHENTICATED": errors.UserError,
    "PERMISSION_DENIED": errors.UserError,
    "PAYLOAD_TOO_LARGE": errors.UserError,
    "RESOURCE_IN_USE": errors.UserError,
    "SERVICE_UNAVAILABLE": errors.Unavailable,
}


def _parse_answer(raw: bytes) -> tuple[int, bytes]:
    """(status, body) of a whole HTTP/1.1 answer read to the connection's close (Content-Length or chunked)."""
    head, sep, body = raw.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    fields = status_line.split(None, 2)
    if not sep or len(fields) < 2 or not fields[0].startswith("HTTP/") or not fields[1].isdigit():
        raise OSError("the server's answer is not HTTP")
    headers = {}
    for line in header_lines:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", "").lower():
        out, rest = [], body
        while True:
            size_line, _, rest = rest.partition(b"\r\n")
            try:
                size = int(size_line.split(b";")[0].strip(), 16)
            except ValueError:
                raise OSError("the server's answer was cut short") from None
            if size == 0:
                break
            if len(rest) < size:
                raise OSError("the server's answer was cut short")
            out.append(rest[:size])
            rest = rest[size + 2:]
        body = b"".join(out)
    elif headers.get("content-length", "").isdigit():
        length = int(headers["content-length"])
        if len(body) < length:
            raise OSError("the server's answer was cut short")
        body = body[:length]
    return int(fields[1]), body


def _error(err: dict) -> errors.KilnError:
    """The KilnError for an answer's ``{"code", "message"}``: the class gives the exit code, and the code
    stays the server's (``--json`` errors print it, as the local path prints its own class's)."""
    code = err.get("code")
    e = _ERRORS.get(code, errors.KilnError)(str(err.get("message")))
    if isinstance(code, str) and code:
        e.code = code
    return e


def _why(e: Exception) -> str:
    return getattr(e, "strerror", None) or str(e) or type(e).__name__


class NotConnected(errors.Unavailable):
    """The server refused the connection: the request was not sent (so it may be made another way)."""


class KilnServer:
    """GET/POST JSON against one server with one bearer token (one keep-alive connection)."""

    def __init__(self, url: str, token: str | None, *, explicit: bool):
        self.url = url.rstrip("/")
        self.token = token
        self.explicit = explicit  # KILN_URL given: an unreachable server is an error, not a fallback

    def _exchange(self, method: str, target: str, data: bytes | None, headers: dict,
                  timeout: float = TIMEOUT_S) -> tuple[int, bytes]:
        """One request and its whole answer: (status, body). Plain http:// over a socket (HTTP/1.1, one
        connection per request: http.client with its email and ssl imports is a third of a read command's
        start-up); https:// through http.client."""
        parts = urlsplit(self.url)
        if parts.scheme == "https":
            import http.client  # noqa: PLC0415

            conn = http.client.HTTPSConnection(parts.hostname, parts.port, timeout=timeout)
            try:
                conn.request(method, target, body=data, headers=headers)
                resp = conn.getresponse()
                return resp.status, resp.read()
            except http.client.HTTPException as e:  # a malformed or cut answer: the server is not usable
                raise OSError(f"{type(e).__name__} {e}".strip()) from None
            finally:
                conn.close()
        import socket  # noqa: PLC0415

        lines = [f"{method} {target} HTTP/1.1", f"Host: {parts.netloc}", "Connection: close",
                 *(f"{k}: {v}" for k, v in headers.items())]
        if data is not None:
            lines.append(f"Content-Length: {len(data)}")
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=TIMEOUT_S) as sock:
            sock.settimeout(timeout)  # connecting takes TIMEOUT_S at most; the answer may take longer to compute
            sock.sendall(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + (data or b""))
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return _parse_answer(b"".join(chunks))

    def request(self, method: str, path: str, params: dict | None = None, body: dict | None = None,
                extra_headers: dict | None = None, *, data: bytes | None = None, content_type: str | None = None,
                raw: bool = False, timeout: float = TIMEOUT_S) -> object:
        """The decoded JSON answer; a KilnError for an error answer; Unavailable if the server is gone.
        ``data`` + ``content_type``: a body that is not JSON (an upload); ``raw``: the answer's bytes."""
        query = urlencode({k: v for k, v in (params or {}).items() if v is not None}, doseq=True)
        headers = {"Accept": "*/*" if raw else "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        if body is not None:
            data, content_type = json.dumps(body).encode(), "application/json"
        if content_type is not None:
            headers["Content-Type"] = content_type
        target = urlsplit(self.url).path + path + (f"?{query}" if query else "")
        try:
            status, answer = self._exchange(method, target, data, {**headers, **(extra_headers or {})}, timeout)
        except ConnectionRefusedError as e:  # nothing was sent: the caller may do it another way
            raise NotConnected(f"cannot reach the kiln server at {self.url}: {e.strerror or e}") from None
        except OSError as e:
            raise errors.Unavailable(f"cannot reach the kiln server at {self.url}: {e.strerror or e}") from None
        if raw and status < 400:
            return answer
        try:
            decoded = json.loads(answer) if answer else None
        except ValueError:
            raise errors.Unavailable(f"the kiln server at {self.url} answered {status} with no JSON") from None
        if status >= 400:
            err = decoded.get("error") if isinstance(decoded, dict) else None
            if not isinstance(err, dict):
                raise errors.KilnError(f"the kiln server answered HTTP {status}")
            raise _error(err)
        return decoded

    def get(self, path: str, **params) -> object:
        return self.request("GET", path, params)

    def download(self, path: str, params: dict, consume, timeout: float = TIMEOUT_S):
        """GET ``path`` and stream the answer: on success ``consume(headers, read)`` gets its headers (lower-case
        names) and ``read(n)`` (the body in pieces, never all in memory) and its result is returned; a
        KilnError for an error answer (before ``consume`` runs), as ``request``."""
        import http.client  # noqa: PLC0415

        parts = urlsplit(self.url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname, parts.port, timeout=timeout)
        headers = {"Accept": "*/*", **({"Authorization": f"Bearer {self.token}"} if self.token else {})}
        query = urlencode({k: v for k, v in params.items() if v is not None})
        try:
            try:
                conn.request("GET", parts.path + path + (f"?{query}" if query else ""), headers=headers)
                resp = conn.getresponse()
            except ConnectionRefusedError as e:
                raise NotConnected(f"cannot reach the kiln server at {self.url}: {e.strerror or e}") from None
            except (OSError, http.client.HTTPException) as e:
                raise errors.Unavailable(f"cannot reach the kiln server at {self.url}: {_why(e)}") from None
            if resp.status >= 400:
                try:
                    body = json.loads(resp.read() or b"null")
                except (ValueError, OSError, http.client.HTTPException):
                    body = None
                err = body.get("error") if isinstance(body, dict) else None
                if not isinstance(err, dict):
                    raise errors.KilnError(f"the kiln server answered HTTP {resp.status}")
                raise _error(err)

            def read(n: int) -> bytes:
                try:
                    return resp.read(n)
                except (OSError, http.client.HTTPException) as e:  # not OSError: the writer must not take it as its own
                    raise errors.Unavailable(f"lost the kiln server at {self.url}: {_why(e)}") from None

            return consume({k.lower(): v for k, v in resp.getheaders()}, read)
        finally:
            conn.close()

    def events(self, path: str):
        """Yield the ``data:`` payloads (decoded JSON) of a Server-Sent-Events answer until its ``end`` event
        (its own connection: the stream holds it). KilnError for an error answer, as ``request``."""
        import http.client  # noqa: PLC0415

        parts = urlsplit(self.url)
        cls = http.client.HTTPSConnection if parts.scheme == "https" else http.client.HTTPConnection
        conn = cls(parts.hostname, parts.port, timeout=TIMEOUT_S)
        headers = {"Accept": "text/event-stream", **({"Authorization": f"Bearer {self.token}"} if self.token else {})}
        try:
            try:
                conn.request("GET", parts.path + path, headers=headers)
                resp = conn.getresponse()
            except (OSError, http.client.HTTPException) as e:
                raise errors.Unavailable(f"cannot reach the kiln server at {self.url}: {_why(e)}") from None
            if resp.status >= 400:
                body = json.loads(resp.read() or b"null")
                err = body.get("error") if isinstance(body, dict) else None
                raise _error(err or {})
            event = None
            while True:
                try:
                    line = resp.readline().decode().rstrip("\r\n")
                except (OSError, http.client.HTTPException, UnicodeDecodeError) as e:
                    raise errors.Unavailable(f"lost the kiln server at {self.url}: {_why(e)}") from None
                if line.startswith("event:"):
                    event = line[6:].strip()
                elif line.startswith("data:"):
                    if event == "end":
                        return
                    yield json.loads(line[5:])
                elif line == "":
                    if resp.isclosed():
                        return
                    event = None
        finally:
            conn.close()


def _token(home: Path) -> str | None:
    token = os.environ.get("KILN_TOKEN")
    if token:
        return token.strip()
    try:
        return (home / "api_token").read_text().strip() or None
    except OSError:
        return None


def _home() -> Path:
    return Path(os.environ.get("KILN_HOME") or Path.home() / ".kiln").expanduser().absolute()


def find_server() -> KilnServer | None:
    """The server read commands should use, or None to use the stores directly (see module doc)."""
    home = _home()
    url = os.environ.get("KILN_URL")
    if url:
        return KilnServer(url, _token(home), explicit=True)
    try:
        info = json.loads((home / "server.json").read_text())
    except (OSError, ValueError):
        return None
    pid = info.get("pid") if isinstance(info, dict) else None
    if not isinstance(pid, int) or not Path(f"/proc/{pid}").exists() or not isinstance(info.get("url"), str):
        return None  # a record left by a server that is gone
    return KilnServer(info["url"], _token(home), explicit=False)


class RemoteJobs:
    """The read half of JobService, over HTTP: the same dicts as the local ``list`` and ``get``.

    ``local`` builds the JobService to use instead when the server found through ``server.json`` does not
    answer (the stack is going down); with KILN_URL an unreachable server is an error (exit code 3)."""

    def __init__(self, server: KilnServer, local):
        self.server = server
        self.local = local

    def _get(self, path: str, fallback, **params):
        try:
            return self.server.get(path, **params)
        except errors.Unavailable:
            if self.server.explicit:
                raise
            return fallback(self.local())

    def list(self, state: str | None = None, limit: int | None = None) -> list[dict]:
        return self._get("/api/jobs", lambda svc: svc.list(state=state, limit=limit), state=state, limit=limit)

    def get(self, job_id: str) -> dict:
        return self._get(f"/api/jobs/{quote(job_id, safe='')}", lambda svc: svc.get(job_id))

    def wait(self, job_id: str, *, on_update=None, poll_s: float = 0.25) -> dict:
        """Poll the job until it is terminal, calling ``on_update(view)`` each time (as JobService.wait)."""
        import time  # noqa: PLC0415

        from shared.states import JobState  # noqa: PLC0415

        while True:
            view = self.get(job_id)
            if on_update is not None:
                on_update(view)
            if JobState(view["state"]).is_terminal():
                return view
            time.sleep(poll_s)

    def _act(self, method: str, path: str, fallback, **kw):
        """A change through the server; when the embedded stack's server refused the connection (it is
        going down), through the local JobService instead. Never after a request was sent: a submit
        must not be made twice."""
        try:
            return self.server.request(method, path, **kw)
        except NotConnected:
            if self.server.explicit:
                raise
            return fallback(self.local())

    def submit(self, data: dict, *, flags: bool = False) -> dict:
        """Submit a spec (paths made absolute against this folder: the server reads them on its side).
        ``flags``: the spec was built from command-line flags, and messages name them (as the local path)."""
        sent = absolute_paths(data)
        try:
            return self._act("POST", "/api/jobs", lambda svc: svc.submit(sent), body=sent,
                             extra_headers={FLAGS_HEADER: "1"} if flags else None)
        except errors.KilnError as e:
            raise as_given(e, _named_as_given(sent, data)) from None

    def cancel(self, job_id: str) -> dict:
        return self._act("POST", f"/api/jobs/{quote(job_id, safe='')}/cancel", lambda svc: svc.cancel(job_id))

    def retry(self, job_id: str) -> dict:
        return self._act("POST", f"/api/jobs/{quote(job_id, safe='')}/retry", lambda svc: svc.retry(job_id))

    def logs(self, job_id: str, *, follow: bool = False):
        """Log entries ({"t", "level", "msg"}); with ``follow`` the live stream until the job ends."""
        path = f"/api/jobs/{quote(job_id, safe='')}/logs"
        if not follow:
            yield from self._get(path, lambda svc: list(svc.logs(job_id)))
            return
        try:
            first = True
            for entry in self.server.events(path + "?follow=true"):
                first = False
                yield entry
        except errors.Unavailable:
            if self.server.explicit or not first:
                raise
            yield from self.local().logs(job_id, follow=True)


class RemoteModels:
    """``kiln models list/show/compare/lineage/alias/tag/describe/delete/export``, ``similar``, ``analogy``,
    ``predict``, ``eval`` and ``plot`` over HTTP: the same answers as ModelService's (the server builds the
    query from the same flags, reads the model files and the data named on its side)."""

    def __init__(self, server: KilnServer, local):
        self.server = server
        self.local = local

    def _get(self, path: str, fallback, **params):
        try:
            return self.server.get(path, **params)
        except errors.Unavailable:
            if self.server.explicit:
                raise
            return fallback(self.local())

    def list(self, *, kind, name, filters, order_by, desc, limit, all_versions) -> list[dict]:
        def local(svc):
            return svc.list(svc.query(kind=kind, name=name, filters=filters, order_by=order_by, descending=desc,
                                      limit=limit, all_versions=all_versions))

        return self._get("/api/models", local, kind=kind, name=name, filter=list(filters), order_by=order_by,
                         desc=desc or None, limit=limit, all_versions=all_versions or None)

    def show(self, ref: str) -> dict:
        return self._get(f"/api/models/{quote(ref, safe='')}", lambda svc: svc.show(ref))

    # -- changes and queries (the server reads the model files; the client needs no store) --------
    def _act(self, method: str, path: str, fallback, **kw):
        try:
            return self.server.request(method, path, **kw)
        except NotConnected:
            if self.server.explicit:
                raise
            return fallback(self.local())

    def set_alias(self, ref: str, alias: str) -> dict:
        """{"name", "version", ...} of the version NAME@ALIAS now names."""
        return self._act("POST", f"/api/models/{quote(ref, safe='')}/aliases",
                         lambda svc: svc.set_alias(ref, alias).to_dict(), body={"alias": alias})

    def delete_alias(self, ref: str, alias: str) -> int:
        """The version the removed alias named."""
        return self._act("DELETE", f"/api/models/{quote(ref, safe='')}/aliases/{quote(alias, safe='')}",
                         lambda svc: {"version": svc.delete_alias(ref, alias)})["version"]

    def set_tags(self, ref: str, tags: dict) -> None:
        self._act("POST", f"/api/models/{quote(ref, safe='')}/tags", lambda svc: svc.set_tags(ref, tags),
                  body={"tags": tags})

    def delete_tags(self, ref: str, keys: list) -> None:
        for key in keys:
            self._act("DELETE", f"/api/models/{quote(ref, safe='')}/tags/{quote(key, safe='')}",
                      lambda svc, key=key: svc.delete_tags(ref, [key]))

    def similar(self, ref: str, word: str, top: int) -> list[tuple[str, float]]:
        """(word, cosine) pairs, as ModelService.similar (the cosines as computed)."""
        return self._pairs(f"/api/models/{quote(ref, safe='')}/similar", lambda svc: svc.similar(ref, word, top),
                           word=word, top=top)

    def analogy(self, ref: str, a: str, b: str, c: str, top: int) -> list[tuple[str, float]]:
        return self._pairs(f"/api/models/{quote(ref, safe='')}/analogy",
                           lambda svc: svc.analogy(ref, a, b, c, top), a=a, b=b, c=c, top=top)

    def predict(self, ref: str, paths: list[str], top: int) -> list[dict]:
        """One {"path", "label", "score", "top"} per image file, as services.vision.predict: the files
        uploaded in batches (cli/uploads.py), decoded and classified on the server."""
        from cli.uploads import batches, multipart  # noqa: PLC0415

        rows: list[dict] = []
        path = f"/api/models/{quote(ref, safe='')}/batch/predict"
        for i, batch in enumerate(batches(paths)):
            body, content_type = multipart("image", batch)
            try:
                found = self.server.request("POST", path, {"top": top}, data=body, content_type=content_type,
                                            timeout=WORK_TIMEOUT_S)
            except NotConnected:
                if self.server.explicit or i:
                    raise
                from services import vision  # noqa: PLC0415

                return vision.predict(self.local(), ref, paths, top=top)
            rows += [{"path": p, "label": r["label"], "score": r["score"], "top": r["top"]}
                     for (p, _), r in zip(batch, found["predictions"])]
        return rows

    def compare(self, refs: list[str]) -> dict:
        return self._get("/api/compare", lambda svc: svc.compare(refs), ref=list(refs))

    def lineage(self, ref: str) -> dict:
        return self._get(f"/api/models/{quote(ref, safe='')}/lineage", lambda svc: svc.lineage(ref))

    def describe(self, ref: str, text: str) -> None:
        self._act("POST", f"/api/models/{quote(ref, safe='')}/description", lambda svc: svc.describe(ref, text),
                  body={"description": text})

    def deletable(self, ref: str) -> str:
        """NAME:VERSION of the version a delete of ``ref`` would remove (checked as the delete checks it)."""
        return self._get(f"/api/models/{quote(ref, safe='')}/deletable", lambda svc: {"ref": svc.deletable(ref).ref})["ref"]

    def delete(self, ref: str, *, force: bool) -> dict:
        return self._act("DELETE", f"/api/models/{quote(ref, safe='')}", lambda svc: svc.delete(ref, force=force),
                         params={"force": "true" if force else None})

    def evaluate(self, ref: str, *, dataset: str | None = None, fmt: str = "auto", analogies: str | None = None,
                 similarity: str | None = None) -> dict:
        """What `kiln eval` prints, computed on the server from its files: the paths are made absolute
        here, and named in messages as they were given."""
        given = {"dataset": dataset, "analogies": analogies, "similarity": similarity}
        from services.api.data_roots import BUILT_IN  # noqa: PLC0415 - standard library only

        sent = {k: (v if v is None or v in BUILT_IN else os.path.abspath(os.path.expanduser(v)))
                for k, v in given.items()}

        def local(svc):
            if dataset is not None:
                from services import vision  # noqa: PLC0415

                return vision.evaluate(svc, ref, dataset, fmt=fmt)
            return svc.evaluate(ref, analogies=analogies, similarity=similarity)

        try:
            return self._act("POST", f"/api/models/{quote(ref, safe='')}/evaluate", local,
                             body={**{k: v for k, v in sent.items() if v is not None}, "format": fmt},
                             timeout=WORK_TIMEOUT_S)
        except errors.KilnError as e:
            raise as_given(e, [(v, given[k]) for k, v in sent.items() if v is not None]) from None

    def export(self, ref: str, fmt: str, output: str, *, force: bool) -> str:
        """Write the server's export of ``ref`` to ``output`` (``-``: standard output) as ModelService.export
        does (never through a link, an existing file only with ``force``); the path written, as it says it."""
        from pathlib import Path  # noqa: PLC0415

        from services.export_target import export_target  # noqa: PLC0415 - standard library only

        def consume(headers: dict, read) -> str:
            with export_target(output, force=force) as tmp:  # checked once the server has said yes
                with open(tmp, "wb") as f:
                    while chunk := read(1 << 20):
                        f.write(chunk)
            if output == "-":
                return output
            return str(Path(output) if headers.get("x-kiln-model-kind") == "cnn" else Path(output).expanduser())

        try:
            return self.server.download(f"/api/models/{quote(ref, safe='')}/export", {"format": fmt}, consume,
                                        timeout=WORK_TIMEOUT_S)
        except NotConnected:
            if self.server.explicit:
                raise
            return str(self.local().export(ref, fmt, output, force=force))

    def plot(self, target: str, what: str, words: int) -> bytes:
        """The PNG the server draws (services/plots.py), as bytes."""
        def local(_svc):
            from cli.context import backends  # noqa: PLC0415
            from services.plots import render  # noqa: PLC0415

            return render(backends(), target, what, words=words)

        try:
            return self.server.request("GET", f"/api/plot/{quote(target, safe='')}", {"what": what, "words": words},
                                       raw=True, timeout=WORK_TIMEOUT_S)
        except errors.Unavailable:
            if self.server.explicit:
                raise
            return local(None)

    def _pairs(self, path: str, fallback, **params):
        found = self._get(path, lambda svc: [{"word": w, "similarity": s} for w, s in fallback(svc)], **params)
        return [(d["word"], d["similarity"]) for d in found]


def as_given(e: errors.KilnError, pairs) -> errors.KilnError:
    """``e`` with each (absolute path sent, path as given) pair's absolute path named as it was given, as the
    local path's messages name it (longest first: a path never replaced inside a longer one); code kept."""
    import re  # noqa: PLC0415

    message = e.message
    for sent, given in sorted(pairs, key=lambda p: -len(p[0])):
        if sent != given:  # the path itself, not a file under it (that one the local path names in full too)
            message = re.sub(re.escape(sent) + r"(?![\w/-]|\.\w)", lambda _m, g=given: g, message)
    if message == e.message:
        return e
    out = type(e)(message)
    if "code" in vars(e):
        out.code = e.code
    return out


READ_AS_FOUND = ("eval_analogies", "eval_similarity")
"""Spec fields whose files a local submit's messages name by their absolute path once found (corpus files too)."""


def _named_as_given(sent: dict, given: dict) -> list[tuple[str, str]]:
    """(absolute, as given) for each path of ``given``'s params that ``absolute_paths`` made absolute and a
    local submit's messages name as given: any path it does not find, and a corpus directory, dataset or
    weights file it does; not a corpus file or evaluation file it found (those it names in full)."""
    a, g = sent.get("params"), given.get("params")
    if not isinstance(a, dict) or not isinstance(g, dict):
        return []
    pairs = []
    for k, v in g.items():
        for x, y in zip(a[k], v) if isinstance(v, list) and isinstance(a.get(k), list) else [(a.get(k), v)]:
            if not (isinstance(x, str) and isinstance(y, str)) or x == y:
                continue
            if os.path.lexists(x) and (k in READ_AS_FOUND or (k == "corpus" and not os.path.isdir(x))):
                continue
            pairs.append((x, y))
    return pairs


def absolute_paths(data: dict) -> dict:
    """``data`` with the spec's relative file paths made absolute against the current folder."""
    from services.api.data_roots import BUILT_IN, PATH_FIELDS  # noqa: PLC0415 - standard library only

    params = data.get("params")
    if not isinstance(params, dict):
        return data

    def fix(v):
        if isinstance(v, str) and v and v not in BUILT_IN:
            return os.path.abspath(os.path.expanduser(v))
        return v

    fixed = {k: ([fix(x) for x in v] if isinstance(v, list) else fix(v)) if k in PATH_FIELDS else v
             for k, v in params.items()}
    return {**data, "params": fixed}
