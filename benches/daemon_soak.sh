#!/usr/bin/env bash
# Soak: `trainwatch run` with 50 jobs firing every 10 s on the bundled sample
# data, each delivering a json webhook to a receiver on 127.0.0.1, for 10
# minutes. Samples the daemon's RSS every 10 s and prints it at 1, 5 and 10
# minutes, with the runs and deliveries that happened, then stops it with
# SIGTERM. A long-running service must hold its memory flat: the figure to
# watch is the growth between minute 1 and minute 10.
#
# Usage: bash benches/daemon_soak.sh            (builds the release binary first)
#   SOAK_SECONDS=120 bash benches/daemon_soak.sh   a shorter soak
#   SOAK_BIN=target/debug/trainwatch ...           another binary (no build)
#   SOAK_RETENTION=0 ...                           drop delivered payloads at each outbox pass
#   SOAK_KEEP=1 ...                                keep the work folder
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${SOAK_SECONDS:-600}
jobs=${SOAK_JOBS:-50}
bin=${SOAK_BIN:-}
if [ -z "$bin" ]; then
  cargo build --release --quiet --bin trainwatch
  bin=target/release/trainwatch
fi
work=$(mktemp -d)
cleanup() {
  [ -n "${pid:-}" ] && kill -TERM "$pid" 2>/dev/null || true
  [ -n "${rpid:-}" ] && kill "$rpid" 2>/dev/null || true
  [ -z "${SOAK_KEEP:-}" ] && rm -rf "$work"
}
trap cleanup EXIT

# The receiver: answers 200 to every POST and counts them (loopback only).
cat > "$work/receiver.py" <<'PY'
import http.server, sys, threading
count = 0
lock = threading.Lock()
class H(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        global count
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        with lock:
            count += 1
            n = count
        with open(sys.argv[2], "w") as f:
            f.write(str(n))
        self.send_response(200); self.send_header("Content-Length", "0"); self.end_headers()
    def log_message(self, *a): pass
s = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
with open(sys.argv[1], "w") as f:
    f.write(str(s.server_address[1]))
s.serve_forever()
PY
python3 "$work/receiver.py" "$work/port" "$work/received" &
rpid=$!
for _ in $(seq 1 50); do [ -s "$work/port" ] && break; sleep 0.1; done
port=$(cat "$work/port")

retention_line=""
if [ -n "${SOAK_RETENTION:-}" ]; then retention_line="retention = \"$SOAK_RETENTION\""; fi
{
  cat <<CONF
timezone = "America/Chicago"
state_dir = "$work/state"
catch_up = "0"
$retention_line

[samsara]
sample_data = "$PWD/sample/api"
requests_per_second = 100

[webhooks.receiver]
kind = "json"
url = "http://127.0.0.1:$port/hook"
CONF
  for i in $(seq 1 "$jobs"); do
    cat <<JOB

[[jobs]]
name = "job-$i"
schedule = "*/10 * * * * *"
window = { last = "365d" }
when_empty = "send"
deliver = [{ webhook = "receiver" }]
JOB
  done
} > "$work/config.toml"

"$bin" --config "$work/config.toml" --log-format json run 2> "$work/log" &
pid=$!
echo "daemon_soak: $jobs jobs every 10 s for ${seconds} s ($bin), pid $pid"
: > "$work/rss.csv"
start=$(date +%s)
while :; do
  sleep 10
  now=$(( $(date +%s) - start ))
  rss=$(awk '/^VmRSS/ {print $2}' "/proc/$pid/status")
  echo "$now,$rss" >> "$work/rss.csv"
  [ "$now" -ge "$seconds" ] && break
done
hwm=$(awk '/^VmHWM/ {print $2}' "/proc/$pid/status")
threads=$(awk '/^Threads/ {print $2}' "/proc/$pid/status")
kill -TERM "$pid"
code=0; wait "$pid" || code=$?
pid=
runs=$(grep -c '"message":"run finished"' "$work/log" || true)
failed=$(grep '"message":"run finished"' "$work/log" | grep -c '"outcome":"failed"' || true)
interrupted=$(grep '"message":"run finished"' "$work/log" | grep -c '"outcome":"interrupted"' || true)
skipped=$(grep -c '"message":"skipped' "$work/log" || true)
at() { awk -F, -v t="$1" '$1 >= t {print $2; exit}' "$work/rss.csv"; }
echo "  RSS at  1 min   $(( $(at 60) / 1024 )) MiB ($(at 60) KiB)"
if [ "$seconds" -ge 300 ]; then echo "  RSS at  5 min   $(( $(at 300) / 1024 )) MiB ($(at 300) KiB)"; fi
echo "  RSS at the end  $(( $(at "$seconds") / 1024 )) MiB ($(at "$seconds") KiB, ${seconds} s)"
echo "  peak RSS        $(( hwm / 1024 )) MiB, threads $threads"
echo "  runs $runs (failed $failed; stopped by the closing SIGTERM, their delivery pending: $interrupted), fires skipped (job still running) $skipped"
echo "  deliveries received $(cat "$work/received" 2>/dev/null || echo 0)"
echo "  state db        $(du -k "$work/state/trainwatch.db" | cut -f1) KiB"
echo "  exit code after SIGTERM: $code"
echo "  samples (s,KiB): $(tr '\n' ' ' < "$work/rss.csv")"
