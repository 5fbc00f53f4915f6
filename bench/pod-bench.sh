#!/bin/bash
# RunPodSandbox + StopPodSandbox + RemovePodSandbox latency over N pods (default
# 50): cricd and, in the same run, Debian's containerd, both driven by cricctl
# on their own socket with the same CNI network (bridge/host-local/portmap).
# For cricd it also reports the time spent inside child processes (cric-pinns,
# CNI plugins) per call, from cricd's debug log, and cricd's own overhead
# (server-side call time minus child time).  Prints figures only.
#
#   bench/pod-bench.sh [N]      (root; CRIC_BUILDDIR = build dir, default .;
#                                SKIP_CONTAINERD=1 runs cricd only)
set -euo pipefail
N=${1:-50}
HERE=$(cd "$(dirname "$0")" && pwd)
BUILD=$(cd "${CRIC_BUILDDIR:-.}" && pwd)
[ "$(id -u)" = 0 ] || { echo "pod-bench: needs root" >&2; exit 1; }
[ -x "$BUILD/cricd" ] && [ -x "$BUILD/cricctl" ] || { echo "pod-bench: no cricd/cricctl in $BUILD (set CRIC_BUILDDIR)" >&2; exit 1; }
exec /usr/bin/python3 "$HERE/pod_bench.py" "$BUILD" "$N"
