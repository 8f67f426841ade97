#!/usr/bin/python3
"""COSE_Sign1 ES256 with an implementation independent of tern (cbor2 + cryptography).

  cose_interop.py verify POINT_HEX MSG_FILE[:AAD_HEX]...
      Checks that each file is a tagged COSE_Sign1 as tern writes it (protected header
      exactly {1: -7}, unprotected {4: kid} with kid = SHA-256(point)[:8]) and that its
      signature verifies with the P-256 point and the external AAD. Prints one line per
      file; exits 0 only when every file verifies.

  cose_interop.py sign OUT_FILE PAYLOAD_HEX AAD_HEX
      Signs with a fresh key (randomized ECDSA, unlike tern's RFC 6979) and writes a
      COSE_Sign1 whose protected header is {1: -7} and unprotected header {4: kid};
      prints the public point as hex.

Run with /usr/bin/python3 (Debian's, with python3-cbor2 and python3-cryptography).
"""
import hashlib
import sys

import cbor2
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import (decode_dss_signature,
                                                             encode_dss_signature)
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat


def sig_structure(protected, aad, payload):
    return cbor2.dumps(["Signature1", protected, aad, payload])


def verify_one(point, path, aad):
    with open(path, "rb") as f:
        data = f.read()
    item = cbor2.loads(data)
    if not isinstance(item, cbor2.CBORTag) or item.tag != 18:
        return "not tagged 18"
    if cbor2.dumps(item) != data:
        return "not one canonical CBOR item"
    msg = item.value
    if not isinstance(msg, list) or len(msg) != 4:
        return "not a 4-element array"
    protected, unprotected, payload, sig = msg
    if cbor2.loads(protected) != {1: -7}:
        return "protected header is %r" % cbor2.loads(protected)
    kid = hashlib.sha256(point).digest()[:8]
    if unprotected != {4: kid}:
        return "unprotected header is %r" % unprotected
    if not isinstance(payload, bytes) or not isinstance(sig, bytes) or len(sig) != 64:
        return "bad payload or signature"
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), point)
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"),
                               int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, sig_structure(protected, aad, payload), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        return "signature does not verify"
    return None


def cmd_verify(args):
    point = bytes.fromhex(args[0])
    bad = 0
    for arg in args[1:]:
        path, _, aad_hex = arg.partition(":")
        err = verify_one(point, path, bytes.fromhex(aad_hex))
        print("%s: %s" % (path, err or "ok"))
        bad += err is not None
    return 1 if bad or len(args) < 2 else 0


def cmd_sign(args):
    out, payload, aad = args[0], bytes.fromhex(args[1]), bytes.fromhex(args[2])
    key = ec.generate_private_key(ec.SECP256R1())
    point = key.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
    protected = cbor2.dumps({1: -7})
    der = key.sign(sig_structure(protected, aad, payload), ec.ECDSA(hashes.SHA256()))
    r, s = decode_dss_signature(der)
    sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
    kid = hashlib.sha256(point).digest()[:8]
    msg = cbor2.dumps(cbor2.CBORTag(18, [protected, {4: kid}, payload, sig]))
    with open(out, "wb") as f:
        f.write(msg)
    print(point.hex())
    return 0


def main():
    if len(sys.argv) >= 3 and sys.argv[1] == "verify":
        return cmd_verify(sys.argv[2:])
    if len(sys.argv) == 5 and sys.argv[1] == "sign":
        return cmd_sign(sys.argv[2:])
    sys.stderr.write(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main())
