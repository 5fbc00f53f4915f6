#!/bin/bash
# cric-shim vs Debian's conmon: memory per idle shim and log throughput.
# usage: bench/shim-bench.sh [BUILDDIR]   (root; BENCH_IDLE, BENCH_MB tune it)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
export CRIC_BUILDDIR=$(cd "${1:-${CRIC_BUILDDIR:-.}}" && pwd)
if ! command -v conmon >/dev/null; then
    apt-get install -y conmon >/dev/null
fi
make -C "$CRIC_BUILDDIR" cric-shim t/shim_driver >/dev/null
exec /usr/bin/python3 "$here/shim-bench.py"
