#!/usr/bin/python3
"""Regenerates the seed corpus of t/fuzz_grpc_conn: real grpcio client traffic
(client -> server bytes of one connection) recorded through a unix-socket
proxy in front of t/grpc_testsrv, plus truncated and garbage variants.

usage: CRIC_BUILDDIR=... CRIC_SRCDIR=... gen-grpc-conn-seeds.py OUTDIR"""
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "py"))
import harness  # noqa: E402
import grpc  # noqa: E402

pb = harness.pb2()
out = sys.argv[1]
tmp = tempfile.mkdtemp()
real = os.path.join(tmp, "real.sock")
front = os.path.join(tmp, "front.sock")
srv = subprocess.Popen([os.path.join(harness.BUILDDIR, "t", "grpc_testsrv"), real], stdout=subprocess.DEVNULL)
while not os.path.exists(real):
    time.sleep(0.01)
recorded = []


def pump(a, b, rec):
    while True:
        d = a.recv(65536)
        if not d:
            break
        if rec is not None:
            rec.append(d)
        b.sendall(d)
    try:
        b.shutdown(socket.SHUT_WR)
    except OSError:
        pass


def proxy():
    ls = socket.socket(socket.AF_UNIX)
    ls.bind(front)
    ls.listen()
    while True:
        c, _ = ls.accept()
        s = socket.socket(socket.AF_UNIX)
        s.connect(real)
        rec = []
        recorded.append(rec)
        threading.Thread(target=pump, args=(c, s, rec), daemon=True).start()
        threading.Thread(target=pump, args=(s, c, None), daemon=True).start()


threading.Thread(target=proxy, daemon=True).start()
while not os.path.exists(front):
    time.sleep(0.01)


def ser(m):
    return m if isinstance(m, bytes) else m.SerializeToString()


def session(name, fn, **opts):
    n = len(recorded)
    ch = grpc.insecure_channel("unix://" + front, options=list(opts.items()) +
                               [("grpc.use_local_subchannel_pool", 1)])
    try:
        fn(ch)
    except grpc.RpcError:
        pass
    ch.close()
    time.sleep(0.2)
    data = b"".join(b"".join(r) for r in recorded[n:])
    with open(os.path.join(out, name), "wb") as f:
        f.write(data)
    return data


def uu(ch, path, req, **kw):
    return ch.unary_unary(path, request_serializer=ser)(req, **kw)


v = session("version", lambda ch: uu(ch, "/runtime.v1.RuntimeService/Version", pb.VersionRequest(version="v")))
session("unknown-method", lambda ch: uu(ch, "/runtime.v1.RuntimeService/Nope", pb.VersionRequest()))
session("deadline", lambda ch: uu(ch, "/cric.test/Slow", pb.VersionRequest(version="500"), timeout=0.05))
session("stream", lambda ch: list(ch.unary_stream("/runtime.v1.RuntimeService/GetContainerEvents",
                                                  request_serializer=ser)(pb.GetEventsRequest())))
session("gzip", lambda ch: uu(ch, "/runtime.v1.RuntimeService/Version", pb.VersionRequest(version="z" * 100)),
        **{"grpc.default_compression_algorithm": 2})
session("bad-message", lambda ch: uu(ch, "/runtime.v1.RuntimeService/Version", b"\x0a\x05ab"))


def burst(ch):
    f = ch.unary_unary("/runtime.v1.RuntimeService/Version", request_serializer=ser)
    futs = [f.future(pb.VersionRequest(version=str(i))) for i in range(8)]
    for x in futs:
        x.result()


session("burst", burst)
with open(os.path.join(out, "version-truncated"), "wb") as f:
    f.write(v[: len(v) * 2 // 3])
with open(os.path.join(out, "http1"), "wb") as f:
    f.write(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
with open(os.path.join(out, "preface-garbage"), "wb") as f:
    f.write(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + bytes(range(256)))
srv.terminate()
srv.wait()
import shutil
shutil.rmtree(tmp, ignore_errors=True)
