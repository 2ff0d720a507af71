#!/usr/bin/env python3
# The identity the reference implementation derives for a peer presenting the certificate
# in CERT_FILE: its own TlsState.extract_peer_identity, given the certificate as Python's
# ssl module decodes a peer's (getpeercert). Prints the identity on the last line.
#
# Usage: ri_identity.py CERT_FILE
import ssl
import sys

import tornado.httpserver
import mplane.tls


class PeerRequest(tornado.httpserver.HTTPRequest):
    """A request whose connection presented `cert` (only what extract_peer_identity reads)."""

    def __init__(self, cert):
        self._cert = cert

    def get_ssl_certificate(self, binary_form=False):
        return self._cert


def main():
    cert_file = sys.argv[1]
    decoded = ssl._ssl._test_decode_cert(cert_file)
    # TlsState only needs the files to exist; the identity it computes is the peer's.
    state = mplane.tls.TlsState({"TLS": {"ca-chain": cert_file, "cert": cert_file, "key": cert_file}})
    print(state.extract_peer_identity(PeerRequest(decoded)))


if __name__ == "__main__":
    main()
