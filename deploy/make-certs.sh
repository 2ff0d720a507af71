#!/usr/bin/env bash
# Creates a domain CA and issues the certificates an mPlane deployment needs, with openssl.
#
#   deploy/make-certs.sh DIR                     a CA, and component, supervisor and client certificates
#   deploy/make-certs.sh DIR issue NAME OU [opts] one more certificate from the CA in DIR
#   deploy/make-certs.sh DIR revoke NAME          revokes NAME's certificate and writes DIR/crl.pem
#
# Names follow the RI's convention: the subject is DC=<domain parts>, OU=<role>, CN=<name>,
# and the identity the programs derive from it is those values joined by dots
# (DOMAIN=org.example: "org.example.components.component-1").
#
# Certificates of clients (OU=clients) can only authenticate clients: extended key usage
# clientAuth, no host names. The others (components, supervisors: servers and clients) name
# 127.0.0.1, ::1 and localhost, plus what HOSTS lists when they are issued one by one
# (`HOSTS=probe-1.example.net,192.0.2.7 make-certs.sh DIR issue probe-1 components`): give
# each server only its own names, and have components check the supervisor's identity
# ([component] supervisor-identity), since any server certificate of the CA naming a host
# passes hostname verification for it.
#
# Options of `issue`: --days N (validity, default 825), --expired (valid only in 2020),
# --subject '/DC=.../CN=...' (a subject of your own, multi-valued RDNs with '+'),
# --client / --server (the profile, when the OU does not say).
# Keys are EC P-256, unencrypted, mode 0600: keep them on the host that uses them.
# Environment: DOMAIN (org.example), HOSTS (none), CA_DAYS (3650).
set -euo pipefail
dir=${1:?usage: make-certs.sh DIR [issue NAME OU [--days N] [--expired] [--subject S] | revoke NAME]}
shift
domain=${DOMAIN:-org.example}
mkdir -p "$dir"
cd "$dir"
umask 077

dc_subject() {
  local s="" part
  IFS=. read -ra parts <<<"$domain"
  for part in "${parts[@]}"; do s+="/DC=$part"; done
  echo "$s"
}

write_ca_config() {
  mkdir -p ca.db
  [ -f ca.db/index.txt ] || : > ca.db/index.txt
  [ -f ca.db/serial ] || openssl rand -hex 8 > ca.db/serial
  [ -f ca.db/crlnumber ] || echo 1000 > ca.db/crlnumber
  cat > ca.db/openssl.cnf <<EOF
[ca]
default_ca = mplane
[mplane]
database = ca.db/index.txt
serial = ca.db/serial
crlnumber = ca.db/crlnumber
new_certs_dir = ca.db
certificate = ca.crt
private_key = ca.key
default_md = sha256
default_crl_days = 30
policy = anything
unique_subject = no
copy_extensions = copy
[anything]
domainComponent = optional
organizationalUnitName = optional
commonName = supplied
[server]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth, clientAuth
subjectAltName = \${ENV::SAN}
[client]
basicConstraints = critical, CA:false
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
EOF
}

make_ca() {
  [ -f ca.key ] && return
  openssl ecparam -name prime256v1 -genkey -noout -out ca.key
  openssl req -new -x509 -key ca.key -sha256 -days "${CA_DAYS:-3650}" -out ca.crt \
    -subj "$(dc_subject)/OU=ca/CN=mplane-ca" \
    -addext "basicConstraints=critical,CA:true" -addext "keyUsage=critical,keyCertSign,cRLSign"
  write_ca_config
}

san() {
  local s="IP:127.0.0.1,IP:::1,DNS:localhost" h
  IFS=, read -ra hosts <<<"${HOSTS:-}"
  for h in "${hosts[@]}"; do
    [ -z "$h" ] && continue
    if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then s+=",IP:$h"; else s+=",DNS:$h"; fi
  done
  echo "$s"
}

# issue NAME OU [--days N] [--expired] [--subject S]
issue() {
  local name=$1 ou=$2; shift 2
  local days=825 dates=() subject profile=server
  subject="$(dc_subject)/OU=$ou/CN=$name"
  [ "$ou" = clients ] && profile=client
  while [ $# -gt 0 ]; do
    case $1 in
      --days) days=$2; shift ;;
      --expired) dates=(-startdate 20200101000000Z -enddate 20200102000000Z) ;;
      --subject) subject=$2; shift ;;
      --client) profile=client ;;
      --server) profile=server ;;
      *) echo "make-certs: unknown option $1" >&2; exit 64 ;;
    esac
    shift
  done
  write_ca_config
  openssl ecparam -name prime256v1 -genkey -noout -out "$name.key.tmp"
  openssl pkcs8 -topk8 -nocrypt -in "$name.key.tmp" -out "$name.key"
  rm -f "$name.key.tmp"
  openssl req -new -key "$name.key" -out "$name.csr" -subj "$subject"
  openssl ca -batch -config ca.db/openssl.cnf -extensions "$profile" -days "$days" "${dates[@]}" \
    -preserveDN -notext -in "$name.csr" -out "$name.pem" 2>/dev/null
  # The RI reads its own identity from the text before the PEM block ("Subject: ...").
  openssl x509 -in "$name.pem" -text -certopt no_pubkey,no_sigdump,no_extensions > "$name.crt"
  rm -f "$name.csr" "$name.pem"
  chmod 600 "$name.key"
  chmod 644 "$name.crt"
  echo "make-certs: $dir/$name.crt: $(openssl x509 -in "$name.crt" -noout -subject -nameopt RFC2253)"
}

revoke() {
  write_ca_config
  openssl ca -config ca.db/openssl.cnf -revoke "$1.crt" 2>/dev/null
  openssl ca -config ca.db/openssl.cnf -gencrl -out crl.pem 2>/dev/null
  echo "make-certs: revoked $1; $dir/crl.pem"
}

export SAN; SAN=$(san)
case ${1:-} in
  "") SAN="IP:127.0.0.1,IP:::1,DNS:localhost" ;;  # the first set: loopback names only
esac
case ${1:-} in
  issue) shift; make_ca; issue "$@" ;;
  revoke) shift; revoke "$@" ;;
  "")
    make_ca
    issue component-1 components
    issue supervisor-1 supervisors
    issue client-1 clients
    chmod 644 ca.crt
    echo "make-certs: CA $dir/ca.crt (keep $dir/ca.key offline in production)"
    ;;
  *) echo "make-certs: unknown command $1" >&2; exit 64 ;;
esac
