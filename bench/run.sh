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
# A second case, a static site: specs/static.json (epoll, 1 worker, its access
# log turned off) against nginx serving the same directory (specs/static-site)
# with `etag on; gzip_static on;` and .gz files made with `gzip -k -9` in a
# copy, for two requests in keep-alive: (a) the 10 KB lorem.html with
# Accept-Encoding: gzip, (b) its revalidation, If-None-Match with the ETag
# each server gave the gzip response first (a 304). Reported as a second
# table with the same metrics and the ratio asmsrv/nginx.
#
# A third case, files from disk: a static site with "root" serving a
# directory that holds a 1 MiB file of random bytes, against nginx with
# `sendfile on; etag on;` serving the same directory, keep-alive GETs of it.
#
# Knobs: BENCH_SECONDS (5), BENCH_ROUNDS (3), BENCH_CONNECTIONS (50),
# BENCH_CASES ("hello static files": which cases run; README.md's table is
# rewritten only when all did).
# BENCH_STRACE=1 also counts system calls per request of asmsrv and nginx in
# Connection: close mode (strace -c during a 2 s wrk run, after the rounds) and
# appends them to bench/results.md (not to README.md).
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${BENCH_SECONDS:-5}
rounds=${BENCH_ROUNDS:-3}
conns=${BENCH_CONNECTIONS:-50}
trace=${BENCH_STRACE:-0}
cases=${BENCH_CASES:-hello static files}
has_case() { [[ " $cases " == *" $1 "* ]]; }

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

# Server name -> port, pid. "deferred" is nginx with `listen ... deferred`.
declare -A port_of pid_of
taken=" "
next_port() {  # var: a free port no other server of this run has
  local p
  p=$(free_port)
  while [[ "$taken" == *" $p "* ]]; do p=$(free_port); done
  taken+="$p "
  printf -v "$1" '%s' "$p"
}
start() {  # name, port, command...: runs it pinned to CPU 0
  local name=$1 port=$2
  shift 2
  taskset -c 0 "$@" > /dev/null &
  pids+=($!)
  port_of[$name]=$port
  pid_of[$name]=$!
}
wait_up() {  # port, path: until it answers (5 s at most)
  for _ in $(seq 100); do
    curl -fs -o /dev/null "http://127.0.0.1:$1$2" && return
    sleep 0.05
  done
}

