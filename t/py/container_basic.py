"""Containers through the CRI socket with real runc: lifecycle, process rules,
mounts, security, exit reasons, ExecSync."""
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ctrlib  # noqa: E402

ctrlib.need_env()
ENV = None


def pb():
    return harness.pb2()


def test_lifecycle():
    e = ENV
    pod, pcfg = e.run_pod("life")
    cfg = e.ctr_config("c1", ["sh", "-c", "trap 'exit 0' TERM; echo hello; echo err >&2; sleep 100 & wait"],
                       labels={"app": "x"},
                       annotations={"a": "b"})
    cid = e.create(pod, pcfg, cfg)
    st = e.status(cid).status
    assert st.state == pb().CONTAINER_CREATED, st
    assert st.created_at > 0 and st.started_at == 0
    assert st.metadata.name == "c1"
    assert st.labels["app"] == "x" and st.annotations["a"] == "b"
    assert st.image.image == "test/busybox"
    assert st.image_ref == e.images["test/busybox"], st.image_ref
    assert st.log_path == os.path.join(pcfg.log_directory, "c1.log")
    # The same (name, attempt) again is refused, naming the existing one.
    try:
        e.create(pod, pcfg, cfg)
        raise AssertionError("duplicate name accepted")
    except Exception as ex:
        assert cid in str(ex), ex
    e.start(cid)
    st = e.status(cid).status
    assert st.state == pb().CONTAINER_RUNNING and st.started_at >= st.created_at
    harness.poll(lambda: "err" in e.output(pcfg, "c1"))
    out = e.output(pcfg, "c1")
    assert "hello\n" in out and "err\n" in out, out
    lst = e.cl.runtime("ListContainers").containers
    assert [c.id for c in lst] == [cid]
    r = pb().ListContainersRequest()
    r.filter.label_selector["app"] = "y"
    assert len(e.cl.runtime("ListContainers", r).containers) == 0
    r = pb().ListContainersRequest()
    r.filter.state.state = pb().CONTAINER_RUNNING
    r.filter.pod_sandbox_id = pod
    assert len(e.cl.runtime("ListContainers", r).containers) == 1
    v = e.status(cid, verbose=True)
    import json
    info = json.loads(v.info["info"])
    assert info["pid"] > 0 and info["runtimeSpec"]["process"]["args"][0] == "sh"
    t0 = time.time()
    e.stop(cid, timeout=10)   # the trap turns SIGTERM into exit 0
    st = e.status(cid).status
    assert st.state == pb().CONTAINER_EXITED, st
    assert st.exit_code == 0 and st.reason == "Completed", (st.exit_code, st.reason)
    assert st.finished_at >= st.started_at
    e.stop(cid)  # idempotent
    e.remove(cid)
    e.remove(cid)  # idempotent
    try:
        e.status(cid)
        raise AssertionError("status of removed container")
    except Exception as ex:
        assert "NOT_FOUND" in str(ex) or "not found" in str(ex), ex
    ctrlib.wait_gone(os.path.join(e.d.root, "containers", cid))
    assert time.time() - t0 < 30


def test_created_never_started():
    e = ENV
    pod, pcfg = e.run_pod("created")
    cid = e.create(pod, pcfg, e.ctr_config("a", ["sleep", "100"]))
    # Created means prepared: the runtime only hears of it at start.
    out = subprocess.run([ctrlib.RUNC, "--root", os.path.join(e.d.dir, "runc"), "list", "-q"],
                         capture_output=True, text=True).stdout
    assert cid not in out, out
    st = e.status(cid, verbose=True)
    assert st.status.state == pb().CONTAINER_CREATED and st.status.started_at == 0, st.status
    assert json.loads(st.info["info"])["pid"] == 0
    # Its shim is launched at create, and waits for the start.
    harness.wait_for(lambda: ctrlib.waiting_shim(e, cid), what="the shim waiting for the start")
    shim = ctrlib.waiting_shim(e, cid)
    try:
        e.exec_sync(cid, ["true"])
        raise AssertionError("exec in a created container")
    except Exception as ex:
        assert "FAILED_PRECONDITION" in str(ex), ex
    e.stop(cid)
    st = e.status(cid).status
    assert st.state == pb().CONTAINER_EXITED and st.exit_code == 137, st
    # Stopped before it started: nothing will start it, its shim is ended.
    harness.wait_for(lambda: not ctrlib.pid_alive(shim), what="the waiting shim to end after the stop")
    try:
        e.start(cid)
        raise AssertionError("start of an exited container")
    except Exception as ex:
        assert "FAILED_PRECONDITION" in str(ex), ex
    e.remove(cid)
    cid = e.create(pod, pcfg, e.ctr_config("b", ["sleep", "100"]))
    harness.wait_for(lambda: ctrlib.waiting_shim(e, cid), what="the shim waiting for the start")
    shim = ctrlib.waiting_shim(e, cid)
    e.remove(cid)
    harness.wait_for(lambda: not ctrlib.pid_alive(shim), what="the waiting shim to end after the removal")
    # Removed right after the create, maybe before its shim was ready.
    cid = e.create(pod, pcfg, e.ctr_config("c", ["sleep", "100"]))
    e.remove(cid)
    time.sleep(0.5)
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert cid not in out, out
    out = subprocess.run([ctrlib.RUNC, "--root", os.path.join(e.d.dir, "runc"), "list", "-q"],
                         capture_output=True, text=True).stdout
    assert cid not in out, out


