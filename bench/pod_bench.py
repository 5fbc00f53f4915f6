"""Driver of bench/pod-bench.sh (see there)."""
import json
import os
import random
import re
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

from benchlib import pct, stop

BUILD, N = sys.argv[1], int(sys.argv[2])
CTL = os.path.join(BUILD, "cricctl")
PLUGINS = "/usr/lib/cni"


def cni_conf(tmp, tag):
    bridge = ("cbb%d%s" % (os.getpid() % 100000, tag))[:15]
    conf_dir = os.path.join(tmp, "net.d")
    os.makedirs(conf_dir)
    conf = {"cniVersion": "1.0.0", "name": "bench-" + bridge, "plugins": [
        {"type": "bridge", "bridge": bridge, "isGateway": True, "ipMasq": False,
         "ipam": {"type": "host-local", "dataDir": os.path.join(tmp, "ipam"),
                  "ranges": [[{"subnet": "172.%d.%d.0/24" % (random.randint(16, 31), random.randint(0, 255))}]]}},
        {"type": "portmap", "capabilities": {"portMappings": True}}]}
    with open(os.path.join(conf_dir, "10-bench.conflist"), "w") as f:
        json.dump(conf, f)
    return conf_dir, bridge


def ctl(sock, *args):
    t = time.perf_counter()
    p = subprocess.run([CTL, "--endpoint", "unix://" + sock] + list(args), capture_output=True, text=True)
    dt = (time.perf_counter() - t) * 1000
    if p.returncode != 0:
        raise RuntimeError("cricctl %s: %s" % (" ".join(args), p.stderr.strip()))
    return p.stdout.strip(), dt


def wait_sock(sock, proc, what):
    for _ in range(300):
        if os.path.exists(sock):
            return
        if proc.poll() is not None:
            raise RuntimeError("%s exited" % what)
        time.sleep(0.05)
    raise RuntimeError("%s did not listen" % what)


def cycle(sock, tmp, tag):
    """N pods: run, stop, remove each; returns per-phase latencies (ms)."""
    run, stop, rm = [], [], []
    for i in range(N):
        cfg = os.path.join(tmp, "pod.json")
        with open(cfg, "w") as f:
            json.dump({"metadata": {"name": "bench-%d" % i, "uid": "%s-%d-%d" % (tag, os.getpid(), i),
                                    "namespace": "bench", "attempt": 0},
                       "log_directory": os.path.join(tmp, "logs"),
                       "linux": {"security_context": {"namespace_options": {"pid": 1}}}}, f)
        pid, t = ctl(sock, "runp", cfg)
        run.append(t)
        stop.append(ctl(sock, "stopp", pid)[1])
        rm.append(ctl(sock, "rmp", pid)[1])
    return run, stop, rm


def report(name, run, stop, rm):
    tot = [a + b + c for a, b, c in zip(run, stop, rm)]
    print("%-10s %-7s p50 %8.2f ms  p90 %8.2f ms" % (name, "run", pct(run, 50), pct(run, 90)))
    print("%-10s %-7s p50 %8.2f ms  p90 %8.2f ms" % (name, "stop", pct(stop, 50), pct(stop, 90)))
    print("%-10s %-7s p50 %8.2f ms  p90 %8.2f ms" % (name, "remove", pct(rm, 50), pct(rm, 90)))
    print("%-10s %-7s p50 %8.2f ms  p90 %8.2f ms" % (name, "total", pct(tot, 50), pct(tot, 90)))


