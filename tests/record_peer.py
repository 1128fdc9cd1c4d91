#!/usr/bin/env python3
"""record_peer.py: a careful TLS 1.2/1.3 client that uses the record layer's freedoms.

  record_peer.py [--timeout SECS] [--certs DIR] [--host H] PORT SCENARIO...

A minimal mutual-TLS client written from the RFCs (standard library plus
the `cryptography` package's AEADs, ECDH and ECDSA), made to test a
server's record layer, in particular a kernel TLS one: it fragments its
handshake messages down to one byte per record, coalesces them, updates
keys, and sends records a server must refuse. The server's certificate
is not checked; everything else (key schedule, PRF, Finished,
CertificateVerify, record protection, sequence numbers) is done exactly.

Each SCENARIO is one string of space-separated tokens, run as its own
TCP connection, in order. The first token is the version, `1.2` or
`1.3`. Options, anywhere:
  suite=NAME   OpenSSL name. 1.2: ECDHE-ECDSA-AES128-GCM-SHA256 (default),
               ECDHE-ECDSA-AES256-GCM-SHA384, ECDHE-ECDSA-CHACHA20-POLY1305,
               ECDHE-ECDSA-AES128-CCM. 1.3: TLS_AES_128_GCM_SHA256 (default),
               TLS_AES_256_GCM_SHA384, TLS_CHACHA20_POLY1305_SHA256,
               TLS_AES_128_CCM_SHA256.
  frag=N       every handshake message we send (also encrypted ones and
               KeyUpdates) goes in records of at most N bytes
  coalesce     a flight's messages share records (default: one message
               per record, each cut per frag=)
Actions, run in order after the handshake:
  data:TEXT         one application-data record, then wait for its echo
                    (TEXT may use backslash escapes: \\n, \\x20)
  bigdata:N         N random bytes in 16384-byte records, echo checked
  keyupdate:V       (1.3) KeyUpdate with request_update V (0-255), then
                    our new write key
  keyupdate-data:TEXT  (1.3) a KeyUpdate in two records with an
                    application-data record TEXT between them (forbidden)
  zerotype          (1.3) a protected record whose inner plaintext is 8
                    zero bytes: no content type at all
  ccs               a plaintext ChangeCipherSpec record, 14 03 03 00 01 01
  reneg, reneg-ri   (1.2) an encrypted renegotiation ClientHello without /
                    with renegotiation_info holding our verify_data
  reneg-data:TEXT   (1.2) that ClientHello (with renegotiation_info) in two
                    records, an application-data record TEXT between them
  expect-alert:LEVEL:NAME  read until an alert; pass if exactly that one
  expect-data:TEXT  read TEXT (e.g. the echo of reneg-data's TEXT)
  expect-eof        read until the server closes the connection
  close             send close_notify, expect the server's, then EOF
KeyUpdates and NewSessionTickets from the server are handled in any read.

Output: "SCENARIO K: TEXT", a line per record received ("K s>c ..."),
"K ok WHAT" or "K FAIL WHAT: WHY" per step, then "K done ok" or
"K done FAIL". A scenario stops at its first failure. Exit status 0 only
if every scenario passed. Every socket read waits at most --timeout
seconds (default 20). Client certificate: DIR/client-cert.pem and
DIR/client-key.pem (ECDSA P-256), DIR defaulting to the current one.

Example:
  record_peer.py 8443 "1.3 frag=1 data:hi keyupdate:1 data:again close" \\
                      "1.2 data:x reneg expect-alert:warning:no_renegotiation"
"""
import argparse
import base64
import hashlib
import hmac
import os
import re
import select
import socket
import sys
import traceback

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESCCM, AESGCM, ChaCha20Poly1305

CCS, ALERT, HANDSHAKE, APPDATA = 20, 21, 22, 23
CLIENT_HELLO, SERVER_HELLO, NEW_SESSION_TICKET = 1, 2, 4
ENCRYPTED_EXTENSIONS, CERTIFICATE, SERVER_KEY_EXCHANGE = 8, 11, 12
CERTIFICATE_REQUEST, SERVER_HELLO_DONE, CERTIFICATE_VERIFY = 13, 14, 15
CLIENT_KEY_EXCHANGE, FINISHED, KEY_UPDATE = 16, 20, 24
HS_NAMES = {0: "HelloRequest", 1: "ClientHello", 2: "ServerHello",
            4: "NewSessionTicket", 8: "EncryptedExtensions", 11: "Certificate",
            12: "ServerKeyExchange", 13: "CertificateRequest",
            14: "ServerHelloDone", 15: "CertificateVerify",
            16: "ClientKeyExchange", 20: "Finished", 24: "KeyUpdate"}
LEVELS = {1: "warning", 2: "fatal"}
ALERTS = {0: "close_notify", 10: "unexpected_message", 20: "bad_record_mac",
          21: "decryption_failed", 22: "record_overflow",
          30: "decompression_failure", 40: "handshake_failure",
          41: "no_certificate", 42: "bad_certificate",
          43: "unsupported_certificate", 44: "certificate_revoked",
          45: "certificate_expired", 46: "certificate_unknown",
          47: "illegal_parameter", 48: "unknown_ca", 49: "access_denied",
          50: "decode_error", 51: "decrypt_error", 60: "export_restriction",
          70: "protocol_version", 71: "insufficient_security",
          80: "internal_error", 86: "inappropriate_fallback",
          90: "user_canceled", 100: "no_renegotiation",
          109: "missing_extension", 110: "unsupported_extension",
          112: "unrecognized_name", 113: "bad_certificate_status_response",
          115: "unknown_psk_identity", 116: "certificate_required",
          120: "no_application_protocol"}
