#!/usr/bin/python3
"""Integration tests of the gRPC transport (src/grpc) against t/grpc_testsrv,
with grpcio as an independent client and raw sockets for misbehaving ones."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import harness  # noqa: E402

try:
    import grpc
except ImportError:
    print("SKIP: grpcio missing (use /usr/bin/python3 with python3-grpcio)")
    sys.exit(harness.SKIP)

pb = harness.pb2()
TESTSRV = os.path.join(harness.BUILDDIR, "t", "grpc_testsrv")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
SETTINGS_EMPTY = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"


class TestSrv:
    def __init__(self, args=(), sock=None):
        self.dir = tempfile.mkdtemp(prefix="cric-grpc-")
        self.sock = sock or os.path.join(self.dir, "sub", "dir", "srv.sock")
        self.log = os.path.join(self.dir, "srv.log")
        self.args = list(args)
        self.proc = None
        self.channels = []

    def start(self, wait=True):
        logf = open(self.log, "ab")
        self.proc = subprocess.Popen([TESTSRV, "--debug"] + self.args + [self.sock], stdout=logf, stderr=logf)
        logf.close()
        if wait:
            deadline = time.time() + 20
            while "listening on" not in self.logtext():
                if self.proc.poll() is not None:
                    raise RuntimeError("grpc_testsrv exited %d:\n%s" % (self.proc.returncode, self.logtext()))
                if time.time() > deadline:
                    raise RuntimeError("grpc_testsrv did not listen:\n" + self.logtext())
                time.sleep(0.01)
        return self

    def logtext(self):
        with open(self.log, errors="replace") as f:
            return f.read()

    def channel(self, **opts):
        ch = grpc.insecure_channel("unix://" + self.sock, options=list(opts.items()))
        self.channels.append(ch)
        return ch

    def stop(self, timeout=20):
        for ch in self.channels:
            ch.close()
        self.channels = []
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
                raise AssertionError("grpc_testsrv did not stop on SIGTERM")
        rc = self.proc.returncode
        self.proc = None
        return rc

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        rc = self.stop()
        text = self.logtext()
        shutil.rmtree(self.dir, ignore_errors=True)
        if exc[0] is not None:
            sys.stderr.write("--- grpc_testsrv log ---\n" + text[-10000:] + "\n")
        elif rc != 0:
            raise AssertionError("grpc_testsrv exited %r (want 0):\n%s" % (rc, text[-5000:]))
        return False


def ser(m):
    return m if isinstance(m, bytes) else m.SerializeToString()


def unary(ch, path, req, resp_cls=pb.VersionResponse, **kw):
    return ch.unary_unary(path, request_serializer=ser, response_deserializer=resp_cls.FromString)(req, **kw)


def stream(ch, path, req, **kw):
    return ch.unary_stream(path, request_serializer=ser,
                           response_deserializer=pb.ContainerEventResponse.FromString)(req, **kw)


VERSION = "/runtime.v1.RuntimeService/Version"


def version(ch, v="x", **kw):
    return unary(ch, VERSION, pb.VersionRequest(version=v), **kw)


def expect_status(code, fn, *args, **kw):
    try:
        fn(*args, **kw)
    except grpc.RpcError as e:
        assert e.code() == code, "got %s (%s), want %s" % (e.code(), e.details(), code)
        return e.details()
    raise AssertionError("call succeeded, want %s" % code)


def stats(ch):
    r = version(ch, "stats").runtime_version
    return dict(kv.split("=") for kv in r.split())


def wait_for(pred, what, timeout=20):
    harness.wait_for(pred, what, timeout, interval=0.02)


def raw_until_eof(sock_path, payload, shut_wr=False):
    """Sends payload on a raw connection; returns what the server sent until it closed."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(10)
    s.connect(sock_path)
    s.sendall(payload)
    if shut_wr:
        s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        d = s.recv(65536)
        if not d:
            break
        got += d
    s.close()
    return got


def test_unary_and_socket():
    with TestSrv() as srv:
        st = os.stat(srv.sock)
        assert oct(st.st_mode & 0o777) == oct(0o660), oct(st.st_mode)
        ch = srv.channel()
        r = version(ch, "v1alpha-echo")
        assert r.version == "v1alpha-echo" and r.runtime_name == "grpc_testsrv", r
        assert "grpc /runtime.v1.RuntimeService/Version: OK (" in srv.logtext()


