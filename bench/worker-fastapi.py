#!/usr/bin/python3
"""The peer that bench/worker measures wakegate-worker against: the usual way
to serve a small model, FastAPI + uvicorn + numpy on the CPU.

It serves the same model file as wakegate-worker (models/digits.safetensors):
the safetensors header is parsed here with json, the F32 tensors are read
with numpy.frombuffer, and the layers run in the order that the
"wakegate.layers" metadata gives (dense, relu, softmax; see
models/README.md), in float32 like the worker.

    POST /predict {"input": [[64 floats], ...]} -> {"result": [[10 floats], ...]}
    GET  /v2/health/ready                       -> 200 once the model is loaded

The code is what such a server usually looks like (a pydantic request model,
a dict returned and serialised by FastAPI), not tuned for the bench.

Run it by hand (one process):
    bench/worker-fastapi.py --model models/digits.safetensors --listen 127.0.0.1:8000
or through uvicorn's own command line, as bench/worker does (the model comes
from $WG_FASTAPI_MODEL, so that every worker process loads it):
    WG_FASTAPI_MODEL=models/digits.safetensors python3 -m uvicorn \\
        --app-dir bench worker-fastapi:app --port 8000 --workers 2
"""
import json
import os
import struct
import sys

import numpy as np
from fastapi import FastAPI, HTTPException
from pydantic import BaseModel
from typing import List


def load_model(path):
    """Reads a wakegate safetensors file: (name, input size, [layer functions])."""
    with open(path, "rb") as f:
        blob = f.read()
    if len(blob) < 8:
        raise ValueError(f"{path}: too short for a safetensors file")
    (hlen,) = struct.unpack("<Q", blob[:8])
    if 8 + hlen > len(blob):
        raise ValueError(f"{path}: header length {hlen} runs past the end of the file")
    header = json.loads(blob[8:8 + hlen])
    data = memoryview(blob)[8 + hlen:]
    meta = header.pop("__metadata__", {})

    def tensor(name):
        if name not in header:
            raise ValueError(f"{path}: no tensor \"{name}\"")
        t = header[name]
        if t["dtype"] != "F32":
            raise ValueError(f"{path}: tensor \"{name}\" is {t['dtype']}, only F32 is supported")
        begin, end = t["data_offsets"]
        a = np.frombuffer(data[begin:end], dtype="<f4")
        return a.reshape(t["shape"]).astype(np.float32)

    shape = json.loads(meta.get("wakegate.input_shape", "null"))
    if not isinstance(shape, list) or len(shape) != 1:
        raise ValueError(f"{path}: wakegate.input_shape must be [N], got {shape!r}")
    layers = []
    for i, op in enumerate(json.loads(meta.get("wakegate.layers", "[]"))):
        kind = op.get("op")
        if kind == "dense":
            w = np.ascontiguousarray(tensor(op["weight"]).T)   # [in,out]: y = x W^T + b
            b = tensor(op["bias"])
            layers.append(lambda x, w=w, b=b: x @ w + b)
        elif kind == "relu":
            layers.append(lambda x: np.maximum(x, np.float32(0)))
        elif kind == "softmax":
            def softmax(x):
                e = np.exp(x - x.max(axis=-1, keepdims=True))
                return e / e.sum(axis=-1, keepdims=True)
            layers.append(softmax)
        else:
            raise ValueError(f"{path}: layer {i}: unknown op {kind!r}")
    if not layers:
        raise ValueError(f"{path}: no wakegate.layers in the metadata")
    return meta.get("wakegate.name", "model"), shape[0], layers


MODEL = os.environ.get("WG_FASTAPI_MODEL") or os.path.join(
    os.path.dirname(os.path.abspath(__file__)), "..", "models", "digits.safetensors")
NAME, IN_DIM, LAYERS = load_model(MODEL)
MAX_BATCH = 32      # as wakegate-worker's default --max-batch

app = FastAPI()


class PredictRequest(BaseModel):
    input: List[List[float]]


@app.post("/predict")
async def predict(req: PredictRequest):
    if not 1 <= len(req.input) <= MAX_BATCH:
        raise HTTPException(400, f"input: 1 to {MAX_BATCH} samples, got {len(req.input)}")
    x = np.asarray(req.input, dtype=np.float32)
    if x.shape[1:] != (IN_DIM,):
        raise HTTPException(400, f"input: each sample must have {IN_DIM} numbers")
    for layer in LAYERS:
        x = layer(x)
    return {"result": x.tolist()}


@app.get("/v2/health/ready")
def ready():
    return {"ready": True, "model": NAME}


def main():
    import argparse
    import uvicorn
    p = argparse.ArgumentParser(description="FastAPI + numpy /predict server (bench/worker's peer)")
    p.add_argument("--model", default=MODEL)
    p.add_argument("--listen", default="127.0.0.1:8000", help="ADDR:PORT")
    a = p.parse_args()
    host, _, port = a.listen.rpartition(":")
    global NAME, IN_DIM, LAYERS
    NAME, IN_DIM, LAYERS = load_model(a.model)
    uvicorn.run(app, host=host or "127.0.0.1", port=int(port), access_log=False, log_level="warning")


if __name__ == "__main__":
    sys.exit(main())
