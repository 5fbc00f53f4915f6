"""Test fixture: a real docker-registry on 127.0.0.1 and images built from the
Debian busybox binary, pushed through the registry HTTP API.

Quick use (other modules' tests):

    import cricreg
    reg = cricreg.Registry().start()        # plain HTTP, no auth
    ref = reg.push_busybox("busybox:latest") # -> "127.0.0.1:PORT/busybox:latest"
    ...                                      # config: registry host reg.host is insecure
    reg.stop()

Also here: Registry(auth="htpasswd") with Basic auth, Registry(auth="token")
with our own token server (Bearer flow), and LyingRegistry, a tiny server
that serves images but corrupts or drops chosen blobs.
Run with /usr/bin/python3."""
import base64
import gzip
import hashlib
import http.server
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import tarfile
import tempfile
import threading
import time
import urllib.error
import urllib.request

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"

REGISTRY_BIN = "/usr/bin/docker-registry"


def have_registry():
    return os.access(REGISTRY_BIN, os.X_OK)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


# ---------------------------------------------------------------- layers

class Layer:
    """A layer blob: tar bytes (uncompressed) and the compressed blob."""

    def __init__(self, tar_bytes, compression="gzip", blob=None):
        self.tar = tar_bytes
        self.diff_id = sha256(tar_bytes)
        if blob is not None:
            self.blob = blob
        elif compression == "gzip":
            self.blob = gzip.compress(tar_bytes, compresslevel=1, mtime=0)
        elif compression == "zstd":
            self.blob = subprocess.run(["zstd", "-q", "-c"], input=tar_bytes, stdout=subprocess.PIPE,
                                       check=True).stdout
        else:
            self.blob = tar_bytes
        self.compression = compression
        self.digest = sha256(self.blob)
        self.media_type = {"gzip": LAYER_GZIP, "zstd": OCI_LAYER_ZSTD, "none": OCI_LAYER}[compression]


class TarBuilder:
    def __init__(self):
        self.buf = io.BytesIO()
        self.tf = tarfile.open(fileobj=self.buf, mode="w", format=tarfile.PAX_FORMAT)

    def _info(self, name, type_, mode, uid=0, gid=0):
        ti = tarfile.TarInfo(name)
        ti.type = type_
        ti.mode = mode
        ti.uid, ti.gid = uid, gid
        ti.mtime = 1700000000
        return ti

    def dir(self, name, mode=0o755):
        self.tf.addfile(self._info(name, tarfile.DIRTYPE, mode))
        return self

    def file(self, name, data, mode=0o644, uid=0, gid=0):
        if isinstance(data, str):
            data = data.encode()
        ti = self._info(name, tarfile.REGTYPE, mode, uid, gid)
        ti.size = len(data)
        self.tf.addfile(ti, io.BytesIO(data))
        return self

    def symlink(self, name, target):
        ti = self._info(name, tarfile.SYMTYPE, 0o777)
        ti.linkname = target
        self.tf.addfile(ti)
        return self

    def hardlink(self, name, target):
        ti = self._info(name, tarfile.LNKTYPE, 0o644)
        ti.linkname = target
        self.tf.addfile(ti)
        return self

    def bytes(self):
        self.tf.close()
        return self.buf.getvalue()


def busybox_base_tar():
    """Debian's /bin/busybox with its shared libraries, applet symlinks."""
    tb = TarBuilder()
    for d in ("bin", "etc", "lib", "lib64", "tmp", "proc", "sys", "dev", "root", "usr", "usr/bin"):
        tb.dir(d, 0o1777 if d == "tmp" else 0o755)
    with open("/bin/busybox", "rb") as f:
        tb.file("bin/busybox", f.read(), 0o755)
    out = subprocess.run(["ldd", "/bin/busybox"], capture_output=True, text=True).stdout
    seen = set()
    for line in out.splitlines():
        parts = line.split()
        path = None
        if "=>" in parts and len(parts) >= 3 and parts[2].startswith("/"):
            path = parts[2]
        elif parts and parts[0].startswith("/"):
            path = parts[0]
        if not path or path in seen:
            continue
        seen.add(path)
        real = os.path.realpath(path)
        with open(real, "rb") as f:
            data = f.read()
        rel = path.lstrip("/")
        parent = os.path.dirname(rel)
        if parent and parent not in ("lib", "lib64"):
            # e.g. lib/x86_64-linux-gnu
            acc = ""
            for comp in parent.split("/"):
                acc = comp if not acc else acc + "/" + comp
                if acc not in ("lib", "lib64"):
                    tb.dir(acc)
        tb.file(rel, data, 0o755)
    for applet in ("sh", "ls", "cat", "echo", "sleep", "env", "id", "ps", "true", "false", "test", "mkdir", "rm",
                   "touch", "wc", "head", "grep", "stat", "readlink", "hostname", "ip", "wget", "nc", "top",
                   "kill", "mount", "uname", "pwd", "dd", "sed", "tail", "seq", "date", "cp", "mv", "ln"):
        tb.symlink("bin/" + applet, "busybox")
    tb.file("etc/passwd", "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n")
    tb.file("etc/group", "root:x:0:\nnobody:x:65534:\n")
    tb.dir("opq")
    tb.file("opq/old", "from the lower layer\n")
    tb.file("etc/gone", "whited out by the next layer\n")
    return tb.bytes()