def test_status_codes():
    with TestSrv() as srv:
        ch = srv.channel()
        d = expect_status(grpc.StatusCode.UNIMPLEMENTED, unary, ch, "/runtime.v1.RuntimeService/NoSuchMethod",
                          pb.VersionRequest())
        assert "NoSuchMethod" in d, d
        d = expect_status(grpc.StatusCode.NOT_FOUND, unary, ch, "/cric.test/Fail", pb.VersionRequest(version="2"))
        assert d == 'failed on purpose: \u00e9t\u00e9 100% "quoted"\nline', repr(d)
        expect_status(grpc.StatusCode.ALREADY_EXISTS, unary, ch, "/cric.test/Fail", pb.VersionRequest(version="17"))
        d = expect_status(grpc.StatusCode.NOT_FOUND, unary, ch, "/cric.test/Fail", pb.VersionRequest(version="2 long"))
        assert d == "\u00e9" * 682, (len(d), d[:20])  # 4096 bytes encoded at most
        expect_status(grpc.StatusCode.PERMISSION_DENIED, unary, ch, "/cric.test/Fail", pb.VersionRequest(version="13"))
        expect_status(grpc.StatusCode.UNKNOWN, unary, ch, "/cric.test/Fail", pb.VersionRequest(version="18"))
        # undecodable request: field 1 as a varint with a truncated body
        d = expect_status(grpc.StatusCode.INVALID_ARGUMENT, unary, ch, VERSION, b"\x0a\x05ab")
        assert "VersionRequest" in d, d
        # compressed request: rejected per the spec
        gz = srv.channel(**{"grpc.default_compression_algorithm": 2})
        expect_status(grpc.StatusCode.UNIMPLEMENTED, version, gz, "compressed")
        assert version(ch, "after").version == "after"


def test_deadline_and_cancel():
    with TestSrv() as srv:
        ch = srv.channel()
        assert version(ch, "warm").version == "warm"  # connected before the short deadline runs
        expect_status(grpc.StatusCode.DEADLINE_EXCEEDED, unary, ch, "/cric.test/Slow",
                      pb.VersionRequest(version="1500"), timeout=0.5)
        # the handler learns the call was cancelled; its late answer is dropped
        wait_for(lambda: stats(ch)["cancelled"] == "1", "the slow call to be seen cancelled")
        # a client that cancels mid-call (once the server has the call)
        fut = ch.unary_unary("/cric.test/Slow", request_serializer=ser,
                             response_deserializer=pb.VersionResponse.FromString).future(
            pb.VersionRequest(version="1000"))
        wait_for(lambda: stats(ch)["started"] == "2", "the call to reach the handler")
        fut.cancel()
        wait_for(lambda: stats(ch)["cancelled"] == "2", "the cancelled call to be seen")
        # a client process that dies mid-call
        code = ("import grpc,sys\n"
                "sys.path.insert(0,%r)\n"
                "import harness\npb=harness.pb2()\n"
                "ch=grpc.insecure_channel('unix://%s')\n"
                "f=ch.unary_unary('/cric.test/Slow',request_serializer=lambda m:m.SerializeToString())"
                ".future(pb.VersionRequest(version='1500'))\n"
                "f.result()\n" % (os.path.dirname(os.path.abspath(__file__)), srv.sock))
        child = subprocess.Popen(["/usr/bin/python3", "-c", code], stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            wait_for(lambda: stats(ch)["started"] == "3", "the child's call to reach the handler")
        finally:
            child.kill()
            child.wait()
        wait_for(lambda: stats(ch)["cancelled"] == "3", "the vanished client's call to be seen cancelled")
        # an endless stream cancelled by the client
        it = stream(ch, "/cric.test/Endless", pb.GetEventsRequest())
        got = [next(it).container_id for _ in range(3)]
        assert got == ["e0", "e1", "e2"], got
        it.cancel()
        wait_for(lambda: stats(ch)["cancelled"] == "4", "the endless stream to be cancelled")
        # a normal call completes with plenty of time left
        r = unary(ch, "/cric.test/Slow", pb.VersionRequest(version="10"), timeout=30)
        assert r.version == "slow"
        assert version(ch, "ok").version == "ok"


def test_burst():
    with TestSrv() as srv:
        ch = srv.channel()
        fn = ch.unary_unary(VERSION, request_serializer=ser, response_deserializer=pb.VersionResponse.FromString)
        futs = [fn.future(pb.VersionRequest(version="b%d" % i)) for i in range(100)]
        assert [f.result(timeout=30).version for f in futs] == ["b%d" % i for i in range(100)]
        # several channels (connections) at once, each with a burst
        chans = [srv.channel(**{"grpc.use_local_subchannel_pool": 1}) for _ in range(4)]
        futs = []
        for n, c in enumerate(chans):
            f = c.unary_unary(VERSION, request_serializer=ser, response_deserializer=pb.VersionResponse.FromString)
            futs += [(f.future(pb.VersionRequest(version="c%d-%d" % (n, i))), "c%d-%d" % (n, i)) for i in range(50)]
        for f, want in futs:
            assert f.result(timeout=30).version == want


def test_sizes_and_streaming():
    with TestSrv(["--events", "500"]) as srv:
        ch = srv.channel(**{"grpc.max_receive_message_length": -1})
        d = expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, version, ch, "x" * (5 << 20))
        assert "exceeds the limit" in d, d
        # big response: ~2 MiB, more than every flow-control window
        r = unary(ch, "/runtime.v1.ImageService/ListImages", pb.ListImagesRequest(), pb.ListImagesResponse)
        assert len(r.images) == 20000
        assert r.images[12345].id == "sha256:%064x" % 12345 and r.images[12345].size == 12345
        # a response beyond the server's max send size
        big = pb.ListImagesRequest(filter=pb.ImageFilter(image=pb.ImageSpec(image="200000")))
        d = expect_status(grpc.StatusCode.RESOURCE_EXHAUSTED, unary, ch, "/runtime.v1.ImageService/ListImages",
                          big, pb.ListImagesResponse)
        assert "response message" in d, d
        evs = list(stream(ch, "/runtime.v1.RuntimeService/GetContainerEvents", pb.GetEventsRequest()))
        assert [e.container_id for e in evs] == ["c%d" % i for i in range(500)]
        # several big responses interleaved on one connection
        fn = ch.unary_unary("/runtime.v1.ImageService/ListImages", request_serializer=ser,
                            response_deserializer=pb.ListImagesResponse.FromString)
        futs = [fn.future(pb.ListImagesRequest(filter=pb.ImageFilter(image=pb.ImageSpec(image=str(5000 + i)))))
                for i in range(8)]
        assert [len(f.result(timeout=60).images) for f in futs] == [5000 + i for i in range(8)]


