#!/usr/bin/python3
"""Pull + unpack of a ~100 MB multi-layer image from a local docker-registry:
cricd vs Debian's containerd (CRI plugin), both driven by cricctl.  Prints
MB/s (of compressed blobs) and the daemon's peak RSS (VmHWM), and that of
its cric-pull helper (sampled).  Asserts
nothing.  Usage: image-bench.py BUILDDIR SRCDIR [MB]"""
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

BUILDDIR, SRCDIR = sys.argv[1], sys.argv[2]
TARGET_MB = int(sys.argv[3]) if len(sys.argv) > 3 else 100
sys.path.insert(0, os.path.join(SRCDIR, "t", "registry"))
import cricreg  # noqa: E402
from benchlib import have_containerd, status_kib, stop, wait_sock  # noqa: E402


def build_image():
    """Layers of real files from /usr (compressible like real images)."""
    files = []
    for top in ("/usr/lib/x86_64-linux-gnu", "/usr/share", "/usr/lib", "/usr/bin"):
        for d, _, names in os.walk(top):
            for n in names:
                p = os.path.join(d, n)
                if os.path.isfile(p) and not os.path.islink(p):
                    files.append(p)
    layers, total, tb, cur = [], 0, cricreg.TarBuilder(), 0
    per_layer = TARGET_MB * 1000000 // 5
    seen = set()
    for p in files:
        if total >= TARGET_MB * 1000000:
            break
        if p in seen:
            continue
        seen.add(p)
        try:
            with open(p, "rb") as f:
                data = f.read()
        except OSError:
            continue
        tb.file(p.lstrip("/").replace("/", "_")[:200], data)
        cur += len(data)
        total += len(data)
        if cur >= per_layer:
            layers.append(cricreg.Layer(tb.bytes()))
            tb, cur = cricreg.TarBuilder(), 0
    if cur:
        layers.append(cricreg.Layer(tb.bytes()))
    return cricreg.Image(layers)


def peak_rss_kib(pid):
    return status_kib(pid, "VmHWM")


class HelperPeak:
    """Samples the peak RSS (VmHWM) of cricd's cric-pull children while a
    pull runs (they exit with the pull, so poll)."""

    def __init__(self, pid):
        import threading
        self.pid, self.kib, self.stop = pid, 0, threading.Event()
        self.t = threading.Thread(target=self.run)
        self.t.start()

    def run(self):
        while not self.stop.is_set():
            try:
                for t in os.listdir("/proc/%d/task" % self.pid):
                    with open("/proc/%d/task/%s/children" % (self.pid, t)) as f:
                        for k in f.read().split():
                            try:
                                self.kib = max(self.kib, peak_rss_kib(int(k)))
                            except OSError:
                                pass
            except OSError:
                pass
            time.sleep(0.02)

    def done(self):
        self.stop.set()
        self.t.join()
        return self.kib


def pull(sock, ref):
    t = time.time()
    p = subprocess.run([os.path.join(BUILDDIR, "cricctl"), "--endpoint", "unix://" + sock, "--timeout", "600s",
                        "pull", ref], capture_output=True, text=True)
    return time.time() - t, p


def bench_cricd(reg, ref, blob_mb):
    d = tempfile.mkdtemp(prefix="cric-bench-")
    try:
        conf = os.path.join(d, "cricd.conf")
        with open(conf, "w") as f:
            json.dump({"images": {"registries": [{"host": reg.host, "insecure": True}]}}, f)
        sock = os.path.join(d, "cricd.sock")
        proc = subprocess.Popen([os.path.join(BUILDDIR, "cricd"), "--config", conf, "--listen", sock, "--root",
                                 os.path.join(d, "root"), "--state", os.path.join(d, "state"), "--log-level",
                                 "error"])
        try:
            wait_sock(sock, proc, "cricd")
            idle = peak_rss_kib(proc.pid)
            helper = HelperPeak(proc.pid)
            secs, p = pull(sock, ref)
            helper_kib = helper.done()
            if p.returncode:
                print("cricd: pull failed: " + p.stderr.strip())
                return
            print("cricd:      %6.2f s  %7.1f MB/s  peak RSS %6.1f MiB (idle %.1f MiB); cric-pull peak RSS %.1f MiB"
                  % (secs, blob_mb / secs, peak_rss_kib(proc.pid) / 1024, idle / 1024, helper_kib / 1024))
        finally:
            proc.terminate()
            proc.wait()
    finally:
        subprocess.run(["umount", "-R", d], stderr=subprocess.DEVNULL)
        shutil.rmtree(d, ignore_errors=True)


def bench_containerd(reg, ref, blob_mb):
    if not have_containerd():
        return
    d = tempfile.mkdtemp(prefix="ctrd-bench-")
    sock = os.path.join(d, "containerd.sock")
    conf = os.path.join(d, "config.toml")
    with open(conf, "w") as f:
        f.write('version = 2\nroot = "%s/root"\nstate = "%s/state"\n[grpc]\n  address = "%s"\n'
                '[ttrpc]\n  address = "%s/ttrpc.sock"\n[debug]\n  level = "error"\n'
                '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."%s"]\n  endpoint = ["http://%s"]\n'
                % (d, d, sock, d, reg.host, reg.host))
    log = open(os.path.join(d, "log"), "wb")
    proc = subprocess.Popen(["containerd", "--config", conf], stdout=log, stderr=log)
    try:
        wait_sock(sock, proc, "containerd")
        time.sleep(1)  # CRI plugin comes up after the socket
        idle = peak_rss_kib(proc.pid)
        secs, p = pull(sock, ref)
        if p.returncode:
            print("containerd: pull failed, comparison skipped: " + p.stderr.strip()[:300])
            return
        print("containerd: %6.2f s  %7.1f MB/s  peak RSS %6.1f MiB (idle %.1f MiB)"
              % (secs, blob_mb / secs, peak_rss_kib(proc.pid) / 1024, idle / 1024))
    except RuntimeError as e:
        print("containerd: %s, comparison skipped" % e)
    finally:
        stop(proc)
        log.close()
        subprocess.run(["umount", "-R", d], stderr=subprocess.DEVNULL)
        for dp, _, _ in os.walk(d):
            pass
        shutil.rmtree(d, ignore_errors=True)


def main():
    if not cricreg.have_registry():
        print("docker-registry missing (apt-get install docker-registry)")
        return
    img = build_image()
    blob_mb = sum(len(l.blob) for l in img.layers) / 1e6
    tar_mb = sum(len(l.tar) for l in img.layers) / 1e6
    with cricreg.Registry() as reg:
        ref = reg.push_image("bench:latest", img)[0]
        print("image: %d layers, %.1f MB compressed, %.1f MB unpacked" % (len(img.layers), blob_mb, tar_mb))
        bench_cricd(reg, ref, blob_mb)
        bench_containerd(reg, ref, blob_mb)


if __name__ == "__main__":
    main()