def busybox_upper_tar():
    """Second layer: a whiteout, an opaque dir, a hard link, owner/mode."""
    tb = TarBuilder()
    tb.dir("etc")
    tb.file("etc/.wh.gone", "")
    tb.dir("opq")
    tb.file("opq/.wh..wh..opq", "")
    tb.file("opq/new", "from the upper layer\n")
    tb.file("etc/owned", "x\n", mode=0o640, uid=1234, gid=4321)
    tb.hardlink("etc/owned-link", "etc/owned")
    return tb.bytes()


def zstd_tar():
    return TarBuilder().dir("z").file("z/zstd-layer", "unpacked from zstd\n").bytes()


class Image:
    """An image: layers + config; manifest() renders it."""

    def __init__(self, layers, arch="amd64", cmd=("/bin/sh",), oci=False, extra_config=None):
        self.layers = layers
        cfg = {"architecture": arch, "os": "linux", "created": "2026-01-01T00:00:00Z",
               "config": {"Env": ["PATH=/usr/bin:/bin"], "Cmd": list(cmd), "WorkingDir": "/"},
               "rootfs": {"type": "layers", "diff_ids": [l.diff_id for l in layers]},
               "history": [{"created_by": "cricreg"} for _ in layers]}
        if extra_config:
            cfg["config"].update(extra_config)
        self.config = json.dumps(cfg, sort_keys=True).encode()
        self.config_digest = sha256(self.config)
        self.oci = oci
        self.arch = arch

    def manifest(self):
        m = {"schemaVersion": 2,
             "mediaType": OCI_MANIFEST if self.oci else DOCKER_MANIFEST,
             "config": {"mediaType": OCI_CONFIG if self.oci else DOCKER_CONFIG, "size": len(self.config),
                        "digest": self.config_digest},
             "layers": [{"mediaType": l.media_type, "size": len(l.blob), "digest": l.digest} for l in self.layers]}
        data = json.dumps(m, indent=2).encode()
        return data, m["mediaType"]

    def blobs(self):
        out = {self.config_digest: self.config}
        for l in self.layers:
            out[l.digest] = l.blob
        return out


def busybox_image(oci=False, with_zstd=True):
    layers = [Layer(busybox_base_tar()), Layer(busybox_upper_tar())]
    if with_zstd:
        layers.append(Layer(zstd_tar(), "zstd"))
    return Image(layers, oci=oci)


def index_of(images, oci=True):
    """A manifest list / OCI index over images (each with its arch)."""
    entries = []
    for img in images:
        data, mt = img.manifest()
        entries.append({"mediaType": mt, "size": len(data), "digest": sha256(data),
                        "platform": {"os": "linux", "architecture": img.arch}})
    m = {"schemaVersion": 2, "mediaType": OCI_INDEX if oci else DOCKER_LIST, "manifests": entries}
    return json.dumps(m, indent=2).encode(), m["mediaType"]


# ---------------------------------------------------------------- token server