def test_waiting_shim_killed():
    """The shim launched at create is killed while it waits: the start
    launches a new one."""
    e = ENV
    pod, pcfg = e.run_pod("shimkilled")
    cid = e.create(pod, pcfg, e.ctr_config("k", ["sh", "-c", "trap 'exit 0' TERM; echo k-up; sleep 100 & wait"]))
    harness.wait_for(lambda: ctrlib.waiting_shim(e, cid), what="the shim waiting for the start")
    shim = ctrlib.waiting_shim(e, cid)
    os.kill(shim, 9)
    harness.wait_for(lambda: not ctrlib.pid_alive(shim), what="the killed shim to die")
    e.start(cid)
    assert ctrlib.shim_pid(e, cid) != shim
    assert not os.path.exists(os.path.join(e.d.state, "c", cid, "start")), "stale start socket"
    harness.wait_for(lambda: "k-up" in e.output(pcfg, "k"), what="output")
    e.stop(cid, timeout=5)
    assert e.status(cid).status.exit_code == 0
    e.remove(cid)


def test_start_error():
    """A process the runtime cannot start: StartContainer fails with the
    runtime's words and the container is exited, 128, StartError."""
    e = ENV
    pod, pcfg = e.run_pod("starterr")
    cid = e.create(pod, pcfg, e.ctr_config("bad", ["/no/such/binary"]))
    try:
        e.start(cid)
        raise AssertionError("start of a missing binary succeeded")
    except Exception as ex:
        assert "/no/such/binary" in str(ex), ex
    st = e.status(cid).status
    assert st.state == pb().CONTAINER_EXITED and st.exit_code == 128 and st.reason == "StartError", st
    assert "/no/such/binary" in st.message, st.message
    e.remove(cid)
    ctrlib.wait_gone(os.path.join(e.d.root, "containers", cid))


def test_stop_timeout_kill():
    e = ENV
    pod, pcfg = e.run_pod("stopkill")
    cid = e.run(pod, pcfg, "trap", ["sh", "-c", "trap '' TERM; echo ready; while true; do sleep 1; done"])
    harness.poll(lambda: "ready" in e.output(pcfg, "trap"))
    e.stop(cid, timeout=1)
    st = e.status(cid).status
    assert st.state == pb().CONTAINER_EXITED and st.exit_code == 137, (st.state, st.exit_code)


