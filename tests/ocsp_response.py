#!/usr/bin/env python3
"""tests/ocsp_response.py - an OCSP response with chosen dates, which
`openssl ocsp` cannot make (its thisUpdate is always now, and -ndays and
-nmin must be at least 1): a response already past its nextUpdate, or one
close to it. Signed for real, by the responder key given.

Usage: ocsp_response.py ISSUER SIGNER_CERT SIGNER_KEY CERT good|revoked
                        THIS_SECONDS NEXT_SECONDS OUT.der
THIS_SECONDS and NEXT_SECONDS are offsets from now (negative: past).
"""
import datetime
import sys

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp


def load_cert(path):
    with open(path, "rb") as f:
        return x509.load_pem_x509_certificate(f.read())


def main(argv):
    if len(argv) != 9:
        sys.stderr.write(__doc__)
        return 2
    issuer, signer, cert = load_cert(argv[1]), load_cert(argv[2]), load_cert(argv[4])
    with open(argv[3], "rb") as f:
        key = serialization.load_pem_private_key(f.read(), None)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    revoked = argv[5] == "revoked"
    builder = ocsp.OCSPResponseBuilder().add_response(
        cert=cert,
        issuer=issuer,
        # OpenSSL's OCSP_cert_to_id uses SHA-1, and matches on it.
        algorithm=hashes.SHA1(),
        cert_status=ocsp.OCSPCertStatus.REVOKED if revoked else ocsp.OCSPCertStatus.GOOD,
        this_update=now + datetime.timedelta(seconds=int(argv[6])),
        next_update=now + datetime.timedelta(seconds=int(argv[7])),
        revocation_time=now - datetime.timedelta(days=1) if revoked else None,
        revocation_reason=x509.ReasonFlags.key_compromise if revoked else None,
    )
    builder = builder.responder_id(ocsp.OCSPResponderEncoding.HASH, signer)
    builder = builder.certificates([signer])
    resp = builder.sign(key, hashes.SHA256())
    with open(argv[8], "wb") as f:
        f.write(resp.public_bytes(serialization.Encoding.DER))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
