"""tests/audit_check.py - checks the --audit files tests/audit_tests.sh
made (named in the environment); with the argument "policy", the trail
tests/policy_tests.sh made of --policy's allow and deny decisions.
Prints one "ok - NAME" or "FAIL - NAME: WHY" line per test; started once
per run."""
import datetime
import json
import os
import re
import subprocess
import sys

E = os.environ
HAVE_KTLS = os.path.exists("/proc/net/tls_stat")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
SANS = ["DNS:client.example", "DNS:tab\tx.example",
        "DNS:caf\u00c3\u00a9.example", "URI:spiffe://example.org/c",
        "email:c@example.org", "IP:192.0.2.7", "IP:2001:db8::1"]


# What each event.action says of itself (ECS event.category, event.type).
KINDS = {
    "connection-accepted": (["network"], ["connection", "start"]),
    "tls-handshake-failed": (["network", "authentication"], ["connection", "denied"]),
    "access-allowed": (["network", "authentication"], ["allowed"]),
    "connection-closed": (["network"], ["connection", "end"]),
    "connection-refused": (["network"], ["connection", "denied"]),
    "revocation-checked": (["authentication"], ["info"]),
    "access-denied": (["network", "authentication"], ["denied"]),
}


def result(name, why):
    print(f"ok - {name}" if not why else f"FAIL - {name}: {why}")


def load(path):
    """The file's objects, and what is wrong with its lines, if anything."""
    try:
        data = open(path, "rb").read()
    except OSError as e:
        return [], [f"{path}: {e.strerror}"]
    objs, bad = [], []
    if data and not data.endswith(b"\n"):
        bad.append("the last line has no newline")
    for n, raw in enumerate(data.splitlines(), 1):
        try:
            o = json.loads(raw.decode("ascii"))
            if not isinstance(o, dict):
                raise ValueError("not an object")
            objs.append(o)
        except (ValueError, UnicodeDecodeError) as e:
            bad.append(f"line {n} is not one ASCII JSON object ({e}): {raw[:200]!r}")
    return objs, bad


def common(o):
    """What every line must have; '' or why not."""
    if not TIMESTAMP.match(str(o.get("@timestamp"))):
        return f"@timestamp {o.get('@timestamp')!r}"
    for key, want in (("event.kind", "event"),):
        if o.get(key) != want:
            return f"{key} {o.get(key)!r}"
    if o.get("event.outcome") not in ("success", "failure"):
        return f"event.outcome {o.get('event.outcome')!r}"
    for key in ("hk.connection.id", "source.port"):
        if type(o.get(key)) is not int:
            return f"{key} {o.get(key)!r}"
    if not isinstance(o.get("source.ip"), str):
        return "source.ip"
    return ""


def by_id(objs):
    conns = {}
    for o in objs:
        conns.setdefault(o.get("hk.connection.id"), []).append(o)
    return conns


def actions(lines):
    return [o.get("event.action") for o in lines]


def expect(o, want):
    """'' if every key of want has its value in o, else the first that has not."""
    for k, v in want.items():
        if o.get(k) != v:
            return f"{k} is {o.get(k)!r}, want {v!r}"
    return ""


def openssl_time(text):
    t = datetime.datetime.strptime(" ".join(text.split()), "%b %d %H:%M:%S %Y GMT")
    return t.strftime("%Y-%m-%dT%H:%M:%S.000Z")