class TokenServer:
    """Issues registry JWTs (RS256, x5c) for the Bearer flow; checks Basic
    credentials when users is set.  Signs with the openssl CLI."""

    def __init__(self, dir, service, users=None):
        self.dir = dir
        self.service = service
        self.users = users
        self.key = os.path.join(dir, "token.key")
        self.cert = os.path.join(dir, "token.crt")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key,
                        "-out", self.cert, "-subj", "/CN=cric-token", "-days", "2"],
                       check=True, capture_output=True)
        with open(self.cert) as f:
            pem = f.read()
        der = base64.b64decode("".join(l for l in pem.splitlines() if "-----" not in l))
        self.x5c = base64.b64encode(der).decode()
        self.requests = []
        self.refresh_tokens = {"good-refresh-token"}
        self.port = free_port()
        self.realm = "http://127.0.0.1:%d/token" % self.port
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                # OAuth2 refresh-token grant (docker identity tokens)
                from urllib.parse import parse_qs
                n = int(self.headers.get("Content-Length", "0"))
                form = parse_qs(self.rfile.read(n).decode())
                outer.requests.append("POST " + " ".join(sorted(form)))
                if form.get("grant_type") != ["refresh_token"] or \
                        form.get("refresh_token", [""])[0] not in outer.refresh_tokens:
                    self.send_response(401)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                self.issue(form.get("scope", []))

            def do_GET(self):
                outer.requests.append(self.path)
                if outer.users is not None:
                    auth = self.headers.get("Authorization", "")
                    ok = False
                    if auth.startswith("Basic "):
                        user, _, pw = base64.b64decode(auth[6:]).decode().partition(":")
                        ok = outer.users.get(user) == pw
                    if not ok:
                        self.send_response(401)
                        self.end_headers()
                        self.wfile.write(b'{"details":"bad credentials"}')
                        return
                from urllib.parse import urlparse, parse_qs
                q = parse_qs(urlparse(self.path).query)
                self.issue(q.get("scope", []))

            def issue(self, scopes):
                access = []
                for scope in scopes:
                    typ, _, rest = scope.partition(":")
                    name, _, actions = rest.rpartition(":")
                    access.append({"type": typ, "name": name, "actions": actions.split(",")})
                tok = outer.sign({"iss": "cric-issuer", "sub": "tester", "aud": outer.service,
                                  "exp": int(time.time()) + 600, "nbf": int(time.time()) - 10,
                                  "iat": int(time.time()), "jti": os.urandom(8).hex(), "access": access})
                body = json.dumps({"token": tok, "access_token": tok}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def sign(self, claims):
        def b64u(b):
            return base64.urlsafe_b64encode(b).rstrip(b"=").decode()
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self.x5c]}
        signing = b64u(json.dumps(header).encode()) + "." + b64u(json.dumps(claims).encode())
        sig = subprocess.run(["openssl", "dgst", "-sha256", "-sign", self.key], input=signing.encode(),
                             stdout=subprocess.PIPE, check=True).stdout
        return signing + "." + b64u(sig)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


# ---------------------------------------------------------------- TLS

def make_certs(dir):
    """A CA, a server certificate for 127.0.0.1 and a client certificate
    (openssl CLI).  Returns {name: path}: ca.crt, server.crt/key, client.cert/key."""
    p = {n: os.path.join(dir, n) for n in ("ca.crt", "ca.key", "server.crt", "server.key", "client.cert",
                                            "client.key", "csr", "ext")}

    def ossl(*args):
        subprocess.run(["openssl"] + list(args), check=True, capture_output=True)
    ossl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", p["ca.key"], "-out", p["ca.crt"],
         "-subj", "/CN=cric-test-ca", "-days", "2")
    with open(p["ext"], "w") as f:
        f.write("subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth,clientAuth\n")
    for name, key, cn in (("server.crt", "server.key", "127.0.0.1"), ("client.cert", "client.key", "cric-client")):
        ossl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", p[key], "-out", p["csr"], "-subj", "/CN=" + cn)
        ossl("x509", "-req", "-in", p["csr"], "-CA", p["ca.crt"], "-CAkey", p["ca.key"], "-CAcreateserial",
             "-out", p[name], "-days", "2", "-extfile", p["ext"])
    return p


# ---------------------------------------------------------------- registry

