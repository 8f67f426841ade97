#!/usr/bin/python3
"""
An independent reader and writer of tern release files, written from docs/FORMAT.md
(not from tern's C) to check that the format is what the document says.

  tern_release.py verify FILE --pubkey PEM
  tern_release.py create --key KEY --board B [--board B2] --version V --sequence N
                         [--security-counter N] [--chunk-size 16K] [--firmware F]
                         [--config F] [--notes F] [--id ID] [--created T]
                         --out FILE
  tern_release.py key --out KEY          (KEY and KEY.pub, like `tern key generate`)
  tern_release.py layout FILE            (offsets of the parts, for tests; no checks)

`verify` streams the file: it holds the signed manifest and one component's chunk index
in memory, and one chunk at a time. On refusal it prints one line
"refused: <reason-name>: <detail>" and exits 1; usage errors exit 2.

Only cbor2, cryptography and the standard library. Run with Debian's /usr/bin/python3.
"""

import argparse
import hashlib
import os
import re
import sys
import time

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

# FORMAT.md, "Limits".
FORMAT_VERSION = 1
MAX_COMPONENTS = 4
MAX_BOARDS = 4
NAME_MAX = 32
VERSION_MAX = 32
RELEASE_ID_MAX = 64
NOTES_MAX = 4096
MANIFEST_MAX = 8192
SIGNED_MANIFEST_MAX = MANIFEST_MAX + 128
CHUNK_MIN = 1024
CHUNK_MAX = 1024 * 1024
CHUNK_DEFAULT = 16 * 1024
COMPONENT_MAX = 1 << 40
MAP_MAX_ENTRIES = 64
HDR_MAX_ENTRIES = 32
KID_LEN = 8
KID_MAX = 32
SIG_LEN = 64
MAX_DEPTH = 16  # nesting of a skipped unknown value
READER_MAX_DEPTH = 24  # known structures nest 3 deep, skipped values 16 more
U32_MAX = 0xFFFFFFFF

ALG_ES256 = -7
TAG_SIGN1 = 18
PROTECTED_ES256 = b"\xa1\x01\x26"  # {1: -7}

# Manifest keys (FORMAT.md, "The manifest").
MK_CRITICAL, MK_FORMAT, MK_RELEASE_ID, MK_VERSION, MK_SEQUENCE = 0, 1, 2, 3, 4
MK_SECURITY_COUNTER, MK_BOARDS, MK_CHUNK_SIZE, MK_COMPONENTS = 5, 6, 7, 8
MK_NOTES, MK_CREATED, MK_EARLY_LIFE = 9, 10, 11
MK_KNOWN = range(0, 12)
CK_NAME, CK_KIND, CK_SLOT_GROUP, CK_SIZE, CK_INDEX_DIGEST = 1, 2, 3, 4, 5
EK_TRIAL_ATTEMPTS, EK_HEALTH_TIMEOUT, EK_SETTLE = 1, 2, 3
KIND_FIRMWARE, KIND_CONFIG = 0, 1
EARLY_LIFE_DEFAULT = (3, 60, 10)
EARLY_LIFE_DEFAULT_MAP = {EK_TRIAL_ATTEMPTS: 3, EK_HEALTH_TIMEOUT: 60, EK_SETTLE: 10}

ID_RE = re.compile(rb"[A-Za-z0-9._-]+\Z")


class Refused(Exception):
    """A release refused for a reason named as in FORMAT.md, "Errors"."""

    def __init__(self, name, detail):
        super().__init__(f"{name}: {detail}")
        self.name = name
        self.detail = detail


# ---------------------------------------------------------------------------------------
# A small strict CBOR reader. Generic decoders (cbor2 among them) accept indefinite
# lengths, keep the last of duplicate map keys and turn some tags into other types; the
# format refuses or distinguishes all of these, so the reader below keeps heads, maps (as
# lists of pairs) and tags as they are written.


class Tag:
    def __init__(self, number, value):
        self.number = number
        self.value = value


