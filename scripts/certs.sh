#!/usr/bin/env bash
# Certificates for a tsoracle cluster, made with the openssl CLI
# (docs/cluster.md, "TLS"; the identity convention is in common/tls.h):
#
#   scripts/certs.sh DIR [N]
#       a cluster CA (kept if DIR/ca.key exists), member certificates
#       node1..nodeN (member ids 1..N, default 3), admin and client
#       certificates, and an empty revocation list DIR/ca.crl
#   scripts/certs.sh DIR issue NAME ROLE [ID] [--expired]
#       a new key and certificate DIR/NAME.key, DIR/NAME.crt from DIR's CA;
#       ROLE is member (ID required), admin or client; --expired makes one
#       whose validity ended in 2020 (for tests)
#   scripts/certs.sh DIR revoke NAME
#       revokes DIR/NAME.crt and rewrites DIR/ca.crl (then SIGHUP the members)
#
# Keys are EC P-256, mode 600; certificates are valid for CERTS_DAYS days
# (default 825). Subjects: O=tsoracle, OU=ROLE, CN=member-ID for members and
# CN=ROLE otherwise. Everything the CA needs to issue and revoke more is
# kept in DIR/ca/ (its index of issued certificates) and DIR/ca.key.
set -euo pipefail

CERTS_DAYS=${CERTS_DAYS:-825}
CA_DAYS=${CA_DAYS:-3650}
CRL_DAYS=${CRL_DAYS:-3650}

usage() {
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//' >&2
	exit 2
}

[ $# -ge 1 ] || usage
DIR=$1
shift
mkdir -p "$DIR"
DIR=$(cd "$DIR" && pwd)
CADIR=$DIR/ca

newkey() {
	(umask 077 && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null)
	chmod 600 "$1"
}

ca_config() {
	cat >"$CADIR/openssl.cnf" <<CNF
[ ca ]
default_ca = tsoracle_ca
[ tsoracle_ca ]
database = $CADIR/index.txt
new_certs_dir = $CADIR/issued
serial = $CADIR/serial
crlnumber = $CADIR/crlnumber
certificate = $DIR/ca.crt
private_key = $DIR/ca.key
default_md = sha256
default_days = $CERTS_DAYS
default_crl_days = $CRL_DAYS
policy = tsoracle_policy
unique_subject = no
copy_extensions = none
x509_extensions = tsoracle_leaf
[ tsoracle_policy ]
organizationName = optional
organizationalUnitName = supplied
commonName = supplied
[ tsoracle_leaf ]
basicConstraints = critical,CA:false
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth,clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
[ req ]
distinguished_name = tsoracle_dn
[ tsoracle_dn ]
[ tsoracle_ca_ext ]
basicConstraints = critical,CA:true,pathlen:0
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
CNF
}

make_ca() {
	mkdir -p "$CADIR/issued"
	chmod 700 "$CADIR"
	[ -f "$CADIR/index.txt" ] || : >"$CADIR/index.txt"
	[ -f "$CADIR/serial" ] || openssl rand -hex 16 >"$CADIR/serial"
	[ -f "$CADIR/crlnumber" ] || echo 01 >"$CADIR/crlnumber"
	ca_config
	if [ ! -f "$DIR/ca.key" ]; then
		newkey "$DIR/ca.key"
		openssl req -config "$CADIR/openssl.cnf" -x509 -new -key "$DIR/ca.key" -sha256 \
			-subj "/O=tsoracle/CN=tsoracle cluster CA $(openssl rand -hex 4)" \
			-days "$CA_DAYS" -extensions tsoracle_ca_ext -out "$DIR/ca.crt"
	fi
}

write_crl() {
	openssl ca -config "$CADIR/openssl.cnf" -gencrl -out "$DIR/ca.crl" 2>/dev/null
}

# issue NAME ROLE [ID] [--expired]
issue() {
	local name=$1 role=$2 id=${3:-} expired=${4:-} cn dates=()
	case $role in
	member)
		[[ $id =~ ^[1-9][0-9]*$ ]] || { echo "certs.sh: a member certificate needs a node id >= 1" >&2; exit 2; }
		cn=member-$id ;;
	admin | client) cn=$role ;;
	*) echo "certs.sh: role must be member, admin or client (not \"$role\")" >&2; exit 2 ;;
	esac
	[ -f "$DIR/ca.key" ] || make_ca
	ca_config
	if [ "$expired" = --expired ]; then
		dates=(-startdate 20200101000000Z -enddate 20200102000000Z)
	fi
	newkey "$DIR/$name.key"
	openssl req -config "$CADIR/openssl.cnf" -new -key "$DIR/$name.key" \
		-subj "/O=tsoracle/OU=$role/CN=$cn" -out "$CADIR/$name.csr"
	openssl ca -config "$CADIR/openssl.cnf" -batch -notext "${dates[@]}" \
		-in "$CADIR/$name.csr" -out "$DIR/$name.crt" 2>/dev/null
	rm -f "$CADIR/$name.csr"
}

case "${1:-}" in
issue)
	[ $# -ge 3 ] || usage
	shift
	if [ "$2" = member ]; then
		issue "$1" member "${3:-}" "${4:-}"
	else
		issue "$1" "$2" "" "${3:-}"
	fi
	;;
revoke)
	[ $# -eq 2 ] || usage
	ca_config
	openssl ca -config "$CADIR/openssl.cnf" -revoke "$DIR/$2.crt" 2>/dev/null
	write_crl
	echo "certs.sh: revoked $DIR/$2.crt; $DIR/ca.crl rewritten (send SIGHUP to every member)"
	;;
'' | [0-9]*)
	n=${1:-3}
	[[ $n =~ ^[1-9][0-9]*$ ]] || usage
	make_ca
	for ((i = 1; i <= n; i++)); do
		issue "node$i" member "$i"
	done
	issue admin admin
	issue client client
	write_crl
	echo "certs.sh: CA, node1..node$n, admin and client certificates and ca.crl in $DIR"
	;;
*) usage ;;
esac
