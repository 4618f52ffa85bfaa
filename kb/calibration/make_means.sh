#!/usr/bin/env bash
# Recomputes kb/src/embed/e5_language_means.json from the calibration sentences (needs numpy).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
models="${KEFU_MODEL_DIR:-$here/../../models}/multilingual-e5-small"
tmp="$(mktemp -d)"
gcc -O2 -fopenmp -I"$models" "$models/e5.c" "$here/../tests/fixtures/e5_reference_driver.c" -lm -o "$tmp/e5ref"
"$tmp/e5ref" "$models/e5-small-q4.bin" query < "$here/zh-general.txt" > "$tmp/zh.jsonl"
"$tmp/e5ref" "$models/e5-small-q4.bin" query < "$here/en-general.txt" > "$tmp/en.jsonl"
python3 - "$tmp" "$here/../src/embed/e5_language_means.json" <<'PY'
import json, sys
import numpy as np
tmp, out = sys.argv[1], sys.argv[2]
means = {}
for lang in ("zh", "en"):
    rows = np.array([json.loads(l) for l in open(f"{tmp}/{lang}.jsonl")])
    means[lang] = [round(float(x), 7) for x in rows.mean(0)]
json.dump(means, open(out, "w"))
print("wrote", out)
PY
rm -rf "$tmp"
