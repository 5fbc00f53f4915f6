"""Container benchmark: N pods with one container each, cricd vs Debian's
containerd (CRI plugin), both driven by the same grpcio client over their
CRI sockets.  Host-network pods (no CNI time in the figures).  Prints
RunPodSandbox / CreateContainer / StartContainer / StopContainer /
RemovePodSandbox p50/p90, RunPodSandbox-to-running time, the daemon's RSS
with N running containers and ListContainers latency, side by side with
the cricd/containerd ratio.  Asserts nothing.  SKIP_CONTAINERD=1: cricd only.

Both daemons run at once and take turns pod by pod (the order alternates
too), so a burst of load on the shared machine hits both alike rather than
whichever happened to run then."""
import os
import shutil
import subprocess
import sys
import tempfile
import time

build, src, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
sys.path.insert(0, os.path.join(src, "t", "py"))
sys.path.insert(0, os.path.join(src, "t", "registry"))
os.environ.setdefault("CRIC_BUILDDIR", build)
os.environ.setdefault("CRIC_SRCDIR", src)
import cricreg  # noqa: E402
import harness  # noqa: E402
from benchlib import have_containerd, pct, status_kib, stop, wait_sock  # noqa: E402

pb = harness.pb2()
CMD = ["sh", "-c", "trap 'exit 0' TERM; sleep 100000 & wait"]
OPS = ("RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemovePodSandbox", "run->running",
       "ListContainers")