X25519, SECP256R1 = 0x001D, 0x0017
GROUP_NAMES = {X25519: "x25519", SECP256R1: "secp256r1"}
ECDSA_SECP256R1_SHA256 = 0x0403
SIG_ALGS = (ECDSA_SECP256R1_SHA256, 0x0804, 0x0401)  # + rsa_pss_rsae, rsa_pkcs1
# RFC 8446 4.1.3: a ServerHello with this random is a HelloRetryRequest.
HRR_RANDOM = bytes.fromhex(
    "CF21AD74E59A6111BE1D8C021E65B891C2A211167ABB8C5E079E09E2C8A8339C")
MAX_FRAGMENT = 16384

# name: (version, code point, AEAD, key length, hash)
SUITES = {
    "ECDHE-ECDSA-AES128-GCM-SHA256": ("1.2", 0xC02B, AESGCM, 16, "sha256"),
    "ECDHE-ECDSA-AES256-GCM-SHA384": ("1.2", 0xC02C, AESGCM, 32, "sha384"),
    "ECDHE-ECDSA-CHACHA20-POLY1305": ("1.2", 0xCCA9, ChaCha20Poly1305, 32, "sha256"),
    "ECDHE-ECDSA-AES128-CCM": ("1.2", 0xC0AC, AESCCM, 16, "sha256"),
    "TLS_AES_128_GCM_SHA256": ("1.3", 0x1301, AESGCM, 16, "sha256"),
    "TLS_AES_256_GCM_SHA384": ("1.3", 0x1302, AESGCM, 32, "sha384"),
    "TLS_CHACHA20_POLY1305_SHA256": ("1.3", 0x1303, ChaCha20Poly1305, 32, "sha256"),
    "TLS_AES_128_CCM_SHA256": ("1.3", 0x1304, AESCCM, 16, "sha256"),
}
DEFAULT_SUITE = {"1.2": "ECDHE-ECDSA-AES128-GCM-SHA256", "1.3": "TLS_AES_128_GCM_SHA256"}
# action: (versions, takes an argument)
ACTIONS = {"data": ("23", True), "bigdata": ("23", True), "keyupdate": ("3", True),
           "keyupdate-data": ("3", True),
           "zerotype": ("3", False), "ccs": ("23", False), "reneg": ("2", False),
           "reneg-ri": ("2", False), "reneg-data": ("2", True),
           "expect-alert": ("23", True), "expect-data": ("23", True),
           "expect-eof": ("23", False),
           "close": ("23", False)}


class PeerError(Exception):
    """What went wrong in a scenario step."""


# ---- encoding -------------------------------------------------------------

def u8(n):
    return bytes([n])


def u16(n):
    return n.to_bytes(2, "big")


def u24(n):
    return n.to_bytes(3, "big")


def vec8(b):
    return u8(len(b)) + b


def vec16(b):
    return u16(len(b)) + b


def vec24(b):
    return u24(len(b)) + b


def hs_msg(msg_type, body):
    return u8(msg_type) + vec24(body)


def extension(ext_type, data):
    return u16(ext_type) + vec16(data)


class Reader:
    """Reads big-endian integers and length-prefixed vectors from bytes."""

    def __init__(self, data):
        self.data, self.pos = data, 0

    def take(self, n):
        if self.pos + n > len(self.data):
            raise PeerError("truncated message from server")
        self.pos += n
        return self.data[self.pos - n:self.pos]

    def int(self, n):
        return int.from_bytes(self.take(n), "big")

    def vec(self, n):
        return self.take(self.int(n))

    def done(self):
        return self.pos >= len(self.data)


def parse_extensions(data):
    r, exts = Reader(data), {}
    while not r.done():
        ext_type = r.int(2)
        exts[ext_type] = r.vec(2)
    return exts


def alert_text(level, desc):
    return "alert %s %s (%d)" % (LEVELS.get(level, str(level)), ALERTS.get(desc, "?"), desc)


def event_text(ev):
    if ev[0] == "alert":
        return alert_text(ev[1], ev[2])
    if ev[0] == "hs":
        return HS_NAMES.get(ev[1], "handshake type %d" % ev[1])
    if ev[0] == "data":
        return "%d bytes of application data" % len(ev[1])
    if ev[0] == "ccs":
        return "ChangeCipherSpec"
    return "eof without alert (%s)" % ev[1]


def unescape(text):
    """Bytes from a token's TEXT, with backslash escapes (\\n, \\x20) applied."""
    return text.encode("utf-8").decode("unicode_escape").encode("latin-1")


# ---- key derivation ---------------------------------------------------------

def hkdf_extract(hash_name, salt, ikm):
    return hmac.new(salt, ikm, hash_name).digest()


