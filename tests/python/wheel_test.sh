#!/usr/bin/env bash
# The repaired wheel works on a system without ringloader's build dependencies.
# Usage: tests/python/wheel_test.sh WHEEL WORK_DIR [PYTHON]   (run as root: it uses a mount namespace)
#
# 1. `auditwheel show` places the wheel on a manylinux policy.
# 2. Every shared object in the installed package needs only libraries bundled in the wheel
#    (ringloader.libs/) or on the manylinux allow-list (libc, libm, libstdc++, libgcc_s, ...): ldd.
# 3. In a fresh venv *without* system site packages (NumPy from the index, no torch), inside a
#    private mount namespace where every system copy of each bundled library is replaced by
#    /dev/null and /usr/include (the -dev headers) is empty - a control shows the system's
#    libturbojpeg no longer loads there - the README's Python quick start
#    (examples/python/quickstart.py) and the console programs run on a folder the wheel's own
#    `ringloader-bench --make-dataset` made.
# 4. The same wheel with NumPy 1.26 instead of 2.x.
# Step 2 is the check that decides: the repaired objects ask only for the bundled (renamed)
# libraries and the allow-list. Step 3 runs them as a user would where the system copies cannot
# be loaded at all, which also catches a library opened at run time (dlopen) rather than linked.
# A debootstrapped Debian root would be stronger still, but needs a mirror download each run.
set -euo pipefail
say() { echo "wheel_test: $*"; }
fail() { echo "wheel_test: FAIL: $*" >&2; exit 1; }
[ $# -ge 2 ] || fail "usage: $0 WHEEL WORK_DIR [PYTHON]"
[ -f "$1" ] || fail "no wheel at $1"
wheel=$(realpath "$1") work=$2 py=${3:-python3}
src=$(cd "$(dirname "$0")/../.." && pwd)
# WORK_DIR is deleted and made anew: only one this script made (it holds the marker) or none.
if [ -e "$work" ] && [ -n "$(ls -A "$work")" ] && [ ! -e "$work/.wheel-test-dir" ]; then
  fail "$work exists and was not made by this test: give a new folder"
fi
rm -rf "$work" && mkdir -p "$work" && touch "$work/.wheel-test-dir"
work=$(realpath "$work")

# 1. the policy
auditwheel=${AUDITWHEEL:-auditwheel}
"$auditwheel" show "$wheel" > "$work/show.txt" 2>&1 || { cat "$work/show.txt"; fail "auditwheel show"; }
grep -Eq 'platform tag:[[:space:]]*"manylinux_2_[0-9]+_x86_64"' "$work/show.txt" \
  || { cat "$work/show.txt"; fail "auditwheel show names no manylinux tag"; }
say "$(grep -Eo 'platform tag:[[:space:]]*"[^"]+"' "$work/show.txt" | head -1)"

# A fresh venv without the system's site packages; pip brings NumPy, nothing else.
venv() {
  local dir=$1; shift
  "$py" -m venv "$dir"
  grep -q "include-system-site-packages = false" "$dir/pyvenv.cfg" || fail "$dir sees system site packages"
  "$dir/bin/pip" install --quiet --disable-pip-version-check "$@" "$wheel" > "$work/pip.log" 2>&1 \
    || { grep -v "is ignored" "$work/pip.log" >&2; fail "pip install $wheel"; }
}
venv "$work/v"
pkg=$("$work/v/bin/python" -c 'import os, ringloader; print(os.path.dirname(ringloader.__file__))')
case "$pkg" in "$work/v/"*) ;; *) fail "ringloader imported from $pkg, not the venv" ;; esac
"$work/v/bin/python" -c 'import torch' 2>/dev/null && fail "torch is in the clean venv"
"$work/v/bin/python" -c 'import numpy, sys; sys.exit(int(numpy.__version__.split(".")[0]) < 2)' \
  || fail "pip gave the clean venv a NumPy older than 2"
libs_dir=$(realpath -m "$(dirname "$pkg")/ringloader.libs")
[ -d "$libs_dir" ] || fail "no ringloader.libs/ in the installed wheel (not repaired?)"
say "bundled: $(ls "$libs_dir" | tr '\n' ' ')"
notices=$(find "$pkg/../ringloader-"*.dist-info/licenses/bundled -name '*.copyright' 2>/dev/null | wc -l)
[ "$notices" -ge 10 ] || fail "the wheel carries $notices licence notices for its bundled libraries (make wheel adds them)"
say "licence notices of the bundled libraries: $notices"

