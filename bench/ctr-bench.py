"""Container benchmark: N pods with one container each, cricd vs Debian's
containerd (CRI plugin), both driven by the same grpcio client over their
CRI sockets.  Host-network pods (no CNI time in the figures).  Prints
RunPodSandbox / CreateContainer / StartContainer / StopContainer /
RemovePodSandbox p50/p90, RunPodSandbox-to-running time, the daemon's RSS
with N running containers and ListContainers latency.  Asserts nothing."""
import os
import shutil
import statistics
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


def run(name, cl, pid, ref, logdir):
    t = {k: [] for k in ("RunPodSandbox", "CreateContainer", "StartContainer", "StopContainer",
                         "RemovePodSandbox", "run->running")}
    pods = []
    for i in range(n):
        pc = pb.PodSandboxConfig()
        pc.metadata.name, pc.metadata.uid, pc.metadata.namespace = "b%d" % i, "ub%d" % i, "bench"
        pc.log_directory = os.path.join(logdir, "b%d" % i)
        pc.linux.security_context.namespace_options.network = pb.NODE
        t0 = time.perf_counter()
        pod = cl.runtime("RunPodSandbox", pb.RunPodSandboxRequest(config=pc), timeout=120).pod_sandbox_id
        t1 = time.perf_counter()
        cc = pb.ContainerConfig()
        cc.metadata.name = "c"
        cc.image.image = ref
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
        pods.append((pod, cid))
    time.sleep(1)
    rss = status_kib(pid, "VmRSS")
    lat = []
    for _ in range(20):
        t0 = time.perf_counter()
        got = len(cl.runtime("ListContainers").containers)
        lat.append(time.perf_counter() - t0)
    assert got >= n
    for pod, cid in pods:
        t0 = time.perf_counter()
        cl.runtime("StopContainer", pb.StopContainerRequest(container_id=cid, timeout=10), timeout=120)
        t1 = time.perf_counter()
        cl.runtime("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        t2 = time.perf_counter()
        cl.runtime("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=120)
        t3 = time.perf_counter()
        t["StopContainer"].append(t1 - t0)
        t["RemovePodSandbox"].append(t3 - t2)
    print("%s (N=%d):" % (name, n))
    for k, v in t.items():
        print("  %-17s p50 %8.2f ms  p90 %8.2f ms" % (k, pct(v, 50) * 1e3, pct(v, 90) * 1e3))
    print("  %-17s p50 %8.2f ms  p90 %8.2f ms" % ("ListContainers", pct(lat, 50) * 1e3, pct(lat, 90) * 1e3))
    print("  RSS with %d running containers: %.1f MiB" % (n, rss / 1024.0))


def bench_cricd(reg, ref):
    d = harness.Daemon(config='{"images": {"registries": [{"host": "%s", "insecure": true}]}, '
                              '"sandbox": {"cgroup_parent": "/cric-bench"}, '
                              '"runtime": {"handlers": {"runc": {"path": "/usr/sbin/runc", "root": "%s/runc"}}}}'
                       % (reg.host, tempfile.gettempdir() + "/cric-bench-%d" % os.getpid()))
    d.args += ["--log-level", "warn"]
    try:
        d.start()
        cl = d.client()
        cl.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=300)
        run("cricd", cl, d.proc.pid, ref, os.path.join(d.dir, "logs"))
        cl.close()
    finally:
        d.cleanup()
        shutil.rmtree(tempfile.gettempdir() + "/cric-bench-%d" % os.getpid(), ignore_errors=True)
        import ctrlib
        ctrlib.rm_cgroups("/cric-bench")


def bench_containerd(reg, ref, pause):
    if not have_containerd():
        return
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
    try:
        wait_sock(sock, proc, "containerd")
        time.sleep(1)
        cl = harness.Client("unix://" + sock)
        cl.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=300)
        cl.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=pause)), timeout=300)
        run("containerd", cl, proc.pid, ref, os.path.join(d, "logs"))
        cl.close()
    except Exception as e:
        print("containerd: %s, comparison skipped" % str(e)[:300])
    finally:
        stop(proc)
        log.close()
        harness.unmount_under(d)
        shutil.rmtree(d, ignore_errors=True)


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
        bench_cricd(reg, ref)
        bench_containerd(reg, ref, pause)


if __name__ == "__main__":
    main()
