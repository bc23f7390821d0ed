#!/usr/bin/env bash
# asmsrv against nginx on the same work, side by side in one run.
#
# Builds specs/hello.json (epoll, 1 worker) and runs nginx with 1 worker and
# `return 200` with the same body and content type, access_log off. Both
# servers are pinned to CPU 0, wrk to CPU 1. Rounds alternate A B A B so that
# drift on the machine hits both. Two modes: keep-alive, and a new connection
# per request (Connection: close).
#
# Reports, per server and mode (median over rounds): requests/s, server CPU
# time per request (from /proc/PID/task/*/schedstat), p99 latency, peak RSS,
# binary size, and the ratios asmsrv/nginx. Writes bench/results.md and the
# table between the bench markers in README.md.
#
# Knobs: BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_CONNECTIONS (50).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNECTIONS:-50}

# --- what it needs -------------------------------------------------------------
scripts/build >/dev/null
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v taskset >/dev/null || missing+=(util-linux)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 CPUs (server on one, wrk on the other)" >&2; exit 1; }

work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT

free_port() {  # a port nobody listens on
  local p
  while :; do
    p=$((20000 + RANDOM % 20000))
    ss -Htln "sport = :$p" 2>/dev/null | grep -q . || { echo "$p"; return; }
  done
}

# --- the two servers -----------------------------------------------------------
port_a=$(free_port)
port_b=$(free_port)
build/asmsrv build specs/hello.json --port "$port_a" -o "$work/hello"
body=$(jq -r .response.body specs/hello.json 2>/dev/null || printf 'Hello from asmsrv!\n')
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000;
  keepalive_timeout 5s;
  server {
    listen 127.0.0.1:$port_b;
    location / {
      default_type "text/plain; charset=utf-8";
      return 200 "Hello from asmsrv!\n";
    }
  }
}
EOF

taskset -c 0 "$work/hello" > /dev/null &
pids+=($!)
pid_a=$!
taskset -c 0 "$nginx_bin" -c "$work/nginx.conf" -p "$work" &
pids+=($!)
pid_b=$!
for port in "$port_a" "$port_b"; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/" >/dev/null && break
    sleep 0.05
  done
done
[ "$(curl -fs "http://127.0.0.1:$port_a/")" = "$(curl -fs "http://127.0.0.1:$port_b/")" ] ||
  { echo "bench: the two servers answer differently" >&2; exit 1; }

# All processes of a server: the one we started and its children (nginx's worker).
procs() { echo "$1"; cat "/proc/$1/task/"*/children 2>/dev/null | tr ' ' '\n' | grep . || true; }
cpu_ns() {  # time on CPU so far, all threads of all its processes
  local total=0 p t
  for p in $(procs "$1"); do
    for t in /proc/"$p"/task/*/schedstat; do
      [ -r "$t" ] && total=$((total + $(cut -d' ' -f1 "$t")))
    done
  done
  echo "$total"
}
rss_kb() {  # peak resident set, all its processes
  local total=0 p
  for p in $(procs "$1"); do
    total=$((total + $(awk '/^VmHWM/ {print $2}' "/proc/$p/status" 2>/dev/null || echo 0)))
  done
  echo "$total"
}
to_ms() {  # wrk's "1.23ms", "850.00us", "1.02s" in milliseconds
  awk -v v="$1" 'BEGIN {
    n = v + 0
    if (v ~ /us$/) n /= 1000; else if (v ~ /ms$/) n += 0; else if (v ~ /s$/) n *= 1000
    printf "%.3f", n }'
}

# One wrk run: prints "rps cpu_us_per_request p99_ms".
run_wrk() {
  local port=$1 pid=$2 mode=$3 out before after
  local extra=()
  [ "$mode" = close ] && extra=(-H "Connection: close")
  before=$(cpu_ns "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${seconds}s" --latency "${extra[@]}" "http://127.0.0.1:$port/")
  after=$(cpu_ns "$pid")
  local requests rps p99 errors
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
  [ -z "$errors" ] || echo "bench: port $port $mode: $errors" >&2
  awk -v r="$rps" -v c=$((after - before)) -v n="$requests" -v p="$p99" \
    'BEGIN { printf "%.0f %.2f %s\n", r, (n > 0 ? c / n / 1000 : 0), p }'
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

declare -A samples
for mode in keepalive close; do
  for r in $(seq "$rounds"); do
    for server in asmsrv nginx; do
      if [ "$server" = asmsrv ]; then port=$port_a pid=$pid_a; else port=$port_b pid=$pid_b; fi
      read -r rps cpu p99 < <(run_wrk "$port" "$pid" "$mode")
      echo "round $r $mode $server: $rps req/s, $cpu us CPU/request, p99 $p99 ms" >&2
      samples[$server.$mode.rps]+="$rps "
      samples[$server.$mode.cpu]+="$cpu "
      samples[$server.$mode.p99]+="$p99 "
    done
  done
done

med() { tr ' ' '\n' <<<"${samples[$1]}" | grep . | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }
size_a=$(stat -c %s "$work/hello")
size_b=$(stat -c %s "$nginx_bin")
rss_a=$(rss_kb "$pid_a")
rss_b=$(rss_kb "$pid_b")

table() {
  echo "| mode | metric | asmsrv | nginx | asmsrv/nginx |"
  echo "| --- | --- | ---: | ---: | ---: |"
  for mode in keepalive close; do
    local label=$([ "$mode" = keepalive ] && echo "keep-alive" || echo "Connection: close")
    local a b
    a=$(med "asmsrv.$mode.rps"); b=$(med "nginx.$mode.rps")
    echo "| $label | requests/s | $a | $b | $(ratio "$a" "$b") |"
    a=$(med "asmsrv.$mode.cpu"); b=$(med "nginx.$mode.cpu")
    echo "| $label | server CPU µs/request | $a | $b | $(ratio "$a" "$b") |"
    a=$(med "asmsrv.$mode.p99"); b=$(med "nginx.$mode.p99")
    echo "| $label | p99 latency ms | $a | $b | $(ratio "$a" "$b") |"
  done
  echo "| all | peak RSS KiB | $rss_a | $rss_b | $(ratio "$rss_a" "$rss_b") |"
  echo "| all | binary bytes | $size_a | $size_b | $(ratio "$size_a" "$size_b") |"
}

machine="$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(nproc) CPUs, Linux $(uname -r)"
{
  echo "# asmsrv vs nginx"
  echo
  echo "Run by \`bench/run.sh\` on $(date -u +%Y-%m-%d): $machine."
  echo "$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)."
  echo "specs/hello.json (epoll, 1 worker) vs nginx (1 worker, \`return 200\`, access_log off),"
  echo "each pinned to CPU 0, wrk pinned to CPU 1 with $conns connections, $seconds s per run,"
  echo "median of $rounds alternating rounds (A B A B). CPU time is the server's own (schedstat),"
  echo "nginx's master and worker together; RSS likewise. nginx's binary size excludes its"
  echo "shared libraries; asmsrv's binary is static and has none."
  echo
  table
} > bench/results.md
cat bench/results.md

# The README shows the latest table.
if grep -q '<!-- bench:start -->' README.md; then
  awk -v f=bench/results.md '
    /<!-- bench:start -->/ { print; while ((getline l < f) > 0) if (l !~ /^# /) print l; skip = 1; next }
    /<!-- bench:end -->/ { skip = 0 }
    !skip' README.md > "$work/README.md" && cp "$work/README.md" README.md
fi
