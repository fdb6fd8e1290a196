#!/usr/bin/env bash
# Measures the idle memory (RSS) of `trainwatch run` with 10 jobs loaded on
# the bundled sample data, then stops it with SIGTERM and checks it exits 0.
# Usage: bash benches/daemon_rss.sh   (builds the release binary first)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
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

./target/release/trainwatch --config "$work/config.toml" run 2> "$work/log" &
pid=$!
sleep 3
rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"
wait "$pid"; code=$?
jobs=$(grep -c '"\?scheduled' "$work/log" || true)
echo "daemon_rss: 10 jobs loaded ($jobs scheduled), idle after 3 s"
echo "  RSS        $((rss / 1024)) MiB ($rss KiB)"
echo "  peak RSS   $((hwm / 1024)) MiB ($hwm KiB)"
echo "  threads    $threads"
echo "  exit code after SIGTERM: $code"