class Registry:
    """Debian's docker-registry on 127.0.0.1:<free port> in a temp dir.

    auth: None, "htpasswd" (Basic, users {user: password}) or "token"
    (Bearer through TokenServer).  storage: share another registry's storage
    directory (to serve images pushed to an open one)."""

    def __init__(self, auth=None, users=None, storage=None, tls=False):
        self.dir = tempfile.mkdtemp(prefix="cric-reg-")
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        self.tls = tls
        self.url = ("https://" if tls else "http://") + self.host
        self.auth = auth
        self.users = users or {"tester": "s3cret"}
        self.storage = storage or os.path.join(self.dir, "data")
        self.proc = None
        self.token = None

    def start(self):
        cfg = ["version: 0.1", "log:", "  level: error", "  accesslog:", "    disabled: true",
               "storage:", "  filesystem:", "    rootdirectory: " + self.storage, "  delete:", "    enabled: true",
               "http:", "  addr: " + self.host, "  secret: cric-test-secret"]
        self.ssl = None
        if self.tls:
            self.certs = make_certs(self.dir)
            cfg += ["  tls:", "    certificate: " + self.certs["server.crt"], "    key: " + self.certs["server.key"],
                    "    clientcas:", "      - " + self.certs["ca.crt"]]
            import ssl
            self.ssl = ssl.create_default_context(cafile=self.certs["ca.crt"])
            self.ssl.load_cert_chain(self.certs["client.cert"], self.certs["client.key"])
        if self.auth == "htpasswd":
            pw = os.path.join(self.dir, "htpasswd")
            for i, (u, p) in enumerate(self.users.items()):
                subprocess.run(["htpasswd", "-B", "-b"] + (["-c"] if i == 0 else []) + [pw, u, p],
                               check=True, capture_output=True)
            cfg += ["auth:", "  htpasswd:", "    realm: cric-test", "    path: " + pw]
        elif self.auth == "token":
            self.token = TokenServer(self.dir, "cric-registry", self.users)
            cfg += ["auth:", "  token:", "    realm: " + self.token.realm, "    service: cric-registry",
                    "    issuer: cric-issuer", "    rootcertbundle: " + self.token.cert]
        path = os.path.join(self.dir, "config.yml")
        with open(path, "w") as f:
            f.write("\n".join(cfg) + "\n")
        self.log = open(os.path.join(self.dir, "registry.log"), "wb")
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", path], stdout=self.log, stderr=self.log)
        deadline = time.time() + 20
        while True:
            try:
                urllib.request.urlopen(self.url + "/v2/", timeout=1, context=self.ssl)
                break
            except urllib.error.HTTPError:
                break  # 401: up, with auth
            except OSError:
                if self.proc.poll() is not None or time.time() > deadline:
                    raise RuntimeError("docker-registry did not start: " + self.logtext())
                time.sleep(0.05)
        return self

    def logtext(self):
        try:
            with open(os.path.join(self.dir, "registry.log"), errors="replace") as f:
                return f.read()[-4000:]
        except OSError:
            return ""

    def stop(self):
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self.proc = None
            self.log.close()
        if self.token:
            self.token.stop()
            self.token = None
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self):
        return self.start()

    def __exit__(self, *a):
        self.stop()

    # -- pushing (only to a registry without auth) --
    def _req(self, method, url, data=None, headers=None):
        req = urllib.request.Request(url if url.startswith("http") else self.url + url, data=data, method=method,
                                     headers=headers or {})
        return urllib.request.urlopen(req, timeout=60)

    def push_blob(self, repo, data):
        digest = sha256(data)
        try:
            self._req("HEAD", "/v2/%s/blobs/%s" % (repo, digest))
            return digest
        except urllib.error.HTTPError:
            pass
        r = self._req("POST", "/v2/%s/blobs/uploads/" % repo, data=b"")
        loc = r.headers["Location"]
        if not loc.startswith("http"):
            loc = self.url + loc
        sep = "&" if "?" in loc else "?"
        self._req("PUT", loc + sep + "digest=" + digest, data=data,
                  headers={"Content-Type": "application/octet-stream"})
        return digest

    def push_manifest(self, repo, ref, data, media_type):
        self._req("PUT", "/v2/%s/manifests/%s" % (repo, ref), data=data, headers={"Content-Type": media_type})
        return sha256(data)

    def push_image(self, name, image):
        """Pushes image as name ("repo:tag"); returns (ref, manifest digest)."""
        repo, _, tag = name.partition(":")
        for d, b in image.blobs().items():
            self.push_blob(repo, b)
        data, mt = image.manifest()
        digest = self.push_manifest(repo, tag or "latest", data, mt)
        return "%s/%s:%s" % (self.host, repo, tag or "latest"), digest

    def push_index(self, name, images, oci=True):
        repo, _, tag = name.partition(":")
        for img in images:
            for d, b in img.blobs().items():
                self.push_blob(repo, b)
            data, mt = img.manifest()
            self.push_manifest(repo, sha256(data), data, mt)
        data, mt = index_of(images, oci)
        digest = self.push_manifest(repo, tag, data, mt)
        return "%s/%s:%s" % (self.host, repo, tag), digest

    def push_busybox(self, name="busybox:latest"):
        """Pushes the busybox test image; returns its reference."""
        return self.push_image(name, busybox_image())[0]