def test_command_args_env_workdir_user():
    e = ENV
    pod, pcfg = e.run_pod("rules")
    # Image: entrypoint ["sh","-c"], cmd ["echo image-cmd"], workdir /work, user alice.
    cid = e.run(pod, pcfg, "img", None, image="test/rules")
    e.wait_state(cid, pb().CONTAINER_EXITED)
    assert e.output(pcfg, "img") == "image-cmd\n", e.output(pcfg, "img")
    # args replace the image cmd; the entrypoint stays.
    cid = e.run(pod, pcfg, "args", None, image="test/rules",
                args=["echo $IMGVAR $MINE $(pwd) $(id -u):$(id -g) $(id -G)"], env={"MINE": "cri", "IMGVAR": "over"})
    st = e.wait_state(cid, pb().CONTAINER_EXITED)
    assert st.exit_code == 0 and st.reason == "Completed", st
    assert e.output(pcfg, "args") == "over cri /work 1000:1000 1000 10\n", e.output(pcfg, "args")
    # command replaces both; run_as_user + run_as_group + supplemental groups; working_dir.
    cfg = e.ctr_config("cmd", ["sh", "-c", "echo $(id -u):$(id -g):$(id -G) $(pwd)"], image="test/rules",
                       working_dir="/tmp")
    sc = cfg.linux.security_context
    sc.run_as_user.value = 4242
    sc.run_as_group.value = 77
    sc.supplemental_groups.extend([500])
    cid = e.create(pod, pcfg, cfg)
    e.start(cid)
    e.wait_state(cid, pb().CONTAINER_EXITED)
    assert e.output(pcfg, "cmd") == "4242:77:77 500 /tmp\n", e.output(pcfg, "cmd")
    st = e.status(cid).status
    assert st.user.linux.uid == 4242 and st.user.linux.gid == 77
    # run_as_username
    cfg = e.ctr_config("uname", ["sh", "-c", "id -u"], image="test/busybox")
    cfg.linux.security_context.run_as_username = "alice"
    cid = e.create(pod, pcfg, cfg)
    e.start(cid)
    e.wait_state(cid, pb().CONTAINER_EXITED)
    assert e.output(pcfg, "uname") == "1000\n"
    # Unknown user: a clear error.
    cfg = e.ctr_config("nouser", ["true"])
    cfg.linux.security_context.run_as_username = "mallory"
    try:
        e.create(pod, pcfg, cfg)
        raise AssertionError("unknown user accepted")
    except Exception as ex:
        assert "mallory" in str(ex), ex
    # Exit code and reason.
    cid = e.run(pod, pcfg, "fail", ["sh", "-c", "exit 3"])
    st = e.wait_state(cid, pb().CONTAINER_EXITED)
    assert st.exit_code == 3 and st.reason == "Error"


def test_mounts_readonly_termination():
    e = ENV
    pod, pcfg = e.run_pod("mounts")
    host = os.path.join(e.d.dir, "vol")
    os.makedirs(host)
    with open(os.path.join(host, "f"), "w") as f:
        f.write("from-host")
    term = os.path.join(e.d.dir, "termlog")
    open(term, "w").close()
    cfg = e.ctr_config("m", ["sh", "-c",
                             "cat /data/f; echo; echo x > /ro/g 2>/dev/null && echo ro-writable; "
                             "echo made > /data/new; cat /etc/hostname; "
                             "touch /rootfile 2>/dev/null && echo root-writable; "
                             "echo bye-message > /dev/termination-log; exit 2"],
                       annotations={"io.kubernetes.container.terminationMessagePath": "/dev/termination-log"})
    m = cfg.mounts.add()
    m.container_path, m.host_path = "/data", host
    m = cfg.mounts.add()
    m.container_path, m.host_path, m.readonly = "/ro", host, True
    m = cfg.mounts.add()
    m.container_path, m.host_path = "/dev/termination-log", term
    cfg.linux.security_context.readonly_rootfs = True
    cid = e.create(pod, pcfg, cfg)
    e.start(cid)
    st = e.wait_state(cid, pb().CONTAINER_EXITED)
    out = e.output(pcfg, "m")
    assert out.startswith("from-host\n"), out
    assert "ro-writable" not in out and "root-writable" not in out, out
    import socket
    assert socket.gethostname() + "\n" in out, out   # host network pod: the node's hostname
    with open(os.path.join(host, "new")) as f:
        assert f.read() == "made\n"
    assert st.exit_code == 2 and st.message == "bye-message\n", (st.exit_code, st.message)
    assert [x.container_path for x in st.mounts] == ["/data", "/ro", "/dev/termination-log"]


