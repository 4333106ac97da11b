"""`kindred.Client`: a Kindred server from Python (a notebook driving a live server): feedback
in, lists out, and the model registry. Standard library only (urllib), JSON over HTTP with
`Authorization: Bearer KEY`.

Errors are `ServerError` with the server's status, code and message. A write that failed with a
503 says whether it may have been stored (`possibly_stored`): feedback sent with `event_id`s is
stored once, so such a batch can be sent again as it was."""

from __future__ import annotations

import json
import math
import urllib.error
import urllib.parse
from typing import Any, Mapping, Optional, Sequence

from ._ids import INT, STR, as_list, frame, id_array, kind_of

# Events per request: well under the server's default `max_batch` (10,000).
_FEEDBACK_BATCH = 1000
_FEEDBACK_FIELDS = ("user", "item", "type", "value", "timestamp", "event_id")


class ServerError(Exception):
    """An error answer of the server: `status` (HTTP), `code` (e.g. `not_found`), `message`,
    `possibly_stored` (a failed write that may still have been stored) and `retry_after`
    (seconds, when the server says a retry may succeed)."""

    def __init__(self, status: int, code: str, message: str, details: Optional[dict] = None,
                 retry_after: Optional[float] = None):
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details or {}
        self.possibly_stored = bool(self.details.get("possibly_stored", False))
        self.retry_after = retry_after


class Client:
    """A server at `url` (e.g. `http://127.0.0.1:8080`), with an API key when the server asks for
    one (a read key for lists, a write key for feedback, an admin key for the registry)."""

    def __init__(self, url: str = "http://127.0.0.1:8080", key: Optional[str] = None,
                 timeout: float = 30.0):
        self.url = url.rstrip("/")
        self.key = key
        self.timeout = timeout

    def _call(self, method: str, path: str, body: Any = None,
              query: Optional[Mapping[str, Any]] = None) -> Any:
        url = self.url + path
        if query:
            pairs = []
            for name, value in query.items():
                for one in value if isinstance(value, (list, tuple)) else [value]:
                    if one is not None:
                        pairs.append((name, str(one).lower() if isinstance(one, bool) else str(one)))
            if pairs:
                url += "?" + urllib.parse.urlencode(pairs)
        data = None
        headers = {"Accept": "application/json"}
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        # Imported here: urllib.request (with http.client) is a tenth of `import kindred`'s time,
        # and most sessions never talk to a server.
        import urllib.request as urllib_request

        request = urllib_request.Request(url, data=data, headers=headers, method=method)
        try:
            with urllib_request.urlopen(request, timeout=self.timeout) as response:
                text = response.read()
        except urllib.error.HTTPError as error:
            raise _server_error(error) from None
        return json.loads(text) if text else None

    def ready(self) -> bool:
        """Whether the server answers and has a model to serve (`/health/ready`)."""
        try:
            self._call("GET", "/health/ready")
            return True
        except (ServerError, OSError):
            return False

    def recommend(self, user: Any, n: int = 10, **params: Any) -> dict:
        """`GET /v1/recommend/{user}`: `{"request_id", "model_version", "items": [{"item",
        "score", "source"}]}`. `params` are the route's query parameters (`offset`, `category`,
        `exclude`, `rank`, `write_impressions`)."""
        return self._call("GET", f"/v1/recommend/{_segment(user)}", query={"n": n, **params})

    def recommendations(self, users: Any, n: int = 10, int_items: bool = False, **params: Any):
        """Lists for several users as one DataFrame (user, item, rank, score, source), shaped as
        `Model.recommend`'s. Users are labelled as given; items are the server's string ids, or
        ints with `int_items=True` (a catalog of integer ids, as a model fitted from an int
        column returns them)."""
        asked = as_list(users)
        rows: dict = {"user": [], "item": [], "rank": [], "score": [], "source": []}
        for user in asked:
            for rank, entry in enumerate(self.recommend(user, n, **params)["items"], start=1):
                rows["user"].append(user)
                rows["item"].append(entry["item"])
                rows["rank"].append(rank)
                rows["score"].append(entry["score"])
                rows["source"].append(entry.get("source"))
        rows["user"] = id_array(rows["user"], kind_of(asked))
        rows["item"] = id_array(rows["item"], INT if int_items else STR)
        return frame(rows)

    def recommend_for(self, interactions: Sequence[Any] = (), features: Optional[dict] = None,
                      n: int = 10, user: Any = None, **params: Any) -> dict:
        """`POST /v1/recommend`: a list for someone the request describes (an anonymous or
        session user: the items they interacted with, their features)."""
        body: dict = {"interactions": [str(i) for i in interactions], "n": n, **params}
        if features:
            body["features"] = features
        if user is not None:
            body["user"] = str(user)
        return self._call("POST", "/v1/recommend", body)

    def similar_items(self, item: Any, n: int = 10) -> dict:
        """`GET /v1/similar-items/{item}`."""
        return self._call("GET", f"/v1/similar-items/{_segment(item)}", query={"n": n})

    def popular(self, n: int = 10) -> dict:
        """`GET /v1/popular`."""
        return self._call("GET", "/v1/popular", query={"n": n})

    def feedback(self, events) -> dict:
        """`POST /v1/feedback` in batches: `events` is a DataFrame or a sequence of dicts with
        `user`, `item`, `type` (`click`, `purchase`, `rating`, ...) and optionally `value`,
        `timestamp` (Unix seconds) and `event_id`. Each batch is stored durably before the next
        is sent. Returns the totals `{"inserted", "duplicates"}`; a batch that fails raises
        ServerError, and the batches before it stay stored."""
        records = _records(events)
        totals = {"inserted": 0, "duplicates": 0}
        for start in range(0, len(records), _FEEDBACK_BATCH):
            answer = self._call("POST", "/v1/feedback", records[start:start + _FEEDBACK_BATCH])
            for name in totals:
                totals[name] += int(answer.get(name, 0))
        return totals

    def models(self) -> dict:
        """`GET /v1/models`: `{"serving": live version, "training": bool, "models": [...]}`."""
        return self._call("GET", "/v1/models")

    def model(self, version: str) -> dict:
        """`GET /v1/models/{version}`: one registry record."""
        return self._call("GET", f"/v1/models/{_segment(version)}")

    def publish(self, model: Optional[str] = None, positive: Optional[float] = None,
                seed: Optional[int] = None, like: Optional[str] = None, activate: bool = True,
                wait: bool = True) -> dict:
        """`POST /v1/models`: trains a version on the server's data (admin key). With `wait`,
        answers once trained, with the version."""
        body = {"model": model, "positive": positive, "seed": seed, "like": like,
                "activate": activate, "wait": wait}
        return self._call("POST", "/v1/models", {k: v for k, v in body.items() if v is not None})

    def activate(self, version: str) -> dict:
        """`POST /v1/models/{version}/activate` (admin key)."""
        return self._call("POST", f"/v1/models/{_segment(version)}/activate")

    def rollback(self) -> dict:
        """`POST /v1/models/rollback` (admin key)."""
        return self._call("POST", "/v1/models/rollback")

    def __repr__(self) -> str:
        return f"Client({self.url!r})"


