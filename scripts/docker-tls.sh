# Sourced by scripts/docker-up.sh: the TLS listener of the local dockerd, for the tests of
# DOCKER_HOST=tcp:// with DOCKER_TLS_VERIFY=1 (issue 13). Not run on its own.
#
# Certificates are made once per machine with openssl, in $DOCKER_TLS_DIR
# (default /var/cache/sandboxd/docker-tls, outside every repository):
#   ca.pem ca-key.pem                 the test CA (P-256, 10 years)
#   server-cert.pem server-key.pem    dockerd's, for 127.0.0.1 and localhost
#   client/{ca,cert,key}.pem          a DOCKER_CERT_PATH the engine accepts
#   wrong-client/{ca,cert,key}.pem    the same ca.pem, but a client certificate from another CA
# The engine listens on tcp://127.0.0.1:$DOCKER_TLS_PORT (default 23760) with --tlsverify,
# next to its unix socket. Nothing here is a secret worth protecting: the CA only signs these
# test certificates, and the listener is on the loopback address only.

DOCKER_TLS_DIR=${SBX_DOCKER_TLS_DIR:-/var/cache/sandboxd/docker-tls}
DOCKER_TLS_PORT=${SBX_DOCKER_TLS_PORT:-23760}

# The flags that make dockerd listen with TLS too (the unix socket given again: with any -H,
# dockerd listens only where told).
docker_tls_flags() {
  echo "-H unix://$SOCK -H tcp://127.0.0.1:$DOCKER_TLS_PORT --tlsverify" \
    "--tlscacert=$DOCKER_TLS_DIR/ca.pem --tlscert=$DOCKER_TLS_DIR/server-cert.pem" \
    "--tlskey=$DOCKER_TLS_DIR/server-key.pem"
}

# 0 when the engine answers /_ping over TLS with the good client certificate.
docker_tls_ping() {
  local c=$DOCKER_TLS_DIR/client
  [ -r "$c/key.pem" ] || return 1
  [ "$(curl -s --max-time 3 --cacert "$c/ca.pem" --cert "$c/cert.pem" --key "$c/key.pem" \
      "https://127.0.0.1:$DOCKER_TLS_PORT/_ping" 2>/dev/null)" = OK ]
}

# Signs a certificate for CN $3 with CA $1 (prefix of $1.pem and $1-key.pem) into $2-cert.pem
# and $2-key.pem; $4 is the extendedKeyUsage, $5 the subjectAltName (or empty).
docker_tls_sign() {
  local ca=$1 out=$2 cn=$3 eku=$4 san=$5
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$cn" \
    -keyout "$out-key.pem" -out "$out.csr" 2>/dev/null || return 1
  { echo "basicConstraints=critical,CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    [ -n "$san" ] && echo "subjectAltName=$san"; } >"$out.ext"
  openssl x509 -req -in "$out.csr" -CA "$ca.pem" -CAkey "$ca-key.pem" -CAcreateserial \
    -days 3650 -sha256 -extfile "$out.ext" -out "$out-cert.pem" 2>/dev/null || return 1
  rm -f "$out.csr" "$out.ext"
}

# A self-signed CA with prefix $1 and CN $2.
docker_tls_ca() {
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=$2" -keyout "$1-key.pem" -out "$1.pem" 2>/dev/null
}

# Makes the certificates if they are not all there (in a scratch folder, moved in whole, so
# a run killed half-way leaves nothing half-made). 0 when they are there.
docker_tls_certs() {
  [ -r "$DOCKER_TLS_DIR/wrong-client/key.pem" ] && return 0
  command -v openssl >/dev/null 2>&1 || { say "no openssl: cannot make TLS certificates"; return 1; }
  local tmp
  mkdir -p "$(dirname "$DOCKER_TLS_DIR")" || return 1
  tmp=$(mktemp -d "$DOCKER_TLS_DIR.XXXXXX") || return 1
  if (
    set -e
    cd "$tmp"
    docker_tls_ca ca "sandboxd test docker CA"
    docker_tls_ca other-ca "sandboxd test: some other CA"
    docker_tls_sign ca server "127.0.0.1" serverAuth "IP:127.0.0.1,DNS:localhost"
    docker_tls_sign ca client "sandboxd test client" clientAuth ""
    docker_tls_sign other-ca wrong "sandboxd test client of another CA" clientAuth ""
    mkdir client wrong-client
    cp ca.pem client/ca.pem && mv client-cert.pem client/cert.pem && mv client-key.pem client/key.pem
    cp ca.pem wrong-client/ca.pem && mv wrong-cert.pem wrong-client/cert.pem &&
      mv wrong-key.pem wrong-client/key.pem
    rm -f other-ca-key.pem ./*.srl
    chmod 0600 ca-key.pem server-key.pem client/key.pem wrong-client/key.pem
  ); then
    chmod 0755 "$tmp" && rm -rf "$DOCKER_TLS_DIR" && mv "$tmp" "$DOCKER_TLS_DIR"
  else
    rm -rf "$tmp"
    say "openssl could not make the test certificates"
    return 1
  fi
}

# The environment a client needs to reach the TLS listener, for scripts/test.sh.
docker_tls_env() {
  echo "DOCKER_TLS_HOST=tcp://127.0.0.1:$DOCKER_TLS_PORT"
  echo "DOCKER_TLS_CERTS=$DOCKER_TLS_DIR/client"
  echo "DOCKER_TLS_WRONG_CERTS=$DOCKER_TLS_DIR/wrong-client"
}
