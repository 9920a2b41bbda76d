"""Drives modelgate's gRPC door with Triton's own, unmodified Python client
(tritonclient.grpc): metadata, config, index, statistics, infer, async_infer
and a stream, the key added by a client plugin (register_plugin), as the
README tells Triton users to. Prints one JSON object of what it saw; the Jest
test (tritonclient.test.ts) asserts on it. Env: GRPC_URL, KEY, IMAGES (hex of
the FP32 input bytes, N x 1 x 28 x 28), WORD_KEY and WORDS (a JSON list of
strings for word-language, sent as a BYTES tensor from an np.object_ array).
"""
import json
import os
import queue
import sys

import numpy as np
import tritonclient.grpc as grpcclient
from tritonclient._plugin import InferenceServerClientPlugin
from tritonclient.utils import InferenceServerException


class BearerKey(InferenceServerClientPlugin):
    """Adds the modelgate key to every call's metadata."""

    def __init__(self, key):
        self.key = key

    def __call__(self, request):
        request.headers["authorization"] = "Bearer " + self.key


def status_of(call):
    try:
        call()
        return "OK"
    except InferenceServerException as error:
        return str(error.status())


def main():
    url = os.environ["GRPC_URL"]
    images = np.frombuffer(bytes.fromhex(os.environ["IMAGES"]), dtype=np.float32).reshape(-1, 1, 28, 28)
    out = {}

    anonymous = grpcclient.InferenceServerClient(url=url)
    out["live"] = anonymous.is_server_live()
    out["ready"] = anonymous.is_server_ready()
    out["server_name"] = anonymous.get_server_metadata().name
    out["anonymous_infer"] = status_of(lambda: anonymous.infer("fashion-cnn", [input_of(images)]))

    client = grpcclient.InferenceServerClient(url=url)
    client.register_plugin(BearerKey(os.environ["KEY"]))
    out["model_ready"] = client.is_model_ready("fashion-cnn")
    metadata = client.get_model_metadata("fashion-cnn", as_json=True)
    out["metadata_inputs"] = metadata["inputs"]
    config = client.get_model_config("fashion-cnn", as_json=True)
    out["config_max_batch_size"] = config["config"]["max_batch_size"]
    out["index"] = sorted({m["name"] for m in client.get_model_repository_index(as_json=True)["models"]})
    out["unknown_model"] = status_of(lambda: client.get_model_metadata("no-such-model"))

    result = client.infer("fashion-cnn", [input_of(images)], outputs=[grpcclient.InferRequestedOutput("probabilities")], request_id="sync")
    out["infer_hex"] = result.as_numpy("probabilities").astype(np.float32).tobytes().hex()
    out["infer_shape"] = list(result.as_numpy("probabilities").shape)

    done = queue.Queue()
    client.async_infer("fashion-cnn", [input_of(images)], callback=lambda result, error: done.put((result, error)), request_id="async")
    answer, error = done.get(timeout=30)
    out["async_error"] = None if error is None else str(error)
    out["async_hex"] = answer.as_numpy("probabilities").astype(np.float32).tobytes().hex() if answer else None

    streamed = queue.Queue()
    client.start_stream(callback=lambda result, error: streamed.put((result, error)))
    for i in range(3):
        client.async_stream_infer("fashion-cnn", [input_of(images[i : i + 1])], request_id="stream-%d" % i)
    client.async_stream_infer("no-such-model", [input_of(images[:1])], request_id="stream-bad")
    answers = []
    try:
        for _ in range(4):
            answers.append(streamed.get(timeout=30))
    except queue.Empty:
        sys.stderr.write("stream answers received before the timeout: %r\n" % [(r and r.get_response().id, str(e)) for r, e in answers])
        raise
    client.stop_stream()
    out["stream_ok"] = sorted(r.get_response().id for r, e in answers if e is None)
    out["stream_errors"] = [str(e) for r, e in answers if e is not None]

    # Statistics count every tenant's traffic: a tenant key is refused, an admin key reads them.
    out["tenant_stats"] = status_of(lambda: client.get_inference_statistics("fashion-cnn"))
    admin = grpcclient.InferenceServerClient(url=url)
    admin.register_plugin(BearerKey(os.environ["ADMIN_KEY"]))
    stats = admin.get_inference_statistics("fashion-cnn", as_json=True)
    out["stats_names"] = sorted({s["name"] for s in stats["model_stats"]})
    out["all_stats_names"] = sorted({s["name"] for s in admin.get_inference_statistics(as_json=True)["model_stats"]})
    admin.close()

    # BYTES as tritonclient sends them: a numpy object array, serialized length-prefixed in raw_input_contents.
    words = grpcclient.InferenceServerClient(url=url)
    words.register_plugin(BearerKey(os.environ["WORD_KEY"]))
    text = np.array([[w.encode("utf-8")] for w in json.loads(os.environ["WORDS"])], dtype=np.object_)
    tensor = grpcclient.InferInput("text", list(text.shape), "BYTES")
    tensor.set_data_from_numpy(text)
    result = words.infer("word-language", [tensor])
    out["bytes_metadata_inputs"] = words.get_model_metadata("word-language", as_json=True)["inputs"]
    out["bytes_labels"] = [v.decode("utf-8") for v in result.as_numpy("language").reshape(-1)]
    out["bytes_language_shape"] = list(result.as_numpy("language").shape)
    out["bytes_probabilities_hex"] = result.as_numpy("probabilities").astype(np.float32).tobytes().hex()
    words.close()
    client.close()
    anonymous.close()
    json.dump(out, sys.stdout)


def input_of(images):
    tensor = grpcclient.InferInput("image", list(images.shape), "FP32")
    tensor.set_data_from_numpy(np.ascontiguousarray(images, dtype=np.float32))
    return tensor


if __name__ == "__main__":
    main()
