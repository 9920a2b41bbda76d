"""modelgate's Python client: standard library only (numpy used if present).

    from modelgate_client import Client, Tensor
    client = Client("http://localhost:4000", api_key)
    out = client.infer("fashion-cnn", {"image": Tensor.fp32([1, 1, 28, 28], pixels)})
    print(out["probabilities"].values())
"""
from __future__ import annotations

import array
import base64
import http.client
import json
import random
import socket
import sys
import time
import urllib.error
import urllib.request
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Union

__all__ = ["Client", "Tensor", "ModelgateError", "__version__"]
__version__ = "0.1.0"

# GraphQL datatype -> array.array typecode (little-endian on the wire).
_TYPECODES = {"BOOL": "B", "UINT8": "B", "UINT16": "H", "UINT32": "I", "UINT64": "Q", "INT8": "b", "INT16": "h", "INT32": "i", "INT64": "q",
              "FP32": "f", "FP64": "d"}


class ModelgateError(Exception):
    """An error answered by the gateway: `code` is its extensions.code (UNAUTHENTICATED, BAD_USER_INPUT, RATE_LIMITED, ...)."""

    def __init__(self, message: str, code: str, request_id: Optional[str] = None, field: Optional[str] = None,
                 status: Optional[int] = None, retry_after: Optional[float] = None):
        super().__init__(message)
        self.code = code
        self.request_id = request_id
        self.field = field
        self.status = status
        self.retry_after = retry_after


class Tensor:
    """A tensor as a flat array.array plus a shape; bytes travel base64 (dataBase64), never as JSON numbers."""

    def __init__(self, datatype: str, shape: Sequence[int], data: Union[array.array, bytes, Iterable[float]]):
        if datatype not in _TYPECODES:
            raise ValueError(f"datatype {datatype} is not supported by this client (one of {', '.join(_TYPECODES)})")
        self.datatype = datatype
        self.shape = [int(d) for d in shape]
        code = _TYPECODES[datatype]
        if isinstance(data, (bytes, bytearray, memoryview)):
            values = array.array(code)
            values.frombytes(bytes(data))
            if sys.byteorder == "big":
                values.byteswap()
        elif isinstance(data, array.array) and data.typecode == code:
            values = data
        else:
            values = array.array(code, data)
        count = 1
        for d in self.shape:
            count *= d
        if len(values) != count:
            raise ValueError(f"{len(values)} values do not fill shape {self.shape} ({count})")
        self.data = values

    @classmethod
    def fp32(cls, shape: Sequence[int], values: Iterable[float]) -> "Tensor":
        return cls("FP32", shape, values)

    @classmethod
    def from_numpy(cls, ndarray: Any) -> "Tensor":
        """From a numpy array (numpy is optional: only this and to_numpy need it)."""
        names = {"float32": "FP32", "float64": "FP64", "int64": "INT64", "int32": "INT32", "int16": "INT16", "int8": "INT8", "uint8": "UINT8",
                 "uint16": "UINT16", "uint32": "UINT32", "uint64": "UINT64", "bool": "BOOL"}
        datatype = names[str(ndarray.dtype)]
        return cls(datatype, ndarray.shape, ndarray.astype(ndarray.dtype.newbyteorder("<")).tobytes())

    def to_numpy(self) -> Any:
        import numpy  # optional dependency

        return numpy.frombuffer(self.to_bytes(), dtype=numpy.dtype(self.data.typecode).newbyteorder("<")).reshape(self.shape)

    def to_bytes(self) -> bytes:
        values = self.data
        if sys.byteorder == "big":
            values = array.array(values.typecode, values)
            values.byteswap()
        return values.tobytes()

    def values(self) -> List[float]:
        return list(self.data)

    def _input(self, name: str) -> Dict[str, Any]:
        return {"name": name, "datatype": self.datatype, "shape": self.shape, "dataBase64": base64.b64encode(self.to_bytes()).decode("ascii")}