def bench_cricd():
    tmp = tempfile.mkdtemp(prefix="cric-bench-")
    conf_dir, bridge = cni_conf(tmp, "c")
    sock = os.path.join(tmp, "cricd.sock")
    conf = os.path.join(tmp, "cricd.conf")
    with open(conf, "w") as f:
        json.dump({"network": {"config_dir": conf_dir, "plugin_dirs": [PLUGINS]}}, f)
    log = open(os.path.join(tmp, "cricd.log"), "w")
    wrap = os.environ.get("CRICD_WRAP", "").split()  # e.g. "strace -T -tt -o FILE"
    d = subprocess.Popen(wrap + [os.path.join(BUILD, "cricd"), "--listen", sock, "--root", tmp + "/root", "--state",
                          tmp + "/state", "--log-level", "debug", "--config", conf], stdout=log, stderr=log)
    try:
        wait_sock(sock, d, "cricd")
        cpid = cricd_pid(d.pid)
        cpu0 = cpu_ms(cpid)
        res = cycle(sock, tmp, "c")
        cpu = cpu_ms(cpid) - cpu0
    finally:
        d.send_signal(signal.SIGTERM)
        d.wait()
        log.close()
        subprocess.run(["ip", "link", "del", bridge], stderr=subprocess.DEVNULL)
    # Server-side time and child-process time per call, from the debug log.
    server = {"RunPodSandbox": [], "StopPodSandbox": [], "RemovePodSandbox": []}
    child = {k: [] for k in server}
    spawn = {k: [] for k in server}
    with open(os.path.join(tmp, "cricd.log")) as f:
        for line in f:
            m = re.search(r"grpc /runtime.v1.RuntimeService/(\w+): OK \(([\d.]+) ms\)", line)
            if m and m.group(1) in server:
                server[m.group(1)].append(float(m.group(2)))
            m = re.search(r"(?:/runtime.v1.RuntimeService/)?(\w+PodSandbox) \w+: ([\d.]+) ms in child processes"
                          r"(?: \(([\d.]+) ms (?:in uv_spawn|spawning)\))?", line)
            if m and m.group(1) in child:
                child[m.group(1)].append(float(m.group(2)))
                if m.group(3):
                    spawn[m.group(1)].append(float(m.group(3)))
    if os.environ.get("KEEP_LOG"):
        shutil.copy(os.path.join(tmp, "cricd.log"), os.environ["KEEP_LOG"])
    shutil.rmtree(tmp, ignore_errors=True)
    report("cricd", *res)
    for k in server:
        if server[k] and child[k] and len(server[k]) == len(child[k]):
            own = [s - c for s, c in zip(server[k], child[k])]
            print("cricd      %-17s server p50 %7.2f ms, in children p50 %7.2f ms (share %4.1f%%), "
                  "cricd's own p50 %6.3f ms p90 %6.3f ms"
                  % (k, pct(server[k], 50), pct(child[k], 50),
                     100.0 * sum(child[k]) / max(sum(server[k]), 1e-9), pct(own, 50), pct(own, 90)))
        if spawn[k]:
            print("cricd      %-17s of the child time, starting children (until exec): "
                  "p50 %6.3f ms p90 %6.3f ms" % (k, pct(spawn[k], 50), pct(spawn[k], 90)))
    print("cricd      CPU time of the cricd process (loop, thread pool, forks; not its children): "
          "%.2f ms per pod (Run+Stop+Remove)" % (cpu / N))
    print("(client-side figures include starting cricctl: about %.1f ms per call)" % cricctl_cost())


def cricd_pid(pid):
    """cricd itself, also when CRICD_WRAP runs it under another program."""
    for _ in range(50):
        try:
            with open("/proc/%d/comm" % pid) as f:
                if f.read().strip() == "cricd":
                    return pid
            with open("/proc/%d/task/%d/children" % (pid, pid)) as f:
                kids = f.read().split()
            if kids:
                pid = int(kids[0])
                continue
        except OSError:
            pass
        time.sleep(0.05)
    return pid


def cpu_ms(pid):
    """utime + stime of pid (threads included, reaped children not)."""
    try:
        with open("/proc/%d/stat" % pid) as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) * 1000.0 / os.sysconf("SC_CLK_TCK")
    except OSError:
        return float("nan")


def cricctl_cost():
    t = time.perf_counter()
    for _ in range(5):
        subprocess.run([CTL, "--help"], capture_output=True)
    return (time.perf_counter() - t) * 200


PAUSE_C = "#include <signal.h>\n#include <unistd.h>\nstatic void h(int s){(void)s;_exit(0);}\n" \
          "int main(void){signal(SIGTERM,h);signal(SIGINT,h);for(;;)pause();}\n"