class Runtime:
    """One daemon under test: its client, pid, log dir and the figures."""

    def __init__(self, name, cl, pid, ref, logdir):
        self.name, self.cl, self.pid, self.ref, self.logdir = name, cl, pid, ref, logdir
        self.t = {k: [] for k in OPS}
        self.pods = []
        self.rss = 0

    def run_one(self, i):
        cl, t = self.cl, self.t
        pc = pb.PodSandboxConfig()
        pc.metadata.name, pc.metadata.uid, pc.metadata.namespace = "b%d" % i, "ub%d" % i, "bench"
        pc.log_directory = os.path.join(self.logdir, "b%d" % i)
        pc.linux.security_context.namespace_options.network = pb.NODE
        t0 = time.perf_counter()
        pod = cl.runtime("RunPodSandbox", pb.RunPodSandboxRequest(config=pc), timeout=120).pod_sandbox_id
        t1 = time.perf_counter()
        cc = pb.ContainerConfig()
        cc.metadata.name = "c"
        cc.image.image = self.ref
        cc.command.extend(CMD)
        cc.log_path = "c.log"
        cid = cl.runtime("CreateContainer", pb.CreateContainerRequest(pod_sandbox_id=pod, config=cc,
                                                                      sandbox_config=pc), timeout=120).container_id
        t2 = time.perf_counter()
        cl.runtime("StartContainer", pb.StartContainerRequest(container_id=cid), timeout=120)
        t3 = time.perf_counter()
        t["RunPodSandbox"].append(t1 - t0)
        t["CreateContainer"].append(t2 - t1)
        t["StartContainer"].append(t3 - t2)
        t["run->running"].append(t3 - t0)
        self.pods.append((pod, cid))

    def list_once(self):
        t0 = time.perf_counter()
        got = len(self.cl.runtime("ListContainers").containers)
        self.t["ListContainers"].append(time.perf_counter() - t0)
        if got < n:
            raise RuntimeError("%s lists %d containers, expected %d" % (self.name, got, n))

    def stop_one(self, i):
        cl, t = self.cl, self.t
        pod, cid = self.pods[i]
        t0 = time.perf_counter()
        cl.runtime("StopContainer", pb.StopContainerRequest(container_id=cid, timeout=10), timeout=120)
        t1 = time.perf_counter()
        cl.runtime("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        t2 = time.perf_counter()
        cl.runtime("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        t3 = time.perf_counter()
        t["StopContainer"].append(t1 - t0)
        t["RemovePodSandbox"].append(t3 - t2)


def turns(rts, i):
    """Both runtimes, the first one alternating with i."""
    return rts if i % 2 == 0 else rts[::-1]


def step(rts, i, fn):
    """fn(rt) for both runtimes in turn; containerd failing drops it (and its
    figures) rather than cricd's."""
    for rt in turns(list(rts), i):
        try:
            fn(rt)
        except Exception as e:
            if rt is rts[0]:
                raise
            print("%s: %s; comparison skipped" % (rt.name, str(e)[:300]))
            rts.remove(rt)


def bench(rts):
    for i in range(n):
        step(rts, i, lambda rt: rt.run_one(i))
    time.sleep(1)
    for rt in rts:
        rt.rss = status_kib(rt.pid, "VmRSS")
    for i in range(20):
        step(rts, i, lambda rt: rt.list_once())
    for i in range(n):
        step(rts, i, lambda rt: rt.stop_one(i))


def report(rts):
    uptime = open("/proc/loadavg").read().split()[:3]
    print("N=%d pods with one container each (RSS: with all N running); %s; load average %s" % (
        n, "both daemons at once, pod by pod in alternating order" if len(rts) > 1 else "cricd only",
        " ".join(uptime)))
    ratio = len(rts) > 1
    print("%-17s" % "" + "".join("%18s" % rt.name for rt in rts) +
          ("%18s" % ("%s/%s" % (rts[0].name, rts[1].name)) if ratio else ""))
    print("%-17s" % "ms" + "%9s%9s" % ("p50", "p90") * (len(rts) + ratio))
    for k in OPS:
        line = "%-17s" % k
        for rt in rts:
            line += "%9.2f%9.2f" % (pct(rt.t[k], 50) * 1e3, pct(rt.t[k], 90) * 1e3)
        if ratio:
            a, b = rts[0].t[k], rts[1].t[k]
            line += "%9.2f%9.2f" % (pct(a, 50) / pct(b, 50), pct(a, 90) / pct(b, 90))
        print(line)
    line = "%-17s" % "RSS MiB"
    for rt in rts:
        line += "%9.1f%9s" % (rt.rss / 1024.0, "")
    if ratio:
        line += "%9.2f" % (rts[0].rss / float(rts[1].rss or 1))
    print(line)


def start_cricd(reg, ref, cleanups):
    rr = tempfile.gettempdir() + "/cric-bench-%d" % os.getpid()
    d = harness.Daemon(config='{"images": {"registries": [{"host": "%s", "insecure": true}]}, '
                              '"sandbox": {"cgroup_parent": "/cric-bench"}, '
                              '"runtime": {"handlers": {"runc": {"path": "/usr/sbin/runc", "root": "%s/runc"}}}}'
                       % (reg.host, rr))
    d.args += ["--log-level", "warn"]

    def cleanup():
        d.cleanup()
        shutil.rmtree(rr, ignore_errors=True)
        import ctrlib
        ctrlib.rm_cgroups("/cric-bench")
    cleanups.append(cleanup)
    d.start()
    cl = d.client()
    cleanups.append(cl.close)
    cl.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=300)
    return Runtime("cricd", cl, d.proc.pid, ref, os.path.join(d.dir, "logs"))


def start_containerd(reg, ref, pause, cleanups):
    d = tempfile.mkdtemp(prefix="ctrd-bench-")
    sock = os.path.join(d, "containerd.sock")
    conf = os.path.join(d, "config.toml")
    with open(conf, "w") as f:
        f.write('version = 2\nroot = "%s/root"\nstate = "%s/state"\n[grpc]\n  address = "%s"\n'
                '[ttrpc]\n  address = "%s/ttrpc.sock"\n[debug]\n  level = "error"\n'
                '[plugins."io.containerd.grpc.v1.cri"]\n  sandbox_image = "%s"\n  restrict_oom_score_adj = true\n'
                '[plugins."io.containerd.grpc.v1.cri".registry.mirrors."%s"]\n  endpoint = ["http://%s"]\n'
                % (d, d, sock, d, pause, reg.host, reg.host))
    log = open(os.path.join(d, "log"), "wb")
    proc = subprocess.Popen(["containerd", "--config", conf], stdout=log, stderr=log)

    def cleanup():
        stop(proc)
        log.close()
        harness.unmount_under(d)
        shutil.rmtree(d, ignore_errors=True)
    cleanups.append(cleanup)
    wait_sock(sock, proc, "containerd")
    time.sleep(1)
    cl = harness.Client("unix://" + sock)
    cleanups.append(cl.close)
    cl.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=300)
    cl.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=pause)), timeout=300)
    return Runtime("containerd", cl, proc.pid, ref, os.path.join(d, "logs"))


def main():
    if os.geteuid() != 0:
        print("needs root")
        return
    if not cricreg.have_registry():
        print("docker-registry missing (apt-get install docker-registry)")
        return
    with cricreg.Registry() as reg:
        ref = reg.push_busybox("busybox:latest")
        base = cricreg.Layer(cricreg.busybox_base_tar())
        pause = reg.push_image("pause:latest", cricreg.Image([base], cmd=("/bin/sleep", "1000000")))[0]
        cleanups = []
        try:
            rts = [start_cricd(reg, ref, cleanups)]
            if os.environ.get("SKIP_CONTAINERD") != "1" and have_containerd():
                try:
                    rts.append(start_containerd(reg, ref, pause, cleanups))
                except Exception as e:
                    print("containerd: %s, comparison skipped" % str(e)[:300])
            bench(rts)
            report(rts)
        finally:
            for fn in reversed(cleanups):
                try:
                    fn()
                except Exception as e:
                    print("cleanup: %s" % str(e)[:200])


if __name__ == "__main__":
    main()
