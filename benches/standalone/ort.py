"""onnxruntime on the same MLP and weights as a `nnc build` (benches/standalone.sh).

usage: ort.py CHECKPOINT.safetensors IMAGES.idx
Prints latency (1 thread, one sample per call; input already f32 / 255) and
throughput at batch 1000 (1 thread, and every core; from f32 input already
divided by 255, and from the u8 images with numpy doing the division)."""
import os
import statistics
import sys
import time

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper
from safetensors.numpy import load_file

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from idx import read as read_idx  # noqa: E402


def model(w):
    inits = [numpy_helper.from_array(w[k], k) for k in ("l1.w", "l1.b", "l2.w", "l2.b")]
    nodes = [
        helper.make_node("MatMul", ["x", "l1.w"], ["h0"]),
        helper.make_node("Add", ["h0", "l1.b"], ["h1"]),
        helper.make_node("Relu", ["h1"], ["h"]),
        helper.make_node("MatMul", ["h", "l2.w"], ["o0"]),
        helper.make_node("Add", ["o0", "l2.b"], ["logits"]),
        helper.make_node("Softmax", ["logits"], ["probs"], axis=1),
    ]
    g = helper.make_graph(
        nodes, "mlp", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["B", 784])],
        [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["B", 10])], inits)
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


def session(m, threads):
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    return ort.InferenceSession(m, o, providers=["CPUExecutionProvider"])


def main():
    w = load_file(sys.argv[1])
    images = read_idx(sys.argv[2])
    u8 = images.reshape(len(images), -1)
    x = u8.astype(np.float32) / 255.0
    m = model(w)
    s1 = session(m, 1)
    ts = []
    for i in range(20000):
        xi = x[i % len(x)][None]
        t0 = time.perf_counter()
        s1.run(["probs"], {"x": xi})
        ts.append(time.perf_counter() - t0)
    print(f"ort_latency_us median {statistics.median(ts) * 1e6:.2f} min {min(ts) * 1e6:.2f}")
    # From f32 input already divided (onnxruntime's best case), and from the
    # u8 images, as a `nnc build` model takes them (the division in numpy).
    feeds = (("f32 input", lambda i: x[i:i + 1000]),
             ("from u8 images", lambda i: u8[i:i + 1000].astype(np.float32) / 255.0))
    for name, s in (("1 thread", s1), ("all cores", session(m, 0))):
        for what, feed in feeds:
            best = 1e30
            for _ in range(10):
                t0 = time.perf_counter()
                for i in range(0, len(x) - 999, 1000):
                    s.run(["probs"], {"x": feed(i)})
                best = min(best, time.perf_counter() - t0)
            print(f"ort_throughput_batch1000 ({name}, {what}) {len(x) // 1000 * 1000 / best:.0f} samples/s")


main()