def hkdf_expand(hash_name, prk, info, length):
    out, block, i = b"", b"", 1
    while len(out) < length:
        block = hmac.new(prk, block + info + u8(i), hash_name).digest()
        out, i = out + block, i + 1
    return out[:length]


def expand_label(hash_name, secret, label, context, length):
    """HKDF-Expand-Label, RFC 8446 section 7.1."""
    info = u16(length) + vec8(b"tls13 " + label.encode()) + vec8(context)
    return hkdf_expand(hash_name, secret, info, length)


def prf12(hash_name, secret, label, seed, length):
    """The TLS 1.2 PRF: P_hash(secret, label + seed), RFC 5246 section 5."""
    seed = label.encode() + seed
    out, a = b"", seed
    while len(out) < length:
        a = hmac.new(secret, a, hash_name).digest()
        out += hmac.new(secret, a + seed, hash_name).digest()
    return out[:length]


class RecordCipher:
    """One direction's record protection: AEAD key, IV and sequence number."""

    def __init__(self, version, aead, key, iv):
        self.version, self.aead, self.iv, self.seq = version, aead(key), iv, 0
        # TLS 1.2 GCM/CCM: 4-byte salt + 8-byte explicit nonce (RFC 5288
        # section 3, RFC 7251); ChaCha20 (RFC 7905) and TLS 1.3 (RFC 8446
        # section 5.3): 12-byte IV XOR the padded sequence number.
        self.explicit = len(iv) == 4

    def _nonce(self, seq, explicit=b""):
        if self.explicit:
            return self.iv + explicit
        padded = seq.to_bytes(12, "big")
        return bytes(a ^ b for a, b in zip(self.iv, padded))

    def seal(self, ctype, data, inner=None):
        """Protect one record: (outer content type, record body).
        inner, for TLS 1.3, replaces the usual data + type byte."""
        seq = self.seq
        self.seq += 1
        if self.version == "1.3":
            inner = data + u8(ctype) if inner is None else inner
            header = u8(APPDATA) + u16(0x0303) + u16(len(inner) + 16)
            return APPDATA, self.aead.encrypt(self._nonce(seq), inner, header)
        seq8 = seq.to_bytes(8, "big")
        aad = seq8 + u8(ctype) + u16(0x0303) + u16(len(data))
        explicit = seq8 if self.explicit else b""  # sequence number as explicit nonce
        return ctype, explicit + self.aead.encrypt(self._nonce(seq, explicit), data, aad)

    def open(self, ctype, version, body):
        """Unprotect one record body: (content type, plaintext)."""
        seq = self.seq
        self.seq += 1
        if self.version == "1.3":
            header = u8(ctype) + version + u16(len(body))
            inner = self.aead.decrypt(self._nonce(seq), body, header).rstrip(b"\0")
            if not inner:  # RFC 8446 5.4: padding only, no content type
                raise PeerError("server record with no content type")
            return inner[-1], inner[:-1]
        explicit = body[:8] if self.explicit else b""
        body = body[len(explicit):]
        aad = seq.to_bytes(8, "big") + u8(ctype) + version + u16(len(body) - 16)
        return ctype, self.aead.decrypt(self._nonce(seq, explicit), body, aad)