# --- the hello servers ---------------------------------------------------------
if has_case hello; then
  next_port port_a
  next_port port_b
  next_port port_c
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

  start asmsrv "$port_a" "$work/hello"
  start nginx "$port_b" "$nginx_bin" -c "$work/nginx.conf" -p "$work"
  start deferred "$port_c" "$nginx_bin" -c "$work/nginx-deferred.conf" -p "$work"
  for port in "$port_a" "$port_b" "$port_c"; do wait_up "$port" /; done
  answer_a=$(curl -fs "http://127.0.0.1:$port_a/") || { echo "bench: asmsrv does not answer" >&2; exit 1; }
  for port in "$port_b" "$port_c"; do
    [ "$(curl -fs "http://127.0.0.1:$port/")" = "$answer_a" ] ||
      { echo "bench: the servers answer differently (port $port vs asmsrv)" >&2; exit 1; }
  done
fi

# --- the static-site servers ---------------------------------------------------
static_page=/lorem.html
declare -A etag_of
if has_case static; then
  next_port port_s
  next_port port_t
  # asmsrv: specs/static.json beside a copy of its site, its access log off
  # (nginx logs nothing either).
  mkdir "$work/static"
  cp -r specs/static-site "$work/static/"
  sed 's/"requests": true/"requests": false/' specs/static.json > "$work/static/static.json"
  grep -q '"requests": false' "$work/static/static.json" ||
    { echo "bench: cannot turn the log of specs/static.json off" >&2; exit 1; }
  build/asmsrv build "$work/static/static.json" --port "$port_s" -o "$work/static-server"
  # nginx: the same files, and a .gz of each text file for gzip_static. Its
  # worker (www-data, when the bench runs as root) must reach them.
  chmod 755 "$work"
  cp -r specs/static-site "$work/nginx-site"
  find "$work/nginx-site" -type f \( -name '*.html' -o -name '*.css' -o -name '*.mjs' -o -name '*.json' \
    -o -name '*.svg' -o -name '*.txt' -o -name '*.webmanifest' \) -exec gzip -k -9 {} +
  cat > "$work/nginx-static.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx-static.pid;
error_log $work/nginx-static-error.log;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  types { text/javascript mjs; application/manifest+json webmanifest; }
  charset utf-8;
  access_log off;
  keepalive_requests 1000;
  keepalive_timeout 5s;
  etag on;
  gzip_static on;
  gzip_vary on;
  server {
    listen 127.0.0.1:$port_t;
    root $work/nginx-site;
    location ~ \.html\$ { add_header Cache-Control no-cache; }
    location /assets/ { add_header Cache-Control "public, max-age=31536000, immutable"; }
  }
}
EOF
  start asmsrv-static "$port_s" "$work/static-server"
  start nginx-static "$port_t" "$nginx_bin" -c "$work/nginx-static.conf" -p "$work"
  # Each must send the page gzip-encoded, and answer its own ETag with a 304.
  for server in asmsrv-static nginx-static; do
    url="http://127.0.0.1:${port_of[$server]}$static_page"
    wait_up "${port_of[$server]}" "$static_page"
    curl -fs -H 'Accept-Encoding: gzip' -D "$work/head" -o "$work/body.gz" "$url" ||
      { echo "bench: $server does not answer $static_page" >&2; exit 1; }
    gzip -dc < "$work/body.gz" | cmp -s - "specs/static-site$static_page" ||
      { echo "bench: $server's gzip answer is not $static_page" >&2; exit 1; }
    etag_of[$server]=$(awk 'tolower($1) == "etag:" { sub(/\r$/, "", $2); print $2 }' "$work/head")
    code=$(curl -s -o /dev/null -w '%{http_code}' -H 'Accept-Encoding: gzip' \
      -H "If-None-Match: ${etag_of[$server]}" "$url")
    [ "$code" = 304 ] ||
      { echo "bench: $server answers If-None-Match: ${etag_of[$server]} with $code, not 304" >&2; exit 1; }
  done
fi

# --- the servers of files from disk ----------------------------------------------
file_page=/1mib.bin
if has_case files; then
  next_port port_f
  next_port port_g
  chmod 755 "$work"
  mkdir "$work/files"
  head -c 1048576 /dev/urandom > "$work/files$file_page"
  chmod -R a+rX "$work/files"
  cat > "$work/files.json" <<EOF
{ "name": "files", "listen": { "address": "127.0.0.1", "port": $port_f },
  "static": [ { "path": "/", "root": "$work/files" } ] }
EOF
  build/asmsrv build "$work/files.json" -o "$work/files-server"
  cat > "$work/nginx-files.conf" <<EOF
worker_processes 1;
daemon off;
pid $work/nginx-files.pid;
error_log $work/nginx-files-error.log;
events { worker_connections 4096; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  keepalive_requests 1000;
  keepalive_timeout 5s;
  sendfile on;
  etag on;
  server {
    listen 127.0.0.1:$port_g;
    root $work/files;
  }
}
EOF
  start asmsrv-files "$port_f" "$work/files-server"
  start nginx-files "$port_g" "$nginx_bin" -c "$work/nginx-files.conf" -p "$work"
  for server in asmsrv-files nginx-files; do
    wait_up "${port_of[$server]}" "$file_page"
    curl -fs -o "$work/file.out" "http://127.0.0.1:${port_of[$server]}$file_page" ||
      { echo "bench: $server does not answer $file_page" >&2; exit 1; }
    cmp -s "$work/file.out" "$work/files$file_page" ||
      { echo "bench: $server's answer is not $file_page" >&2; exit 1; }
  done
fi

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