def identity(name):
    """The tls.client.* fields of $HK_CERTS/NAME-cert.pem, as openssl sees it."""
    path = os.path.join(E["HK_CERTS"], name + "-cert.pem")
    out = subprocess.run(
        ["openssl", "x509", "-in", path, "-noout", "-subject", "-issuer",
         "-serial", "-fingerprint", "-sha256", "-startdate", "-enddate",
         "-nameopt", "RFC2253", "-ext", "subjectAltName"],
        capture_output=True, text=True, check=True).stdout
    f = {}
    for line in out.splitlines():
        key, _, value = line.partition("=")
        f[key.strip()] = value
    sans = re.findall(r"(DNS|URI|email|IP Address):([^,\s]+)", out)
    return {
        "tls.client.subject": f["subject"],
        "tls.client.issuer": f["issuer"],
        "tls.client.x509.serial_number": f["serial"],
        "tls.client.hash.sha256": f["sha256 Fingerprint"].replace(":", ""),
        "tls.client.not_before": openssl_time(f["notBefore"]),
        "tls.client.not_after": openssl_time(f["notAfter"]),
        "tls.client.x509.alternative_names":
            [("IP" if t == "IP Address" else t) + ":" + v for t, v in sans],
    }


def check_kinds():
    """Every line of every file: event.category and event.type of its action."""
    why = []
    for key in ("AUDIT_GOOD", "AUDIT_BAD", "AUDIT_MAX", "AUDIT_MANY"):
        for o in load(E[key])[0]:
            want = KINDS.get(o.get("event.action"))
            got = (o.get("event.category"), o.get("event.type"))
            if want is None or got != want:
                why.append(f"{key} {o.get('event.action')}: {got}, want {want}")
    result("every event has the event.category and event.type of its action",
           "; ".join(why[:3]))


def ktls_word():
    return None if HAVE_KTLS else "unavailable"


def check_good():
    objs, bad = load(E["AUDIT_GOOD"])
    result("good client: every line is one JSON object", "; ".join(bad) or
           ("" if len(objs) == 6 else f"{len(objs)} lines, want 6"))
    result("good client: every line has @timestamp, event.*, source.*",
           "; ".join(filter(None, map(common, objs))))
    conns = by_id(objs)
    first = conns.get(1, [])
    order = ["connection-accepted", "access-allowed", "connection-closed"]
    result("good client: accepted, allowed, closed, in this order",
           "" if actions(first) == order and E["GOOD_RC"] == "0" else
           f"{actions(first)}, client rc {E['GOOD_RC']}")
    if actions(first) != order:
        return
    acc, allow, close = first
    ports = {o["source.port"] for o in first}
    result("good client: one source.ip and source.port on all three lines",
           "" if len(ports) == 1 and acc["source.ip"] == "127.0.0.1" else
           f"ports {ports}, ip {acc['source.ip']}")
    not_after = datetime.datetime.strptime(
        " ".join(E["SAN_NOT_AFTER"].split()), "%b %d %H:%M:%S %Y GMT")
    result("good client: allowed has the session and rule fields", expect(allow, {
        "event.outcome": "success", "event.reason": "verified",
        "rule.name": "default", "tls.version": "1.3", "tls.resumed": False,
        "tls.established": True,
        "event.category": ["network", "authentication"]}) or
        ("" if str(allow.get("tls.cipher")).startswith("TLS_AES_") else
         f"tls.cipher {allow.get('tls.cipher')!r}"))
    result("good client: subject, issuer, serial, sha256, not_after as openssl says",
           expect(allow, {
               "tls.client.subject": E["SAN_SUBJECT"],
               "tls.client.issuer": E["SAN_ISSUER"],
               "tls.client.x509.serial_number": E["SAN_SERIAL"],
               "tls.client.hash.sha256": E["SAN_SHA256"].replace(":", ""),
               "tls.client.not_after":
                   not_after.strftime("%Y-%m-%dT%H:%M:%S.000Z")}))
    result("good client: SANs of every type, control and non-ASCII bytes escaped",
           expect(allow, {"tls.client.x509.alternative_names": SANS}))
    for o in (allow, close):
        word = ktls_word()
        if word and (o.get("hk.ktls.tx"), o.get("hk.ktls.rx")) != (word, word):
            result(f"good client: {o['event.action']} says kTLS {word}",
                   f"tx {o.get('hk.ktls.tx')!r} rx {o.get('hk.ktls.rx')!r}")
            break
    else:
        result("good client: allowed and closed say hk.ktls.tx/rx", "")
    result("good client: closed has the bytes each way, duration, close_notify",
           expect(close, {"hk.bytes.in": len(E["MSG"]),
                          "hk.bytes.out": len(E["REPLY"]),
                          "event.reason": "close_notify",
                          "event.outcome": "success"}) or
           ("" if type(close.get("hk.duration_ms")) is int and
            0 <= close["hk.duration_ms"] < 60000 else
            f"hk.duration_ms {close.get('hk.duration_ms')!r}"))
    raw = open(E["AUDIT_GOOD"], "rb").read()
    result("good client: no certificate or key in the trail",
           "" if b"BEGIN" not in raw and b"MII" not in raw else "found PEM")
    result("good client: destination.ip and destination.port are the server's",
           "; ".join(filter(None, (expect(o, {
               "destination.ip": "127.0.0.1",
               "destination.port": int(E["GOOD_PORT"])}) for o in first))))
    curl = [o for o in conns.get(2, []) if o.get("source.port") != int(E["CURL_PORT"])]
    result("curl --local-port: source.port is the client's port",
           "" if conns.get(2) and not curl else
           f"want {E['CURL_PORT']}, lines {conns.get(2)}")


