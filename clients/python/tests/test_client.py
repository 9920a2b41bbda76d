"""Runs against a live gateway: MODELGATE_URL, MODELGATE_API_KEY (admin), MODELGATE_LIMITED_KEY (1 request per
minute), MODELGATE_TEST_TENANTS (names the gateway holds). The Jest test test/clients/python-client.test.ts
starts the gateway, sets these and runs `/usr/bin/python3 -m unittest discover -s clients/python/tests`."""
import array
import http.server
import json
import os
import socket
import struct
import sys
import threading
import time
import unittest
import zlib

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from modelgate_client import Client, ModelgateError, Tensor  # noqa: E402

ROOT = os.path.join(os.path.dirname(__file__), "..", "..", "..")
URL = os.environ.get("MODELGATE_URL", "")
KEY = os.environ.get("MODELGATE_API_KEY", "")


def first_image() -> bytes:
    with open(os.path.join(ROOT, "test", "fixtures", "fashion-mnist-test-1000.bin"), "rb") as f:
        return f.read(784)


def grey_png(pixels: bytes, width: int, height: int) -> bytes:
    """A minimal 8-bit greyscale PNG, standard library only."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
    rows = b"".join(b"\x00" + pixels[y * width:(y + 1) * width] for y in range(height))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b"")


class TensorTest(unittest.TestCase):
    def test_round_trips_little_endian_bytes(self):
        t = Tensor("INT64", [2, 2], [1, -2, 3, 2**40])
        self.assertEqual(t.to_bytes()[:8], struct.pack("<q", 1))
        self.assertEqual(Tensor("INT64", [4], t.to_bytes()).values(), [1, -2, 3, 2**40])

    def test_refuses_a_shape_the_values_do_not_fill(self):
        with self.assertRaises(ValueError):
            Tensor.fp32([1, 3], [1.0, 2.0])


class _Front(http.server.BaseHTTPRequestHandler):
    """Answers each POST by the next step of the server's plan: 503/504 (with or without Retry-After), a reset, or OK."""

    def do_POST(self):  # noqa: N802 (http.server's naming)
        self.rfile.read(int(self.headers.get("content-length", "0")))
        step = self.server.plan.pop(0) if self.server.plan else "ok"
        self.server.seen.append(step)
        if step == "reset":
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
            return
        if step == "ok":
            status, body, headers = 200, {"data": {"me": {"scopes": ["ADMIN"]}}}, {}
        else:
            code, hint = step.split(":") if ":" in step else (step, None)
            status = int(code)
            body = {"errors": [{"message": "busy", "extensions": {"code": "OVERLOADED" if status == 503 else "TIMEOUT"}}]}
            headers = {"retry-after": hint} if hint is not None else {}
        data = json.dumps(body).encode()
        self.send_response(status)
        for name, value in {"content-type": "application/json", "content-length": str(len(data)), **headers}.items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class RetryTest(unittest.TestCase):
    """Retries against a local front that fails on purpose (the gateway cannot be made to reset a connection)."""

    def setUp(self):
        self.front = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Front)
        self.front.plan, self.front.seen = [], []
        threading.Thread(target=self.front.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.front.server_address[1]}"

    def tearDown(self):
        self.front.shutdown()
        self.front.server_close()

    def test_retries_503_504_and_resets_with_backoff_then_answers(self):
        self.front.plan = ["503:0", "504", "reset", "ok"]
        client = Client(self.url, "k", retry_base=0.01)
        self.assertEqual(client.graphql("{ me { scopes } }"), {"me": {"scopes": ["ADMIN"]}})
        self.assertEqual(self.front.seen, ["503:0", "504", "reset", "ok"])

    def test_attempts_are_bounded_and_the_last_failure_is_raised(self):
        self.front.plan = ["504", "504", "504"]
        with self.assertRaises(ModelgateError) as timed_out:
            Client(self.url, "k", max_retries=1, retry_base=0.01).graphql("{ me { scopes } }")
        self.assertEqual((timed_out.exception.code, timed_out.exception.status), ("TIMEOUT", 504))
        self.assertEqual(self.front.seen, ["504", "504"])
        # A Retry-After longer than max_retry_wait is not waited out.
        self.front.plan, self.front.seen[:] = ["503:120"], []
        with self.assertRaises(ModelgateError) as busy:
            Client(self.url, "k", max_retry_wait=1).graphql("{ me { scopes } }")
        self.assertEqual((busy.exception.status, busy.exception.retry_after, self.front.seen), (503, 120.0, ["503:120"]))


