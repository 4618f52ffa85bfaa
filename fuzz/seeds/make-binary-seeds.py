#!/usr/bin/env python3
"""Writes the binary seed inputs: a tiny but complete E5S1 model file (model_file/tiny.e5s1: the
real layout, 1 layer of hidden size 32, random weights) and a small text PDF with an outline
(pdf_sections/outline.pdf). Run from this folder; the outputs are committed."""
import random
import struct

random.seed(7)


def e5s1():
    hidden, layers, heads, ffn, max_pos = 32, 1, 2, 64, 16
    pieces = ["<s>", "<pad>", "</s>", "<unk>", "\u2581", "\u2581re", "turn", "退", "货", "\u2581policy"]
    rows = len(pieces)
    head = b"E5S1" + struct.pack("<I", 1)
    head += struct.pack("<7i", hidden, layers, heads, ffn, rows, max_pos, 2)
    head += struct.pack("<f", 1e-12) + struct.pack("<i", 32)
    blob = b"".join(p.encode() for p in pieces)
    offsets, at = [], 0
    for p in pieces:
        offsets.append(at)
        at += len(p.encode())
    offsets.append(at)
    vocab = struct.pack("<i4IQ", rows, 0, 2, 1, 3, len(blob))
    vocab += struct.pack(f"<{rows + 1}I", *offsets)
    vocab += struct.pack(f"<{rows}f", *[-float(i) for i in range(rows)])
    vocab += blob
    norm_entries = struct.pack("<IB", 0xFF21, 1) + struct.pack("<I", ord("A"))  # Ａ -> A
    norm_entries += struct.pack("<IB", 0x3000, 1) + struct.pack("<I", ord(" "))
    norm = struct.pack("<iI", 2, len(norm_entries)) + norm_entries

    tensors = []  # (name, dtype, elements)
    f32 = lambda name, n: tensors.append((name, 0, n))
    q4 = lambda name, n: tensors.append((name, 1, n))
    q4("emb.word", rows * hidden)
    f32("emb.pos", max_pos * hidden)
    f32("emb.type", 2 * hidden)
    f32("emb.ln.w", hidden)
    f32("emb.ln.b", hidden)
    for l in range(layers):
        for m in ("q", "k", "v", "ao"):
            q4(f"l{l}.{m}.w", hidden * hidden)
            f32(f"l{l}.{m}.b", hidden)
        for m in ("aln", "oln"):
            f32(f"l{l}.{m}.w", hidden)
            f32(f"l{l}.{m}.b", hidden)
        q4(f"l{l}.fi.w", ffn * hidden)
        f32(f"l{l}.fi.b", ffn)
        q4(f"l{l}.fo.w", hidden * ffn)
        f32(f"l{l}.fo.b", hidden)

    def data(dtype, n):
        if dtype == 0:
            return struct.pack(f"<{n}f", *[random.uniform(-0.1, 0.1) for _ in range(n)])
        out = b""
        for _ in range(n // 32):
            out += struct.pack("<H", 0x2C00)  # f16 0.0625
            out += bytes(random.randrange(256) for _ in range(16))
        return out

    payloads = [data(d, n) for _, d, n in tensors]
    directory_len = 4 + sum(2 + len(name) + 1 + 4 + 8 + 8 for name, _, _ in tensors)
    offset = len(head) + len(vocab) + len(norm) + directory_len
    directory = struct.pack("<i", len(tensors))
    for (name, dtype, n), payload in zip(tensors, payloads):
        directory += struct.pack("<H", len(name)) + name.encode()
        directory += struct.pack("<BIQQ", dtype, n, offset, len(payload))
        offset += len(payload)
    return head + vocab + norm + directory + b"".join(payloads)


def pdf():
    text = "BT /F1 12 Tf 72 720 Td (Returns) Tj 0 -20 Td (Items can be returned within 30 days.) Tj 0 -20 Td (Warranty) Tj 0 -20 Td (Two years on electronics.) Tj ET"
    objects = [
        "<< /Type /Catalog /Pages 2 0 R /Outlines 5 0 R >>",
        "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
        "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Contents 4 0 R /Resources << /Font << /F1 8 0 R >> >> >>",
        f"<< /Length {len(text)} >>\nstream\n{text}\nendstream",
        "<< /Type /Outlines /First 6 0 R /Last 7 0 R /Count 2 >>",
        "<< /Title (Returns) /Parent 5 0 R /Next 7 0 R /Dest [3 0 R /XYZ 0 792 0] >>",
        "<< /Title (Warranty) /Parent 5 0 R /Prev 6 0 R /Dest [3 0 R /XYZ 0 700 0] >>",
        "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
    ]
    out = b"%PDF-1.4\n"
    offsets = []
    for i, body in enumerate(objects, start=1):
        offsets.append(len(out))
        out += f"{i} 0 obj\n{body}\nendobj\n".encode()
    xref = len(out)
    out += f"xref\n0 {len(objects) + 1}\n0000000000 65535 f \n".encode()
    for o in offsets:
        out += f"{o:010d} 00000 n \n".encode()
    out += f"trailer\n<< /Size {len(objects) + 1} /Root 1 0 R >>\nstartxref\n{xref}\n%%EOF\n".encode()
    return out


with open("model_file/tiny.e5s1", "wb") as f:
    f.write(e5s1())
with open("pdf_sections/outline.pdf", "wb") as f:
    f.write(pdf())