# 2. ldd: bundled or allow-listed, nothing else
# The allow-list of the wheel's own policy, from auditwheel's policy file (plus the loader itself).
tag=$(grep -Eo 'platform tag:[[:space:]]*"manylinux_2_[0-9]+' "$work/show.txt" | head -1 | grep -Eo 'manylinux_2_[0-9]+')
aw_python=$(head -1 "$(command -v "$auditwheel")" | sed 's/^#!//')  # auditwheel's own interpreter
policy=$("$aw_python" -c 'import auditwheel, os; print(os.path.join(os.path.dirname(auditwheel.__file__), "policy", "manylinux-policy.json"))')
mapfile -t allowed < <("$aw_python" -c 'import json, sys
for p in json.load(open(sys.argv[1])):
    if p["name"] == sys.argv[2]:
        print("\n".join(p["lib_whitelist"]))' "$policy" "$tag")
[ ${#allowed[@]} -gt 5 ] || fail "no allow-list for $tag in $policy"
allowed+=(ld-linux-x86-64.so.2 linux-vdso.so.1)
is_allowed() { local a; for a in "${allowed[@]}"; do [ "$a" = "$1" ] && return 0; done; return 1; }
mapfile -t elves < <(find "$pkg" "$libs_dir" -type f \( -name '*.so*' -o -path '*/bin/ringloader-*' \))
[ ${#elves[@]} -ge 5 ] || fail "expected the extension, 3 programs and bundled libraries, found ${elves[*]}"
for f in "${elves[@]}"; do
  while read -r name _ path _; do
    [ -z "$name" ] && continue
    if is_allowed "$name"; then continue; fi
    [ -n "$path" ] && [ "$path" != "not" ] && path=$(realpath -m "$path")
    case "$path" in "$libs_dir"/*) ;; *) fail "$f needs $name from ${path:-nowhere}" ;; esac
  done < <(ldd "$f" | sed 's/^[[:space:]]*//' | grep '=>')
done
say "ldd: ${#elves[@]} objects need only ringloader.libs/ and $tag's allow-list"

# 3. hide every system copy of each bundled library, and the headers, then run as a user would
hide=()
for b in "$libs_dir"/*; do
  base=$(basename "$b" | sed -E 's/^(lib[^-]+(-[^-]+)*)-[0-9a-f]{8}\.so(.*)$/\1.so/')
  for f in /usr/lib/x86_64-linux-gnu/"$base"* /lib/x86_64-linux-gnu/"$base"*; do
    [ -e "$f" ] && hide+=("$(realpath "$f")")
  done
done
[ ${#hide[@]} -gt 0 ] || fail "no system copy of any bundled library found to hide"
mapfile -t hide < <(printf '%s\n' "${hide[@]}" | sort -u)
say "hidden from the loader: ${#hide[@]} system libraries (${hide[*]##*/})"
cat > "$work/run.sh" <<EOF
set -euo pipefail
for f in ${hide[*]}; do mount --bind /dev/null "\$f"; done
mount -t tmpfs none /usr/include
# control: the system's codec libraries really are out of reach now
if python3 -c 'import ctypes; ctypes.CDLL("libturbojpeg.so.0")' 2>/dev/null; then
  echo "wheel_test: FAIL: libturbojpeg.so.0 still loads inside the namespace" >&2; exit 1
fi
[ -z "\$(ls /usr/include)" ]
cd "$work"   # not the source tree
export PATH="$work/v/bin:\$PATH"
help=\$(ringloader-imagefolder --help) && grep -q Usage <<< "\$help"
ringloader-bench --make-dataset "$work/images" --images 40 >/dev/null
ringloader-imagefolder "$work/images" --workers 2 --batch-size 8 > "$work/cli.txt"
grep -q "40 images" "$work/cli.txt" || { cat "$work/cli.txt"; exit 1; }
ringloader-bench "$work/images" --workers 0,1 --batch-sizes 8 --decoders fast --outputs uint8 --repeats 1 \
  --ceiling-images 10 > "$work/bench.txt"  # not piped into grep -q: the bench dies of SIGPIPE, as it should
grep -q '"bench":"imagefolder"' "$work/bench.txt"
ringloader-pack "$work/images" "$work/shards" >/dev/null
python -c 'import sys, ringloader as rl
n = sum(len(b[1]) for b in rl.DataLoader(rl.Shards(sys.argv[1], size=64), batch_size=8, num_workers=1))
assert n == 40, n' "$work/shards"
python "$src/examples/python/quickstart.py" "$work/images" | tee "$work/quickstart.txt"
grep -q "epoch 1: 40 images" "$work/quickstart.txt"
EOF
unshare -m bash "$work/run.sh" || fail "the wheel does not run with the system libraries hidden"
say "quick start, ringloader-imagefolder, -bench, -pack and rl.Shards ran with the system libraries hidden"

# 4. NumPy 1.26
venv "$work/v126" "numpy==1.26.4"
"$work/v126/bin/python" -c 'import numpy; assert numpy.__version__ == "1.26.4", numpy.__version__'
(cd "$work" && "$work/v126/bin/python" "$src/examples/python/quickstart.py" "$work/images" | grep -q "epoch 1: 40 images") \
  || fail "the quick start fails with NumPy 1.26"
say "the same wheel runs with NumPy $("$work/v/bin/python" -c 'import numpy; print(numpy.__version__)') and 1.26.4"
echo "wheel_test: ok"