class Text(bytes):
    """A CBOR text string, kept as its raw UTF-8 bytes."""


class Map(list):
    """A CBOR map as a list of (key, value) pairs, in the order written."""


class Simple:
    def __init__(self, major7):
        self.major7 = major7


class Reader:
    """Reads CBOR items from a bytes buffer, refusing what the format refuses."""

    def __init__(self, buf, pos=0):
        self.buf = buf
        self.pos = pos

    def remaining(self):
        return len(self.buf) - self.pos

    def head(self):
        """Returns (major type, argument) of the next head and steps over it."""
        if self.remaining() < 1:
            raise Refused("truncated", "input ends inside a CBOR item")
        ib = self.buf[self.pos]
        major, ai = ib >> 5, ib & 0x1F
        if ai < 24:
            n, arg = 0, ai
        elif ai <= 27:
            n = 1 << (ai - 24)
            if self.remaining() < 1 + n:
                raise Refused("truncated", "input ends inside a CBOR head")
            arg = int.from_bytes(self.buf[self.pos + 1 : self.pos + 1 + n], "big")
        elif ai == 31:
            if 2 <= major <= 5:
                raise Refused("malformed", "indefinite-length item (tern uses definite lengths)")
            raise Refused("not-cbor", "additional information 31 on a head that cannot be indefinite")
        else:
            raise Refused("not-cbor", f"reserved additional information {ai}")
        self.pos += 1 + n
        return major, arg

    def item(self, depth=0):
        """Decodes one whole item."""
        if depth > READER_MAX_DEPTH:
            raise Refused("too-large", "CBOR nested too deeply")
        major, arg = self.head()
        if major == 0:
            return arg
        if major == 1:
            return -1 - arg
        if major in (2, 3):
            if arg > self.remaining():
                raise Refused("truncated", "input ends inside a CBOR string")
            body = self.buf[self.pos : self.pos + arg]
            self.pos += arg
            return bytes(body) if major == 2 else Text(body)
        if major == 4:
            if arg > self.remaining():
                raise Refused("truncated", "array announces more items than bytes left")
            return [self.item(depth + 1) for _ in range(arg)]
        if major == 5:
            if arg > self.remaining():
                raise Refused("truncated", "map announces more entries than bytes left")
            m = Map()
            for _ in range(arg):
                k = self.item(depth + 1)
                m.append((k, self.item(depth + 1)))
            return m
        if major == 6:
            return Tag(arg, self.item(depth + 1))
        return Simple(arg)  # false, true, null, undefined, floats: kept opaque


def is_uint(v):
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


def want_uint(v, what, maximum=None):
    if not is_uint(v):
        raise Refused("malformed", f"{what} is not an unsigned integer")
    if maximum is not None and v > maximum:
        raise Refused("too-large", f"{what} {v} exceeds {maximum}")
    return v


def want_text(v, what, maximum):
    """A non-empty text string of at most @maximum bytes with no NUL byte."""
    if not isinstance(v, Text):
        raise Refused("malformed", f"{what} is not a text string")
    if len(v) > maximum:
        raise Refused("too-large", f"{what} is longer than {maximum} bytes")
    if len(v) == 0 or b"\0" in v:
        raise Refused("malformed", f"{what} is empty or contains a NUL byte")
    return bytes(v)


def want_utf8(b, what):
    try:
        return b.decode("utf-8")
    except UnicodeDecodeError:
        raise Refused("malformed", f"{what} is not valid UTF-8") from None


def want_id(v, what, maximum):
    b = want_text(v, what, maximum)
    if not ID_RE.match(b):
        raise Refused("malformed", f"{what} has characters outside [A-Za-z0-9._-]")
    return b.decode("ascii")


def nesting(v):
    """Arrays, maps and tags nested in @v, @v included."""
    if isinstance(v, list):  # Map is a list too
        kids = [x for kv in v for x in kv] if isinstance(v, Map) else v
        return 1 + max((nesting(x) for x in kids), default=0)
    if isinstance(v, Tag):
        return 1 + nesting(v.value)
    return 0