def test_capabilities_privileged():
    e = ENV
    pod, pcfg = e.run_pod("caps")
    cid = e.run(pod, pcfg, "dflt", ["sh", "-c", "grep CapEff /proc/self/status"])
    e.wait_state(cid, pb().CONTAINER_EXITED)
    eff = int(e.output(pcfg, "dflt").split()[1], 16)
    assert eff & (1 << 0) and eff & (1 << 5), hex(eff)         # CHOWN, KILL
    assert not eff & (1 << 21) and not eff & (1 << 12), hex(eff)  # SYS_ADMIN, NET_ADMIN
    cfg = e.ctr_config("add", ["sh", "-c", "grep CapEff /proc/self/status"])
    cfg.linux.security_context.capabilities.add_capabilities.extend(["NET_ADMIN"])
    cfg.linux.security_context.capabilities.drop_capabilities.extend(["KILL"])
    cid = e.create(pod, pcfg, cfg)
    e.start(cid)
    e.wait_state(cid, pb().CONTAINER_EXITED)
    eff = int(e.output(pcfg, "add").split()[1], 16)
    assert eff & (1 << 12) and not eff & (1 << 5), hex(eff)
    cfg = e.ctr_config("none", ["sh", "-c", "grep CapEff /proc/self/status"])
    cfg.linux.security_context.capabilities.drop_capabilities.extend(["ALL"])
    cid = e.create(pod, pcfg, cfg)
    e.start(cid)
    e.wait_state(cid, pb().CONTAINER_EXITED)
    assert int(e.output(pcfg, "none").split()[1], 16) == 0
    # Privileged is refused in a pod that is not.
    cfg = e.ctr_config("priv", ["true"])
    cfg.linux.security_context.privileged = True
    try:
        e.create(pod, pcfg, cfg)
        raise AssertionError("privileged accepted")
    except Exception as ex:
        assert "privileged" in str(ex), ex
    # Seccomp: filter mode with RuntimeDefault, none with Unconfined.
    for name, prof, want in (("seccomp-on", pb().SecurityProfile.RuntimeDefault, "2"),
                             ("seccomp-off", pb().SecurityProfile.Unconfined, "0")):
        cfg = e.ctr_config(name, ["sh", "-c", "grep Seccomp: /proc/self/status"])
        cfg.linux.security_context.seccomp.profile_type = prof
        cid = e.create(pod, pcfg, cfg)
        e.start(cid)
        e.wait_state(cid, pb().CONTAINER_EXITED)
        assert e.output(pcfg, name).split()[1] == want, e.output(pcfg, name)


def test_oom_killed():
    e = ENV
    pod, pcfg = e.run_pod("oom")
    cfg = e.ctr_config("hog", ["sh", "-c", "x=$(yes | head -c 100000000); echo survived"])
    cfg.linux.resources.memory_limit_in_bytes = 16 << 20
    cid = e.create(pod, pcfg, cfg)
    e.start(cid)
    st = e.wait_state(cid, pb().CONTAINER_EXITED, timeout=60)
    assert st.reason == "OOMKilled" and st.exit_code == 137, (st.reason, st.exit_code)


def test_exec_sync():
    e = ENV
    pod, pcfg = e.run_pod("exec")
    cid = e.run(pod, pcfg, "srv", ["sleep", "1000"])
    r = e.exec_sync(cid, ["sh", "-c", "echo out; echo err >&2; exit 7"])
    assert r.stdout == b"out\n" and r.stderr == b"err\n" and r.exit_code == 7, r
    r = e.exec_sync(cid, ["cat", "/proc/1/cmdline"])
    assert r.stdout.startswith(b"sleep"), r
    # Timeout, even with a background child holding the pipes.
    t0 = time.time()
    try:
        e.exec_sync(cid, ["sh", "-c", "sleep 100 & sleep 100"], timeout=1, rpc_timeout=30)
        raise AssertionError("timeout not enforced")
    except Exception as ex:
        assert "DEADLINE_EXCEEDED" in str(ex) or "timed out" in str(ex), ex
    assert time.time() - t0 < 20
    # Large output is capped with a marker.
    import grpc
    ch = grpc.insecure_channel("unix://" + e.d.sock, options=[("grpc.max_receive_message_length", 64 << 20)])
    fn = ch.unary_unary("/runtime.v1.RuntimeService/ExecSync", request_serializer=lambda m: m.SerializeToString(),
                        response_deserializer=pb().ExecSyncResponse.FromString)
    r = fn(pb().ExecSyncRequest(container_id=cid, cmd=["sh", "-c", "head -c 8000000 /dev/zero"]), timeout=60)
    ch.close()
    assert len(r.stdout) < 8000000 and r.stdout.endswith(b"[cricd: output truncated]\n"), len(r.stdout)
    # Not running: an error.
    e.stop(cid, timeout=1)
    try:
        e.exec_sync(cid, ["true"])
        raise AssertionError("exec in exited container")
    except Exception as ex:
        assert "not running" in str(ex), ex


def test_unknown_image_and_pod():
    e = ENV
    pod, pcfg = e.run_pod("bad")
    try:
        e.create(pod, pcfg, e.ctr_config("x", ["true"], image="nope/nothing"))
        raise AssertionError("unknown image accepted")
    except Exception as ex:
        assert "nope/nothing" in str(ex), ex
    try:
        e.create("0" * 64, pcfg, e.ctr_config("x", ["true"]))
        raise AssertionError("unknown pod accepted")
    except Exception as ex:
        assert "not found" in str(ex), ex


