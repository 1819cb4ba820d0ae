#!/usr/bin/env bash
# `make build` and `make test` must fail when the build fails, even with an old binary left in
# the build folder (once, `cmake --build ... | grep -v ... || true` hid cmake's status: the
# recipe went on to `test -x`, which the old binary passed, and `make test` ran stale tests).
# Configures a fresh build folder with a compiler launcher that always fails (`false`), so the
# first compile fails and nothing of the real build is touched. `-o deps` skips installing
# packages. Usage: make_build_fails.sh SOURCE_DIR
set -u
src="$1"
# The suite runs this test; a nested run (only if `make test` wrongly went on to ctest inside
# this test's build folder) must not start it again.
if [ -n "${RINGLOADER_MAKE_BUILD_FAILS_NESTED:-}" ]; then exit 0; fi
export RINGLOADER_MAKE_BUILD_FAILS_NESTED=1
unset MAKEFLAGS MFLAGS MAKELEVEL  # when the suite runs under make: not the outer make's settings

work=$(mktemp -d "${TMPDIR:-/tmp}/ringloader-make-test.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
build="$work/build"
mkdir -p "$build/bin"
printf '#!/bin/sh\necho stale binary\n' >"$build/bin/ringloader-quickstart"  # a stale binary that `test -x` alone would accept
chmod +x "$build/bin/ringloader-quickstart"

run_make() {  # target -> exit status; output in $work/<target>.log
  timeout -k 5 90 make -C "$src" --no-print-directory -o deps "$1" BUILD="$build" JOBS=1 \
    CMAKE_FLAGS=-DCMAKE_CXX_COMPILER_LAUNCHER=false >"$work/$1.log" 2>&1
}

status=0
run_make build
rc=$?
if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
  echo "FAIL: make build exited $rc on a build that cannot compile (want a failure, not 0 or a timeout):"
  cat "$work/build.log"
  status=1
elif ! grep -q '\.o\] Error' "$work/build.log"; then
  echo "FAIL: make build exited $rc without a compile error in its output (did it fail for another reason?):"
  cat "$work/build.log"
  status=1
else
  echo "make build exited $rc on the failed compile"
fi

run_make test
rc=$?
if [ $rc -eq 0 ] || [ $rc -eq 124 ] || [ $rc -eq 137 ]; then
  echo "FAIL: make test exited $rc on a build that cannot compile:"
  cat "$work/test.log"
  status=1
elif grep -q 'Test project' "$work/test.log"; then
  echo "FAIL: make test ran ctest after the build failed:"
  cat "$work/test.log"
  status=1
else
  echo "make test exited $rc before ctest"
fi
exit $status
