"""Times the same token ids through Kefu's candle encoder and through onnxruntime (and
sentence-transformers when installed), one thread each, and prints JSON with the ratios.

The ONNX graphs are built here from the very same weights Kefu loads (MiniLM's safetensors; e5's
Q4_0 file dequantised), so both runtimes compute the same function; the script also checks that
their vectors agree. Needs numpy, onnx and onnxruntime (pip install numpy onnx onnxruntime).
"""
import json
import os
import struct
import subprocess
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = os.environ.get("KEFU_MODEL_DIR", os.path.join(ROOT, "models"))


# ----------------------------------------------------------------------------- weights
def minilm_weights(d):
    raw = open(os.path.join(d, "model.safetensors"), "rb").read()
    n = struct.unpack("<Q", raw[:8])[0]
    header = json.loads(raw[8:8 + n])
    t = {}
    for k, v in header.items():
        if k == "__metadata__" or v["dtype"] != "F32":
            continue
        a, b = v["data_offsets"]
        t[k] = np.frombuffer(raw[8 + n + a:8 + n + b], dtype=np.float32).reshape(v["shape"])
    cfg = json.load(open(os.path.join(d, "config.json")))
    layers = []
    for l in range(cfg["num_hidden_layers"]):
        p = f"encoder.layer.{l}."
        layers.append({
            "q": (t[p + "attention.self.query.weight"], t[p + "attention.self.query.bias"]),
            "k": (t[p + "attention.self.key.weight"], t[p + "attention.self.key.bias"]),
            "v": (t[p + "attention.self.value.weight"], t[p + "attention.self.value.bias"]),
            "o": (t[p + "attention.output.dense.weight"], t[p + "attention.output.dense.bias"]),
            "ln1": (t[p + "attention.output.LayerNorm.weight"], t[p + "attention.output.LayerNorm.bias"]),
            "fi": (t[p + "intermediate.dense.weight"], t[p + "intermediate.dense.bias"]),
            "fo": (t[p + "output.dense.weight"], t[p + "output.dense.bias"]),
            "ln2": (t[p + "output.LayerNorm.weight"], t[p + "output.LayerNorm.bias"]),
        })
    return {
        "word": t["embeddings.word_embeddings.weight"],
        "pos": t["embeddings.position_embeddings.weight"],
        "type": t["embeddings.token_type_embeddings.weight"][0],
        "ln": (t["embeddings.LayerNorm.weight"], t["embeddings.LayerNorm.bias"]),
        "heads": cfg["num_attention_heads"], "eps": cfg["layer_norm_eps"], "layers": layers,
    }


