"""Containers across cricd kill -9 (running, exited meanwhile, mid-stop,
mid-create), the crun handler where it works, 50 containers at once."""
import concurrent.futures
import os
import signal
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402
import ctrlib  # noqa: E402
from harness import wait_for  # noqa: E402

ctrlib.need_env()
ENV = None


def pb():
    return harness.pb2()


def test_restart_running_and_exited():
    e = ENV
    pod, pcfg = e.run_pod("rec")
    # Prints a counter; the log must have every number after the restart.
    ticker = e.run(pod, pcfg, "ticker", ["sh", "-c", "trap 'exit 0' TERM; i=0; while true; do echo $i; "
                                                     "i=$((i+1)); sleep 0.05; done"])
    quick = e.run(pod, pcfg, "quick", ["sh", "-c", "read x; exit 5"], stdin=True)
    late = e.run(pod, pcfg, "late", ["sh", "-c", "sleep 1; exit 7"])
    wait_for(lambda: "5\n" in e.output(pcfg, "ticker"), what="ticker output")
    pid_before = e.status(ticker, verbose=True).info["info"]
    e.restart()
    # "late" exits while cricd is down.
    time.sleep(1.5)
    e.restart()
    st = e.status(ticker).status
    assert st.state == pb().CONTAINER_RUNNING, st
    assert e.status(quick).status.state == pb().CONTAINER_RUNNING
    st = e.wait_state(late, pb().CONTAINER_EXITED, timeout=10)
    assert st.exit_code == 7 and st.reason == "Error", st
    import json
    assert json.loads(pid_before)["pid"] == json.loads(e.status(ticker, verbose=True).info["info"])["pid"]
    n_before = len(e.output(pcfg, "ticker").split())
    wait_for(lambda: len(e.output(pcfg, "ticker").split()) > n_before + 5, what="more ticker output")
    e.stop(ticker, timeout=5)
    nums = [int(x) for x in e.output(pcfg, "ticker").split()]
    assert nums == list(range(len(nums))), "log lost lines across restarts"
    assert e.status(ticker).status.exit_code == 0
    e.stop(quick, timeout=1)
    assert e.status(quick).status.exit_code == 137


def test_kill_mid_stop():
    e = ENV
    pod, pcfg = e.run_pod("midstop")
    cid = e.run(pod, pcfg, "stubborn", ["sh", "-c", "trap '' TERM; echo up; while true; do sleep 0.2; done"])
    wait_for(lambda: "up" in e.output(pcfg, "stubborn"), what="output")
    errs = []

    def stopper():
        try:
            e.stop(cid, timeout=30)
        except Exception as ex:
            errs.append(ex)
    t = threading.Thread(target=stopper)
    t.start()
    time.sleep(0.5)
    e.restart()
    t.join()
    assert errs, "stop answered although cricd was killed"
    # The stop died with cricd; the container ignored SIGTERM and still runs.
    assert e.status(cid).status.state == pb().CONTAINER_RUNNING
    e.stop(cid, timeout=1)
    st = e.status(cid).status
    assert st.state == pb().CONTAINER_EXITED and st.exit_code == 137, st
    e.remove(cid)


def test_sigterm_during_stop():
    """A clean shutdown with a stop pending: cricd exits 0, the container
    runs on and is found again."""
    e = ENV
    pod, pcfg = e.run_pod("termstop")
    cid = e.run(pod, pcfg, "stubborn2", ["sh", "-c", "trap '' TERM; echo up; while true; do sleep 0.2; done"])
    wait_for(lambda: "up" in e.output(pcfg, "stubborn2"), what="output")
    t = threading.Thread(target=lambda: _try(lambda: e.stop(cid, timeout=60)))
    t.start()
    time.sleep(0.5)
    e.cl.close()
    rc = e.d.stop(sig=signal.SIGTERM, timeout=60)
    t.join()
    assert rc == 0, "cricd exited %s" % rc
    log = e.d.logtext()
    assert "Sanitizer" not in log, log[-3000:]
    if os.path.exists(e.d.sock):
        os.unlink(e.d.sock)
    e.d.start()
    e.cl = e.d.client()
    assert e.status(cid).status.state == pb().CONTAINER_RUNNING
    e.stop(cid, timeout=1)
    assert e.status(cid).status.exit_code == 137