# One wrk run against port and path, with these request fields: prints
# "rps cpu_us_per_request p99_ms".
run_wrk() {  # port, pid, label (for messages), path, field...
  local port=$1 pid=$2 label=$3 path=$4 out before after f
  shift 4
  local extra=()
  for f in "$@"; do extra+=(-H "$f"); done
  before=$(cpu_ns "$pid")
  out=$(taskset -c 1 wrk -t1 -c"$conns" -d"${seconds}s" --latency "${extra[@]}" "http://127.0.0.1:$port$path")
  after=$(cpu_ns "$pid")
  local requests rps p99 errors
  requests=$(awk '/requests in/ {print $1}' <<<"$out")
  rps=$(awk '/^Requests\/sec/ {print $2}' <<<"$out")
  p99=$(to_ms "$(awk '$1 == "99%" {print $2}' <<<"$out")")
  errors=$(awk '/Non-2xx|Socket errors/' <<<"$out")
  [ -z "$errors" ] || echo "bench: port $port $label: $errors" >&2
  awk -v r="$rps" -v c=$((after - before)) -v n="$requests" -v p="$p99" \
    'BEGIN { printf "%.0f %.2f %s\n", r, (n > 0 ? c / n / 1000 : 0), p }'
}

median() { sort -g | awk '{a[NR] = $1} END {print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2)}'; }

declare -A samples
sample() {  # server, kind, path, field...: one wrk run of round $r, recorded
  local server=$1 kind=$2 rps cpu p99
  shift 2
  read -r rps cpu p99 < <(run_wrk "${port_of[$server]}" "${pid_of[$server]}" "$kind" "$@")
  echo "round $r $kind $server: $rps req/s, $cpu us CPU/request, p99 $p99 ms" >&2
  samples[$server.$kind.rps]+="$rps "
  samples[$server.$kind.cpu]+="$cpu "
  samples[$server.$kind.p99]+="$p99 "
}
if has_case hello; then
  for mode in keepalive close; do
    for r in $(seq "$rounds"); do
      for server in asmsrv nginx deferred; do
        if [ "$mode" = close ]; then sample "$server" close / "Connection: close"; else sample "$server" keepalive /; fi
      done
    done
  done
fi
if has_case static; then
  for kind in gzip revalidate; do
    for r in $(seq "$rounds"); do
      for server in asmsrv-static nginx-static; do
        fields=("Accept-Encoding: gzip")
        [ "$kind" = revalidate ] && fields+=("If-None-Match: ${etag_of[$server]}")
        sample "$server" "$kind" "$static_page" "${fields[@]}"
      done
    done
  done
fi

if has_case files; then
  for r in $(seq "$rounds"); do
    for server in asmsrv-files nginx-files; do sample "$server" file "$file_page"; done
  done
fi