def check_skipped(v, what):
    """A skipped value may nest at most 16 arrays, maps and tags."""
    if nesting(v) > MAX_DEPTH:
        raise Refused("too-large", f"{what}: skipped value nested too deeply")


def integer_keyed_entries(m, what):
    """
    Yields (key, value) for the unsigned-integer keys of a manifest-level map, skipping
    entries whose key is anything else, and refusing a repeated key below 64.
    """
    if not isinstance(m, Map):
        raise Refused("malformed", f"{what} is not a map")
    if len(m) > MAP_MAX_ENTRIES:
        raise Refused("too-large", f"{what} has more than {MAP_MAX_ENTRIES} entries")
    seen = set()
    for k, v in m:
        if not is_uint(k):
            check_skipped(k, what)
            check_skipped(v, what)
            continue
        if k < 64:
            if k in seen:
                raise Refused("malformed", f"{what} repeats key {k}")
            seen.add(k)
        yield k, v


# ---------------------------------------------------------------------------------------
# COSE_Sign1 (FORMAT.md, "The signed manifest").


class Sign1:
    pass


def parse_header_map(m, state, is_protected):
    if not isinstance(m, Map):
        raise Refused("malformed", "COSE header is not a map")
    if len(m) > HDR_MAX_ENTRIES:
        raise Refused("too-large", "COSE header has too many entries")
    for label, value in m:
        if isinstance(label, Text):
            check_skipped(value, "COSE header text label")  # private use: skipped
            continue
        if not is_int(label) or not (-(1 << 63) <= label < (1 << 63)):
            raise Refused("malformed", "COSE header label is not an integer or text")
        if label in state["seen"]:
            raise Refused("malformed", f"COSE header label {label} appears twice")
        state["seen"].add(label)
        if label == 1:
            if isinstance(value, Text):
                state["alg"] = "text"  # a text alg is never ES256
            elif is_int(value) and -(1 << 63) <= value < (1 << 63):
                state["alg"] = value
            else:
                raise Refused("malformed", "alg is not an integer or text")
        elif label == 2:
            if not is_protected:
                raise Refused("malformed", "crit in the unprotected header")
            if not isinstance(value, list):
                raise Refused("malformed", "crit is not an array")
            if len(value) == 0:
                raise Refused("malformed", "crit is empty")
            if len(value) > HDR_MAX_ENTRIES:
                raise Refused("too-large", "crit is too long")
            for c in value:
                if isinstance(c, Text):
                    raise Refused("unknown-critical", "crit lists a text label")
                if not is_int(c):
                    raise Refused("malformed", "crit lists something not a label")
                if c not in (1, 2, 4):
                    raise Refused("unknown-critical", f"crit lists unknown label {c}")
        elif label == 4:
            if not isinstance(value, bytes) or isinstance(value, Text):
                raise Refused("malformed", "kid is not a byte string")
            if len(value) > KID_MAX:
                raise Refused("too-large", "kid is longer than 32 bytes")
            state["kid"] = value
        else:
            check_skipped(value, f"COSE header label {label}")


