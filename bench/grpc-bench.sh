#!/bin/bash
# gRPC transport benchmark: unary Version latency (p50/p99) with 1 and 64
# concurrent clients, and the server's idle RSS.  Prints figures, asserts
# nothing.  Goals (issue 2): p50 < 100 us with one client, idle RSS < 4 MiB.
#
#   bench/grpc-bench.sh [--endpoint unix:///path] [--builddir DIR] [--calls N]
# Without --endpoint it starts a cricd from the build dir in a temp dir (when
# cricd takes --listen/--root/--state), else t/grpc_testsrv.
set -euo pipefail
builddir=${CRIC_BUILDDIR:-$(pwd)}
endpoint=
calls=5000
while [ $# -gt 0 ]; do
    case $1 in
    --endpoint) endpoint=$2; shift 2 ;;
    --builddir) builddir=$2; shift 2 ;;
    --calls) calls=$2; shift 2 ;;
    *) echo "usage: $0 [--endpoint unix:///path] [--builddir DIR] [--calls N]" >&2; exit 2 ;;
    esac
done
bench=$builddir/bench/grpc-bench
[ -x "$bench" ] || { echo "$bench not built (make -C $builddir bench/grpc-bench)" >&2; exit 1; }

pid=
tmp=
cleanup() {
    if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
    [ -z "$tmp" ] || rm -rf "$tmp"
}
trap cleanup EXIT

if [ -z "$endpoint" ]; then
    tmp=$(mktemp -d /tmp/cric-bench-XXXXXX)
    sock=$tmp/cricd.sock
    if [ -x "$builddir/cricd" ] && "$builddir/cricd" --help 2>&1 | grep -q -- --listen; then
        server="cricd"
        "$builddir/cricd" --listen "$sock" --root "$tmp/root" --state "$tmp/state" --log-level warn \
            >"$tmp/server.log" 2>&1 &
    else
        [ -x "$builddir/t/grpc_testsrv" ] || make -C "$builddir" t/grpc_testsrv >/dev/null
        server="t/grpc_testsrv (cricd in $builddir does not serve yet)"
        "$builddir/t/grpc_testsrv" "$sock" >"$tmp/server.log" 2>&1 &
    fi
    pid=$!
    for _ in $(seq 500); do [ -S "$sock" ] && break; sleep 0.01; done
    [ -S "$sock" ] || { echo "server did not start:" >&2; cat "$tmp/server.log" >&2; exit 1; }
    endpoint=unix://$sock
    echo "server: $server, pid $pid"
else
    echo "server: $endpoint"
fi

rss() { [ -n "$pid" ] && awk '/^VmRSS/ {print $2 " kB"}' "/proc/$pid/status" || echo "n/a (external server)"; }
sleep 0.2
echo "idle RSS at start: $(rss)"
"$bench" --endpoint "$endpoint" --clients 1 --calls "$calls"
"$bench" --endpoint "$endpoint" --clients 64 --calls $((calls / 10 > 0 ? calls / 10 : 1))
sleep 0.5
echo "idle RSS after the runs: $(rss)"
