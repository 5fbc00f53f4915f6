"""cric-shim vs conmon, same runc, same busybox container, same run.

Prints (asserts nothing):
  * memory per shim with BENCH_IDLE (default 50) idle containers:
    VmRSS and Private_Dirty (smaps_rollup), mean and max;
  * log throughput: a container writing BENCH_MB (default 500) MB of
    100-byte text lines to stdout, MB/s from `runc start` until the shim
    has exited (the log holds everything), plus the producer alone.
Run as root from a build tree: bench/shim-bench.sh [BUILDDIR]."""
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRCDIR = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(SRCDIR, "t", "py"))
import shim as T  # noqa: E402  (rootfs, bundles, driver helpers)
from benchlib import status_kib  # noqa: E402

IDLE = int(os.environ.get("BENCH_IDLE", "50"))
MB = int(os.environ.get("BENCH_MB", "500"))
CONMON = shutil.which("conmon") or "/usr/bin/conmon"
# 10 MB of 100-byte text lines in the rootfs, cat'ed MB/10 times: busybox
# `yes | head` alone tops out near 70 MB/s, which would measure busybox.
CHUNK_MB = 10
PRODUCER = "i=0; while [ $i -lt %d ]; do cat /lines.txt; i=$((i+1)); done" % (MB // CHUNK_MB)


# Logs go to tmpfs by default so the figure is the shim's, not the disk's
# (BENCH_LOGDIR=/some/disk/dir to include the disk).
LOGBASE = os.environ.get("BENCH_LOGDIR", "/dev/shm")


def new_env():
    e = T.Env()
    e.logdir = tempfile.mkdtemp(prefix="cric-bench-logs-", dir=LOGBASE)
    add_lines(e)
    return e


def add_lines(env):
    with open(os.path.join(env.rootfs, "lines.txt"), "w") as f:
        for i in range(CHUNK_MB * 1000 * 1000 // 100):
            f.write("%09d %s\n" % (i, "x" * 89))


def mem_of(pid):
    rss, pd = status_kib(pid, "VmRSS"), 0
    with open("/proc/%d/smaps_rollup" % pid) as f:
        for line in f:
            if line.startswith("Private_Dirty:"):
                pd = int(line.split()[1])
    return rss, pd


def read_pid(path, timeout=20):
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with open(path) as f:
                v = f.read().strip()
            if v:
                return int(v)
        except OSError:
            pass
        time.sleep(0.01)
    raise RuntimeError("no pid in %s" % path)


def alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Conmon:
    """Launches containers under conmon the way CRI-O does (k8s-file log)."""

    def __init__(self, env):
        self.e = env
        self.sock = tempfile.mkdtemp(prefix="cb-", dir="/tmp")

    def launch(self, cid, args):
        e = self.e
        b = e.bundle(cid, args)
        e.ids.append(cid)
        st = e.state(cid)
        os.makedirs(st)
        os.makedirs(os.path.dirname(e.log(cid)), exist_ok=True)
        subprocess.run([CONMON, "--api-version", "1", "-c", cid, "-u", cid, "-n", cid, "-r", e.runtime,
                        "--runtime-arg", "--root", "--runtime-arg", e.rt_root, "-b", b,
                        "-p", os.path.join(st, "container.pid"), "-P", os.path.join(st, "shim.pid"),
                        "-l", "k8s-file:" + e.log(cid), "--exit-dir", e.exits, "--socket-dir-path", self.sock,
                        "--log-level", "error", "--no-sync-log"], check=True, timeout=60,
                       stdout=subprocess.DEVNULL)
        read_pid(os.path.join(st, "container.pid"))
        return read_pid(os.path.join(st, "shim.pid"))


def cric_launch(e, cid, args):
    e.launch(cid, args)
    return read_pid(os.path.join(e.state(cid), "shim.pid"))


def bench_memory(name, e, launch):
    pids = [launch(e, "idle%d" % i, ["sleep", "3600"]) for i in range(IDLE)]
    for i in range(IDLE):
        e.start("idle%d" % i)
    time.sleep(1)
    m = [mem_of(p) for p in pids]
    rss = [a for a, _ in m]
    pd = [b for _, b in m]
    print("%-10s idle x%d: RSS mean %6.0f KiB max %6d KiB | Private_Dirty mean %6.0f KiB max %6d KiB"
          % (name, IDLE, statistics.mean(rss), max(rss), statistics.mean(pd), max(pd)), flush=True)
    for i in range(IDLE):
        subprocess.run([e.runtime, "--root", e.rt_root, "kill", "idle%d" % i, "KILL"],
                       stderr=subprocess.DEVNULL)


def bench_throughput(name, e, launch, cid):
    spid = launch(e, cid, ["sh", "-c", PRODUCER])
    t0 = time.time()
    e.start(cid)
    while alive(spid):
        time.sleep(0.005)
    dt = time.time() - t0
    size = os.path.getsize(e.log(cid))
    lines = int(subprocess.run(["wc", "-l", e.log(cid)], capture_output=True, text=True).stdout.split()[0])
    print("%-10s %d MB stdout: %6.2f s  %7.1f MB/s  (log %d bytes, %d records, want %d)"
          % (name, MB, dt, MB / dt, size, lines, (MB // CHUNK_MB) * CHUNK_MB * 10000), flush=True)
    os.unlink(e.log(cid))
    return MB / dt


def producer_alone(e):
    e.launch("prod", ["sh", "-c", PRODUCER + " > /dev/null"])
    t0 = time.time()
    e.start("prod")
    e.wait("prod", timeout=600)
    dt = time.time() - t0
    print("%-10s %d MB to /dev/null inside the container: %.2f s %.1f MB/s" % ("producer", MB, dt, MB / dt),
          flush=True)


def main():
    if os.geteuid() != 0:
        sys.exit("needs root")
    for p in (T.SHIM, T.DRIVER, CONMON):
        if not os.path.exists(p):
            sys.exit("missing %s" % p)
    print("cric-shim: %s (%d bytes)   conmon: %s   logs under %s" % (T.SHIM, os.path.getsize(T.SHIM), CONMON,
                                                                    LOGBASE), flush=True)
    envs = []
    try:
        e1 = new_env()
        envs.append(e1)
        producer_alone(e1)
        ct = bench_throughput("cric-shim", e1, cric_launch, "tp")
        e2 = new_env()
        envs.append(e2)
        cm = Conmon(e2)
        mt = bench_throughput("conmon", e2, lambda e, c, a: cm.launch(c, a), "tp")
        print("throughput ratio cric-shim/conmon: %.2fx" % (ct / mt), flush=True)
        bench_memory("cric-shim", e1, cric_launch)
        bench_memory("conmon", e2, lambda e, c, a: cm.launch(c, a))
    finally:
        for e in envs:
            e.cleanup()
        if 'cm' in locals():
            shutil.rmtree(cm.sock, ignore_errors=True)


if __name__ == "__main__":
    main()