def test_sigterm_right_after_remove():
    """RemoveContainer answers before its rootfs is deleted on the thread
    pool; a shutdown right then must not touch the closed image store."""
    e = ENV
    pod, pcfg = e.run_pod("termrm")
    # Thousands of files in the upper dirs keep the removals busy for a while.
    cids = [e.run(pod, pcfg, "gone%d" % i, ["sh", "-c", "mkdir /many && cd /many && seq 6000 | xargs touch "
                                             "&& echo made && sleep 100"]) for i in range(3)]
    for i in range(3):
        wait_for(lambda: "made" in e.output(pcfg, "gone%d" % i), what="files made")
    for cid in cids:
        e.remove(cid)
    e.cl.close()
    rc = e.d.stop(sig=signal.SIGTERM, timeout=60)
    log = e.d.logtext()
    assert rc == 0, "cricd exited %s: %s" % (rc, log[-3000:])
    assert "Sanitizer" not in log, log[-3000:]
    if os.path.exists(e.d.sock):
        os.unlink(e.d.sock)
    e.d.start()
    e.cl = e.d.client()
    left = [c.id for c in e.cl.runtime("ListContainers").containers]
    assert not set(cids) & set(left), left


def _try(fn):
    try:
        fn()
    except Exception:
        pass


def test_start_raced_crash():
    """cricd killed after the runtime started the container but before it
    recorded "running" (the "slowstart" runtime lingers after `run`)."""
    e = ENV
    pod, pcfg = e.run_pod("midstart", runtime_handler="slowstart")
    cid = e.create(pod, pcfg, e.ctr_config("s", ["sh", "-c", "trap 'exit 0' TERM; echo began; sleep 100 & wait"]))
    assert e.status(cid).status.state == pb().CONTAINER_CREATED
    t = threading.Thread(target=lambda: _try(lambda: e.start(cid)))
    t.start()
    wait_for(lambda: "began" in e.output(pcfg, "s") if os.path.exists(
        os.path.join(pcfg.log_directory, "s.log")) else False, what="output")
    e.restart()
    t.join()
    wait_for(lambda: e.status(cid).status.state == pb().CONTAINER_RUNNING, what="running after recovery")
    e.stop(cid, timeout=5)
    assert e.status(cid).status.exit_code == 0


def test_stop_during_start():
    """A stop arriving while StartContainer runs waits for the start, then
    stops the container; start and stop both succeed."""
    e = ENV
    pod, pcfg = e.run_pod("stopstart", runtime_handler="slowstart")
    cid = e.create(pod, pcfg, e.ctr_config("s", ["sh", "-c", "trap 'exit 0' TERM; echo began; sleep 100 & wait"]))
    errs = []

    def starter():
        try:
            e.start(cid)
        except Exception as ex:
            errs.append(ex)
    t = threading.Thread(target=starter)
    t.start()
    time.sleep(0.5)
    e.stop(cid, timeout=5)
    t.join()
    assert not errs, errs
    st = e.status(cid).status
    assert st.state == pb().CONTAINER_EXITED and st.exit_code == 0 and st.started_at > 0, st
    e.remove(cid)


