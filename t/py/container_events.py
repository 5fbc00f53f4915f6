"""GetContainerEvents: the feed kubelet's evented PLEG reads.  Every
lifecycle step of a real runc container arrives once, in order, with the
pod's status and the statuses of the pod's containers; several feeds at
once; a feed whose client goes away is dropped; SIGTERM ends feeds at once
instead of holding the shutdown for its grace period."""
import os
import queue
import signal
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import grpc  # noqa: E402
import ctrlib  # noqa: E402
import harness  # noqa: E402
from harness import wait_for  # noqa: E402

ENV = None


def pb():
    return harness.pb2()


class Feed:
    """One GetContainerEvents stream read by a thread into a queue."""

    def __init__(self, cl):
        self.q = queue.Queue()
        self.end = None
        self.it = cl.call("RuntimeService", "GetContainerEvents", pb().GetEventsRequest(), timeout=None,
                          stream=True)
        self.t = threading.Thread(target=self._read, daemon=True)
        self.t.start()

    def _read(self):
        try:
            for ev in self.it:
                self.q.put(ev)
        except grpc.RpcError as e:
            self.end = e

    def next_for(self, cid, timeout=30):
        deadline = time.time() + timeout
        while True:
            ev = self.q.get(timeout=max(0.01, deadline - time.time()))
            if ev.container_id == cid:
                return ev

    def cancel(self):
        self.it.cancel()
        self.t.join(10)


def state_of(ev, cid):
    for st in ev.containers_statuses:
        if st.id == cid:
            return st.state
    return None


def test_lifecycle_events():
    e = ENV
    P = pb()
    pod, pcfg = e.run_pod("ev")
    feeds = [Feed(e.cl), Feed(e.cl)]
    time.sleep(0.3)  # the feeds are open before the first event
    other = e.run(pod, pcfg, "other", ["sleep", "100"])
    cid = e.create(pod, pcfg, e.ctr_config("c", ["sh", "-c", "trap 'exit 3' TERM; echo up; sleep 100 & wait"]))
    e.start(cid)
    wait_for(lambda: "up" in e.output(pcfg, "c"), what="trap set")  # PID 1 ignores TERM until then
    e.stop(cid, timeout=10)
    e.remove(cid)
    want = [(P.CONTAINER_CREATED_EVENT, P.CONTAINER_CREATED), (P.CONTAINER_STARTED_EVENT, P.CONTAINER_RUNNING),
            (P.CONTAINER_STOPPED_EVENT, P.CONTAINER_EXITED), (P.CONTAINER_DELETED_EVENT, None)]
    for f in feeds:
        last = 0
        for etype, state in want:
            ev = f.next_for(cid)
            assert ev.container_event_type == etype, (ev.container_event_type, etype)
            assert ev.created_at >= last > 0 or last == 0, ev.created_at
            last = ev.created_at
            assert ev.pod_sandbox_status.id == pod and ev.pod_sandbox_status.metadata.name == "ev", \
                ev.pod_sandbox_status
            assert ev.pod_sandbox_status.state == P.SANDBOX_READY
            assert state_of(ev, cid) == state, (etype, list(ev.containers_statuses))
            assert state_of(ev, other) == P.CONTAINER_RUNNING, list(ev.containers_statuses)
            if etype == P.CONTAINER_STOPPED_EVENT:
                st = [s for s in ev.containers_statuses if s.id == cid][0]
                assert st.exit_code == 3 and st.reason == "Error", st
    # A cancelled feed is dropped; the other one goes on.
    feeds[0].cancel()
    e.stop(other, timeout=1)
    ev = feeds[1].next_for(other)
    assert ev.container_event_type == P.CONTAINER_STOPPED_EVENT
    e.remove(other)
    assert feeds[1].next_for(other).container_event_type == P.CONTAINER_DELETED_EVENT
    feeds[1].cancel()


def test_pod_events():
    """The pod's own steps arrive under its id, as containerd sends them."""
    e = ENV
    P = pb()
    f = Feed(e.cl)
    time.sleep(0.3)
    pod, pcfg = e.run_pod("evpod")
    got = [f.next_for(pod), f.next_for(pod)]
    assert [g.container_event_type for g in got] == [P.CONTAINER_CREATED_EVENT, P.CONTAINER_STARTED_EVENT], got
    assert got[1].pod_sandbox_status.state == P.SANDBOX_READY and got[1].pod_sandbox_status.id == pod
    e.cl.runtime("StopPodSandbox", P.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    ev = f.next_for(pod)
    assert ev.container_event_type == P.CONTAINER_STOPPED_EVENT, ev
    assert ev.pod_sandbox_status.state == P.SANDBOX_NOTREADY, ev.pod_sandbox_status
    e.cl.runtime("StopPodSandbox", P.StopPodSandboxRequest(pod_sandbox_id=pod), timeout=60)  # no second event
    e.cl.runtime("RemovePodSandbox", P.RemovePodSandboxRequest(pod_sandbox_id=pod), timeout=60)
    ev = f.next_for(pod)
    assert ev.container_event_type == P.CONTAINER_DELETED_EVENT, ev
    f.cancel()


def test_sigterm_ends_feeds():
    e = ENV
    f = Feed(e.cl)
    time.sleep(0.3)
    t0 = time.time()
    e.cl.close()
    rc = e.d.stop(sig=signal.SIGTERM, timeout=60)
    took = time.time() - t0
    assert rc == 0, "cricd exited %s" % rc
    # The grace period is 10 s: a feed left open would hold the stop that long.
    assert took < 8, "shutdown took %.1f s with an event feed open" % took
    f.t.join(10)
    assert f.end is not None and f.end.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED), f.end
    if os.path.exists(e.d.sock):
        os.unlink(e.d.sock)
    e.d.start()
    e.cl = e.d.client()


def main():
    global ENV
    ctrlib.need_env()
    with ctrlib.Env() as e:
        ENV = e
        harness.run_tests([test_lifecycle_events, test_pod_events, test_sigterm_ends_feeds])


if __name__ == "__main__":
    main()
