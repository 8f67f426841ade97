#!/usr/bin/python3
"""Independent MQTT peer for tern's tests (python3-paho-mqtt, cbor2): not tern's code.

  mqtt_tool.py read-release URL PREFIX RELEASE.tern
      subscribes to everything the release should have in the broker (all chunks at
      once: more than mosquitto's default 1020 queued) and checks the manifest, every
      chunk index and every chunk against the file's own bytes and index
  mqtt_tool.py absent URL TOPIC       exit 0 when nothing is retained on TOPIC
  mqtt_tool.py get URL TOPIC OUT      saves the retained message on TOPIC to OUT
  mqtt_tool.py count-retained URL FILTER [REGEX]   prints how many topics under FILTER
      (those matching REGEX, if given) hold a retained message: those that come after
      the SUBACK, until 0.5 s pass without one
  mqtt_tool.py device URL PREFIX ID BOARD [--die] [--generation N]
      a fake device: last will "offline", publishes online, a state and events,
      then disconnects cleanly (offline) or dies (--die: the broker sends the will)
  mqtt_tool.py verify-desired FILE PUBKEY.pem
      verifies a desired state as any RFC 9052 implementation would (cryptography's
      ECDSA over the Sig_structure with external AAD "tern-desired-v1") and prints it
  mqtt_tool.py try URL USER PASS pub|sub TOPIC   (TLS options from $MQTT_CAFILE)
      pub: publishes and exits 0; sub: exit 0 if a retained message arrives in 1 s;
      USER "-": no username (a client certificate from $MQTT_CERT/$MQTT_KEY is the identity)
Common options come from the environment: MQTT_CAFILE, MQTT_USER, MQTT_PASS, and a client
certificate and key MQTT_CERT, MQTT_KEY.
"""
import hashlib
import os
import re
import ssl
import sys
import threading
import time
from urllib.parse import urlparse

import cbor2
import paho.mqtt.client as mqtt


def client(url, client_id="", user=None, password=None):
    u = urlparse(url)
    c = mqtt.Client(client_id=client_id, clean_session=True)
    user = user or os.environ.get("MQTT_USER")
    password = password or os.environ.get("MQTT_PASS")
    if user:
        c.username_pw_set(user, password)
    if u.scheme == "mqtts":
        c.tls_set(ca_certs=os.environ.get("MQTT_CAFILE"), cert_reqs=ssl.CERT_REQUIRED,
                  certfile=os.environ.get("MQTT_CERT"), keyfile=os.environ.get("MQTT_KEY"))
    return c, u.hostname, u.port or (8883 if u.scheme == "mqtts" else 1883)


def connect(c, host, port):
    done = threading.Event()
    result = {}

    def on_connect(cl, userdata, flags, rc):
        result["rc"] = rc
        done.set()

    c.on_connect = on_connect
    c.connect(host, port, keepalive=30)
    c.loop_start()
    if not done.wait(5) or result["rc"] != 0:
        c.loop_stop()
        raise SystemExit("connect failed: rc %s" % result.get("rc"))


def split_release(path):
    """The release file: signed manifest bytes, then per component (index, bytes)."""
    data = open(path, "rb").read()
    dec = cbor2.CBORDecoder(__import__("io").BytesIO(data))
    head = dec.decode()
    head_len = dec.fp.tell()
    sign1 = head.value if isinstance(head, cbor2.CBORTag) else head
    manifest = cbor2.loads(sign1[2])
    comps = []
    for comp in manifest[8]:
        index = dec.decode()
        body = dec.decode()
        comps.append((comp[1], index, body))
    return data[:head_len], manifest, comps


