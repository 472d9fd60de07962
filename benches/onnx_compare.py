#!/usr/bin/env python3
"""Run an ONNX file written by `nnc export` in onnxruntime and compare its
outputs with `nnc predict --output raw --json` on the same samples.

    nnc export examples/mnist.nn --checkpoint CKPT -o /tmp/mnist.onnx
    nnc predict examples/mnist.nn --checkpoint CKPT data/mnist/t10k-images-idx3-ubyte.gz \
        --output raw --json > /tmp/nnc.jsonl
    python3 benches/onnx_compare.py /tmp/mnist.onnx data/mnist/t10k-images-idx3-ubyte.gz \
        --expect /tmp/nnc.jsonl [--bench]

Inputs are read as nnc reads them: IDX (gzip or not), CSV (one sample per
line), or with --raw little-endian f32; a model of several inputs takes one
file per input, in the order of the file's inputs (as `nnc predict`).
Prints one JSON object; exits 1 when an output differs by more than --tol
(relative to the output's scale), 2 when onnxruntime is not installed (the
caller skips), 3 when the files do not match the model's inputs.
"""

import argparse
import gzip
import json
import sys
import time

try:
    import numpy as np
    import onnxruntime as ort
except ImportError as e:  # the test suite skips on exit code 2
    print(f"skipped: {e}", file=sys.stderr)
    sys.exit(2)

ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(uint8)": np.uint8,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}
IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_samples(path, raw):
    data = open(path, "rb").read()
    if data[:2] == b"\x1f\x8b":
        data = gzip.decompress(data)
    if raw:
        return np.frombuffer(data, dtype="<f4").astype(np.float64)
    if len(data) >= 4 and data[0] == 0 and data[1] == 0 and data[2] in IDX_TYPES:
        rank = data[3]
        dims = [int.from_bytes(data[4 + 4 * i : 8 + 4 * i], "big") for i in range(rank)]
        values = np.frombuffer(data, dtype=IDX_TYPES[data[2]], offset=4 + 4 * rank)
        return values.astype(np.float64).reshape(dims)
    lines = [l for l in data.decode().splitlines() if l.strip()]
    return np.array([[float(v) for v in l.split(",")] for l in lines])


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model")
    ap.add_argument("inputs", nargs="+", metavar="input")
    ap.add_argument("--raw", action="store_true", help="the input is little-endian f32 values")
    ap.add_argument("--expect", help="`nnc predict --output raw --json` on the same input")
    ap.add_argument("--tol", type=float, default=1e-4, help="largest |onnx - nnc| / (1 + |nnc|)")
    ap.add_argument("--bench", action="store_true", help="also time onnxruntime at batch 1 and 64, one thread")
    ap.add_argument("--samples", type=int, help="only the first N samples")
    a = ap.parse_args()

    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    sess = ort.InferenceSession(a.model, opts, providers=["CPUExecutionProvider"])
    inps = sess.get_inputs()
    if len(inps) != len(a.inputs):
        names = ", ".join(i.name for i in inps)
        print(f"the model has {len(inps)} inputs ({names}); {len(a.inputs)} files given", file=sys.stderr)
        sys.exit(3)
    xs = []
    for inp, path in zip(inps, a.inputs):
        x = read_samples(path, a.raw).reshape([-1] + list(inp.shape[1:]))
        xs.append((x[: a.samples] if a.samples else x).astype(ORT_TYPES[inp.type]))
    x = xs[0]

    def feed(arrays):
        return {inp.name: v for inp, v in zip(inps, arrays)}

    names = [o.name for o in sess.get_outputs()]
    outs = dict(zip(names, sess.run(None, feed(xs))))
    logits = outs["logits"].reshape(len(x), -1)
    report = {"samples": len(x), "outputs": {n: list(v.shape) for n, v in outs.items()}}
    ok = True
    if a.expect:
        want = [json.loads(l)["output"] for l in open(a.expect) if l.strip()]
        want = np.array(want, dtype=np.float64).reshape(len(want), -1)[: len(x)]
        if want.shape != logits.shape:
            report["error"] = f"nnc gave {list(want.shape)}, onnxruntime {list(logits.shape)}"
            ok = False
        else:
            err = np.abs(logits - want) / (1.0 + np.abs(want))
            report["max_rel_diff"] = float(err.max())
            report["max_abs_diff"] = float(np.abs(logits - want).max())
            ok = bool(err.max() <= a.tol)
    if a.bench:
        report["samples_per_s"] = {}
        for b in (1, 64):
            xb = feed([np.resize(v, (b,) + v.shape[1:]) for v in xs])
            sess.run(None, xb)
            reps, t0 = 0, time.perf_counter()
            while time.perf_counter() - t0 < 1.0:
                sess.run(None, xb)
                reps += 1
            report["samples_per_s"][b] = round(reps * b / (time.perf_counter() - t0), 1)
    report["ok"] = ok
    print(json.dumps(report))
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