class Client:
    """A modelgate gateway at `url` (e.g. http://localhost:4000), used with one API key.

    Requests are POSTs to /graphql. Answers with HTTP 429, 503 or 504 (RATE_LIMITED, QUOTA_EXCEEDED,
    OVERLOADED, MODEL_UNAVAILABLE, UNAVAILABLE, TIMEOUT) and connections refused or reset before an
    answer are retried up to `max_retries` times, waiting what Retry-After says (capped at
    `max_retry_wait` seconds) or, without one, an exponential backoff with jitter starting at
    `retry_base` seconds; a 429 without Retry-After is not retried. Every other error raises at once.
    """

    def __init__(self, url: str, api_key: Optional[str] = None, timeout: float = 30.0, max_retries: int = 3, max_retry_wait: float = 30.0,
                 retry_base: float = 0.2):
        self.endpoint = url.rstrip("/") + "/graphql"
        self.api_key = api_key
        self.timeout = timeout
        self.max_retries = max_retries
        self.max_retry_wait = max_retry_wait
        self.retry_base = retry_base

    def _backoff(self, attempt: int, hint: Optional[float]) -> float:
        if hint is not None:
            return hint
        ceiling = min(self.max_retry_wait, self.retry_base * (2 ** attempt))
        return ceiling / 2 + random.random() * ceiling / 2

    def graphql(self, query: str, variables: Optional[Dict[str, Any]] = None) -> Dict[str, Any]:
        body = json.dumps({"query": query, "variables": variables or {}}).encode("utf-8")
        headers = {"content-type": "application/json", "accept": "application/json"}
        if self.api_key:
            headers["authorization"] = f"Bearer {self.api_key}"
        attempt = 0
        while True:
            request = urllib.request.Request(self.endpoint, data=body, headers=headers, method="POST")
            try:
                with urllib.request.urlopen(request, timeout=self.timeout) as response:
                    status, retry_after, payload = response.status, response.headers.get("retry-after"), response.read()
            except urllib.error.HTTPError as error:
                status, retry_after, payload = error.code, error.headers.get("retry-after"), error.read()
            except (urllib.error.URLError, http.client.HTTPException, ConnectionError, socket.timeout) as error:
                # Refused or reset before an answer (a replica restarting, a proxy's idle cut): back off and retry.
                reason = getattr(error, "reason", error)
                if attempt < self.max_retries and isinstance(reason, (ConnectionError, http.client.RemoteDisconnected, http.client.IncompleteRead)):
                    time.sleep(self._backoff(attempt, None))
                    attempt += 1
                    continue
                raise
            hint = _seconds(retry_after, None)
            try:
                answer = json.loads(payload.decode("utf-8"))
            except ValueError:
                # A 503/504 page from something in front of the gateway is retried like the gateway's own.
                if status in (503, 504) and attempt < self.max_retries and (hint or 0) <= self.max_retry_wait:
                    time.sleep(self._backoff(attempt, hint))
                    attempt += 1
                    continue
                raise ModelgateError(f"HTTP {status}: {payload[:200]!r}", "HTTP_ERROR", status=status, retry_after=hint) from None
            errors = answer.get("errors") or []
            if not errors:
                return answer["data"]
            first = errors[0]
            ext = first.get("extensions") or {}
            wait = _seconds(retry_after, ext.get("retryAfterSeconds"))
            retryable = status in (503, 504) or (status == 429 and wait is not None)
            if retryable and attempt < self.max_retries and (wait or 0) <= self.max_retry_wait:
                time.sleep(self._backoff(attempt, wait))
                attempt += 1
                continue
            raise ModelgateError(first.get("message", "error"), ext.get("code", "UNKNOWN"), ext.get("requestId"), ext.get("field"), status, wait)

    def infer(self, model: str, inputs: Dict[str, Tensor], outputs: Optional[List[str]] = None, version: Optional[str] = None,
              timeout_ms: Optional[int] = None) -> Dict[str, Tensor]:
        """Runs `model` on named tensors; returns the outputs by name."""
        request: Dict[str, Any] = {"model": model, "inputs": [t._input(n) for n, t in inputs.items()]}
        if outputs is not None:
            request["outputs"] = outputs
        if version is not None:
            request["version"] = version
        if timeout_ms is not None:
            request["parameters"] = {"timeoutMs": timeout_ms}
        data = self.graphql(
            "mutation Infer($input: InferInput!) { infer(input: $input) { modelName modelVersion outputs { name datatype shape dataBase64 } } }",
            {"input": request},
        )
        return {o["name"]: Tensor(o["datatype"], o["shape"], base64.b64decode(o["dataBase64"])) for o in data["infer"]["outputs"]}

    def classify(self, model: str, images: Sequence[Union[str, bytes]], top_k: int = 3) -> List[List[Dict[str, Any]]]:
        """Classifies image files (paths) or encoded bytes (PNG, JPEG, WebP); one prediction list per image."""
        encoded = []
        for image in images:
            if isinstance(image, str):
                with open(image, "rb") as f:
                    image = f.read()
            encoded.append({"image": base64.b64encode(image).decode("ascii")})
        data = self.graphql(
            "mutation Classify($model: String!, $images: [ImageInput!]!, $topK: Int!) {"
            " classify(model: $model, images: $images, topK: $topK) { results { predictions { label index probability } } } }",
            {"model": model, "images": encoded, "topK": top_k},
        )
        return [r["predictions"] for r in data["classify"]["results"]]

    def paginate(self, query: str, field: str, variables: Optional[Dict[str, Any]] = None, page_size: int = 100) -> Iterator[Dict[str, Any]]:
        """Yields every node of a Relay connection. `query` takes $first and $after and selects
        `<field> { edges { node { ... } } pageInfo { hasNextPage endCursor } }`."""
        after = None
        while True:
            page = self.graphql(query, {**(variables or {}), "first": page_size, "after": after})[field]
            for edge in page["edges"]:
                yield edge["node"]
            if not page["pageInfo"]["hasNextPage"]:
                return
            after = page["pageInfo"]["endCursor"]

    def tenants(self, page_size: int = 100) -> Iterator[Dict[str, Any]]:
        return self.paginate(
            "query Tenants($first: Int, $after: String) { tenants(first: $first, after: $after) { edges { node { id name status } } pageInfo { hasNextPage endCursor } } }",
            "tenants", page_size=page_size)

    def api_keys(self, tenant: Optional[str] = None, page_size: int = 100) -> Iterator[Dict[str, Any]]:
        return self.paginate(
            "query Keys($first: Int, $after: String, $tenant: String) { apiKeys(first: $first, after: $after, tenant: $tenant)"
            " { edges { node { id prefix name scopes status } } pageInfo { hasNextPage endCursor } } }",
            "apiKeys", {"tenant": tenant}, page_size=page_size)

    def usage_records(self, model: Optional[str] = None, status: Optional[str] = None, page_size: int = 500) -> Iterator[Dict[str, Any]]:
        """Usage records, newest first (scope usage:read), optionally of one model or status."""
        return self.paginate(
            "query Usage($first: Int!, $after: String, $filter: UsageRecordFilter) { usageRecords(first: $first, after: $after, filter: $filter)"
            " { edges { node { id tenantId apiKeyId model items computeUnits status createdAt } } pageInfo { hasNextPage endCursor } } }",
            "usageRecords", {"filter": {k: v for k, v in {"model": model, "status": status}.items() if v is not None}}, page_size=page_size)

    def node(self, id: str) -> Optional[Dict[str, Any]]:
        """Any object by the id the API returned, with its __typename; None when unknown or not readable by this key."""
        return self.graphql(
            "query Node($id: ID!) { node(id: $id) { __typename id ... on Tenant { name } ... on ApiKey { prefix name tenantId } } }",
            {"id": id},
        )["node"]


def _seconds(header: Optional[str], extension: Any) -> Optional[float]:
    for value in (header, extension):
        try:
            if value is not None:
                return max(0.0, float(value))
        except (TypeError, ValueError):
            pass
    return None