def parse_sign1(buf):
    """Parses the COSE_Sign1 at the start of @buf; returns a Sign1 with its length."""
    r = Reader(buf)
    try:
        major, arg = Reader(buf).head()
    except Refused as e:
        if e.name == "not-cbor":
            raise Refused("not-a-release", "does not start with a COSE_Sign1") from None
        raise
    if major == 6:
        if arg != TAG_SIGN1:
            raise Refused("not-a-release", f"starts with CBOR tag {arg}, not 18 (COSE_Sign1)")
        r.head()
    major, arg = r.head()
    if major != 4 or arg != 4:
        raise Refused("not-a-release", "does not start with a COSE_Sign1 (array of 4)")
    state = {"seen": set(), "alg": None, "kid": None}
    s = Sign1()
    s.protected = r.item()
    if not isinstance(s.protected, bytes) or isinstance(s.protected, Text):
        raise Refused("malformed", "protected header is not a byte string")
    s.signed_protected = s.protected
    if len(s.protected) > 0:
        pr = Reader(s.protected)
        try:
            ph = pr.item()
        except Refused as e:
            if e.name == "truncated":
                raise Refused("malformed", "protected header is cut short") from None
            raise
        if pr.remaining():
            raise Refused("malformed", "bytes after the protected header map")
        parse_header_map(ph, state, True)
        if len(ph) == 0:
            s.signed_protected = b""  # h'a0' is signed as h'' (RFC 9052 section 3)
    parse_header_map(r.item(), state, False)
    s.payload = r.item()
    if not isinstance(s.payload, bytes) or isinstance(s.payload, Text):
        raise Refused("malformed", "payload is not a byte string (detached payloads unused)")
    s.signature = r.item()
    if not isinstance(s.signature, bytes) or isinstance(s.signature, Text):
        raise Refused("malformed", "signature is not a byte string")
    alg = state["alg"]
    if not is_int(alg) or alg != ALG_ES256:
        raise Refused("unsupported-algorithm", f"algorithm {alg!r}, only ES256 (-7)")
    s.kid = state["kid"]
    s.length = r.pos
    return s


def sig_structure(protected, payload):
    return cbor2.dumps(["Signature1", protected, b"", payload])


def point_of(public_key):
    return public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def kid_of(public_key):
    return hashlib.sha256(point_of(public_key)).digest()[:KID_LEN]