def test_kill_mid_start():
    """cricd killed while the runtime starts a container (slow, then
    failing): found again created, and removable."""
    e = ENV
    pod, pcfg = e.run_pod("midrun", runtime_handler="slow")
    cid = e.create(pod, pcfg, e.ctr_config("half", ["true"]))
    assert e.status(cid).status.state == pb().CONTAINER_CREATED
    errs = []

    def starter():
        try:
            e.start(cid)
        except Exception as ex:
            errs.append(ex)
    t = threading.Thread(target=starter)
    t.start()
    time.sleep(1)
    e.restart()
    t.join()
    assert errs
    st = e.status(cid).status
    assert st.state == pb().CONTAINER_CREATED, st
    try:
        e.start(cid)
        raise AssertionError("start while the first one still runs")
    except Exception as ex:
        assert "being started" in str(ex) or "slow" in str(ex), ex

    def shim_alive():
        try:
            with open(os.path.join(e.d.state, "c", cid, "shim.pid")) as f:
                os.kill(int(f.read()), 0)
            return True
        except (OSError, ValueError):
            return False
    # The failing runtime ends its shim; then the remove has nothing to wait for.
    wait_for(lambda: not shim_alive(), what="the shim of the failed start to exit")
    e.remove(cid)
    ctrlib.wait_gone(os.path.join(e.d.root, "containers", cid))
    with open("/proc/self/mountinfo") as f:
        assert cid not in f.read()


def test_restart_with_waiting_shims():
    """kill -9 of cricd while the shims of created containers wait for their
    start: afterwards one starts through its waiting shim, one whose shim
    was killed meanwhile gets a new one, and one is removed with its shim."""
    e = ENV
    pod, pcfg = e.run_pod("waitrec")
    cmd = "trap 'exit 0' TERM; echo %s-up; sleep 100 & wait"
    ids = [e.create(pod, pcfg, e.ctr_config(n, ["sh", "-c", cmd % n])) for n in ("a", "b", "c")]
    for cid in ids:
        wait_for(lambda: ctrlib.waiting_shim(e, cid), what="the shim waiting for the start")
    shims = [ctrlib.waiting_shim(e, cid) for cid in ids]
    a, b, c = ids
    os.kill(shims[1], signal.SIGKILL)
    e.restart()
    for cid in ids:
        assert e.status(cid).status.state == pb().CONTAINER_CREATED
    e.start(a)
    assert ctrlib.shim_pid(e, a) == shims[0]
    e.start(b)
    assert ctrlib.shim_pid(e, b) != shims[1]
    assert not os.path.exists(os.path.join(e.d.state, "c", b, "start")), "stale start socket"
    for n in ("a", "b"):
        wait_for(lambda: "%s-up" % n in e.output(pcfg, n), what="output of " + n)
    e.remove(c)
    wait_for(lambda: not ctrlib.pid_alive(shims[2]), what="the waiting shim to end after the removal")
    for cid in (a, b):
        e.stop(cid, timeout=5)
        assert e.status(cid).status.exit_code == 0


def test_kill_mid_create():
    """A record left "creating" (cricd killed mid-create, when creates still
    wrote one) or a directory without a record: both are cleaned up."""
    e = ENV
    pod, pcfg = e.run_pod("midcreate")
    a = e.create(pod, pcfg, e.ctr_config("half", ["true"]))
    b = e.create(pod, pcfg, e.ctr_config("norec", ["true"]))
    ctr_dir = os.path.join(e.d.root, "containers")
    e.cl.close()
    e.d.stop(sig=9)
    rec = os.path.join(ctr_dir, a, "record.json")
    with open(rec) as f:
        text = f.read()
    assert '"created"' in text, text
    with open(rec, "w") as f:
        f.write(text.replace('"created"', '"creating"'))
    os.unlink(os.path.join(ctr_dir, b, "record.json"))
    if os.path.exists(e.d.sock):
        os.unlink(e.d.sock)
    e.d.start()
    e.cl = e.d.client()
    for half in (a, b):
        wait_for(lambda: half not in os.listdir(ctr_dir), what="cleanup of the half-created container")
        with open("/proc/self/mountinfo") as f:
            assert half not in f.read()
    r = pb().ListContainersRequest()
    r.filter.pod_sandbox_id = pod
    assert len(e.cl.runtime("ListContainers", r).containers) == 0


