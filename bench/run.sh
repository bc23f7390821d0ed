#!/usr/bin/env bash
# asmsrv against nginx on the same work, side by side in one run.
#
# Builds specs/hello.json (epoll, 1 worker) and runs nginx with 1 worker and
# `return 200` with the same body and content type, access_log off. A second
# nginx, identical but for `listen ... deferred`, is an extra anchor: deferred
# sets TCP_DEFER_ACCEPT, so accept() returns only once the request has arrived.
# All servers are pinned to CPU 0, wrk to CPU 1. Rounds alternate A B C A B C
# so that drift on the machine hits all of them. Two modes: keep-alive, and a
# new connection per request (Connection: close).
#
# Reports, per server and mode (median over rounds): requests/s, server CPU
# time per request (from /proc/PID/task/*/schedstat), p99 latency, peak RSS,
# binary size, and the ratios asmsrv/nginx and asmsrv/nginx deferred. Writes
# bench/results.md and the table between the bench markers in README.md.
#
# Knobs: BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_CONNECTIONS (50).
# BENCH_STRACE=1 also counts system calls per request of asmsrv and nginx in
# Connection: close mode (strace -c during a 2 s wrk run, after the rounds) and
# appends them to bench/results.md (not to README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNECTIONS:-50}
trace=${BENCH_STRACE:-0}

# --- what it needs -------------------------------------------------------------
scripts/build >/dev/null
missing=()
command -v wrk >/dev/null || missing+=(wrk)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v taskset >/dev/null || missing+=(util-linux)
if [ "$trace" = 1 ]; then command -v strace >/dev/null || missing+=(strace); fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ "$(nproc)" -ge 2 ] || { echo "bench: needs 2 CPUs (server on one, wrk on the other)" >&2; exit 1; }

. bench/lib.sh  # $work, pids, cleanup at exit, free_port

# --- the three servers ---------------------------------------------------------
port_a=$(free_port)
port_b=$(free_port)
port_c=$(free_port)
while [ "$port_b" = "$port_a" ]; do port_b=$(free_port); done
while [ "$port_c" = "$port_a" ] || [ "$port_c" = "$port_b" ]; do port_c=$(free_port); done
build/asmsrv build specs/hello.json --port "$port_a" -o "$work/hello"

nginx_conf() {  # name, listen directive: writes $work/<name>.conf
  cat > "$work/$1.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/$1.pid;
error_log $work/$1-error.log;
events { worker_connections 4096; }
http {
  access_log off;
  keepalive_requests 1000;
  keepalive_timeout 5s;
  server {
    listen $2;
    location / {
      default_type "text/plain; charset=utf-8";
      return 200 "Hello from asmsrv!\n";
    }
  }
}
EOF
}
nginx_conf nginx "127.0.0.1:$port_b"
nginx_conf nginx-deferred "127.0.0.1:$port_c deferred"

taskset -c 0 "$work/hello" > /dev/null &
pids+=($!)
pid_a=$!
taskset -c 0 "$nginx_bin" -c "$work/nginx.conf" -p "$work" &
pids+=($!)
pid_b=$!
taskset -c 0 "$nginx_bin" -c "$work/nginx-deferred.conf" -p "$work" &
pids+=($!)
pid_c=$!
for port in "$port_a" "$port_b" "$port_c"; do
  for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/" >/dev/null && break
    sleep 0.05
  done