def verify_sign1(s, public_key):
    if s.kid is None or s.kid != kid_of(public_key):
        raise Refused("unknown-key", "key id %s is not the given public key's (%s)" %
                      (s.kid.hex() if s.kid is not None else "absent", kid_of(public_key).hex()))
    if len(s.signature) != SIG_LEN:
        raise Refused("bad-signature", f"signature is {len(s.signature)} bytes, not 64")
    r = int.from_bytes(s.signature[:32], "big")
    sv = int.from_bytes(s.signature[32:], "big")
    try:
        public_key.verify(utils.encode_dss_signature(r, sv),
                          sig_structure(s.signed_protected, s.payload),
                          ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise Refused("bad-signature", "the signature does not verify") from None


# ---------------------------------------------------------------------------------------
# The manifest (FORMAT.md, "The manifest").


class Component:
    pass


class Manifest:
    pass


def decode_component(v, i):
    c = Component()
    got = {}
    for k, val in integer_keyed_entries(v, f"component {i}"):
        if k == CK_NAME:
            c.name = want_id(val, f"component {i} name", NAME_MAX)
        elif k == CK_KIND:
            c.kind = want_uint(val, f"component {i} kind", 255)
        elif k == CK_SLOT_GROUP:
            c.slot_group = want_id(val, f"component {i} slot group", NAME_MAX)
        elif k == CK_SIZE:
            c.size = want_uint(val, f"component {i} size")
        elif k == CK_INDEX_DIGEST:
            if not isinstance(val, bytes) or isinstance(val, Text) or len(val) != 32:
                raise Refused("malformed", f"component {i} index digest is not 32 bytes")
            c.index_digest = val
        else:
            check_skipped(val, f"component {i} key {k}")
            continue
        got[k] = True
    missing = [k for k in (1, 2, 3, 4, 5) if k not in got]
    if missing:
        raise Refused("malformed", f"component {i} lacks key(s) {missing}")
    if c.kind not in (KIND_FIRMWARE, KIND_CONFIG):
        raise Refused("unknown-critical", f"component {i} has unknown kind {c.kind}")
    if c.size == 0:
        raise Refused("malformed", f"component {i} is empty")
    if c.size > COMPONENT_MAX:
        raise Refused("too-large", f"component {i} is larger than 1 TiB")
    return c


def decode_manifest(payload):
    if len(payload) > MANIFEST_MAX:
        raise Refused("too-large", f"manifest is {len(payload)} bytes, over {MANIFEST_MAX}")
    r = Reader(payload)
    top = r.item()
    if not isinstance(top, Map):
        raise Refused("malformed", "manifest is not a map")
    if len(top) > MAP_MAX_ENTRIES:
        raise Refused("too-large", "manifest map has too many entries")
    if r.remaining():
        raise Refused("malformed", "bytes after the manifest map")
    m = Manifest()
    m.notes = None
    m.early_life = EARLY_LIFE_DEFAULT
    m.critical = []
    got = set()
    for k, v in integer_keyed_entries(top, "manifest"):
        got.add(k)
        if k == MK_CRITICAL:
            if not isinstance(v, list):
                raise Refused("malformed", "critical (key 0) is not an array")
            if len(v) > MAP_MAX_ENTRIES:
                raise Refused("too-large", "critical list is too long")
            for c in v:
                if not is_uint(c) or c not in MK_KNOWN:
                    raise Refused("unknown-critical", f"manifest key {c!r} is critical")
            m.critical = list(v)
        elif k == MK_FORMAT:
            m.format_version = want_uint(v, "format version", U32_MAX)
            if m.format_version != FORMAT_VERSION:
                raise Refused("format-version", f"format version {m.format_version}, not 1")
        elif k == MK_RELEASE_ID:
            m.release_id = want_id(v, "release id", RELEASE_ID_MAX)
        elif k == MK_VERSION:
            m.version = want_utf8(want_text(v, "version", VERSION_MAX), "version")
        elif k == MK_SEQUENCE:
            m.sequence = want_uint(v, "sequence")
        elif k == MK_SECURITY_COUNTER:
            m.security_counter = want_uint(v, "security counter", U32_MAX)
        elif k == MK_BOARDS:
            if not isinstance(v, list):
                raise Refused("malformed", "boards is not an array")
            if len(v) > MAX_BOARDS:
                raise Refused("too-large", "more than 4 boards")
            m.boards = [want_id(b, "board", NAME_MAX) for b in v]
        elif k == MK_CHUNK_SIZE:
            m.chunk_size = want_uint(v, "chunk size", CHUNK_MAX)
        elif k == MK_COMPONENTS:
            if not isinstance(v, list):
                raise Refused("malformed", "components is not an array")
            if len(v) > MAX_COMPONENTS:
                raise Refused("too-large", "more than 4 components")
            m.components = [decode_component(c, i) for i, c in enumerate(v)]
        elif k == MK_NOTES:
            if not isinstance(v, Text):
                raise Refused("malformed", "notes is not a text string")
            if len(v) > NOTES_MAX:
                raise Refused("too-large", "notes longer than 4096 bytes")
            if b"\0" in v:
                raise Refused("malformed", "notes contain a NUL byte")
            m.notes = want_utf8(bytes(v), "notes")
        elif k == MK_CREATED:
            m.created = want_uint(v, "created")
        elif k == MK_EARLY_LIFE:
            el = dict(EARLY_LIFE_DEFAULT_MAP)
            for ek, ev in integer_keyed_entries(v, "early-life policy"):
                if ek in el:
                    el[ek] = want_uint(ev, f"early-life key {ek}", U32_MAX)
                else:
                    check_skipped(ev, f"early-life key {ek}")
            m.early_life = (el[1], el[2], el[3])
        else:
            check_skipped(v, f"manifest key {k}")
    missing = [k for k in (1, 2, 3, 4, 5, 6, 7, 8, 10) if k not in got]
    if missing:
        raise Refused("malformed", f"manifest lacks required key(s) {missing}")
    if not m.boards:
        raise Refused("malformed", "no board")
    if not m.components:
        raise Refused("malformed", "no component")
    cs = m.chunk_size
    if cs < CHUNK_MIN or cs & (cs - 1):
        raise Refused("malformed", f"chunk size {cs} is not a power of two in 1 KiB..1 MiB")
    names = [c.name for c in m.components]
    if len(set(names)) != len(names):
        raise Refused("malformed", "two components have the same name")
    return m



def chunk_count(size, chunk_size):
    return (size + chunk_size - 1) // chunk_size


# ---------------------------------------------------------------------------------------
# verify


class Stream:
    """Reads a file front to back, keeping count of the offset."""

    def __init__(self, f):
        self.f = f
        self.offset = 0

    def read_exact(self, n, what):
        parts = []
        left = n
        while left:
            b = self.f.read(min(left, 1 << 20))
            if not b:
                raise Refused("truncated", f"file ends inside {what} (offset {self.offset})")
            parts.append(b)
            left -= len(b)
            self.offset += len(b)
        return b"".join(parts)

    def bstr_head(self, expect, what):
        """Reads a definite byte-string head and checks it announces @expect bytes."""
        first = self.read_exact(1, f"the head of {what}")
        major, ai = first[0] >> 5, first[0] & 0x1F
        if major != 2 or ai == 31:
            raise Refused("malformed", f"{what} is not a definite-length byte string")
        if ai >= 28:
            raise Refused("not-cbor", f"reserved additional information in {what}'s head")
        n = 0 if ai < 24 else 1 << (ai - 24)
        arg = ai if ai < 24 else int.from_bytes(self.read_exact(n, f"the head of {what}"), "big")
        if arg != expect:
            raise Refused("malformed", f"{what} is {arg} bytes, the manifest says {expect}")


def load_public_key(path):
    with open(path, "rb") as f:
        data = f.read()
    try:
        if b"-----BEGIN" in data:
            key = serialization.load_pem_public_key(data)
        else:
            key = serialization.load_der_public_key(data)
    except ValueError as e:
        raise Refused("bad-key", f"{path}: {e}") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise Refused("bad-key", f"{path} is not a P-256 public key")
    return key


def verify(path, public_key):
    """Verifies the release at @path; returns its manifest or raises Refused."""
    with open(path, "rb") as f:
        head = f.read(SIGNED_MANIFEST_MAX)
        try:
            s = parse_sign1(head)
        except Refused as e:
            if e.name == "truncated" and len(head) == SIGNED_MANIFEST_MAX:
                raise Refused("too-large", "signed manifest longer than 8320 bytes") from None
            raise
        verify_sign1(s, public_key)
        m = decode_manifest(s.payload)
        f.seek(s.length)
        st = Stream(f)
        st.offset = s.length
        for c in m.components:
            n = chunk_count(c.size, m.chunk_size)
            st.bstr_head(32 * n, f"component {c.name}'s chunk index")
            # The index is 32 bytes per chunk: 8 MiB for 256 MiB at 1 KiB chunks.
            h = hashlib.sha256()
            index = bytearray()
            for off in range(0, 32 * n, 1 << 20):
                part = st.read_exact(min(1 << 20, 32 * n - off), f"{c.name}'s chunk index")
                h.update(part)
                index += part
            if h.digest() != c.index_digest:
                raise Refused("digest-mismatch",
                              f"component {c.name}'s chunk index does not match the manifest")
            st.bstr_head(c.size, f"component {c.name}")
            for i in range(n):
                length = min(m.chunk_size, c.size - i * m.chunk_size)
                chunk = st.read_exact(length, f"component {c.name} chunk {i}")
                if hashlib.sha256(chunk).digest() != index[32 * i : 32 * i + 32]:
                    raise Refused("digest-mismatch",
                                  f"component {c.name} chunk {i} does not match its index")
        if f.read(1):
            raise Refused("trailing-bytes", f"bytes after the last component (offset {st.offset})")
    return m, s


# ---------------------------------------------------------------------------------------
# create


def parse_size(text):
    m = re.fullmatch(r"([0-9]+)([KkMm]?)", text)
    if not m:
        raise argparse.ArgumentTypeError(f"not a size: {text}")
    return int(m.group(1)) * {"": 1, "k": 1024, "m": 1024 * 1024}[m.group(2).lower()]


def chunk_index(path, chunk_size):
    """Returns (size, chunk index) of the file at @path."""
    size = 0
    index = bytearray()
    with open(path, "rb") as f:
        while True:
            chunk = f.read(chunk_size)
            if not chunk:
                break
            size += len(chunk)
            index += hashlib.sha256(chunk).digest()
            if len(chunk) < chunk_size:
                if f.read(1):
                    raise SystemExit(f"{path}: short read")
                break
    return size, bytes(index)


def cbor_head(major, n):
    """The shortest definite head of major type @major with argument @n."""
    if n < 24:
        return bytes([major << 5 | n])
    for ai, width in ((24, 1), (25, 2), (26, 4), (27, 8)):
        if n < 1 << (8 * width):
            return bytes([major << 5 | ai]) + n.to_bytes(width, "big")
    raise ValueError("too long")


def sign1(private_key, payload):
    pub = private_key.public_key()
    der = private_key.sign(sig_structure(PROTECTED_ES256, payload), ec.ECDSA(hashes.SHA256()))
    r, s = utils.decode_dss_signature(der)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    msg = cbor2.CBORTag(TAG_SIGN1, [PROTECTED_ES256, {4: kid_of(pub)}, payload, sig])
    return cbor2.dumps(msg)


def cmd_create(a):
    with open(a.key, "rb") as f:
        private_key = serialization.load_pem_private_key(f.read(), password=None)
    comps = []
    for path, kind, name in ((a.firmware, KIND_FIRMWARE, a.firmware_name),
                             (a.config, KIND_CONFIG, a.config_name)):
        if path is None:
            continue
        size, index = chunk_index(path, a.chunk_size)
        slot = a.firmware_slot if kind == KIND_FIRMWARE else a.config_slot
        comps.append((path, {1: name, 2: kind, 3: slot, 4: size,
                             5: hashlib.sha256(index).digest()}, index))
    manifest = {
        1: FORMAT_VERSION,
        2: a.release_id or re.sub(r"[^A-Za-z0-9._-]", "_",
                                  f"{a.board[0]}-{a.version}-{a.sequence}"),
        3: a.version,
        4: a.sequence,
        5: a.security_counter,
        6: list(a.board),
        7: a.chunk_size,
        8: [c[1] for c in comps],
        10: a.created if a.created is not None else
        int(os.environ.get("SOURCE_DATE_EPOCH", time.time())),
        11: {1: a.trial_attempts, 2: a.health_timeout, 3: a.settle},
    }
    if a.notes:
        with open(a.notes, "rb") as f:
            manifest[9] = f.read().decode("utf-8")
    if a.critical is not None:
        manifest[0] = [int(x) for x in a.critical.split(",") if x]
    for extra in a.extra or []:
        k, _, hexval = extra.partition("=")
        manifest[int(k)] = cbor2.loads(bytes.fromhex(hexval))
    payload = cbor2.dumps(manifest, canonical=True)
    if not comps:
        raise SystemExit("create: give --firmware and/or --config")
    if a.check:
        decode_manifest(payload)  # refuse to sign what this tool's own reader refuses
    tmp = a.out + ".part"
    with open(tmp, "wb") as out:
        out.write(sign1(private_key, payload))
        for path, comp, index in comps:
            out.write(cbor_head(2, len(index)))
            out.write(index)
            out.write(cbor_head(2, comp[4]))
            with open(path, "rb") as f:
                copied = 0
                while True:
                    b = f.read(1 << 20)
                    if not b:
                        break
                    out.write(b)
                    copied += len(b)
            if copied != comp[4]:
                raise SystemExit(f"{path} changed while writing the release")
    os.replace(tmp, a.out)


def cmd_key(a):
    key = ec.generate_private_key(ec.SECP256R1())
    priv = key.private_bytes(serialization.Encoding.PEM,
                             serialization.PrivateFormat.TraditionalOpenSSL,
                             serialization.NoEncryption())
    pub = key.public_key().public_bytes(serialization.Encoding.PEM,
                                        serialization.PublicFormat.SubjectPublicKeyInfo)
    fd = os.open(a.out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(priv)
    pub_path = re.sub(r"\.key$", "", a.out) + ".pub"
    with open(pub_path, "wb") as f:
        f.write(pub)


def cmd_layout(a):
    """
    Prints where the parts of a release sit, as shell assignments, without verifying
    anything (for tests that damage one part): head_len, sig_off, manifest_off,
    manifest_len, then per component N: cN_index_off, cN_index_len, cN_data_off, cN_size.
    """
    with open(a.file, "rb") as f:
        s = parse_sign1(f.read(SIGNED_MANIFEST_MAX))
        m = decode_manifest(s.payload)
        print(f"head_len={s.length}")
        print(f"sig_off={s.length - SIG_LEN}")
        print(f"manifest_len={len(s.payload)}")
        print(f"manifest_off={s.length - SIG_LEN - 2 - len(s.payload)}")
        off = s.length
        for i, c in enumerate(m.components):
            n = 32 * chunk_count(c.size, m.chunk_size)
            off += len(cbor_head(2, n))
            print(f"c{i}_index_off={off}\nc{i}_index_len={n}")
            off += n + len(cbor_head(2, c.size))
            print(f"c{i}_data_off={off}\nc{i}_size={c.size}")
            off += c.size
        print(f"end={off}")
    return 0


def cmd_verify(a):
    try:
        m, s = verify(a.file, load_public_key(a.pubkey))
    except Refused as e:
        print(f"refused: {e.name}: {e.detail}")
        return 1
    except OSError as e:
        print(f"refused: io: {e}")
        return 1
    comps = ", ".join(f"{c.name}({'firmware' if c.kind == 0 else 'config'}) {c.size} B"
                      for c in m.components)
    print(f"ok: {m.release_id} version {m.version} sequence {m.sequence} "
          f"kid {s.kid.hex()}: {comps}")
    return 0


def main(argv):
    p = argparse.ArgumentParser(prog="tern_release.py")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify")
    v.add_argument("file")
    v.add_argument("--pubkey", required=True)
    c = sub.add_parser("create")
    c.add_argument("--key", required=True)
    c.add_argument("--board", action="append", required=True)
    c.add_argument("--version", required=True)
    c.add_argument("--sequence", type=int, required=True)
    c.add_argument("--security-counter", type=int, default=0)
    c.add_argument("--chunk-size", type=parse_size, default=CHUNK_DEFAULT)
    c.add_argument("--firmware")
    c.add_argument("--config")
    c.add_argument("--firmware-name", default="firmware")
    c.add_argument("--config-name", default="config")
    c.add_argument("--firmware-slot", default="firmware")
    c.add_argument("--config-slot", default="config")
    c.add_argument("--notes")
    c.add_argument("--id", "--release-id", dest="release_id")
    c.add_argument("--created", type=int)
    c.add_argument("--trial-attempts", type=int, default=EARLY_LIFE_DEFAULT[0])
    c.add_argument("--health-timeout", type=int, default=EARLY_LIFE_DEFAULT[1])
    c.add_argument("--settle", type=int, default=EARLY_LIFE_DEFAULT[2])
    # For tests of the reader rules: raw extra manifest entries KEY=CBORHEX, key 0.
    c.add_argument("--extra", action="append", help=argparse.SUPPRESS)
    c.add_argument("--critical", help=argparse.SUPPRESS)
    c.add_argument("--no-check", dest="check", action="store_false", help=argparse.SUPPRESS)
    c.add_argument("--out", required=True)
    lay = sub.add_parser("layout", help=argparse.SUPPRESS)
    lay.add_argument("file")
    k = sub.add_parser("key")
    k.add_argument("--out", required=True)
    a = p.parse_args(argv)
    if a.cmd == "verify":
        return cmd_verify(a)
    if a.cmd == "layout":
        return cmd_layout(a)
    if a.cmd == "create":
        cmd_create(a)
        return 0
    cmd_key(a)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
