#!/usr/bin/env bash
# Slow readers of a large response (slowhttptest -X), asmsrv and nginx side by
# side in one run: how long a fresh request takes meanwhile, and how much
# kernel memory the stalled connections pin.
#
# Both servers serve the same 1 MiB file at /big and a short body at /, with
# 1 worker each (nginx: `sendfile off`, its default, access_log off). For each
# server in turn: slowhttptest opens SLOW_CONNECTIONS (1000) connections at
# 1000/s that ask for /big three times (pipelined) and read 32 bytes every 5 s
# from a 512-1024 byte window; meanwhile curl sends SLOW_PROBES (300) fresh
# requests for /, one every 50 ms, each on a new connection. Reports the
# median, p99 and slowest of those requests (time to the whole answer), and
# the peak of the kernel's TCP memory (/proc/net/sockstat) during the attack.
# Writes bench/slowread.md.
set -euo pipefail
cd "$(dirname "$0")/.."

conns=${SLOW_CONNECTIONS:-1000}
probes=${SLOW_PROBES:-300}

scripts/build >/dev/null
missing=()
command -v slowhttptest >/dev/null || missing+=(slowhttptest)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
command -v curl >/dev/null || missing+=(curl)
if [ ${#missing[@]} -gt 0 ]; then
  sudo=(); [ "$(id -u)" -eq 0 ] || sudo=(sudo)
  "${sudo[@]}" apt-get update
  "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
fi
nginx_bin=$(command -v nginx || echo /usr/sbin/nginx)
[ "$(ulimit -n)" -ge $((conns + 100)) ] || ulimit -n $((conns + 100)) ||
  { echo "slowread: needs $((conns + 100)) open files" >&2; exit 1; }

. bench/lib.sh  # $work, pids, cleanup at exit, free_port

port_a=$(free_port)
port_b=$(free_port)
while [ "$port_b" = "$port_a" ]; do port_b=$(free_port); done

head -c 1048576 /dev/urandom > "$work/big.bin"
chmod 755 "$work" && chmod 644 "$work/big.bin"  # nginx's worker may run as nobody
cat > "$work/slow.json" <<EOF
{ "name": "slow", "listen": { "address": "127.0.0.1", "port": $port_a },
  "routes": [ { "path": "/", "body": "hi\n" },
              { "path": "/big", "file": "big.bin", "content_type": "application/octet-stream" } ] }
EOF
build/asmsrv build "$work/slow.json" -o "$work/slow"
cat > "$work/nginx.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/nginx-error.log;
events { worker_connections $((conns * 2 + 100)); }
http {
  access_log off;
  server {
    listen 127.0.0.1:$port_b;
    location = / { default_type text/plain; return 200 "hi\n"; }
    location = /big { default_type application/octet-stream; alias $work/big.bin; }
  }
}
EOF

tcp_mem_pages() { awk '/^TCP:/ { for (i = 1; i < NF; i++) if ($i == "mem") print $(i + 1) }' /proc/net/sockstat; }

run_one() {  # name, port: prints "median p99 max peak_mib"
  local name=$1 port=$2 times="$work/$1.times" peak=0 m
  for _ in $(seq 100); do curl -fs "http://127.0.0.1:$port/" >/dev/null && break; sleep 0.05; done
  cmp -s <(curl -fs "http://127.0.0.1:$port/big") "$work/big.bin" ||
    { echo "slowread: $name does not serve /big" >&2; exit 1; }
  timeout $((probes / 20 + 30)) slowhttptest -X -c "$conns" -r 1000 -w 512 -y 1024 -n 5 -z 32 -k 3 \
    -l $((probes / 20 + 10)) -p 3 -u "http://127.0.0.1:$port/big" > "$work/$name.slow" 2>&1 &
  local attack=$!
  : > "$times"
  for _ in $(seq "$probes"); do
    curl -s -o /dev/null -w "%{time_total}\n" --max-time 10 "http://127.0.0.1:$port/" >> "$times" || echo 10 >> "$times"
    m=$(tcp_mem_pages); [ "$m" -gt "$peak" ] && peak=$m
    sleep 0.05
  done
  kill "$attack" 2>/dev/null || true
  wait "$attack" 2>/dev/null || true
  sort -n "$times" | awk -v peak="$peak" '{ t[NR] = $1 * 1000 } END {
    i = int(NR * 0.99); if (i < 1) i = 1
    printf "%.1f %.1f %.1f %d\n", t[int((NR + 1) / 2)], t[i], t[NR], peak * 4 / 1024 }'
  sleep 5  # the attack's connections go away
}

"$work/slow" > /dev/null &
pids+=($!)
read -r a_med a_p99 a_max a_mem < <(run_one asmsrv "$port_a")
"$nginx_bin" -c "$work/nginx.conf" -p "$work" &
pids+=($!)
read -r b_med b_p99 b_max b_mem < <(run_one nginx "$port_b")

{
  echo "# Slow readers (bench/slowread.sh, $(date -u +%Y-%m-%d))"
  echo
  echo "slowhttptest -X: $conns connections reading a 1 MiB response 32 bytes every 5 s;"
  echo "$probes fresh requests for a short body meanwhile, one every 50 ms. Times in ms."
  echo
  echo "| server | median | p99 | slowest | peak TCP memory (MiB) |"
  echo "|---|---:|---:|---:|---:|"
  echo "| asmsrv | $a_med | $a_p99 | $a_max | $a_mem |"
  echo "| nginx | $b_med | $b_p99 | $b_max | $b_mem |"
} | tee bench/slowread.md