def test_garbage_and_half_close():
    with TestSrv() as srv:
        ch = srv.channel()
        assert version(ch, "before").version == "before"
        for payload in [b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", os.urandom(4096), PREFACE + os.urandom(2048),
                        PREFACE + b"\x00\x00\x08\x07\x00\x00\x00\x00\x01" + b"\xff" * 8,
                        PREFACE + SETTINGS_EMPTY + b"\x00\x00\x10\x01\x05\x00\x00\x00\x01" + b"\xff" * 16]:
            raw_until_eof(srv.sock, payload)  # returns once the server hung up
            assert version(ch, "between").version == "between"
        # half-closed: preface and SETTINGS, then nothing more from the client
        raw_until_eof(srv.sock, PREFACE + SETTINGS_EMPTY, shut_wr=True)
        raw_until_eof(srv.sock, PREFACE[:10], shut_wr=True)
        assert version(ch, "after").version == "after"
        ch2 = srv.channel()
        assert version(ch2, "new").version == "new"


def test_socket_takeover():
    d = tempfile.mkdtemp(prefix="cric-grpc-sock-")
    try:
        path = os.path.join(d, "s.sock")
        # a stale socket: bound, never listening, left behind
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        s.bind(path)
        s.close()
        with TestSrv(sock=path) as srv:
            assert version(srv.channel(), "took over").version == "took over"
            # a live server on it: the second one refuses with a clear error
            other = TestSrv(sock=path)
            other.start(wait=False)
            rc = other.proc.wait(20)
            other.proc = None
            text = other.logtext()
            shutil.rmtree(other.dir, ignore_errors=True)
            assert rc != 0 and "another server is running" in text, (rc, text)
            assert version(srv.channel(), "still").version == "still"
        assert not os.path.exists(path), "socket not removed on shutdown"
        # not a socket: left alone
        with open(path, "w") as f:
            f.write("precious")
        other = TestSrv(sock=path)
        other.start(wait=False)
        rc = other.proc.wait(20)
        other.proc = None
        text = other.logtext()
        shutil.rmtree(other.dir, ignore_errors=True)
        assert rc != 0 and "not a socket" in text, (rc, text)
        assert open(path).read() == "precious"
    finally:
        shutil.rmtree(d, ignore_errors=True)