def e5_weights(path):
    b = open(path, "rb").read()
    H, NL, NH, FF, VOC, MAXP, TVS = struct.unpack("<7i", b[8:36])
    eps = struct.unpack("<f", b[36:40])[0]
    p = 44
    n = struct.unpack("<i", b[p:p + 4])[0]; p += 20
    bloblen = struct.unpack("<Q", b[p:p + 8])[0]; p += 8
    p += 4 * (n + 1) + 4 * n + bloblen
    _, nb = struct.unpack("<iI", b[p:p + 8]); p += 8 + nb
    nd = struct.unpack("<i", b[p:p + 4])[0]; p += 4
    t = {}
    for _ in range(nd):
        nl = struct.unpack("<H", b[p:p + 2])[0]; p += 2
        name = b[p:p + nl].decode(); p += nl
        dt = b[p]; p += 1
        cnt, off, nbytes = struct.unpack("<IQQ", b[p:p + 20]); p += 20
        if dt == 0:
            t[name] = np.frombuffer(b[off:off + 4 * cnt], dtype=np.float32)
        else:
            blocks = np.frombuffer(b[off:off + cnt // 32 * 18], dtype=np.uint8).reshape(-1, 18)
            d = blocks[:, :2].copy().view(np.float16).astype(np.float32)
            qs = blocks[:, 2:]
            lo = (qs & 0x0F).astype(np.float32) - 8
            hi = (qs >> 4).astype(np.float32) - 8
            t[name] = (np.concatenate([lo, hi], axis=1) * d).reshape(-1)

    def lin(name, rows, cols):
        return t[name + ".w"].reshape(rows, cols), t[name + ".b"]

    layers = []
    for l in range(NL):
        p = f"l{l}."
        layers.append({
            "q": lin(p + "q", H, H), "k": lin(p + "k", H, H), "v": lin(p + "v", H, H),
            "o": lin(p + "ao", H, H), "ln1": (t[p + "aln.w"], t[p + "aln.b"]),
            "fi": lin(p + "fi", FF, H), "fo": lin(p + "fo", H, FF),
            "ln2": (t[p + "oln.w"], t[p + "oln.b"]),
        })
    return {
        "word": t["emb.word"].reshape(VOC, H), "pos": t["emb.pos"].reshape(MAXP, H),
        "type": t["emb.type"].reshape(TVS, H)[0], "ln": (t["emb.ln.w"], t["emb.ln.b"]),
        "heads": NH, "eps": eps, "layers": layers,
    }


# ----------------------------------------------------------------------------- ONNX graph
def bert_onnx(w):
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits = [], []
    H = w["word"].shape[1]
    hd = H // w["heads"]
    counter = [0]

    def const(arr, name=None):
        counter[0] += 1
        name = name or f"c{counter[0]}"
        inits.append(numpy_helper.from_array(np.ascontiguousarray(arr), name))
        return name

    def op(kind, inputs, **attrs):
        counter[0] += 1
        out = f"t{counter[0]}"
        nodes.append(helper.make_node(kind, inputs, [out], **attrs))
        return out

    def linear(x, wb):
        return op("Add", [op("MatMul", [x, const(wb[0].T.astype(np.float32))]), const(wb[1])])

    def ln(x, gb):
        return op("LayerNormalization", [x, const(gb[0]), const(gb[1])], axis=-1, epsilon=float(w["eps"]))

    x = op("Gather", [const(w["word"]), "input_ids"])
    x = op("Add", [x, op("Gather", [const(w["pos"]), "position_ids"])])
    x = ln(op("Add", [x, const(w["type"])]), w["ln"])
    mask3 = op("Unsqueeze", ["attention_mask", const(np.array([1, 2], dtype=np.int64))])
    bias = op("Mul", [op("Sub", [mask3, const(np.array(1.0, dtype=np.float32))]), const(np.array(1e9, dtype=np.float32))])
    heads_shape = const(np.array([0, 0, w["heads"], hd], dtype=np.int64))
    back_shape = const(np.array([0, 0, H], dtype=np.int64))
    scale = const(np.array(1.0 / np.sqrt(hd), dtype=np.float32))
    for L in w["layers"]:
        q = op("Transpose", [op("Reshape", [linear(x, L["q"]), heads_shape])], perm=[0, 2, 1, 3])
        k = op("Transpose", [op("Reshape", [linear(x, L["k"]), heads_shape])], perm=[0, 2, 3, 1])
        v = op("Transpose", [op("Reshape", [linear(x, L["v"]), heads_shape])], perm=[0, 2, 1, 3])
        s = op("Add", [op("Mul", [op("MatMul", [q, k]), scale]), bias])
        ctx = op("MatMul", [op("Softmax", [s], axis=-1), v])
        ctx = op("Reshape", [op("Transpose", [ctx], perm=[0, 2, 1, 3]), back_shape])
        x = ln(op("Add", [x, linear(ctx, L["o"])]), L["ln1"])
        h = linear(x, L["fi"])
        g = op("Mul", [op("Mul", [h, const(np.array(0.5, dtype=np.float32))]),
                       op("Add", [op("Erf", [op("Div", [h, const(np.array(np.sqrt(2.0), dtype=np.float32))])]),
                                  const(np.array(1.0, dtype=np.float32))])])
        x = ln(op("Add", [x, linear(g, L["fo"])]), L["ln2"])
    m = op("Unsqueeze", ["attention_mask", const(np.array([2], dtype=np.int64))])
    summed = op("ReduceSum", [op("Mul", [x, m]), const(np.array([1], dtype=np.int64))], keepdims=0)
    count = op("ReduceSum", [m, const(np.array([1], dtype=np.int64))], keepdims=0)
    nodes.append(helper.make_node("Div", [summed, count], ["pooled"]))
    graph = helper.make_graph(
        nodes, "bert",
        [helper.make_tensor_value_info("input_ids", TensorProto.INT64, ["b", "l"]),
         helper.make_tensor_value_info("position_ids", TensorProto.INT64, [1, "l"]),
         helper.make_tensor_value_info("attention_mask", TensorProto.FLOAT, ["b", "l"])],
        [helper.make_tensor_value_info("pooled", TensorProto.FLOAT, ["b", H])], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def ort_session(model):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def ort_encode(sess, batch):
    L = max(len(s) for s in batch)
    ids = np.zeros((len(batch), L), dtype=np.int64)
    mask = np.zeros((len(batch), L), dtype=np.float32)
    for i, s in enumerate(batch):
        ids[i, :len(s)] = s
        mask[i, :len(s)] = 1
    pos = np.arange(L, dtype=np.int64)[None, :]
    out = sess.run(["pooled"], {"input_ids": ids, "position_ids": pos, "attention_mask": mask})[0]
    return out / np.linalg.norm(out, axis=1, keepdims=True)


def rate(fn, ids, batch):
    fn(ids[:batch])
    best = 1e9
    for _ in range(3):
        t = time.perf_counter()
        for i in range(0, len(ids), batch):
            fn(ids[i:i + batch])
        best = min(best, time.perf_counter() - t)
    return len(ids) / best


# ----------------------------------------------------------------------------- inputs
def sentences():
    import csv
    short = []
    for f in ("faq-zh.csv", "faq-en.csv"):
        with open(os.path.join(ROOT, "kb", "demo", f), encoding="utf-8") as fh:
            short += [r["question"] for r in csv.DictReader(fh)]
    en = ("Orders paid before four in the afternoon on a business day ship the same day, and later orders ship on "
          "the next business day. Standard delivery takes three to five business days, while express delivery takes "
          "one or two. You can return unused items in their original packaging within thirty days of delivery for a "
          "full refund, and refunds are issued within three business days.")
    zh = ("工作日下午四点前付款的订单当天发货，之后付款的订单次日发货。标准快递三到五个工作日送达，加急快递一到两个工作日送达。"
          "未使用且包装完好的商品，签收后三十天内可以申请全额退款，仓库收到退货后三个工作日内原路退款，银行到账可能还需要几天。")
    return {"short": short[:64], "passage": [en if i % 2 == 0 else zh for i in range(32)]}


def kefu_run(model, texts):
    exe = os.path.join(ROOT, "target", "release", "examples", "encode_ids")
    out = subprocess.run([exe, model, MODELS], input="\n".join(texts) + "\n", capture_output=True,
                         text=True, check=True, env={**os.environ, "RAYON_NUM_THREADS": "1"})
    return json.loads(out.stdout)


def main():
    subprocess.run(["cargo", "build", "--release", "-q", "-p", "kefu-kb", "--example", "encode_ids"],
                   cwd=ROOT, check=True)
    try:
        import onnxruntime  # noqa: F401
        have_ort = True
    except ImportError:
        have_ort = False
    result = {"threads": 1, "onnxruntime": None, "sentence_transformers": "not installed"}
    try:
        import sentence_transformers  # noqa: F401
        result["sentence_transformers"] = "installed but not wired: no hub access for its model config"
    except ImportError:
        pass
    if have_ort:
        import onnxruntime
        result["onnxruntime"] = onnxruntime.__version__
    loaders = {
        "all-minilm-l6-v2": lambda: minilm_weights(os.path.join(MODELS, "all-minilm-l6-v2")),
        "multilingual-e5-small": lambda: e5_weights(os.path.join(MODELS, "multilingual-e5-small", "e5-small-q4.bin")),
    }
    texts = sentences()
    for model, load in loaders.items():
        sess = ort_session(bert_onnx(load())) if have_ort else None
        for kind, group in texts.items():
            k = kefu_run(model, group)
            row = {"texts": len(group), "mean_tokens": float(np.mean([len(i) for i in k["ids"]])),
                   "kefu": k["kefu"], "kefu_candle_pass": k["kefu_candle_pass"],
                   "kefu_over_candle_pass": {key: k["kefu"][key] / k["kefu_candle_pass"][key] for key in k["kefu"]}}
            if sess is not None:
                ids = k["ids"]
                ort_vecs = np.concatenate([ort_encode(sess, ids[i:i + 32]) for i in range(0, len(ids), 32)])
                cos = np.sum(ort_vecs * np.array(k["vectors"]), axis=1)
                row["min_cosine_vs_onnxruntime"] = float(cos.min())
                row["onnxruntime"] = {f"batch{b}_per_s": rate(lambda x: ort_encode(sess, x), ids, b) for b in (1, 32)}
                row["kefu_over_onnxruntime"] = {key: row["kefu"][key] / row["onnxruntime"][key] for key in row["kefu"]}
            result[f"{model}/{kind}"] = row
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    sys.exit(main())
