#!/usr/bin/python3
"""Checks tern's golden manifest bytes with an independent CBOR decoder (cbor2).

  check_manifest_golden.py HEX

Decodes HEX and compares it with the manifest that tests/unit/test_manifest.c encodes,
written out here by hand from the key table in protocol/include/tern/tern_manifest.h:

  manifest  0 critical, 1 format, 2 release id, 3 version, 4 sequence,
            5 security counter, 6 boards, 7 chunk size, 8 components, 9 notes,
            10 created, 11 early life
  component 1 name, 2 kind (0 firmware, 1 config), 3 slot group, 4 size,
            5 index digest (SHA-256 of the chunk index)
  early     1 trial attempts, 2 health-check timeout (s), 3 settle time (s)

It also checks the encoding is canonical (RFC 8949 core deterministic: shortest
heads, map keys in order). Prints "ok" and exits 0, or says what differs.
Run with /usr/bin/python3 (Debian's, with python3-cbor2).
"""
import sys

import cbor2

EXPECTED = {
    1: 1,
    2: "rel-2026.11-a",
    3: "1.4.2",
    4: 42,
    5: 3,
    6: ["sim", "pi4-b"],
    7: 16384,
    8: [
        {1: "fw", 2: 0, 3: "system", 4: 1000000, 5: bytes(range(32))},
        {1: "cfg", 2: 1, 3: "config", 4: 4096, 5: bytes(range(0xa0, 0xc0))},
    ],
    9: "Fix the watchdog reset.\n",
    10: 1764201600,
    11: {1: 3, 2: 60, 3: 10},
}


def main():
    if len(sys.argv) != 2:
        sys.stderr.write(__doc__)
        return 2
    data = bytes.fromhex(sys.argv[1])
    got = cbor2.loads(data)
    if got != EXPECTED:
        print("decoded manifest differs:\n  got      %r\n  expected %r" % (got, EXPECTED))
        return 1
    canonical = cbor2.dumps(EXPECTED, canonical=True)
    if canonical != data:
        print("not canonical:\n  got      %s\n  expected %s" % (data.hex(), canonical.hex()))
        return 1
    print("ok")
    return 0


if __name__ == "__main__":
    sys.exit(main())
