#!/usr/bin/python3
"""
Writes releases that test one reader rule of docs/FORMAT.md each (sections 2.4 and 3),
signed with KEY, into the current directory, and prints one line per release:
"FILE EXPECT" where EXPECT is "ok" or the error name FORMAT.md gives.

  rule_cases.py KEY.key

The manifests are built here byte by byte where a CBOR library would not write them
(repeated keys, indefinite lengths); tern_release.py is used only to sign and for the
shortest CBOR heads.
"""

import hashlib
import os
import sys

import cbor2
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import tern_release as T  # noqa: E402

key = serialization.load_pem_private_key(open(sys.argv[1], "rb").read(), None)
kid = T.kid_of(key.public_key())
CS = 1024
fw = bytes(range(256)) * 5  # 1280 bytes: a full chunk and a short one
index = b"".join(hashlib.sha256(fw[i : i + CS]).digest() for i in range(0, len(fw), CS))
COMP = {1: "firmware", 2: 0, 3: "firmware", 4: len(fw), 5: hashlib.sha256(index).digest()}
BASE = {1: 1, 2: "r1", 3: "1.0", 4: 1, 5: 0, 6: ["sim"], 7: CS, 8: [COMP], 10: 0}
RAW = cbor2.dumps(BASE, canonical=True)  # a9 ...: 9 entries
n_cases = 0


def body():
    return T.cbor_head(2, len(index)) + index + T.cbor_head(2, len(fw)) + fw


def sign1(payload, protected=T.PROTECTED_ES256, unprotected=None, signed_protected=None):
    unprotected = {4: kid} if unprotected is None else unprotected
    tbs = T.sig_structure(protected if signed_protected is None else signed_protected, payload)
    r, s = utils.decode_dss_signature(key.sign(tbs, ec.ECDSA(hashes.SHA256())))
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    return cbor2.dumps(cbor2.CBORTag(18, [protected, unprotected, payload, sig]))


def case(name, expect, data):
    global n_cases
    n_cases += 1
    path = f"rule-{n_cases:02d}.tern"
    with open(path, "wb") as f:
        f.write(data)
    print(f"{path} {expect} {name}")


def manifest(**changes):
    """BASE with key kN set to a value, or removed with None."""
    d = dict(BASE)
    for k, v in changes.items():
        if v is None:
            d.pop(int(k[1:]))
        else:
            d[int(k[1:])] = v
    return cbor2.dumps(d, canonical=True)


def rel(payload):
    return sign1(payload) + body()


def extra(raw_entries, n_entries):
    """BASE's map with @n_entries more entries appended as raw bytes."""
    return bytes([RAW[0] + n_entries]) + RAW[1:] + raw_entries


def comp(**changes):
    c = dict(COMP)
    for k, v in changes.items():
        if v is None:
            c.pop(int(k[1:]))
        else:
            c[int(k[1:])] = v
    return c


# File level (section 1, 2.4).
case("empty file", "truncated", b"")
case("first byte is a break", "not-a-release", b"\xff" + bytes(16))
case("text, not a release", "not-a-release", b"this is not a release at all")
case("another tag", "not-a-release", b"\xd8\x62" + rel(RAW)[1:])
case("untagged COSE_Sign1", "ok", rel(RAW)[1:])
case("non-shortest index head", "ok",
     sign1(RAW) + b"\x5a" + len(index).to_bytes(4, "big") + index + T.cbor_head(2, len(fw)) + fw)
case("indefinite-length index", "malformed",
     sign1(RAW) + b"\x5f" + T.cbor_head(2, len(index)) + index + b"\xff" +
     T.cbor_head(2, len(fw)) + fw)
case("index as a text string", "malformed",
     sign1(RAW) + T.cbor_head(3, len(index)) + index + T.cbor_head(2, len(fw)) + fw)

# COSE headers (2.3, 2.4).
case("alg in the unprotected header", "ok", sign1(RAW, b"", {1: -7, 4: kid}) + body())
case("empty protected map h'a0', signed as h''", "ok",
     sign1(RAW, b"\xa0", {1: -7, 4: kid}, signed_protected=b"") + body())
case("empty protected map h'a0', signed as h'a0'", "bad-signature",
     sign1(RAW, b"\xa0", {1: -7, 4: kid}, signed_protected=b"\xa0") + body())
case("kid in the protected header", "ok", sign1(RAW, cbor2.dumps({1: -7, 4: kid}), {}) + body())
case("alg ES384 (-35)", "unsupported-algorithm", sign1(RAW, cbor2.dumps({1: -35})) + body())
case("alg as text", "unsupported-algorithm", sign1(RAW, cbor2.dumps({1: "ES256"})) + body())
case("alg in both headers", "malformed", sign1(RAW, unprotected={1: -7, 4: kid}) + body())
case("crit [1]", "ok", sign1(RAW, cbor2.dumps({1: -7, 2: [1]})) + body())
case("crit [99]", "unknown-critical", sign1(RAW, cbor2.dumps({1: -7, 2: [99]})) + body())
case("crit in the unprotected header", "malformed", sign1(RAW, unprotected={2: [1], 4: kid}) + body())
case("unknown header labels", "ok",
     sign1(RAW, cbor2.dumps({1: -7, 99: "x", "t": 1}), {4: kid, 33: [1, 2]}) + body())
case("kid of 9 bytes", "unknown-key", sign1(RAW, unprotected={4: kid + b"\0"}) + body())
case("no kid", "unknown-key", sign1(RAW, unprotected={}) + body())