med() { tr ' ' '\n' <<<"${samples[$1]}" | grep . | median; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", (b > 0 ? a / b : 0) }'; }

# What the tables call each server and each kind of request, and each
# server's binary.
declare -A title_of=([asmsrv]=asmsrv [nginx]=nginx [deferred]="nginx deferred"
  [asmsrv-static]=asmsrv [nginx-static]=nginx [asmsrv-files]=asmsrv [nginx-files]=nginx)
declare -A label_of=([keepalive]=keep-alive [close]="Connection: close"
  [gzip]="10 KB html, gzip" [revalidate]="304 revalidation" [file]="1 MiB file")
declare -A bin_of=([asmsrv]=$work/hello [nginx]=$nginx_bin [deferred]=$nginx_bin
  [asmsrv-static]=$work/static-server [nginx-static]=$nginx_bin
  [asmsrv-files]=$work/files-server [nginx-files]=$nginx_bin)

row() {  # label, metric, asmsrv's value, the others': each with the ratio asmsrv/it
  local line="| $1 | $2 | $3" ratios="" a=$3 v
  shift 3
  for v in "$@"; do
    line+=" | $v"
    ratios+=" | $(ratio "$a" "$v")"
  done
  echo "$line$ratios |"
}
table() {  # first column's title, kinds of request (words), servers (asmsrv first)
  local what=$1 kinds=$2 kind metric s
  shift 2
  local head="| $what | metric" sep="| --- | ---" vals
  for s in "$@"; do head+=" | ${title_of[$s]}"; sep+=" | ---:"; done
  for s in "${@:2}"; do head+=" | asmsrv/${title_of[$s]}"; sep+=" | ---:"; done
  echo "$head |"
  echo "$sep |"
  for kind in $kinds; do
    for metric in "rps requests/s" "cpu server CPU µs/request" "p99 p99 latency ms"; do
      vals=()
      for s in "$@"; do vals+=("$(med "$s.$kind.${metric%% *}")"); done
      row "${label_of[$kind]}" "${metric#* }" "${vals[@]}"
    done
  done
  vals=()
  for s in "$@"; do vals+=("$(rss_kb "${pid_of[$s]}")"); done
  row all "peak RSS KiB" "${vals[@]}"
  vals=()
  for s in "$@"; do vals+=("$(stat -c %s "${bin_of[$s]}")"); done
  row all "binary bytes" "${vals[@]}"
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
if [ "$trace" = 1 ] && has_case hello; then
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
  if has_case hello; then
    echo "specs/hello.json (epoll, 1 worker) vs nginx (1 worker, \`return 200\`, access_log off),"
    echo "and nginx deferred, the same nginx with \`listen ... deferred\`: that sets TCP_DEFER_ACCEPT,"
    echo "so accept() returns only once the request has arrived."
  fi
  echo "Each server is pinned to CPU 0, wrk to CPU 1 with $conns connections, $seconds s per run,"
  echo "median of $rounds alternating rounds (A B C A B C). CPU time is the server's own"
  echo "(schedstat), nginx's master and worker together; RSS likewise. nginx's binary size"
  echo "excludes its shared libraries; asmsrv's binary is static and has none."
  if has_case hello; then
    echo
    table mode "keepalive close" asmsrv nginx deferred
  fi
  if has_case static; then
    echo
    echo "### A static site"
    echo
    echo "specs/static.json (epoll, 1 worker, its access log off) vs nginx (1 worker, \`etag on;"
    echo "gzip_static on;\` with .gz files made by \`gzip -k -9\`, access_log off), both serving"
    echo "specs/static-site/, in keep-alive: (a) GET $static_page (10 KB) with \`Accept-Encoding: gzip\`;"
    echo "(b) the same with \`If-None-Match:\` the ETag that server gave the gzip response, a 304."
    echo "asmsrv's binary holds the site (1.2 MiB of it one file); nginx reads it from disk."
    echo
    table request "gzip revalidate" asmsrv-static nginx-static
  fi
  if has_case files; then
    echo
    echo "### Files from disk"
    echo
    echo "A static site with \`\"root\"\` (epoll, 1 worker, no log) vs nginx (1 worker, \`sendfile on;"
    echo "etag on;\`, access_log off), both serving one directory from disk, in keep-alive: GET"
    echo "$file_page, 1 MiB of random bytes. Both open, fstat and sendfile the file for each request."
    echo
    table request "file" asmsrv-files nginx-files
  fi
} > "$work/results.md"
{
  cat "$work/results.md"
  if [ -s "$strace_md" ]; then echo; cat "$strace_md"; fi
} > "$work/results-full.md"
cat "$work/results-full.md"

# bench/results.md and README.md's table hold complete runs only.
if ! has_case hello || ! has_case static || ! has_case files; then
  echo "bench: BENCH_CASES=\"$cases\": bench/results.md and README.md left as they were" >&2
  exit 0
fi
cp "$work/results-full.md" bench/results.md
if grep -q '<!-- bench:start -->' README.md; then
  awk -v f="$work/results.md" '
    /<!-- bench:start -->/ { print; while ((getline l < f) > 0) if (l !~ /^# /) print l; skip = 1; next }
    /<!-- bench:end -->/ { skip = 0 }
    !skip' README.md > "$work/README.md" && cp "$work/README.md" README.md
fi
