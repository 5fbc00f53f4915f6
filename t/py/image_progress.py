"""Pull progress: Status(verbose) info "pulls" while a pull runs, and
cricctl pull's per-layer progress lines on a terminal.  The layer is served
by LyingRegistry with a gate: half of it, then the rest once the test has
seen the progress (so nothing depends on timing)."""
import json
import os
import pty
import select
import subprocess
import sys
import threading

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "registry"))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import cricreg  # noqa: E402
from harness import BUILDDIR, SKIP, Daemon, pb2, run_tests, wait_for  # noqa: E402

liar = None
SECRET = "pr0gress-s3cret-%d" % os.getpid()
MIB = 1024 * 1024


def big_image(name):
    """An image with one uncompressed layer of 12 MiB of random data (its
    first half is past cric-pull's 4 MiB progress step), gated."""
    img = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("big", os.urandom(12 * MIB)).bytes(), "none")],
                        oci=True)
    ref = liar.add_image(name, img)
    liar.gate[img.layers[0].digest] = threading.Event()
    return ref, img


def config():
    return json.dumps({"images": {"registries": [{"host": liar.host, "insecure": True}]}})


def pulls(c):
    info = c.runtime("Status", pb2().StatusRequest(verbose=True)).info
    return info["pulls"], json.loads(info["pulls"])


def test_status_pulls():
    pb = pb2()
    ref, img = big_image("progress:v1")
    layer = img.layers[0]
    with Daemon(config=config()) as d:
        c = d.client()
        assert pulls(c)[1] == {}
        auth = pb.AuthConfig(username="tester", password=SECRET)
        fut = c.channel.unary_unary("/runtime.v1.ImageService/PullImage",
                                    request_serializer=lambda m: m.SerializeToString(),
                                    response_deserializer=pb.PullImageResponse.FromString).future(
            pb.PullImageRequest(image=pb.ImageSpec(image=ref), auth=auth), timeout=60)
        try:
            layers = []

            def seen():
                raw, p = pulls(c)
                assert SECRET not in raw and "tester" not in raw, raw
                layers[:] = p.get(ref, {}).get("layers", [])
                return layers and layers[0]["done"] >= 4 * MIB
            wait_for(seen, "progress of " + ref + " in Status pulls")
            assert [l["digest"] for l in layers] == [layer.digest], layers
            assert layers[0]["total"] == len(layer.blob), layers
            assert 0 < layers[0]["done"] <= layers[0]["total"], layers
            assert SECRET not in json.dumps(dict(c.runtime("Status", pb.StatusRequest(verbose=True)).info))
        finally:
            liar.gate[layer.digest].set()
        assert fut.result().image_ref == img.config_digest
        # the pull has ended: it is no longer listed
        assert pulls(c)[1] == {}
        c.close()


def pty_run(args, on_output):
    """Runs args with stdout and stderr on a pseudo-terminal; on_output(text
    so far) is called as output arrives.  Returns (exit status, all output)."""
    master, slave = pty.openpty()
    p = subprocess.Popen(args, stdin=subprocess.DEVNULL, stdout=slave, stderr=slave)
    os.close(slave)
    out = b""
    try:
        while True:
            r, _, _ = select.select([master], [], [], 60)
            if not r:
                raise AssertionError("no output from %s within 60 s: %r" % (args, out))
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: the terminal's last writer is gone
                chunk = b""
            if not chunk:
                break
            out += chunk
            on_output(out.decode(errors="replace"))
        return p.wait(30), out.decode(errors="replace")
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        os.close(master)


def test_cricctl_pull_on_terminal():
    ref, img = big_image("progress:v2")
    layer = img.layers[0]
    short = layer.digest[len("sha256:"):][:12]
    with Daemon(config=config()) as d:
        seen = []

        def on_output(text):
            if not seen and short + ": " in text and " MiB / " in text:
                seen.append(text)
                liar.gate[layer.digest].set()
        try:
            rc, out = pty_run([os.path.join(BUILDDIR, "cricctl"), "--endpoint", "unix://" + d.sock, "pull", ref],
                              on_output)
        finally:
            liar.gate[layer.digest].set()
        assert rc == 0, out
        assert seen, "no progress line with %s in %r" % (short, out)
        assert "%.1f MiB" % (len(layer.blob) / MIB) in seen[0], seen[0]
        assert ("Image is up to date for " + img.config_digest) in out, out
        c = d.client()
        assert pulls(c)[1] == {}
        c.close()


def test_cricctl_pull_quiet_or_not_terminal():
    """-q on a terminal, or stdout not a terminal: just the image ID."""
    ref, img = big_image("progress:v3")
    layer = img.layers[0]
    liar.gate[layer.digest].set()
    with Daemon(config=config()) as d:
        rc, out = pty_run([os.path.join(BUILDDIR, "cricctl"), "--endpoint", "unix://" + d.sock, "pull", "-q", ref],
                          lambda t: None)
        assert rc == 0 and out.replace("\r\n", "\n") == "Image is up to date for %s\n" % img.config_digest, out
        p = subprocess.run([os.path.join(BUILDDIR, "cricctl"), "--endpoint", "unix://" + d.sock, "pull", ref],
                           capture_output=True, text=True, timeout=60)
        assert p.returncode == 0 and p.stdout == "Image is up to date for %s\n" % img.config_digest, p
        assert p.stderr == "", p.stderr


def main():
    if os.geteuid() != 0:
        print("SKIP: needs root")
        sys.exit(SKIP)
    global liar
    liar = cricreg.LyingRegistry()
    try:
        run_tests([test_status_pulls, test_cricctl_pull_on_terminal, test_cricctl_pull_quiet_or_not_terminal])
    finally:
        liar.stop()


if __name__ == "__main__":
    main()
