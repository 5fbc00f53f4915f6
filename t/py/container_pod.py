"""The full pod lifecycle as kubelet drives it: image pulled from a real
docker-registry on 127.0.0.1, a pod on a CNI bridge network, two containers
sharing the pod's network, logs, exec, stop, remove."""
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "registry"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cricreg  # noqa: E402
import ctrlib  # noqa: E402
import harness  # noqa: E402
import sandbox_net  # noqa: E402


def main():
    ctrlib.need_env()
    if not cricreg.have_registry():
        print("SKIP: docker-registry missing")
        sys.exit(harness.SKIP)
    sandbox_net.need_env()
    reg = cricreg.Registry().start()
    net = sandbox_net.Net("k")
    try:
        reg.push_busybox("busybox:latest")
        d = harness.Daemon()
        extra = {"images": {"registries": [{"host": reg.host, "insecure": True}]},
                 "network": {"config_dir": net.conf_dir, "plugin_dirs": [sandbox_net.PLUGIN_DIR]}}
        with ctrlib.Env(images={}, extra=extra, daemon=d) as e:
            harness.run_tests([named(t_pod, e, reg)])
    finally:
        reg.stop()
        net.cleanup()


def named(fn, e, reg):
    def t():
        fn(e, reg)
    t.__name__ = fn.__name__
    return t


def t_pod(e, reg):
    pb = e.pb
    ref = reg.host + "/busybox:latest"
    img = e.cl.image("PullImage", pb.PullImageRequest(image=pb.ImageSpec(image=ref)), timeout=120).image_ref
    pcfg = e.pod_config("web", host_net=False)
    pod = e.cl.runtime("RunPodSandbox", pb.RunPodSandboxRequest(config=pcfg), timeout=60).pod_sandbox_id
    ip = e.cl.runtime("PodSandboxStatus", pb.PodSandboxStatusRequest(pod_sandbox_id=pod)).status.network.ip
    assert ip, "pod has no IP"
    # A server and a client in the same pod: same network namespace.
    srv = e.ctr_config("srv", ["sh", "-c", "trap 'exit 0' TERM; echo serving; "
                                           "while true; do echo pong | nc -l -p 8080; done & wait"], image=ref)
    sid = e.create(pod, pcfg, srv)
    e.start(sid)
    st = e.status(sid).status
    assert st.image_id == img and "@sha256:" in st.image_ref and st.state == pb.CONTAINER_RUNNING, st
    harness.poll(lambda: "serving" in e.output(pcfg, "srv"))
    # The pod's own IP from inside the pod reaches the server.
    r = None
    for _ in range(50):
        r = e.exec_sync(sid, ["sh", "-c", "echo ping | nc -w 2 %s 8080" % ip], timeout=10)
        if r.stdout == b"pong\n":
            break
        time.sleep(0.1)
    assert r.stdout == b"pong\n", r
    r = e.exec_sync(sid, ["hostname"])
    assert r.stdout == b"web\n", r
    r = e.exec_sync(sid, ["cat", "/etc/resolv.conf"])
    assert r.exit_code == 0
    cli = e.ctr_config("cli", ["sh", "-c", "echo ping | nc -w 2 127.0.0.1 8080"], image=ref)
    cid = e.create(pod, pcfg, cli)
    e.start(cid)
    st = e.wait_state(cid, pb.CONTAINER_EXITED)
    assert st.exit_code == 0 and e.output(pcfg, "cli") == "pong\n", (st.exit_code, e.output(pcfg, "cli"))
    lst = e.cl.runtime("ListContainers", pb.ListContainersRequest(
        filter=pb.ContainerFilter(pod_sandbox_id=pod))).containers
    assert sorted(c.metadata.name for c in lst) == ["cli", "srv"]
    e.stop(sid, timeout=5)
    assert e.status(sid).status.exit_code == 0
    e.cl.runtime("StopPodSandbox", pb.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    e.cl.runtime("RemovePodSandbox", pb.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert len(e.cl.runtime("ListContainers").containers) == 0
    # Container directories go on the thread pool after the removal answered.
    cdir = os.path.join(e.d.root, "containers")
    harness.poll(lambda: not os.listdir(cdir))
    assert not os.listdir(cdir), os.listdir(cdir)


if __name__ == "__main__":
    main()