def test_graceful_shutdown():
    srv = TestSrv().start()
    try:
        ch = srv.channel()
        fut = ch.unary_unary("/cric.test/Slow", request_serializer=ser,
                             response_deserializer=pb.VersionResponse.FromString).future(
            pb.VersionRequest(version="400"))
        wait_for(lambda: "listening" in srv.logtext(), "start")
        time.sleep(0.1)  # let the call reach the server
        srv.proc.send_signal(signal.SIGTERM)
        assert fut.result(timeout=20).version == "slow"  # in flight: still answered
        rc = srv.proc.wait(20)
        assert rc == 0, srv.logtext()
        assert not os.path.exists(srv.sock)
        srv.proc = None
    finally:
        srv.stop()
        shutil.rmtree(srv.dir, ignore_errors=True)
    # a call that never ends: cut off after the grace period, still a clean exit
    srv = TestSrv().start()
    try:
        it = stream(srv.channel(), "/cric.test/Endless", pb.GetEventsRequest())
        next(it)
        srv.proc.send_signal(signal.SIGTERM)
        try:
            for _ in it:
                pass
            raise AssertionError("endless stream ended without an error")
        except grpc.RpcError as e:
            assert e.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.INTERNAL), e
        rc = srv.proc.wait(20)
        assert rc == 0, srv.logtext()
        srv.proc = None
    finally:
        srv.stop()
        shutil.rmtree(srv.dir, ignore_errors=True)


def test_max_streams():
    with TestSrv(["--max-streams", "2"]) as srv:
        ch = srv.channel()
        fn = ch.unary_unary("/cric.test/Slow", request_serializer=ser, response_deserializer=pb.VersionResponse.FromString)
        futs = [fn.future(pb.VersionRequest(version="30")) for _ in range(12)]
        assert [f.result(timeout=30).version for f in futs] == ["slow"] * 12
        assert stats(ch)["answered"] == "12"


class RawH2:
    """A hand-driven HTTP/2 client (python3-h2) to check the wire format and
    misbehave in ways grpcio never does."""

    def __init__(self, sock_path, window=None):
        import h2.config
        import h2.connection
        import h2.events
        self.ev = h2.events
        self.s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.s.settimeout(20)
        self.s.connect(sock_path)
        self.c = h2.connection.H2Connection(h2.config.H2Configuration(client_side=True, header_encoding="utf-8"))
        self.c.initiate_connection()
        if window is not None:
            self.c.update_settings({h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: window})
        self.flush()
        self.streams = {}

    def flush(self):
        self.s.sendall(self.c.data_to_send())

    def request(self, path, body=b"", headers=(), end=True, prefix=True):
        sid = self.c.get_next_available_stream_id()
        hdrs = [(":method", "POST"), (":scheme", "http"), (":path", path), (":authority", "x"),
                ("content-type", "application/grpc"), ("te", "trailers")] + list(headers)
        self.c.send_headers(sid, hdrs, end_stream=False)
        if prefix:
            body = b"\0" + len(body).to_bytes(4, "big") + body
        self.c.send_data(sid, body, end_stream=end)
        self.flush()
        self.streams[sid] = {"headers": None, "data": b"", "trailers": None, "ended": False, "reset": None}
        return sid

    def wait(self, sid, slow_ack=False):
        st = self.streams[sid]
        while not st["ended"] and st["reset"] is None:
            d = self.s.recv(65536)
            if not d:
                raise AssertionError("server closed the connection")
            for e in self.c.receive_data(d):
                x = self.streams.get(getattr(e, "stream_id", None))
                if x is None:
                    continue
                if isinstance(e, self.ev.ResponseReceived):
                    x["headers"] = dict(e.headers)
                    x["headers_ended"] = e.stream_ended is not None
                elif isinstance(e, self.ev.TrailersReceived):
                    x["trailers"] = dict(e.headers)
                elif isinstance(e, self.ev.DataReceived):
                    x["data"] += e.data
                    self.c.acknowledge_received_data(e.flow_controlled_length, e.stream_id)
                elif isinstance(e, self.ev.StreamEnded):
                    x["ended"] = True
                elif isinstance(e, self.ev.StreamReset):
                    x["reset"] = e.error_code
            self.flush()
        return st

    def reset(self, sid):
        self.c.reset_stream(sid, 8)  # CANCEL
        self.flush()

    def close(self):
        self.s.close()


def need_h2():
    try:
        import h2.connection  # noqa: F401
    except ImportError:
        raise harness.SkipTest("python3-h2 missing")


def status_of(st):
    h = st["trailers"] if st["trailers"] is not None else st["headers"]
    return int(h["grpc-status"]), h.get("grpc-message")