def pause_image(tmp):
    """A one-file OCI image with a static pause binary, for containerd's sandbox_image."""
    import hashlib
    import io
    import tarfile
    src = os.path.join(tmp, "pause.c")
    with open(src, "w") as f:
        f.write(PAUSE_C)
    binp = os.path.join(tmp, "pause")
    subprocess.run(["gcc", "-static", "-O2", "-o", binp, src], check=True)
    lb = io.BytesIO()
    with tarfile.open(fileobj=lb, mode="w") as t:
        t.add(binp, arcname="pause")
    layer = lb.getvalue()

    def blob(b):
        return "sha256:" + hashlib.sha256(b).hexdigest(), b
    ld, _ = blob(layer)
    cfg = json.dumps({"architecture": "amd64", "os": "linux", "config": {"Entrypoint": ["/pause"]},
                      "rootfs": {"type": "layers", "diff_ids": [ld]}}).encode()
    cd, _ = blob(cfg)
    man = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                      "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cd,
                                 "size": len(cfg)},
                      "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar", "digest": ld,
                                  "size": len(layer)}]}).encode()
    md, _ = blob(man)
    index = json.dumps({"schemaVersion": 2, "manifests": [
        {"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": md, "size": len(man),
         "annotations": {"io.containerd.image.name": "cric.local/pause:bench",
                         "org.opencontainers.image.ref.name": "bench"}}]}).encode()
    out = os.path.join(tmp, "pause.tar")
    with tarfile.open(out, "w") as t:
        def put(name, data):
            ti = tarfile.TarInfo(name)
            ti.size = len(data)
            t.addfile(ti, io.BytesIO(data))
        put("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        put("index.json", index)
        for d, b in ((ld, layer), (cd, cfg), (md, man)):
            put("blobs/sha256/" + d.split(":")[1], b)
    return out


def bench_containerd():
    if not shutil.which("containerd"):
        r = subprocess.run(["apt-get", "install", "-y", "containerd"], capture_output=True,
                           env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
        if r.returncode != 0 or not shutil.which("containerd"):
            print("containerd: not installed (apt-get install -y containerd failed); comparison skipped")
            return
    tmp = tempfile.mkdtemp(prefix="cric-bench-ctrd-")
    conf_dir, bridge = cni_conf(tmp, "d")
    sock = os.path.join(tmp, "containerd.sock")
    conf = os.path.join(tmp, "config.toml")
    with open(conf, "w") as f:
        f.write('version = 2\nroot = "%s/root"\nstate = "%s/state"\n[grpc]\naddress = "%s"\n'
                '[ttrpc]\naddress = "%s.ttrpc"\n'
                '[plugins."io.containerd.grpc.v1.cri"]\nsandbox_image = "cric.local/pause:bench"\n'
                'disable_apparmor = true\nrestrict_oom_score_adj = true\n'
                '[plugins."io.containerd.grpc.v1.cri".cni]\nbin_dir = "%s"\nconf_dir = "%s"\n'
                '[plugins."io.containerd.grpc.v1.cri".containerd]\nsnapshotter = "overlayfs"\n'
                % (tmp, tmp, sock, sock, PLUGINS, conf_dir))
    log = open(os.path.join(tmp, "containerd.log"), "w")
    d = subprocess.Popen(["containerd", "--config", conf], stdout=log, stderr=log)
    try:
        wait_sock(sock, d, "containerd")
        img = pause_image(tmp)
        subprocess.run(["ctr", "--address", sock, "-n", "k8s.io", "images", "import", img], check=True,
                       capture_output=True)
        res = cycle(sock, tmp, "d")
        report("containerd", *res)
    except Exception as e:  # the comparison is optional
        print("containerd: comparison skipped: %s" % e)
        try:
            with open(os.path.join(tmp, "containerd.log")) as f:
                lines = [l for l in f if "level=error" in l][-3:]
            for l in lines:
                print("  containerd log: " + l.strip()[:300])
        except OSError:
            pass
    finally:
        stop(d)
        log.close()
        subprocess.run(["ip", "link", "del", bridge], stderr=subprocess.DEVNULL)
        with open("/proc/self/mountinfo") as f:
            mps = [l.split()[4] for l in f if l.split()[4].startswith(tmp)]
        for mp in sorted(mps, key=len, reverse=True):
            subprocess.run(["umount", "-l", mp], stderr=subprocess.DEVNULL)
        shutil.rmtree(tmp, ignore_errors=True)


print("pod sandbox lifecycle, %d pods, one after another (cricctl per call)" % N)
bench_cricd()
if os.environ.get("SKIP_CONTAINERD"):
    print("containerd: skipped (SKIP_CONTAINERD set)")
else:
    bench_containerd()
