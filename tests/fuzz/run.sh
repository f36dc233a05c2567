#!/usr/bin/env bash
# Runs the libFuzzer targets for a bounded time each (tests/fuzz/README.md); `make fuzz`
# calls it after building them in build-fuzz.
#   tests/fuzz/run.sh BUILD SECONDS PARALLEL TARGET...
# Each target starts from its checked-in seed corpus (tests/fuzz/corpus/<target>, read only)
# and the inputs it found before (BUILD/fuzz/corpus/<target>, where new ones go). A crash,
# a leak, UB, a timeout or running out of memory fails the run: the log's tail is printed
# with the input that did it (BUILD/fuzz/artifacts/<target>/) and how to reproduce it.
set -uo pipefail
build=$1 seconds=$2 parallel=$3
shift 3
src=$(cd "$(dirname "$0")" && pwd)
work="$build/fuzz"
mkdir -p "$work"

run_one() {
  local target=$1
  local exe="$build/tests/fuzz/${target}_fuzz"
  local corpus="$work/corpus/$target" artifacts="$work/artifacts/$target/"
  mkdir -p "$corpus" "$artifacts"
  # -timeout: one input taking longer is a finding; -rss_limit_mb: so is memory beyond it.
  # -max_len 65536: room for deep nesting and long topics (decode payloads go to 256 KiB
  # in the bad-input integration test).
  "$exe" "$corpus" "$src/corpus/$target" -max_total_time="$seconds" -timeout=10 \
    -rss_limit_mb=2048 -max_len=65536 -print_final_stats=1 -artifact_prefix="$artifacts" \
    >"$work/$target.log" 2>&1
  local rc=$?
  local execs per_s
  execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$work/$target.log")
  per_s=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$work/$target.log")
  if [ "$rc" -ne 0 ]; then
    echo "FAIL $target (exit $rc): log $work/$target.log"
    tail -n 40 "$work/$target.log"
    echo "reproduce: $exe $artifacts<file>   (or copy the file into tests/fuzz/corpus/$target/)"
    return 1
  fi
  echo "ok   $target: ${execs:-?} runs in ${seconds}s, ${per_s:-?} execs/s"
}
export -f run_one
export build seconds src work

printf '%s\n' "$@" | xargs -P "$parallel" -I{} bash -c 'run_one {}'