def test_crun_handler():
    e = ENV
    if not os.access(ctrlib.CRUN, os.X_OK):
        raise harness.SkipTest("crun not installed")
    pod, pcfg = e.run_pod("crunpod", runtime_handler="crun")
    cid = e.create(pod, pcfg, e.ctr_config("c", ["sh", "-c", "echo via-crun"]))
    try:
        e.start(cid)  # the runtime creates the container here
    except Exception as ex:
        if "cgroup" in str(ex).lower():
            raise harness.SkipTest("crun cannot create containers on this cgroup layout: %s" % str(ex)[:200])
        raise
    st = e.wait_state(cid, pb().CONTAINER_EXITED)
    assert st.exit_code == 0 and e.output(pcfg, "c") == "via-crun\n"
    assert "crun" in e.status(cid, verbose=True).info["info"]


def test_unknown_handler():
    e = ENV
    pcfg = e.pod_config("nohandler")
    try:
        e.cl.runtime("RunPodSandbox", pb().RunPodSandboxRequest(config=pcfg, runtime_handler="kata"))
        raise AssertionError("unknown handler accepted")
    except Exception as ex:
        assert "kata" in str(ex), ex


def test_fifty_in_parallel():
    e = ENV
    pods = [e.run_pod("par%d" % i) for i in range(5)]

    def one(i):
        pod, pcfg = pods[i % 5]
        cid = e.create(pod, pcfg, e.ctr_config("c%d" % i, ["sh", "-c", "trap 'exit 0' TERM; echo n%d; "
                                                                      "sleep 100 & wait" % i]))
        e.start(cid)
        return cid
    with concurrent.futures.ThreadPoolExecutor(25) as ex:
        cids = list(ex.map(one, range(50)))
    assert len(set(cids)) == 50
    r = pb().ListContainersRequest()
    r.filter.state.state = pb().CONTAINER_RUNNING
    running = set(c.id for c in e.cl.runtime("ListContainers", r).containers)
    assert set(cids) <= running
    for i in range(50):
        pod, pcfg = pods[i % 5]
        wait_for(lambda: e.output(pcfg, "c%d" % i) == "n%d\n" % i, what="output of c%d" % i)
    with concurrent.futures.ThreadPoolExecutor(25) as ex:
        list(ex.map(lambda c: e.stop(c, timeout=10), cids))
    for c in cids:
        assert e.status(c).status.exit_code == 0
    with concurrent.futures.ThreadPoolExecutor(25) as ex:
        list(ex.map(e.remove, cids))
    left = set(c.id for c in e.cl.runtime("ListContainers").containers)
    assert not (left & set(cids))


def main():
    global ENV
    # A handler whose "run" (create + start) is slow and then fails, to catch
    # cricd mid-start; one whose "run" works but lingers after it.
    d = harness.Daemon()
    slow = os.path.join(d.dir, "slow-runtime")
    with open(slow, "w") as f:
        f.write("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = run ] && { sleep 3; exit 1; }; done\n"
                "exec %s \"$@\"\n" % ctrlib.RUNC)
    os.chmod(slow, 0o755)
    slowstart = os.path.join(d.dir, "slowstart-runtime")
    with open(slowstart, "w") as f:
        f.write("#!/bin/sh\nfor a in \"$@\"; do [ \"$a\" = run ] && { %s \"$@\"; r=$?; sleep 3; exit $r; }; done\n"
                "exec %s \"$@\"\n" % (ctrlib.RUNC, ctrlib.RUNC))
    os.chmod(slowstart, 0o755)
    env = ctrlib.Env(extra={"runtime": {"handlers": {
        "runc": {"path": ctrlib.RUNC, "root": os.path.join(d.dir, "runc")},
        "crun": {"path": ctrlib.CRUN, "root": os.path.join(d.dir, "crun")},
        "slow": {"path": slow, "root": os.path.join(d.dir, "slowroot")},
        "slowstart": {"path": slowstart, "root": os.path.join(d.dir, "runc")}}}}, daemon=d)
    with env as e:
        ENV = e
        harness.run_tests([test_restart_running_and_exited, test_kill_mid_stop, test_sigterm_during_stop,
                           test_sigterm_right_after_remove, test_start_raced_crash, test_stop_during_start, test_kill_mid_start,
                           test_restart_with_waiting_shims, test_kill_mid_create,
                           test_crun_handler, test_unknown_handler, test_fifty_in_parallel])


if __name__ == "__main__":
    main()