def server_reason(log, port):
    """What the server's stderr said of the client on port."""
    pre = f"hello_ktls_server: client 127.0.0.1:{port}: "
    for line in open(log, encoding="utf-8", errors="replace"):
        if line.startswith(pre):
            return line[len(pre):].rstrip("\n")
    return None


def check_refused():
    objs, bad = load(E["AUDIT_BAD"])
    conns = by_id(objs)
    # The server runs with --crl: the revoked client's leaf was checked
    # (a revocation-checked line); the others failed before that.
    order = ["connection-accepted", "tls-handshake-failed"]
    checked = ["connection-accepted", "revocation-checked", "tls-handshake-failed"]
    clients = ((1, "client of another CA", "rejected", "other-client", order),
               (2, "garbage peer", "", None, order),
               (3, "revoked client", "certificate revoked", "revoked-client", checked))
    for cid, name, words, cert, order in clients:
        lines = conns.get(cid, [])
        why = "; ".join(bad) or "; ".join(filter(None, map(common, lines)))
        if not why and actions(lines) != order:
            why = f"actions {actions(lines)}"
        if not why:
            fail = lines[-1]
            said = server_reason(E["BAD_SRV_LOG"], fail["source.port"])
            why = expect(fail, {"event.outcome": "failure", "event.reason": said,
                                "tls.established": False})
            if not why and not said:
                why = "the server logged no reason"
            if not why and words not in said:
                why = f"reason {said!r}, want {words!r} in it"
        result(f"{name}: accepted, then handshake-failed with the server's reason", why)
        if why:
            continue
        if cert:
            result(f"{name}: handshake-failed names the refused certificate "
                   "as openssl does", expect(lines[-1], identity(cert)))
        else:
            extra = [k for k in lines[-1] if k.startswith("tls.client.")]
            result(f"{name}: no certificate, no tls.client.* field",
                   f"has {extra}" if extra else "")


def check_maxconn():
    objs, bad = load(E["AUDIT_MAX"])
    conns = by_id(objs)
    refused = [o for o in objs if o.get("event.action") == "connection-refused"]
    why = "; ".join(bad) or "; ".join(filter(None, map(common, objs)))
    if not why and (len(refused) != 1 or E["MAX_RC"] != "1"):
        why = f"{len(refused)} connection-refused lines, client rc {E['MAX_RC']}"
    if not why:
        r = refused[0]
        pre = f"hello_ktls_server: refusing client 127.0.0.1:{r['source.port']}: "
        said = None
        for line in open(E["MAX_SRV_LOG"], encoding="utf-8", errors="replace"):
            if line.startswith(pre):
                said = line[len(pre):].rstrip("\n")
        why = expect(r, {"event.outcome": "failure", "event.reason": said,
                         "source.ip": "127.0.0.1",
                         "destination.ip": "127.0.0.1",
                         "destination.port": int(E["MAX_PORT"])})
        if not why and "(--max-connections)" not in (said or ""):
            why = f"the server said {said!r}"
        if not why and actions(conns[r["hk.connection.id"]]) != ["connection-refused"]:
            why = f"its connection has {actions(conns[r['hk.connection.id']])}"
        if not why and [k for k in r if k.startswith(("tls.", "hk.ktls"))]:
            why = "tls or kTLS fields on a connection that had no TLS"
    result("over --max-connections: one connection-refused line with the server's reason", why)