def _segment(value: Any) -> str:
    """One path segment, percent-encoded (an id may hold `/`, `?` or spaces)."""
    return urllib.parse.quote(str(value), safe="")


def _records(events) -> list:
    """Feedback events as the API's JSON records: ids as strings, missing values left out."""
    if hasattr(events, "to_dict"):
        events = events.to_dict(orient="records")
    records = []
    for index, event in enumerate(events):
        unknown = set(event) - set(_FEEDBACK_FIELDS)
        if unknown:
            raise ValueError(f"event {index}: unknown fields {sorted(unknown)} (known: {_FEEDBACK_FIELDS})")
        record = {}
        for name in _FEEDBACK_FIELDS:
            value = event.get(name)
            if value is None or (isinstance(value, float) and math.isnan(value)):
                continue
            if name in ("user", "item", "type", "event_id"):
                record[name] = str(value)
            elif name == "timestamp":
                record[name] = int(value)
            else:
                record[name] = float(value)
        for name in ("user", "item", "type"):
            if name not in record:
                raise ValueError(f"event {index}: missing `{name}`")
        records.append(record)
    return records


def _server_error(error: urllib.error.HTTPError) -> ServerError:
    raw = error.read()
    try:
        details = dict(json.loads(raw)["error"])
    except (ValueError, KeyError, TypeError):
        details = {"code": "http_error", "message": raw.decode("utf-8", "replace")[:500]}
    retry = error.headers.get("Retry-After") if error.headers else None
    return ServerError(
        error.code,
        str(details.pop("code", "http_error")),
        str(details.pop("message", "")),
        details,
        float(retry) if retry and retry.replace(".", "", 1).isdigit() else None,
    )
