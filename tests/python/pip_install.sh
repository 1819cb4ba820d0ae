#!/usr/bin/env bash
# `pip install --no-build-isolation .` into a fresh virtualenv works, and the installed package
# loads a batch. Usage: tests/python/pip_install.sh SOURCE_DIR WORK_DIR PYTHON
set -euo pipefail
src=$1 work=$2 py=$3
rm -rf "$work" && mkdir -p "$work"
"$py" -m venv --system-site-packages "$work/venv"
"$work/venv/bin/pip" install --no-build-isolation --no-deps --quiet "$src"
cd "$work"  # not the source tree: the installed package must be the one imported
"$work/venv/bin/python" - <<'PY'
import numpy as np
import ringloader as rl
assert rl.__file__.startswith(__import__("sys").prefix), rl.__file__

class Squares(rl.Dataset):
    schema = {"v": ("int64", ())}
    def __len__(self): return 20
    def get(self, i, out): out["v"][...] = i * i

got = sorted(int(v) for (b,) in rl.DataLoader(Squares(), batch_size=6, num_workers=2) for v in b)
assert got == [i * i for i in range(20)], got
print("installed ringloader loads batches:", rl.__file__)
PY
