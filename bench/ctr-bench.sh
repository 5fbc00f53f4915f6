#!/bin/bash
# Container benchmark: N host-network pods with one busybox container each,
# cricd vs Debian's containerd (installed with apt-get if missing, skipped if
# that fails).  Prints figures only.
# Usage: bench/ctr-bench.sh [BUILDDIR] [N]   (as root)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src}
exec /usr/bin/python3 "$src/bench/ctr-bench.py" "$(cd "$build" && pwd)" "$src" "${2:-50}"