done
answer_a=$(curl -fs "http://127.0.0.1:$port_a/") || { echo "bench: asmsrv does not answer" >&2; exit 1; }
for port in "$port_b" "$port_c"; do
  [ "$(curl -fs "http://127.0.0.1:$port/")" = "$answer_a" ] ||
    { echo "bench: the servers answer differently (port $port vs asmsrv)" >&2; exit 1; }
done

# Server name -> port, pid. "deferred" is nginx with `listen ... deferred`.
servers=(asmsrv nginx deferred)
declare -A port_of=([asmsrv]=$port_a [nginx]=$port_b [deferred]=$port_c)
declare -A pid_of=([asmsrv]=$pid_a [nginx]=$pid_b [deferred]=$pid_c)

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
    for server in "${servers[@]}"; do
      read -r rps cpu p99 < <(run_wrk "${port_of[$server]}" "${pid_of[$server]}" "$mode")
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
size_c=$size_b  # the same nginx binary
rss_a=$(rss_kb "$pid_a")
rss_b=$(rss_kb "$pid_b")
rss_c=$(rss_kb "$pid_c")

row() {  # label, metric, asmsrv, nginx, nginx deferred
  echo "| $1 | $2 | $3 | $4 | $5 | $(ratio "$3" "$4") | $(ratio "$3" "$5") |"
}
table() {
  echo "| mode | metric | asmsrv | nginx | nginx deferred | asmsrv/nginx | asmsrv/nginx deferred |"
  echo "| --- | --- | ---: | ---: | ---: | ---: | ---: |"
  local mode label
  for mode in keepalive close; do
    label="Connection: close"
    [ "$mode" = keepalive ] && label="keep-alive"
    row "$label" "requests/s" "$(med "asmsrv.$mode.rps")" "$(med "nginx.$mode.rps")" "$(med "deferred.$mode.rps")"
    row "$label" "server CPU µs/request" "$(med "asmsrv.$mode.cpu")" "$(med "nginx.$mode.cpu")" "$(med "deferred.$mode.cpu")"
    row "$label" "p99 latency ms" "$(med "asmsrv.$mode.p99")" "$(med "nginx.$mode.p99")" "$(med "deferred.$mode.p99")"
  done
  row all "peak RSS KiB" "$rss_a" "$rss_b" "$rss_c"
  row all "binary bytes" "$size_a" "$size_b" "$size_c"
}

# --- system calls per request (BENCH_STRACE=1) ---------------------------------
# strace -c attached to every process and thread of the server during a short
# wrk run in Connection: close mode; each count divided by wrk's request count.
# strace slows the server down; only the counts per request matter.
strace_seconds=2
syscalls() {  # name: prints a markdown section for that server, or a note
  local name=$1 port=${port_of[$1]} pid=${pid_of[$1]}
  local sum=$work/strace-$name.txt log=$work/strace-$name.log args=() p spid out requests
  for p in $(procs "$pid"); do args+=(-p "$p"); done
  strace -c -f -o "$sum" "${args[@]}" 2> "$log" &
  spid=$!
  pids+=("$spid")
  for _ in $(seq 100); do  # until strace has attached to all of them (or gave up)
    [ "$(grep -c 'attached' "$log" || true)" -ge "${#args[@]}" ] && break
    kill -0 "$spid" 2>/dev/null || break
    sleep 0.05
  done
  if ! kill -0 "$spid" 2>/dev/null; then
    wait "$spid" || true
    echo "bench: strace could not attach to $name: $(head -1 "$log")" >&2
    echo "$name: strace could not attach."
    return
  fi
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${strace_seconds}s" -H "Connection: close" "http://127.0.0.1:$port/" || true)
  kill -TERM "$spid" 2>/dev/null || true  # detaches and writes the summary
  wait "$spid" || true
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  if [ -z "$requests" ] || [ "$requests" -eq 0 ] || [ ! -s "$sum" ]; then
    echo "bench: strace run of $name gave no requests or no summary" >&2
    echo "$name: no result."
    return
  fi
  echo "$name, $requests requests:"
  echo
  echo "| syscall | calls/request |"
  echo "| --- | ---: |"
  # strace -c rows: % time, seconds, usecs/call, calls, [errors], syscall.
  awk -v n="$requests" '
    /^-+ / { sep++; next }
    sep == 1 && NF >= 5 && $4 ~ /^[0-9]+$/ { printf "%d %s %.2f\n", $4, $NF, $4 / n }' "$sum" |
    sort -k1,1nr -k2,2 | awk '{ printf "| %s | %s |\n", $2, $3 }'
  echo
}

strace_md=$work/strace.md
: > "$strace_md"
if [ "$trace" = 1 ]; then
  {
    echo "## System calls per request (Connection: close)"
    echo
    echo "\`strace -c -f\` attached to each server's processes and threads during one"
    echo "$strace_seconds s wrk run with $conns connections and \`Connection: close\`; each system"
    echo "call's count divided by the number of requests wrk reported. strace slows the"
    echo "servers down, so only the counts mean anything, not the rates."
    echo
    syscalls asmsrv
    syscalls nginx
  } > "$strace_md"
fi

machine="$(lscpu | awk -F: '/Model name/ {gsub(/^ +/, "", $2); print $2; exit}'), $(nproc) CPUs, Linux $(uname -r)"
{
  echo "# asmsrv vs nginx"
  echo
  echo "Run by \`bench/run.sh\` on $(date -u +%Y-%m-%d): $machine."
  echo "$("$nginx_bin" -v 2>&1 | sed 's/^nginx version: //'), $(wrk --version 2>&1 | head -1 | cut -d' ' -f1-2)."
  echo "specs/hello.json (epoll, 1 worker) vs nginx (1 worker, \`return 200\`, access_log off),"
  echo "and nginx deferred, the same nginx with \`listen ... deferred\`: that sets TCP_DEFER_ACCEPT,"
  echo "so accept() returns only once the request has arrived. Each pinned to CPU 0, wrk pinned"
  echo "to CPU 1 with $conns connections, $seconds s per run, median of $rounds alternating rounds"
  echo "(A B C A B C). CPU time is the server's own (schedstat), nginx's master and worker"
  echo "together; RSS likewise. nginx's binary size excludes its shared libraries; asmsrv's"
  echo "binary is static and has none."
  echo
  table
} > "$work/results.md"
{
  cat "$work/results.md"
  if [ -s "$strace_md" ]; then echo; cat "$strace_md"; fi
} > bench/results.md
cat bench/results.md

# The README shows the latest table.
if grep -q '<!-- bench:start -->' README.md; then
  awk -v f="$work/results.md" '
    /<!-- bench:start -->/ { print; while ((getline l < f) > 0) if (l !~ /^# /) print l; skip = 1; next }
    /<!-- bench:end -->/ { skip = 0 }
    !skip' README.md > "$work/README.md" && cp "$work/README.md" README.md
fi
