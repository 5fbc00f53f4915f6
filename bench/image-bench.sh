#!/bin/bash
# Pull + unpack benchmark of a ~100 MB multi-layer image from a local
# docker-registry: cricd vs containerd (installed with apt-get if missing,
# skipped if that fails).  Prints figures only.
# Usage: bench/image-bench.sh [BUILDDIR] [MB]   (as root)
set -euo pipefail
src=$(cd "$(dirname "$0")/.." && pwd)
build=${1:-$src}
exec /usr/bin/python3 "$src/bench/image-bench.py" "$(cd "$build" && pwd)" "$src" "${2:-100}"