# The manifest (3).
case("format version 2", "format-version", rel(manifest(k1=2)))
case("format version 2^32", "too-large", rel(manifest(k1=1 << 32)))
case("no created (key 10)", "malformed", rel(manifest(k10=None)))
case("no boards", "malformed", rel(manifest(k6=[])))
case("5 boards", "too-large", rel(manifest(k6=["a", "b", "c", "d", "e"])))
case("a board with a space", "malformed", rel(manifest(k6=["s m"])))
case("board id of 32 bytes", "ok", rel(manifest(k6=["a" * 32])))
case("board id of 33 bytes", "too-large", rel(manifest(k6=["a" * 33])))
case("the same board twice", "ok", rel(manifest(k6=["sim", "sim"])))
case("release id of 64 bytes", "ok", rel(manifest(k2="r" * 64)))
case("release id of 65 bytes", "too-large", rel(manifest(k2="r" * 65)))
case("version of 32 bytes of UTF-8", "ok", rel(manifest(k3="\u00e9" * 16)))
case("version of 33 bytes", "too-large", rel(manifest(k3="v" * 33)))
case("empty version", "malformed", rel(manifest(k3="")))
case("version with a NUL", "malformed", rel(manifest(k3="a\0b")))
case("chunk size 512", "malformed", rel(manifest(k7=512)))
case("chunk size 3000", "malformed", rel(manifest(k7=3000)))
case("chunk size 2 MiB", "too-large", rel(manifest(k7=2 * 1024 * 1024)))
case("security counter 2^32", "too-large", rel(manifest(k5=1 << 32)))
case("sequence 2^64-1", "ok", rel(manifest(k4=(1 << 64) - 1)))
case("negative sequence", "malformed", rel(manifest(k4=-1)))
case("sequence as a tagged bignum", "malformed", rel(manifest(k4=cbor2.CBORTag(2, b"\x01"))))
case("sequence with an 8-byte head", "ok",
     rel(RAW.replace(b"\x04\x01", b"\x04\x1b" + (1).to_bytes(8, "big"), 1)))
case("notes of 4096 bytes", "ok", rel(manifest(k9="n" * 4096)))
case("notes of 4097 bytes", "too-large", rel(manifest(k9="n" * 4097)))
case("empty notes", "ok", rel(manifest(k9="")))
case("notes with a NUL", "malformed", rel(manifest(k9="a\0")))
case("notes of 4-byte UTF-8", "ok", rel(manifest(k9="\U0001f680 \u00e9\u20ac")))
case("notes not UTF-8 (ff fe)", "malformed", rel(extra(b"\x09\x62\xff\xfe", 1)))
case("notes with an overlong NUL (c0 80)", "malformed", rel(extra(b"\x09\x62\xc0\x80", 1)))
case("notes with a surrogate (ed a0 80)", "malformed", rel(extra(b"\x09\x63\xed\xa0\x80", 1)))
case("notes cut inside a character (e2 82)", "malformed", rel(extra(b"\x09\x62\xe2\x82", 1)))
case("version not UTF-8", "malformed", rel(RAW.replace(b"\x03\x631.0", b"\x03\x63\xff1.", 1)))
case("bytes after the manifest map", "malformed", rel(RAW + b"\x00"))
case("manifest over 8192 bytes", "too-large", rel(manifest(k12="x" * 8200)))
case("indefinite-length boards array", "malformed",
     rel(RAW.replace(b"\x06\x81\x63sim", b"\x06\x9f\x63sim\xff", 1)))

# Unknown, critical and repeated keys (3.3).
case("unknown key 12 holding a map", "ok", rel(manifest(k12={1: [1, 2, {3: 4}]})))
case("text key", "ok", rel(cbor2.dumps({**BASE, "x": 1})))
case("negative key", "ok", rel(cbor2.dumps({**BASE, -1: 1})))
case("critical [12]", "unknown-critical", rel(manifest(k0=[12])))
case("critical [11] (known)", "ok", rel(manifest(k0=[11])))
case("critical ['x']", "unknown-critical", rel(manifest(k0=["x"])))
case("critical []", "ok", rel(manifest(k0=[])))
case("key 4 twice", "malformed", rel(extra(b"\x04\x02", 1)))
case("unknown key 20 twice", "malformed", rel(extra(b"\x14\x01\x14\x02", 2)))
case("unknown value nesting 16 arrays", "ok", rel(extra(b"\x0c" + b"\x81" * 16 + b"\x01", 1)))
case("unknown value nesting 17 arrays", "too-large", rel(extra(b"\x0c" + b"\x81" * 17 + b"\x01", 1)))

# Early-life policy (3.2) and components (3.1).
case("early life: one key only", "ok", rel(manifest(k11={2: 5})))
case("early life: 2^32 attempts", "too-large", rel(manifest(k11={1: 1 << 32})))
case("early life: unknown key", "ok", rel(manifest(k11={9: "x"})))
case("early life: key 1 twice", "malformed", rel(manifest(k11={})[:-1] + b"\xa2\x01\x01\x01\x02"))
case("component kind 2", "unknown-critical", rel(manifest(k8=[comp(k2=2)])))
case("component kind 256", "too-large", rel(manifest(k8=[comp(k2=256)])))
case("component unknown key", "ok", rel(manifest(k8=[comp(k9={1: 2})])))
case("component without slot group", "malformed", rel(manifest(k8=[comp(k3=None)])))
case("index digest of 31 bytes", "malformed", rel(manifest(k8=[comp(k5=bytes(31))])))
case("two components of the same name", "malformed", rel(manifest(k8=[COMP, COMP])))
case("no components", "malformed", rel(manifest(k8=[])))
case("5 components", "too-large", rel(manifest(k8=[comp(k1=f"c{i}") for i in range(5)])))
case("component size 0", "malformed", rel(manifest(k8=[comp(k4=0)])))
case("component size 2^40+1", "too-large", rel(manifest(k8=[comp(k4=(1 << 40) + 1)])))