def test_pod_stop_remove_takes_containers():
    e = ENV
    pod, pcfg = e.run_pod("podrm")
    cid = e.run(pod, pcfg, "a", ["sh", "-c", "trap 'exit 0' TERM; sleep 1000 & wait"])
    e.cl.runtime("StopPodSandbox", pb().StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    assert e.status(cid).status.state == pb().CONTAINER_EXITED
    e.cl.runtime("RemovePodSandbox", pb().RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    r = pb().ListContainersRequest()
    r.filter.id = cid
    assert len(e.cl.runtime("ListContainers", r).containers) == 0


def test_update_resources_reopen_log():
    e = ENV
    import json
    pod, pcfg = e.run_pod("upd")
    cfg = e.ctr_config("u", ["sh", "-c", "trap 'exit 0' TERM; while true; do echo tick; sleep 0.1; done & wait"])
    cfg.linux.resources.memory_limit_in_bytes = 64 << 20
    cid = e.create(pod, pcfg, cfg)
    e.start(cid)
    info = json.loads(e.status(cid, verbose=True).info["info"])
    cg = info["runtimeSpec"]["linux"]["cgroupsPath"]
    limit = "/sys/fs/cgroup/memory" + cg + "/memory.limit_in_bytes"
    assert os.path.exists(limit) or not os.path.isdir("/sys/fs/cgroup/memory/"), limit
    if os.path.exists(limit):
        with open(limit) as f:
            assert int(f.read()) == 64 << 20
    req = pb().UpdateContainerResourcesRequest(container_id=cid)
    req.linux.memory_limit_in_bytes = 96 << 20
    req.linux.cpu_shares = 256
    e.cl.runtime("UpdateContainerResources", req)
    if os.path.exists(limit):
        with open(limit) as f:
            assert int(f.read()) == 96 << 20
    st = e.status(cid).status
    assert st.resources.linux.memory_limit_in_bytes == 96 << 20 and st.resources.linux.cpu_shares == 256
    # kubelet's rotation: rename, then ReopenContainerLog; output goes on in a new file.
    log = st.log_path
    os.rename(log, log + ".1")
    e.cl.runtime("ReopenContainerLog", pb().ReopenContainerLogRequest(container_id=cid))
    harness.poll(lambda: os.path.exists(log) and b"tick" in open(log, "rb").read())
    assert b"tick" in open(log, "rb").read()
    e.stop(cid, timeout=5)
    try:
        e.cl.runtime("ReopenContainerLog", pb().ReopenContainerLogRequest(container_id=cid))
        raise AssertionError("reopen of a stopped container")
    except Exception as ex:
        assert "not running" in str(ex) and "FAILED_PRECONDITION" in str(ex), ex


def test_image_removed_under_container():
    e = ENV
    pod, pcfg = e.run_pod("imgrm")
    cid = e.run(pod, pcfg, "solo", ["sleep", "1000"], image="test/solo")
    layers = os.path.join(e.d.root, "images", "layers")
    before = set(os.listdir(layers))
    e.cl.image("RemoveImage", pb().RemoveImageRequest(image=pb().ImageSpec(image="test/solo")))
    # The container's layer stays while the container exists.
    assert set(os.listdir(layers)) == before
    assert e.exec_sync(cid, ["cat", "/etc/passwd"]).exit_code == 0
    e.remove(cid)
    harness.poll(lambda: len(os.listdir(layers)) < len(before))
    assert len(os.listdir(layers)) == len(before) - 1, (before, os.listdir(layers))


def main():
    global ENV
    images = {"test/busybox": None, "test/solo": {"_layer": "solo"},
              "test/rules": {"Entrypoint": ["sh", "-c"], "Cmd": ["echo image-cmd"], "WorkingDir": "/work",
                             "User": "alice"}}
    with ctrlib.Env(images=images) as e:
        ENV = e
        harness.run_tests([test_lifecycle, test_created_never_started, test_waiting_shim_killed, test_start_error, test_stop_timeout_kill,
                           test_command_args_env_workdir_user, test_mounts_readonly_termination,
                           test_capabilities_privileged, test_oom_killed, test_exec_sync,
                           test_update_resources_reopen_log, test_unknown_image_and_pod,
                           test_image_removed_under_container, test_pod_stop_remove_takes_containers])


if __name__ == "__main__":
    main()