def check_syslog():
    """One datagram per event at /dev/log: <86> (authpriv.info), the
    ident hello_ktls_server[PID], then the JSON object."""
    if E["SYSLOG_RC"] != "0":
        result("--audit syslog: one JSON datagram per event",
               f"the namespace part failed (exit {E['SYSLOG_RC']}): {E['SYSLOG_WHY']}")
        return
    pid = open(E["SYSLOG_OUT"] + ".pid").read().strip()
    head = re.compile(r"^<(\d+)>[A-Z][a-z]{2} [ \d]\d \d\d:\d\d:\d\d "
                      r"hello_ktls_server\[(\d+)\]: (.*)$")
    objs, why = [], []
    for raw in open(E["SYSLOG_OUT"], "rb").read().splitlines():
        m = head.match(raw.decode("ascii", "replace"))
        if not m:
            why.append(f"not a syslog line: {raw[:120]!r}")
            continue
        if m.group(1) != "86" or m.group(2) != pid:
            why.append(f"priority {m.group(1)} (want 86: authpriv.info), "
                       f"pid {m.group(2)} (want {pid})")
        try:
            objs.append(json.loads(m.group(3)))
        except ValueError as e:
            why.append(f"not JSON ({e}): {m.group(3)[:120]!r}")
    conns = by_id(objs)
    want = {1: ["connection-accepted", "access-allowed", "connection-closed"],
            2: ["connection-accepted", "tls-handshake-failed"]}
    got = {c: actions(lines) for c, lines in conns.items()}
    if not why and got != want:
        why.append(f"actions {got}, want {want}")
    if not why and open(E["SYSLOG_OUT"] + ".rc").read().strip() != "0":
        why.append("the good client failed")
    why += list(filter(None, map(common, objs)))
    result("--audit syslog: one JSON datagram per event, authpriv.info, "
           "ident hello_ktls_server[pid]", "; ".join(why[:3]))


def check_many():
    objs, bad = load(E["AUDIT_MANY"])
    conns = by_id(objs)
    order = ["connection-accepted", "access-allowed", "connection-closed"]
    wrong = [c for c, lines in conns.items() if actions(lines) != order]
    why = "; ".join(bad[:3]) or "; ".join(list(filter(None, map(common, objs)))[:3])
    if not why and (len(objs) != 150 or sorted(conns) != list(range(1, 51))):
        why = f"{len(objs)} lines, ids {sorted(conns)}"
    if not why and wrong:
        why = f"connections {wrong[:5]} out of order"
    result("50 clients at once: 150 whole lines, 3 per connection, in order", why)


def check_rotation():
    old, bad_old = load(E["AUDIT_ROT"] + ".1")
    new, bad_new = load(E["AUDIT_ROT"])
    conns = by_id(old + new)
    order = ["connection-accepted", "access-allowed", "connection-closed"]
    why = "; ".join(bad_old + bad_new)
    if not why and (len(old) + len(new) != 90 or sorted(conns) != list(range(1, 31))):
        why = f"{len(old)} + {len(new)} lines, ids {sorted(conns)}"
    if not why and any(actions(lines) != order for lines in conns.values()):
        why = "a connection's lines are missing or out of order"
    olds = {o["hk.connection.id"] for o in old}
    news = {o["hk.connection.id"] for o in new}
    if not why and not (set(range(1, 6)) <= olds and set(range(26, 31)) <= news):
        why = f"old file ids {sorted(olds)}, new file ids {sorted(news)}"
    log = open(E["ROT_SRV_LOG"], encoding="utf-8", errors="replace").read()
    if not why and "audit log" in log:
        why = "the server could not write a line"
    result("rotation: rename + SIGHUP, 90 lines in the old and new file, none lost", why)