@unittest.skipUnless(URL and KEY, "needs a live gateway (MODELGATE_URL, MODELGATE_API_KEY)")
class LiveGatewayTest(unittest.TestCase):
    def setUp(self):
        self.client = Client(URL, KEY)

    def test_infer_matches_the_reference_probabilities(self):
        with open(os.path.join(ROOT, "test", "fixtures", "reference", "fashion-cnn.json")) as f:
            reference = json.load(f)["probabilities"][0]
        pixels = array.array("f", (p / 255 for p in first_image()))
        out = self.client.infer("fashion-cnn", {"image": Tensor.fp32([1, 1, 28, 28], pixels)})
        probabilities = out["probabilities"]
        self.assertEqual(probabilities.shape, [1, 10])
        for got, want in zip(probabilities.values(), reference):
            self.assertAlmostEqual(got, want, places=4)

    def test_classify_reads_a_png_file(self):
        path = os.path.join(os.environ.get("TMPDIR", "/tmp"), f"modelgate-client-{os.getpid()}.png")
        with open(path, "wb") as f:
            f.write(grey_png(first_image(), 28, 28))
        try:
            [predictions] = self.client.classify("fashion-cnn", [path], top_k=3)
        finally:
            os.remove(path)
        self.assertEqual(len(predictions), 3)
        self.assertEqual(predictions[0]["index"], 9)  # image 0 of the test set is an ankle boot
        self.assertEqual(predictions[0]["label"], "Ankle boot")

    def test_errors_carry_the_gateway_code(self):
        with self.assertRaises(ModelgateError) as bad_key:
            Client(URL, "mg_live_" + "0" * 49).graphql("{ me { scopes } }")
        self.assertEqual((bad_key.exception.code, bad_key.exception.status), ("UNAUTHENTICATED", 401))
        with self.assertRaises(ModelgateError) as bad_shape:
            self.client.infer("fashion-cnn", {"image": Tensor.fp32([1, 28, 28], [0.0] * 784)})
        self.assertEqual(bad_shape.exception.code, "BAD_USER_INPUT")
        self.assertEqual(bad_shape.exception.field, "inputs[0].shape")
        self.assertTrue(bad_shape.exception.request_id)

    def test_rate_limited_answers_say_when_to_retry(self):
        limited = Client(URL, os.environ["MODELGATE_LIMITED_KEY"], max_retries=0)
        limited.graphql("{ me { scopes } }")
        with self.assertRaises(ModelgateError) as refused:
            limited.graphql("{ me { scopes } }")
        self.assertEqual((refused.exception.code, refused.exception.status), ("RATE_LIMITED", 429))
        self.assertGreater(refused.exception.retry_after, 0)

    def test_paginates_every_tenant_once(self):
        names = [t["name"] for t in self.client.tenants(page_size=2)]
        self.assertEqual(len(names), len(set(names)))
        expected = set(os.environ["MODELGATE_TEST_TENANTS"].split(","))
        self.assertTrue(expected <= set(names), f"{expected} not in {names}")
        self.assertGreater(len(names), 2)

    def test_node_refetches_a_tenant_by_id(self):
        tenant = next(t for t in self.client.tenants() if t["name"] == os.environ["MODELGATE_TEST_TENANTS"].split(",")[0])
        self.assertEqual(self.client.node(tenant["id"]), {"__typename": "Tenant", "id": tenant["id"], "name": tenant["name"]})
        self.assertIsNone(self.client.node("00000000-0000-4000-8000-000000000000"))

    def test_usage_records_page_newest_first_each_once(self):
        for _ in range(3):
            self.client.infer("fashion-cnn", {"image": Tensor.fp32([1, 1, 28, 28], [0.0] * 784)})
        # Records reach Postgres with the next usage flush, not with the answer: walk again until they are there.
        deadline = time.monotonic() + 10
        records = list(self.client.usage_records(model="fashion-cnn", page_size=2))
        while len(records) < 3 and time.monotonic() < deadline:
            time.sleep(0.1)
            records = list(self.client.usage_records(model="fashion-cnn", page_size=2))
        ids = [r["id"] for r in records]
        self.assertEqual(len(ids), len(set(ids)))
        self.assertGreaterEqual(len(ids), 3)
        stamps = [r["createdAt"] for r in records]
        self.assertEqual(stamps, sorted(stamps, reverse=True))


if __name__ == "__main__":
    unittest.main()
