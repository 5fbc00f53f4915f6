#!/usr/bin/python3
"""Writes the seed corpora of t/fuzz_image.c: t/fuzz/manifest/ (manifests,
indexes, configs, broken JSON) and t/fuzz/tar/ (layers: plain, gzip, zstd,
whiteouts, escapes, truncated).  Run from the source tree."""
import gzip
import json
import os
import subprocess
import sys

here = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(here, "..", "registry"))
import cricreg  # noqa: E402

D = "sha256:" + "ab" * 32
man = os.path.join(here, "manifest")
tar = os.path.join(here, "tar")
os.makedirs(man, exist_ok=True)
os.makedirs(tar, exist_ok=True)


def w(d, name, data):
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


img = cricreg.Image([cricreg.Layer(cricreg.TarBuilder().file("a", "a").bytes()),
                     cricreg.Layer(cricreg.zstd_tar(), "zstd")])
w(man, "docker-manifest.json", img.manifest()[0])
w(man, "oci-manifest.json", cricreg.Image(img.layers, oci=True).manifest()[0])
w(man, "oci-index.json", cricreg.index_of([img, cricreg.Image(img.layers, arch="arm64")])[0])
w(man, "docker-list.json", cricreg.index_of([img], oci=False)[0])
w(man, "config.json", img.config)
w(man, "truncated.json", img.manifest()[0][:50])
w(man, "schema1.json", json.dumps({"schemaVersion": 1, "name": "x", "fsLayers": []}))
w(man, "bad-digest.json", json.dumps({"schemaVersion": 2, "layers": [{"digest": "sha256:xyz", "size": 1}],
                                      "config": {"digest": D, "size": 1}}))
w(man, "nested.json", "[" * 2000)
w(man, "nul.json", b'{"schemaVersion":2\x00}')

t = cricreg.TarBuilder()
t.dir("etc").file("etc/passwd", "root:x:0:0\n", 0o600).symlink("bin/sh", "/bin/busybox")
t.hardlink("etc/link", "etc/passwd").file("etc/.wh.gone", "").dir("o").file("o/.wh..wh..opq", "")
plain = t.bytes()
w(tar, "plain.tar", plain)
w(tar, "layer.tar.gz", gzip.compress(plain, mtime=0))
w(tar, "layer.tar.zst", subprocess.run(["zstd", "-q", "-c"], input=plain, stdout=subprocess.PIPE).stdout)
w(tar, "truncated.tar.gz", gzip.compress(plain, mtime=0)[:120])
w(tar, "dotdot.tar", cricreg.TarBuilder().file("../escaped", "x").bytes())
w(tar, "symlink-escape.tar", cricreg.TarBuilder().symlink("l", "/tmp").file("l/escaped", "x").bytes())
w(tar, "hardlink-escape.tar", cricreg.TarBuilder().hardlink("h", "../../escaped").bytes())
w(tar, "garbage.bin", os.urandom(64))
