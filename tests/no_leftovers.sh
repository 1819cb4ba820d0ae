#!/usr/bin/env bash
# Runs after every other test (CTest fixture cleanup): the suite must leave no /dev/shm entry
# and no process of its own test binaries (an orphaned worker would show up here).
bin_dir="$1"
status=0
if ls /dev/shm 2>/dev/null | grep -q '^ringloader-'; then
  echo "stale /dev/shm entries:"; ls -l /dev/shm | grep ringloader-; status=1
fi
for p in /proc/[0-9]*; do
  exe=$(readlink "$p/exe" 2>/dev/null) || continue
  case "$exe" in
    "$bin_dir"/*_test) echo "leftover process ${p#/proc/}: $exe"; status=1 ;;
  esac
done
[ $status -eq 0 ] && echo "no /dev/shm entries, no leftover test processes"
exit $status