def read_release(url, prefix, path):
    head, manifest, comps = split_release(path)
    rel = manifest[2]
    chunk = manifest[7]
    want = {"%s/rel/%s/manifest" % (prefix, rel): head}
    for name, index, body in comps:
        want["%s/rel/%s/%s/index" % (prefix, rel, name)] = index
        n = (len(body) + chunk - 1) // chunk
        assert len(index) == 32 * n
        for i in range(n):
            part = body[i * chunk:(i + 1) * chunk]
            assert hashlib.sha256(part).digest() == index[32 * i:32 * i + 32]
            want["%s/rel/%s/%s/%d/%d" % (prefix, rel, name, i // 64, i)] = part
    got = {}
    lock = threading.Lock()
    complete = threading.Event()

    def on_message(cl, userdata, msg):
        with lock:
            got[msg.topic] = (bytes(msg.payload), msg.retain)
            if len(got) >= len(want):
                complete.set()

    c, host, port = client(url)
    c.on_message = on_message
    connect(c, host, port)
    c.subscribe("%s/rel/%s/#" % (prefix, rel), qos=1)
    complete.wait(20)
    time.sleep(0.3)  # anything extra would show up now
    c.disconnect()
    c.loop_stop()
    bad = 0
    for topic, payload in want.items():
        if topic not in got:
            print("missing: %s" % topic)
            bad += 1
        elif got[topic][0] != payload or not got[topic][1]:
            print("wrong or not retained: %s" % topic)
            bad += 1
    extra = set(got) - set(want)
    for topic in sorted(extra)[:5]:
        print("unexpected: %s" % topic)
    n_chunks = sum(1 for t in want if t.count("/") == len(prefix.split("/")) + 4)
    print("read %d of %d retained messages (%d chunks), %d bad, %d unexpected"
          % (len(got), len(want), n_chunks, bad, len(extra)))
    return 0 if bad == 0 and not extra else 1


def get_retained(url, topic, timeout=2.0):
    box = []
    ev = threading.Event()

    def on_message(cl, userdata, msg):
        if msg.retain:
            box.append(bytes(msg.payload))
            ev.set()

    c, host, port = client(url)
    c.on_message = on_message
    connect(c, host, port)
    subscribed = threading.Event()
    c.on_subscribe = lambda cl, u, mid, qos: subscribed.set()
    c.subscribe(topic, qos=1)
    subscribed.wait(timeout)
    ev.wait(0.3)
    c.disconnect()
    c.loop_stop()
    return box[0] if box else None


def fake_device(url, prefix, dev, board, die, generation=1):
    c, host, port = client(url, client_id="fake-" + dev)
    base = "%s/dev/%s" % (prefix, dev)
    c.will_set(base + "/online", b"offline", qos=1, retain=True)
    connect(c, host, port)
    now = int(time.time())
    slot_a = {1: "sim-1.0.0-1", 2: "1.0.0", 3: 1, 4: True}
    slot_b = {1: "sim-1.1.0-2", 2: "1.1.0", 3: 2, 4: False}
    refusal = cbor2.dumps({1: dev, 2: 2, 3: now, 4: 1, 5: 1, 6: 1, 8: 23,
                           9: "generation 1 <= 1", 10: 1})
    msgs = [
        (base + "/online", b"online", True),
        (base + "/state", cbor2.dumps({1: dev, 2: board, 3: 0, 4: 0, 5: [slot_a, {}], 7: 0, 8: 0,
                                       9: 0, 10: 0, 11: now, 12: 1}), True),
        (base + "/events", cbor2.dumps({1: dev, 2: 1, 3: now, 4: 0, 5: 0, 6: 1, 7: "sim-1.1.0-2",
                                        8: 0}), False),
        (base + "/events", refusal, False),
        (base + "/events", b"\xff not cbor", False),
        # the first event again, as a broker redelivers after a reconnect (QoS 1)
        (base + "/events", cbor2.dumps({1: dev, 2: 1, 3: now, 4: 0, 5: 0, 6: 1, 7: "sim-1.1.0-2",
                                        8: 0}), False),
        (base + "/state", cbor2.dumps({1: dev, 2: board, 3: 7, 4: 1, 5: [slot_a, slot_b],
                                       6: "sim-1.1.0-2", 7: 5, 8: 10, 9: 10, 10: generation, 11: now,
                                       12: 1, 13: refusal}), True),
    ]
    infos = [c.publish(t, p, qos=1, retain=r) for t, p, r in msgs]
    for info in infos:
        info.wait_for_publish()
    if die:
        c.loop_stop()
        c.socket().close()  # no DISCONNECT: the broker publishes the will
    else:
        c.publish(base + "/online", b"offline", qos=1, retain=True).wait_for_publish()
        c.disconnect()
        c.loop_stop()
    return 0


def try_access(url, user, password, op, topic):
    if user == "-":  # no username: the client certificate is the identity
        user, password = None, None
    c, host, port = client(url, user=user, password=password)
    try:
        connect(c, host, port)
    except SystemExit as e:
        print(e)
        return 2
    if op == "pub":
        who = (user or os.path.basename(os.environ.get("MQTT_CERT", "?"))).encode()
        c.publish(topic, b"probe from " + who, qos=1, retain=True).wait_for_publish()
        c.disconnect()
        c.loop_stop()
        return 0
    box = []
    subscribed = threading.Event()
    c.on_message = lambda cl, u, msg: box.append(msg.topic)
    c.on_subscribe = lambda cl, u, mid, qos: subscribed.set()
    c.subscribe(topic, qos=1)
    # Retained messages follow the SUBACK at once; a short grace covers the rest.
    subscribed.wait(2)
    for _ in range(30):
        if box:
            break
        time.sleep(0.01)
    c.disconnect()
    c.loop_stop()
    return 0 if box else 1


def count_retained(url, topic_filter, pattern=None):
    match = re.compile(pattern or "")
    c, host, port = client(url)
    connect(c, host, port)
    topics = set()
    last = [time.monotonic()]
    subscribed = threading.Event()

    def on_message(cl, u, msg):
        if msg.retain and match.search(msg.topic):
            topics.add(msg.topic)
            last[0] = time.monotonic()

    c.on_message = on_message
    c.on_subscribe = lambda cl, u, mid, qos: subscribed.set()
    c.subscribe(topic_filter, qos=1)
    if not subscribed.wait(5):
        raise SystemExit("no SUBACK for %s" % topic_filter)
    last[0] = time.monotonic()
    while time.monotonic() - last[0] < 0.5:
        time.sleep(0.05)
    c.disconnect()
    c.loop_stop()
    print(len(topics))
    return 0


def verify_desired(path, pub_path):
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
    msg = cbor2.loads(open(path, "rb").read())
    assert isinstance(msg, cbor2.CBORTag) and msg.tag == 18, "not a tagged COSE_Sign1"
    protected, unprotected, payload, sig = msg.value
    assert cbor2.loads(protected) == {1: -7}, "alg is not ES256"
    to_sign = cbor2.dumps(["Signature1", protected, b"tern-desired-v1", payload])
    key = serialization.load_pem_public_key(open(pub_path, "rb").read())
    der = encode_dss_signature(int.from_bytes(sig[:32], "big"), int.from_bytes(sig[32:], "big"))
    try:
        key.verify(der, to_sign, ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        print("bad signature")
        return 1
    print("verified: %r" % cbor2.loads(payload))
    return 0


def main(argv):
    cmd = argv[1]
    if cmd == "read-release":
        return read_release(argv[2], argv[3], argv[4])
    if cmd == "absent":
        return 0 if get_retained(argv[2], argv[3], 1.0) is None else 1
    if cmd == "get":
        data = get_retained(argv[2], argv[3])
        if data is None:
            print("nothing retained on %s" % argv[3])
            return 1
        open(argv[4], "wb").write(data)
        return 0
    if cmd == "count-retained":
        return count_retained(argv[2], argv[3], argv[4] if len(argv) > 4 else None)
    if cmd == "device":
        rest = argv[6:]
        gen = int(rest[rest.index("--generation") + 1]) if "--generation" in rest else 1
        return fake_device(argv[2], argv[3], argv[4], argv[5], "--die" in rest, gen)
    if cmd == "verify-desired":
        return verify_desired(argv[2], argv[3])
    if cmd == "try":
        return try_access(argv[2], argv[3], argv[4], argv[5], argv[6])
    raise SystemExit(__doc__)


if __name__ == "__main__":
    sys.exit(main(sys.argv))