def server_said(log, port, what):
    """The rest of the server's "[127.0.0.1:port] what" line, or None."""
    pre = f"[127.0.0.1:{port}] {what}"
    for line in open(log, encoding="utf-8", errors="replace"):
        if line.startswith(pre):
            return line[len(pre):].rstrip("\n")
    return None


def check_policy():
    """tests/policy_tests.sh test_denied: web allowed, a contractor denied
    in TLS 1.3 and 1.2, a client no rule matches denied, a device allowed."""
    objs, bad = load(E["AUDIT_POLICY"])
    conns = by_id(objs)
    result("policy: every line is one JSON object with the common fields",
           "; ".join(bad) or "; ".join(filter(None, map(common, objs))) or
           ("" if sorted(conns) == [1, 2, 3, 4, 5] else f"ids {sorted(conns)}"))
    allowed = ["connection-accepted", "access-allowed", "connection-closed"]
    denied = ["connection-accepted", "access-denied"]
    cases = [
        (1, "web allowed", allowed, {
            "rule.name": "web", "event.outcome": "success",
            "event.reason": "allow: rule web (san.uri=spiffe://example.org/ns/prod/web)",
            "tls.client.subject": E["WEB_SUBJECT"]}),
        (2, "TLS 1.3 contractor denied", denied, {
            "rule.name": "contractors", "event.outcome": "failure",
            "event.reason": "deny: rule contractors (subject.OU=Contractors)",
            "tls.version": "1.3", "tls.established": True,
            "hk.ktls.tx": "off", "hk.ktls.rx": "off",
            "tls.client.subject": E["CONTRACTOR_SUBJECT"]}),
        (3, "TLS 1.2 contractor denied", denied, {
            "rule.name": "contractors", "event.outcome": "failure",
            "event.reason": "deny: rule contractors (subject.OU=Contractors)",
            "tls.version": "1.2", "hk.ktls.tx": "off", "hk.ktls.rx": "off"}),
        (4, "no rule matched denied", denied, {
            "event.outcome": "failure", "event.reason": "deny: no rule matched",
            "event.type": ["denied"],
            "event.category": ["network", "authentication"]}),
        (5, "device allowed", allowed, {
            "rule.name": "devices", "event.outcome": "success",
            "event.reason": "allow: rule devices (ext.1.3.6.1.4.1.32473.1.1=DEV-0042)"}),
    ]
    for cid, name, order, want in cases:
        lines = conns.get(cid, [])
        why = "" if actions(lines) == order else f"actions {actions(lines)}"
        if not why:
            d = lines[1]
            why = expect(d, want)
            if not why and cid == 4 and "rule.name" in d:
                why = f"rule.name {d['rule.name']!r} where no rule matched"
            verb = "Allowed: " if order == allowed else "Denied: "
            said = server_said(E["POLICY_SRV_LOG"], d["source.port"], verb)
            reason = d.get("event.reason", "").split(": ", 1)[-1]
            if not why and (said is None or not said.startswith(reason)):
                why = f"the server logged {verb}{said!r}, the trail {reason!r}"
            if not why and type(d.get("hk.duration_ms", 0)) is not int:
                why = "hk.duration_ms"
        result(f"policy: {name}: its lines, rule.name and event.reason as logged", why)


if sys.argv[1:] == ["policy"]:
    check_policy()
else:
    check_good()
    check_refused()
    check_maxconn()
    check_kinds()
    check_many()
    check_rotation()
    check_syslog()
