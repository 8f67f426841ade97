#!/usr/bin/python3
"""Writes seed inputs for the fuzz_release target into tests/fuzz/seeds/release/.

  make_seeds.py [OUT_DIR]

Seeds: manifests signed as tern signs them (tag 18, protected {1: -7}, unprotected
{4: kid}) with the fuzz key below, the same manifests unsigned (fuzz_release also feeds
its input to tern_manifest_decode), a small whole release, and the COSE WG vectors.
Independent of tern's encoder on purpose (cbor2 + cryptography). Run once by hand when
the formats change; `make fuzz` grows tests/fuzz/corpus/release/ from them.

The fuzz key is a fixed, public test key: its private scalar is derived from a fixed
string below, so anybody can make more seeds. It must never be trusted by a device.
Run with /usr/bin/python3 (Debian's, with python3-cbor2 and python3-cryptography).
"""
import glob
import hashlib
import json
import os
import sys

import cbor2
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

HERE = os.path.dirname(os.path.abspath(__file__))
KEY_SEED = b"tern fuzz test key - public, never trust it"
N = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551  # P-256 order


def fuzz_key():
    d = int.from_bytes(hashlib.sha256(KEY_SEED).digest(), "big") % (N - 1) + 1
    return ec.derive_private_key(d, ec.SECP256R1())


def sign1(key, payload):
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    protected = cbor2.dumps({1: -7})
    tbs = cbor2.dumps(["Signature1", protected, b"", payload])
    r, s = decode_dss_signature(key.sign(tbs, ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    kid = hashlib.sha256(point).digest()[:8]
    return cbor2.dumps(cbor2.CBORTag(18, [protected, {4: kid}, payload, sig]))


def merged(base, extra):
    out = dict(base)
    out.update(extra)
    return out


def component(name, kind, slot, size, fill):
    return {1: name, 2: kind, 3: slot, 4: size, 5: bytes([fill]) * 32}


def manifests():
    base = {1: 1, 2: "rel-1", 3: "1.0.0", 4: 1, 5: 0, 6: ["sim"], 7: 16384,
            8: [component("fw", 0, "system", 100000, 0x11)], 10: 1764201600}
    yield "minimal", base
    yield "golden", {
        1: 1, 2: "rel-2026.11-a", 3: "1.4.2", 4: 42, 5: 3, 6: ["sim", "pi4-b"], 7: 16384,
        8: [{1: "fw", 2: 0, 3: "system", 4: 1000000, 5: bytes(range(32))},
            {1: "cfg", 2: 1, 3: "config", 4: 4096, 5: bytes(range(0xa0, 0xc0))}],
        9: "Fix the watchdog reset.\n", 10: 1764201600, 11: {1: 3, 2: 60, 3: 10}}
    yield "config-critical", merged(base, {
        0: [1, 8], 8: [component("cfg", 1, "config", 300, 0x22)], 7: 1024})
    yield "unknown-keys", merged(base, {
        99: [1, {2: "x"}], "future": {1: 2}, 11: {1: 5, 2: 120, 3: 30, 9: True},
        8: [merged(component("fw", 0, "system", 5000, 0x33), {42: ["delta", b"\x01"]})]})
    yield "max", merged(base, {
        6: ["b0", "b1", "b2", "b3"], 7: 1048576,
        8: [component("c%d" % i, i % 2, "slot%d" % i, (1 << 40) - i, i) for i in range(4)],
        9: "notes " * 150, 4: 2**64 - 1, 5: 2**32 - 1})
    yield "critical-unknown", merged(base, {0: [99]})


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.join(HERE, "seeds", "release")
    os.makedirs(out, exist_ok=True)
    key = fuzz_key()
    files = {}
    for name, m in manifests():
        raw = cbor2.dumps(m, canonical=True)
        files["manifest-" + name] = raw
        files["signed-" + name] = sign1(key, raw)
    # A whole small release: head, chunk index, component bytes.
    body = bytes(range(256)) * 12  # 3072 bytes, 3 chunks of 1024
    index = b"".join(hashlib.sha256(body[i:i + 1024]).digest() for i in range(0, 3072, 1024))
    m = {1: 1, 2: "whole", 3: "1", 4: 1, 5: 0, 6: ["sim"], 7: 1024,
         8: [{1: "fw", 2: 0, 3: "system", 4: len(body), 5: hashlib.sha256(index).digest()}],
         10: 1}
    files["release-whole"] = (sign1(key, cbor2.dumps(m, canonical=True)) + cbor2.dumps(index) +
                              cbor2.dumps(body))
    vectors = os.path.join(HERE, "..", "vectors", "cose-wg", "*.json")
    for path in sorted(glob.glob(vectors)):
        with open(path, encoding="utf-8") as f:
            v = json.load(f)
        files["cose-wg-" + os.path.basename(path)[:-5]] = bytes.fromhex(v["output"]["cbor"])
    for name, data in sorted(files.items()):
        with open(os.path.join(out, "seed-" + name), "wb") as f:
            f.write(data)
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    print("fuzz key point: %s" % point.hex())
    print("%d seeds in %s" % (len(files), out))


if __name__ == "__main__":
    main()
