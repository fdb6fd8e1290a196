#!/usr/bin/env bash
# Measures the idle memory (RSS) of `trainwatch run` with 10 jobs loaded on
# the bundled sample data, then stops it with SIGTERM and checks it exits 0.
# Idle means after the start, its first mirror sync (about 3 s against the
# sample server's rate limit) and then RSS_WAIT seconds.
# Prints RSS split into anonymous memory (heap, stacks, relocated data) and
# file-backed pages (the binary's and libraries' code and read-only data),
# and the threads.
# Usage: bash benches/daemon_rss.sh          (builds the release binary first)
#   RSS_BIN=path/to/trainwatch bash benches/daemon_rss.sh   another binary (no build)
#   RSS_WAIT=10 ...                          seconds to wait after the first sync (default 2)
#   RSS_MAPS=1 ...                           also list the largest mappings
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${RSS_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin trainwatch
  bin=target/release/trainwatch
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
{
  cat <<CONF
timezone = "America/Chicago"
state_dir = "$work/state"
catch_up = "0"

[samsara]
sample_data = "$PWD/sample/api"

[webhooks.receiver]
kind = "json"
url = "http://127.0.0.1:9/hook"
CONF
  for i in $(seq 1 10); do
    cat <<JOB

[[jobs]]
name = "job-$i"
schedule = "0 $i * * Mon"
window = { previous = "week" }
deliver = [{ webhook = "receiver" }]
JOB
  done
} > "$work/config.toml"

"$bin" --config "$work/config.toml" run 2> "$work/log" &
pid=$!
for _ in $(seq 1 300); do grep -q "mirror sync" "$work/log" && break; sleep 0.1; done
sleep "${RSS_WAIT:-2}"
field() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$pid/$2"; }
rss=$(field VmRSS status)
hwm=$(field VmHWM status)
threads=$(field Threads status)
anon=$(field Anonymous smaps_rollup)
file=$(( $(field Rss smaps_rollup) - anon ))
if [ -n "${RSS_MAPS:-}" ]; then
  # Each mapping's RSS (KiB) and its anonymous part, largest first.
  awk '/^[0-9a-f]+-[0-9a-f]+ / {name = $6 ? $6 : "[anon]"; perm = $2}
       /^Rss:/ {r = $2} /^Anonymous:/ {print r, $2, perm, name}' "/proc/$pid/smaps" |
    sort -rn | head -25
fi
kill -TERM "$pid"
code=0; wait "$pid" || code=$?
jobs=$(grep -c '"\?scheduled' "$work/log" || true)
echo "daemon_rss: 10 jobs loaded ($jobs scheduled), idle ${RSS_WAIT:-2} s after the first sync ($bin, $(( $(stat -c %s "$bin") / 1024 )) KiB)"
echo "  RSS        $((rss / 1024)) MiB ($rss KiB: anonymous $anon KiB, file-backed $file KiB)"
echo "  peak RSS   $((hwm / 1024)) MiB ($hwm KiB)"
echo "  threads    $threads"
echo "  exit code after SIGTERM: $code"