# ---------------------------------------------------------------- liar

class LyingRegistry:
    """Serves images from memory, anonymously, over HTTP; blobs listed in
    corrupt get wrong bytes, those in drop are cut off mid-body, those in
    stall send their headers and then nothing (until stop()); those in gate
    send their first half, then the rest once gate[digest] (an Event) is set."""

    def __init__(self):
        self.manifests = {}  # (repo, ref) -> (data, media type)
        self.blobs = {}
        self.corrupt = set()
        self.drop = set()
        self.stall = set()
        self.gate = {}
        self.redirect = set()   # blobs answered with a 307 to /storage/ on "localhost"
        self.storage_hits = []  # (digest, Authorization header) of redirected fetches
        self.blob_gets = {}     # digest -> number of GETs
        self.stopping = threading.Event()
        self.port = free_port()
        self.host = "127.0.0.1:%d" % self.port
        outer = self

        class H(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def do_GET(self):
                p = self.path.split("?")[0]
                if p.startswith("/storage/") and p[9:] in outer.blobs:
                    outer.storage_hits.append((p[9:], self.headers.get("Authorization")))
                    return self.reply(200, outer.blobs[p[9:]], "application/octet-stream")
                if p in ("/v2/", "/v2"):
                    return self.reply(200, b"{}", "application/json")
                parts = p[len("/v2/"):].rsplit("/", 2)
                if len(parts) != 3:
                    return self.reply(404, b"{}", "application/json")
                repo, kind, ref = parts
                if kind == "manifests" and (repo, ref) in outer.manifests:
                    data, mt = outer.manifests[(repo, ref)]
                    return self.reply(200, data, mt)
                if kind == "blobs":
                    outer.blob_gets[ref] = outer.blob_gets.get(ref, 0) + 1
                if kind == "blobs" and ref in outer.redirect:
                    self.send_response(307)
                    self.send_header("Location", "http://localhost:%d/storage/%s" % (outer.port, ref))
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                if kind == "blobs" and ref in outer.blobs:
                    data = outer.blobs[ref]
                    if ref in outer.corrupt:
                        data = bytes([data[0] ^ 0xff]) + data[1:]
                    if ref in outer.stall:
                        self.send_response(200)
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.flush()
                        outer.stopping.wait(60)
                        self.close_connection = True
                        return
                    if ref in outer.gate:
                        self.send_response(200)
                        self.send_header("Content-Type", "application/octet-stream")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data[:len(data) // 2])
                        self.wfile.flush()
                        outer.gate[ref].wait(60)
                        self.wfile.write(data[len(data) // 2:])
                        return
                    if ref in outer.drop:
                        self.send_response(200)
                        self.send_header("Content-Type", "application/octet-stream")
                        self.send_header("Content-Length", str(len(data)))
                        self.end_headers()
                        self.wfile.write(data[:len(data) // 2])
                        self.wfile.flush()
                        self.close_connection = True
                        self.connection.shutdown(socket.SHUT_RDWR)
                        return
                    return self.reply(200, data, "application/octet-stream")
                self.reply(404, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}', "application/json")

            def reply(self, code, data, ct):
                self.send_response(code)
                self.send_header("Content-Type", ct)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), H)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def add_image(self, name, image):
        repo, _, tag = name.partition(":")
        self.blobs.update(image.blobs())
        data, mt = image.manifest()
        self.manifests[(repo, tag)] = (data, mt)
        self.manifests[(repo, sha256(data))] = (data, mt)
        return "%s/%s:%s" % (self.host, repo, tag)

    def stop(self):
        self.stopping.set()
        for ev in self.gate.values():
            ev.set()
        self.httpd.shutdown()
        self.httpd.server_close()