def load_client_identity(certs_dir):
    """(list of DER certificates, private key) from DIR/client-*.pem."""
    with open(os.path.join(certs_dir, "client-cert.pem"), "rb") as f:
        pem = f.read()
    chain = [base64.b64decode(b) for b in re.findall(
        rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", pem, re.S)]
    with open(os.path.join(certs_dir, "client-key.pem"), "rb") as f:
        key = serialization.load_pem_private_key(f.read(), password=None)
    if not chain:
        raise SystemExit("no certificate in client-cert.pem")
    return chain, key


# ---- the connection ---------------------------------------------------------

class Conn:
    """One TLS connection to the server, driven by a parsed scenario."""

    def __init__(self, k, spec, args, identity):
        self.k, self.version, self.frag, self.coalesce = k, spec["version"], spec["frag"], spec["coalesce"]
        self.suite = spec["suite"]
        _, self.suite_code, self.aead, self.key_len, self.hash = SUITES[self.suite]
        self.hash_len = hashlib.new(self.hash).digest_size
        self.chain, self.key = identity
        self.timeout = args.timeout
        self.rbuf = b""          # received bytes not yet parsed as records
        self.hs_buf = b""        # handshake bytes not yet parsed as messages
        self.hs_scan = 0         # where in hs_buf the next unlogged message starts
        self.read_cipher = self.write_cipher = None
        self.transcript = []     # handshake messages, for the transcript hash
        self.established = False
        self.eof_reason = "eof"
        self.hs_records = 0      # handshake records we sent
        self.x25519 = x25519.X25519PrivateKey.generate()
        self.p256 = ec.generate_private_key(ec.SECP256R1())
        self.shares = {
            X25519: self.x25519.public_key().public_bytes(
                serialization.Encoding.Raw, serialization.PublicFormat.Raw),
            SECP256R1: self.p256.public_key().public_bytes(
                serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)}
        self.sock = socket.create_connection((args.host, args.port), timeout=args.timeout)

    def log(self, text):
        print("%d %s" % (self.k, text), flush=True)

    # -- bytes on the wire --

    def recv_exact(self, n):
        """n bytes from the socket, or None at EOF. Every wait is bounded."""
        while len(self.rbuf) < n:
            try:
                chunk = self.sock.recv(65536)
            except socket.timeout:
                raise PeerError("timeout: nothing from the server for %gs" % self.timeout)
            except ConnectionResetError:
                chunk, self.eof_reason = b"", "connection reset"
            if not chunk:
                if self.rbuf:
                    self.eof_reason += " in the middle of a record"
                return None
            self.rbuf += chunk
        data, self.rbuf = self.rbuf[:n], self.rbuf[n:]
        return data

    def readable(self):
        return bool(self.rbuf) or bool(select.select([self.sock], [], [], 0)[0])

    def send(self, wire):
        try:
            self.sock.sendall(wire)
        except OSError as e:
            raise PeerError("send failed: %s" % e)

    def protect(self, ctype, data, version=0x0303):
        """One record, protected under the current write key if there is one."""
        if self.write_cipher:
            ctype, data = self.write_cipher.seal(ctype, data)
        return u8(ctype) + u16(version) + vec16(data)

    def send_flight(self, msgs, version=0x0303):
        """Send handshake messages cut per frag= and coalesce; returns the record count."""
        size = min(self.frag, MAX_FRAGMENT)
        units = [b"".join(msgs)] if self.coalesce else msgs
        records = [unit[i:i + size] for unit in units for i in range(0, len(unit), size)]
        self.send(b"".join(self.protect(HANDSHAKE, r, version) for r in records))
        self.hs_records += len(records)
        return len(records)

    # -- records and events in --

    def read_record(self):
        """Read, unprotect and log one record: (content type, payload) or None at EOF."""
        header = self.recv_exact(5)
        if header is None:
            return None
        body = self.recv_exact(int.from_bytes(header[3:5], "big"))
        if body is None:
            return None
        ctype, version = header[0], header[1:3]
        note = "s>c type %d len %d ->" % (ctype, len(body))
        # TLS 1.3 protects only type 23 (a CCS stays plaintext, RFC 8446 5);
        # TLS 1.2 protects every record after the peer's CCS.
        if self.read_cipher and (self.version == "1.2" or ctype == APPDATA):
            try:
                ctype, body = self.read_cipher.open(ctype, version, body)
            except (InvalidTag, ValueError):  # ValueError: too short for a nonce
                self.log(note + " undecryptable")
                raise PeerError("bad record MAC on server record seq %d" % (self.read_cipher.seq - 1))
            note += " inner"
        if ctype == HANDSHAKE:
            self.hs_buf += body
        self.log("%s %s" % (note, self.describe(ctype, body)))
        if len(body) > MAX_FRAGMENT:  # RFC 8446 5.1, RFC 5246 6.2.1
            raise PeerError("record_overflow: a server record carries %d bytes" % len(body))
        return ctype, body

    def describe(self, ctype, body):
        if ctype == HANDSHAKE:
            return "handshake(%s)" % (self.scan_handshake() or "continued")
        if ctype == ALERT and len(body) == 2:
            return alert_text(body[0], body[1])
        if ctype == APPDATA:
            return "data %d bytes" % len(body)
        return {CCS: "ccs", ALERT: "alert (malformed)"}.get(ctype, "unknown type %d" % ctype)

    def scan_handshake(self):
        """Names of the handshake messages whose header starts in new hs_buf bytes."""
        found = []
        while self.hs_scan + 4 <= len(self.hs_buf):
            t = self.hs_buf[self.hs_scan]
            found.append("type %d %s" % (t, HS_NAMES.get(t, "?")))
            self.hs_scan += 4 + int.from_bytes(self.hs_buf[self.hs_scan + 1:self.hs_scan + 4], "big")
        return ", ".join(found)

    def pop_handshake(self):
        """A complete handshake message (type, body, raw) from hs_buf, or None."""
        if len(self.hs_buf) < 4:
            return None
        n = 4 + int.from_bytes(self.hs_buf[1:4], "big")
        if len(self.hs_buf) < n:
            return None
        raw, self.hs_buf = self.hs_buf[:n], self.hs_buf[n:]
        self.hs_scan -= n
        return raw[0], raw[4:], raw

    def next_event(self):
        """The next thing from the server: ("hs", type, body, raw), ("data", bytes),
        ("alert", level, desc), ("ccs",) or ("eof", reason). After the handshake,
        KeyUpdates and other handshake messages are dealt with here."""
        while True:
            msg = self.pop_handshake()
            if msg and self.established:
                self.post_handshake_message(*msg)
                continue
            if msg:
                return ("hs",) + msg
            rec = self.read_record()
            if rec is None:
                return ("eof", self.eof_reason)
            ctype, body = rec
            if ctype == HANDSHAKE:
                continue
            if self.hs_buf and self.version == "1.3":
                # RFC 8446 5.1: handshake messages must not be interleaved.
                raise PeerError("record of type %d inside a handshake message" % ctype)
            if ctype == ALERT and len(body) == 2:
                return ("alert", body[0], body[1])
            if ctype == CCS and self.version == "1.3" and not self.established:
                continue  # middlebox compatibility CCS, RFC 8446 D.4
            if ctype == CCS:
                return ("ccs",)
            if ctype == APPDATA:
                return ("data", body)
            raise PeerError("unexpected record type %d, length %d" % (ctype, len(body)))

    def post_handshake_message(self, msg_type, body, raw):
        if self.version == "1.3" and msg_type == KEY_UPDATE:
            self.receive_key_update(body)
        elif not (self.version == "1.3" and msg_type == NEW_SESSION_TICKET):
            self.log("s>c ignoring post-handshake %s" % HS_NAMES.get(msg_type, msg_type))

    def expect_hs(self, *types):
        """The next handshake message, which must be one of types; it joins the transcript."""
        ev = self.next_event()
        if ev[0] != "hs" or ev[1] not in types:
            raise PeerError("expected %s, got %s" % (
                " or ".join(HS_NAMES[t] for t in types), event_text(ev)))
        self.transcript.append(ev[3])
        return ev[1], ev[2]

    def transcript_hash(self):
        return hashlib.new(self.hash, b"".join(self.transcript)).digest()

    # -- handshake pieces --

    def client_hello(self, ri=None, random=None):
        """ClientHello offering just our suite. ri (TLS 1.2): the
        renegotiation_info contents, None for no such extension; random:
        the client random, else 32 random bytes."""
        sig_algs = b"".join(u16(a) for a in SIG_ALGS)
        exts = [extension(10, vec16(u16(X25519) + u16(SECP256R1))),  # supported_groups
                extension(13, vec16(sig_algs))]                      # signature_algorithms
        if self.version == "1.2":
            exts += [extension(11, vec8(b"\0")),    # ec_point_formats: uncompressed
                     extension(23, b"")]            # extended_master_secret, RFC 7627
            if ri is not None:
                exts.append(extension(0xFF01, vec8(ri)))  # renegotiation_info, RFC 5746
            session_id = b""
        else:
            shares = b"".join(u16(g) + vec16(p) for g, p in self.shares.items())
            exts += [extension(43, vec8(u16(0x0304))),  # supported_versions
                     extension(51, vec16(shares)),      # key_share
                     extension(45, vec8(b"\1"))]        # psk_key_exchange_modes: psk_dhe_ke
            session_id = os.urandom(32)  # middlebox compatibility mode, RFC 8446 D.4
        self.client_random = random or os.urandom(32)
        body = (u16(0x0303) + self.client_random + vec8(session_id) + vec16(u16(self.suite_code))
                + vec8(b"\0") + vec16(b"".join(exts)))
        return hs_msg(CLIENT_HELLO, body)

    def parse_server_hello(self, body):
        r = Reader(body)
        r.int(2)
        self.server_random = r.take(32)
        r.vec(1)
        suite = r.int(2)
        r.int(1)
        if suite != self.suite_code:
            raise PeerError("server chose suite 0x%04x" % suite)
        return parse_extensions(r.vec(2)) if not r.done() else {}

    def key_exchange(self, group, peer_public):
        """ECDHE with the server's share: (our public share, shared secret)."""
        if group == X25519:
            peer = x25519.X25519PublicKey.from_public_bytes(peer_public)
            return self.shares[X25519], self.x25519.exchange(peer)
        if group == SECP256R1:
            peer = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), peer_public)
            return self.shares[SECP256R1], self.p256.exchange(ec.ECDH(), peer)
        raise PeerError("server chose group 0x%04x" % group)

    def sign(self, data):
        return self.key.sign(data, ec.ECDSA(hashes.SHA256()))

    def handshake(self):
        self.group = None
        if self.version == "1.2":
            self.handshake12()
        else:
            self.handshake13()
        self.established = True
        return "handshake TLS %s %s %s, we sent %d handshake records" % (
            self.version, self.suite, GROUP_NAMES.get(self.group, "?"), self.hs_records)

    def handshake12(self):
        """RFC 5246 full handshake, ECDHE_ECDSA, with a client certificate."""
        ch = self.client_hello(ri=b"")
        self.transcript.append(ch)
        self.send_flight([ch], version=0x0301)
        exts = self.parse_server_hello(self.expect_hs(SERVER_HELLO)[1])
        self.expect_hs(CERTIFICATE)
        r = Reader(self.expect_hs(SERVER_KEY_EXCHANGE)[1])
        if r.int(1) != 3:
            raise PeerError("ServerKeyExchange is not for a named curve")
        self.group = r.int(2)
        our_share, pms = self.key_exchange(self.group, r.vec(1))
        cert_requested = self.expect_hs(CERTIFICATE_REQUEST, SERVER_HELLO_DONE)[0] == CERTIFICATE_REQUEST
        if cert_requested:
            self.expect_hs(SERVER_HELLO_DONE)
        flight = []
        if cert_requested:
            flight.append(hs_msg(CERTIFICATE, vec24(b"".join(vec24(c) for c in self.chain))))
        flight.append(hs_msg(CLIENT_KEY_EXCHANGE, vec8(our_share)))
        self.transcript += flight
        if 23 in exts:  # RFC 7627 4: session_hash covers ClientHello..ClientKeyExchange
            ms = prf12(self.hash, pms, "extended master secret", self.transcript_hash(), 48)
        else:
            ms = prf12(self.hash, pms, "master secret", self.client_random + self.server_random, 48)
        if cert_requested:  # RFC 5246 7.4.8: signs all handshake messages so far
            flight.append(hs_msg(CERTIFICATE_VERIFY, u16(ECDSA_SECP256R1_SHA256)
                                 + vec16(self.sign(b"".join(self.transcript)))))
            self.transcript.append(flight[-1])
        self.client_verify_data = prf12(self.hash, ms, "client finished", self.transcript_hash(), 12)
        finished = hs_msg(FINISHED, self.client_verify_data)
        self.transcript.append(finished)
        iv_len = 12 if self.aead is ChaCha20Poly1305 else 4
        kb = prf12(self.hash, ms, "key expansion", self.server_random + self.client_random,
                   2 * self.key_len + 2 * iv_len)  # RFC 5246 6.3, no MAC keys for AEAD
        ck, sk = kb[:self.key_len], kb[self.key_len:2 * self.key_len]
        civ, siv = kb[2 * self.key_len:2 * self.key_len + iv_len], kb[2 * self.key_len + iv_len:]
        self.send_flight(flight)
        self.send(self.protect(CCS, b"\1"))
        # RFC 5246 6.1: sequence numbers start at 0 after each ChangeCipherSpec.
        self.write_cipher = RecordCipher("1.2", self.aead, ck, civ)
        self.send_flight([finished])
        ev = self.next_event()
        if ev[0] == "hs" and ev[1] == NEW_SESSION_TICKET:  # RFC 5077 3.3
            self.transcript.append(ev[3])
            ev = self.next_event()
        if ev[0] != "ccs":
            raise PeerError("expected ChangeCipherSpec, got %s" % event_text(ev))
        self.read_cipher = RecordCipher("1.2", self.aead, sk, siv)
        expected = prf12(self.hash, ms, "server finished", self.transcript_hash(), 12)
        if self.expect_hs(FINISHED)[1] != expected:
            raise PeerError("server Finished does not verify")

    def derive_secret(self, secret, label, messages=None):
        """Derive-Secret, RFC 8446 7.1; messages default to the transcript."""
        h = self.transcript_hash() if messages is None else hashlib.new(self.hash, messages).digest()
        return expand_label(self.hash, secret, label, h, self.hash_len)

    def cipher13(self, secret):
        """Traffic keys from a secret (RFC 8446 7.3); a new key starts at sequence 0."""
        return RecordCipher("1.3", self.aead, expand_label(self.hash, secret, "key", b"", self.key_len),
                            expand_label(self.hash, secret, "iv", b"", 12))

    def finished13(self, base_key):
        key = expand_label(self.hash, base_key, "finished", b"", self.hash_len)
        return hmac.new(key, self.transcript_hash(), self.hash).digest()

    def handshake13(self):
        """RFC 8446 full (EC)DHE handshake with a client certificate."""
        ch = self.client_hello()
        self.transcript.append(ch)
        self.send_flight([ch], version=0x0301)
        sh = self.expect_hs(SERVER_HELLO)[1]
        if sh[2:34] == HRR_RANDOM:
            raise PeerError("HelloRetryRequest: not supported")
        exts = self.parse_server_hello(sh)
        if exts.get(43) != u16(0x0304):
            raise PeerError("server did not select TLS 1.3")
        r = Reader(exts.get(51, b""))
        self.group = r.int(2)
        shared = self.key_exchange(self.group, r.vec(2))[1]
        # The key schedule of RFC 8446 7.1, without a PSK.
        zeros = bytes(self.hash_len)
        early = hkdf_extract(self.hash, zeros, zeros)
        hs_secret = hkdf_extract(self.hash, self.derive_secret(early, "derived", b""), shared)
        c_hs = self.derive_secret(hs_secret, "c hs traffic")
        s_hs = self.derive_secret(hs_secret, "s hs traffic")
        self.read_cipher = self.cipher13(s_hs)
        self.expect_hs(ENCRYPTED_EXTENSIONS)
        msg_type, body = self.expect_hs(CERTIFICATE_REQUEST, CERTIFICATE)
        context = None
        if msg_type == CERTIFICATE_REQUEST:
            context = Reader(body).vec(1)
            self.expect_hs(CERTIFICATE)
        self.expect_hs(CERTIFICATE_VERIFY)
        expected = self.finished13(s_hs)
        if self.expect_hs(FINISHED)[1] != expected:
            raise PeerError("server Finished does not verify")
        master = hkdf_extract(self.hash, self.derive_secret(hs_secret, "derived", b""), zeros)
        self.c_ap = self.derive_secret(master, "c ap traffic")  # transcript: ..server Finished
        self.s_ap = self.derive_secret(master, "s ap traffic")
        self.read_cipher = self.cipher13(self.s_ap)
        self.write_cipher = self.cipher13(c_hs)
        flight = []
        if context is not None:
            entries = b"".join(vec24(c) + vec16(b"") for c in self.chain)
            flight.append(hs_msg(CERTIFICATE, vec8(context) + vec24(entries)))
            self.transcript.append(flight[-1])
            signed = b" " * 64 + b"TLS 1.3, client CertificateVerify\0" + self.transcript_hash()
            flight.append(hs_msg(CERTIFICATE_VERIFY, u16(ECDSA_SECP256R1_SHA256) + vec16(self.sign(signed))))
            self.transcript.append(flight[-1])
        flight.append(hs_msg(FINISHED, self.finished13(c_hs)))
        self.transcript.append(flight[-1])
        self.send_flight(flight)
        self.write_cipher = self.cipher13(self.c_ap)

    # -- KeyUpdate, RFC 8446 4.6.3 and 7.2 --

    def next_secret(self, secret):
        return expand_label(self.hash, secret, "traffic upd", b"", self.hash_len)

    def send_key_update(self, request):
        n = self.send_flight([hs_msg(KEY_UPDATE, u8(request))])
        self.c_ap = self.next_secret(self.c_ap)
        self.write_cipher = self.cipher13(self.c_ap)  # sequence number back to 0
        return n

    def receive_key_update(self, body):
        if len(body) != 1 or body[0] > 1:
            raise PeerError("malformed KeyUpdate from the server: %s" % body.hex())
        if self.hs_buf:  # RFC 8446 5.1: no message may span a key change
            raise PeerError("server KeyUpdate is not at the end of its record")
        self.s_ap = self.next_secret(self.s_ap)
        self.read_cipher = self.cipher13(self.s_ap)
        self.log("s>c KeyUpdate request_update=%d: read key updated" % body[0])
        if body[0] == 1:
            n = self.send_key_update(0)
            self.log("c>s KeyUpdate request_update=0 in answer (%d records): write key updated" % n)

    # -- actions: each returns what to print after "ok" --

    def collect_echo(self, expected, got, block=True):
        """Add echoed bytes to got until all of expected came (or, with
        block False, until nothing more is ready to read)."""
        while len(got) < len(expected) and (block or self.readable()):
            ev = self.next_event()
            if ev[0] != "data":
                raise PeerError("%d of %d bytes echoed, then %s" % (len(got), len(expected), event_text(ev)))
            got += ev[1]
            if got[-len(ev[1]):] != expected[len(got) - len(ev[1]):len(got)]:
                raise PeerError("echo differs from what was sent (%d bytes in)" % len(got))

    def act_data(self, arg):
        text = unescape(arg)
        if len(text) > MAX_FRAGMENT:
            raise PeerError("data: TEXT longer than one record")
        self.send(self.protect(APPDATA, text))
        self.collect_echo(text, bytearray())
        return "echo %d bytes" % len(text)

    def act_expect_data(self, arg):
        text = unescape(arg)
        self.collect_echo(text, bytearray())
        return "received %d bytes" % len(text)

    def act_bigdata(self, arg):
        payload, got = os.urandom(int(arg)), bytearray()
        for i in range(0, len(payload), MAX_FRAGMENT):
            self.send(self.protect(APPDATA, payload[i:i + MAX_FRAGMENT]))
            self.collect_echo(payload, got, block=False)  # drain: both directions keep flowing
        self.collect_echo(payload, got)
        return "echo %d bytes in %d records" % (len(payload), -(-len(payload) // MAX_FRAGMENT))

    def act_keyupdate(self, arg):
        n = self.send_key_update(int(arg))
        return "sent KeyUpdate request_update=%s in %d records, write key updated" % (arg, n)

    def act_keyupdate_data(self, arg):
        # RFC 8446 5.1 forbids this: another record between two pieces of
        # a handshake message.
        ku, text = hs_msg(KEY_UPDATE, u8(0)), unescape(arg)
        self.send(self.protect(HANDSHAKE, ku[:2]) + self.protect(APPDATA, text)
                  + self.protect(HANDSHAKE, ku[2:]))
        self.c_ap = self.next_secret(self.c_ap)
        self.write_cipher = self.cipher13(self.c_ap)
        return "sent KeyUpdate in 2 records, %d bytes of data between" % len(text)

    def act_zerotype(self, arg):
        ctype, body = self.write_cipher.seal(APPDATA, b"", inner=bytes(8))
        self.send(u8(ctype) + u16(0x0303) + vec16(body))
        return "sent a record whose inner plaintext is 8 zero bytes"

    def act_ccs(self, arg):
        self.send(bytes.fromhex("140303000101"))
        return "sent plaintext ChangeCipherSpec"

    def renegotiation_hello(self, with_ri):
        # RFC 5746 3.5: a renegotiating ClientHello carries our last verify_data.
        # Its random starts with byte 24 (at offset 6 of the message), so
        # with frag=1, 2, 3 or 6 a record starts with the KeyUpdate type:
        # Linux 6.14+ stops decrypting there, in TLS 1.2 too, until the
        # receive key is installed again.
        random = b"\x18" + os.urandom(31)
        return self.client_hello(ri=self.client_verify_data if with_ri else None,
                                 random=random)

    def act_reneg(self, arg):
        n = self.send_flight([self.renegotiation_hello(False)])
        return "sent renegotiation ClientHello without renegotiation_info in %d records" % n

    def act_reneg_ri(self, arg):
        n = self.send_flight([self.renegotiation_hello(True)])
        return "sent renegotiation ClientHello with renegotiation_info in %d records" % n

    def act_reneg_data(self, arg):
        ch = self.renegotiation_hello(True)
        text = unescape(arg)
        half = len(ch) // 2
        self.send(self.protect(HANDSHAKE, ch[:half]) + self.protect(APPDATA, text)
                  + self.protect(HANDSHAKE, ch[half:]))
        return "sent renegotiation ClientHello in 2 records, %d bytes of data between" % len(text)

    def act_expect_alert(self, arg):
        level, _, name = arg.partition(":")
        while True:
            ev = self.next_event()
            if ev[0] == "alert":
                got = alert_text(ev[1], ev[2])
                if LEVELS.get(ev[1]) == level and ALERTS.get(ev[2]) == name:
                    return got
                raise PeerError("got " + got)
            if ev[0] == "eof":
                raise PeerError(event_text(ev))

    def act_expect_eof(self, arg):
        seen = []
        while True:
            ev = self.next_event()
            if ev[0] == "eof":
                return "server closed (%s)%s" % (ev[1], ", after " + ", ".join(seen) if seen else "")
            seen.append(event_text(ev))

    def act_close(self, arg):
        self.send(self.protect(ALERT, b"\1\0"))
        while True:
            ev = self.next_event()
            if ev[0] == "alert" and ev[1:] == (1, 0):
                break
            if ev[0] in ("alert", "eof"):
                raise PeerError("waiting for close_notify, got %s" % event_text(ev))
        ev = self.next_event()
        if ev[0] != "eof":
            raise PeerError("after close_notify, got %s" % event_text(ev))
        return "close_notify both ways, then %s" % ev[1]


# ---- scenarios ----------------------------------------------------------------

def parse_scenario(text):
    """{version, suite, frag, coalesce, actions: [(token, name, arg)]}; ValueError if bad."""
    tokens = text.split()
    if not tokens or tokens[0] not in ("1.2", "1.3"):
        raise ValueError("the first token must be 1.2 or 1.3")
    spec = {"version": tokens[0], "suite": DEFAULT_SUITE[tokens[0]], "frag": MAX_FRAGMENT,
            "coalesce": False, "actions": []}
    for token in tokens[1:]:
        name, colon, arg = token.partition(":")
        if token.startswith("suite="):
            spec["suite"] = token[6:]
            if SUITES.get(spec["suite"], ("",))[0] != spec["version"]:
                raise ValueError("no TLS %s suite %s" % (spec["version"], spec["suite"]))
        elif token.startswith("frag="):
            spec["frag"] = int(token[5:])
            if spec["frag"] < 1:
                raise ValueError("frag= must be at least 1")
        elif token == "coalesce":
            spec["coalesce"] = True
        elif name in ACTIONS:
            versions, needs_arg = ACTIONS[name]
            if spec["version"][-1] not in versions:
                raise ValueError("%s is not for TLS %s" % (name, spec["version"]))
            if needs_arg != bool(colon):
                raise ValueError("%s %s an argument" % (name, "needs" if needs_arg else "takes no"))
            if name in ("keyupdate", "bigdata") and not (
                    arg.isdigit() and (name == "bigdata" or int(arg) < 256)):
                raise ValueError("%s: bad number %r" % (name, arg))
            level, _, alert = arg.partition(":")
            if name == "expect-alert" and (level not in LEVELS.values() or alert not in ALERTS.values()):
                raise ValueError("expect-alert:LEVEL:NAME with LEVEL warning or fatal, NAME from RFC 8446 6")
            spec["actions"].append((token, name, arg))
        else:
            raise ValueError("unknown token %r" % token)
    return spec


def run_scenario(k, text, args, identity):
    """Run one scenario on its own connection; True if every step passed."""
    print("SCENARIO %d: %s" % (k, text), flush=True)
    step, conn = "parse", None
    try:
        spec = parse_scenario(text)
        step = "connect"
        conn = Conn(k, spec, args, identity)
        step = "handshake"
        conn.log("ok " + conn.handshake())
        for token, name, arg in spec["actions"]:
            step = token
            conn.log("ok %s: %s" % (token, getattr(conn, "act_" + name.replace("-", "_"))(arg)))
        ok = True
    except (PeerError, ValueError, OSError) as e:
        print("%d FAIL %s: %s" % (k, step, e), flush=True)
        ok = False
    except Exception as e:  # a bug here, or a server reply we cannot parse
        print("%d FAIL %s: %s: %s" % (k, step, type(e).__name__, e), flush=True)
        for line in traceback.format_exc().splitlines():
            print("%d   %s" % (k, line), flush=True)
        ok = False
    finally:
        if conn:
            conn.sock.close()
    print("%d done %s" % (k, "ok" if ok else "FAIL"), flush=True)
    return ok


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 epilog="see the top of this file for the scenario tokens")
    ap.add_argument("--timeout", type=float, default=20.0,
                    help="seconds any one read may wait (20)")
    ap.add_argument("--certs", default=".", help="directory of client-cert.pem, client-key.pem")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("port", type=int)
    ap.add_argument("scenario", nargs="+")
    args = ap.parse_args()
    identity = load_client_identity(args.certs)
    results = [run_scenario(k, text, args, identity) for k, text in enumerate(args.scenario, 1)]
    print("%d of %d scenarios passed" % (sum(results), len(results)), flush=True)
    sys.exit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