def test_wire_format():
    need_h2()
    import h2.settings  # noqa: F401
    with TestSrv() as srv:
        r = RawH2(srv.sock)
        # a normal answer: HEADERS, DATA, trailers
        st = r.wait(r.request(VERSION, pb.VersionRequest(version="wire").SerializeToString()))
        assert st["headers"][":status"] == "200" and st["headers"]["content-type"] == "application/grpc", st
        assert "grpc-status" not in st["headers"] and not st["headers_ended"], st
        assert st["trailers"]["grpc-status"] == "0", st
        assert st["data"][0] == 0 and int.from_bytes(st["data"][1:5], "big") == len(st["data"]) - 5
        assert pb.VersionResponse.FromString(st["data"][5:]).version == "wire"
        # Trailers-Only: one HEADERS frame with END_STREAM carrying the status
        st = r.wait(r.request("/x.Y/Z", b""))
        assert st["headers_ended"] and st["trailers"] is None and st["data"] == b"", st
        assert st["headers"][":status"] == "200" and st["headers"]["content-type"] == "application/grpc"
        assert status_of(st) == (12, "unknown method /x.Y/Z"), st
        # percent-encoded grpc-message
        st = r.wait(r.request("/cric.test/Fail", pb.VersionRequest(version="2").SerializeToString()))
        assert status_of(st) == (5, "failed on purpose: %C3%A9t%C3%A9 100%25 \"quoted\"%0Aline"), st
        # unsupported encoding, compressed flag
        st = r.wait(r.request(VERSION, b"", headers=[("grpc-encoding", "gzip")]))
        assert status_of(st)[0] == 12 and st["headers"]["grpc-accept-encoding"] == "identity", st
        st = r.wait(r.request(VERSION, b"\x01\0\0\0\x02\x0a\x00", prefix=False))
        assert status_of(st)[0] == 12, st
        # malformed timeout, truncated message, two messages, missing message
        st = r.wait(r.request(VERSION, b"", headers=[("grpc-timeout", "10x")]))
        assert status_of(st)[0] == 3, st
        st = r.wait(r.request(VERSION, b"\0\0\0\0\x09\x0a", prefix=False))
        assert status_of(st) == (3, "truncated request message"), st
        st = r.wait(r.request(VERSION, b"\0\0\0\0\0\0\0\0\0\0", prefix=False))
        assert status_of(st) == (3, "more than one request message for a unary method"), st
        st = r.wait(r.request(VERSION, b"", prefix=False))
        assert status_of(st) == (3, "missing request message"), st
        # a huge header resets just that stream
        sid = r.request(VERSION, b"", headers=[("x-big", "a" * 70000)])
        st = r.wait(sid)
        assert st["reset"] is not None and st["headers"] is None, st
        # server streaming on the wire: HEADERS, DATA..., trailers
        st = r.wait(r.request("/runtime.v1.RuntimeService/GetContainerEvents", b""))
        assert st["trailers"]["grpc-status"] == "0" and st["data"].count(b"\0\0\0\0") >= 100, st["trailers"]
        # the connection survived all of that
        st = r.wait(r.request(VERSION, pb.VersionRequest(version="end").SerializeToString()))
        assert status_of(st)[0] == 0
        r.close()


def test_flow_control_and_rst():
    need_h2()
    import h2.settings  # noqa: F401
    with TestSrv() as srv:
        # a tiny window: the 2 MiB answer must come in window-sized pieces
        r = RawH2(srv.sock, window=1024)
        st = r.wait(r.request("/runtime.v1.ImageService/ListImages", b""))
        assert st["trailers"]["grpc-status"] == "0", st["trailers"]
        assert len(pb.ListImagesResponse.FromString(st["data"][5:]).images) == 20000
        # RST_STREAM mid-call: the handler sees the call cancelled; the connection lives on
        ch = srv.channel()
        before = int(stats(ch)["cancelled"])
        sid = r.request("/cric.test/Slow", pb.VersionRequest(version="200").SerializeToString())
        r.reset(sid)
        wait_for(lambda: int(stats(ch)["cancelled"]) == before + 1, "the reset call to be seen cancelled")
        sid = r.request(VERSION, pb.VersionRequest(version="after-rst").SerializeToString())
        assert status_of(r.wait(sid))[0] == 0
        # a partial request on a stream the client abandons, then the client leaves
        r.request(VERSION, b"\0\0\0\0\x50\x0a", prefix=False, end=False)
        r.close()
        assert version(ch, "fine").version == "fine"


if __name__ == "__main__":
    if not os.path.exists(TESTSRV):
        print("SKIP: %s not built" % TESTSRV)
        sys.exit(harness.SKIP)
    harness.run_tests([test_unary_and_socket, test_status_codes, test_deadline_and_cancel, test_burst,
                       test_sizes_and_streaming, test_garbage_and_half_close, test_socket_takeover,
                       test_graceful_shutdown, test_max_streams, test_wire_format, test_flow_control_and_rst])
