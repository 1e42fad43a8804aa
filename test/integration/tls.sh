#!/usr/bin/env bash
# A cell on tls+tcp:// URLs: replicas accept only peers whose certificate
# the cell's CA signed (mutual TLS) and names their replica id
# (CN=lockd-replica-N), and with --tls-client-auth 1 only such clients. A
# client without a certificate, one with a certificate from another CA, and
# a replica with one are all kept out; a client certificate from the cell's
# own CA gets no message accepted on a peer port, and one replica's
# certificate cannot speak for another; plaintext garbage on the TLS ports
# changes nothing. Args: lockd lockd-probe lockctl lockd-forge.
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
FORGE=$(realpath "$4")
command -v openssl >/dev/null || fail "openssl is needed (tools/install-deps)"

say "certificates: the cell's CA, one per replica, a client; a rogue CA and its cert"
C=$T/certs
mkdir -p "$C"
ca() { # name
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$C/$1.key" -out "$C/$1.pem" -days 2 -subj "/CN=lockd-test-$1" \
		2>"$C/openssl.err" || fail "openssl: $(cat "$C/openssl.err")"
}
cert() { # name ca cn: a PEM with the certificate and its key, for 127.0.0.1
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
		-keyout "$C/$1.key" -out "$C/$1.csr" -subj "/CN=$3" \
		2>"$C/openssl.err" || fail "openssl: $(cat "$C/openssl.err")"
	printf 'subjectAltName=DNS:127.0.0.1,IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth,clientAuth\n' \
		>"$C/ext"
	openssl x509 -req -in "$C/$1.csr" -CA "$C/$2.pem" -CAkey "$C/$2.key" \
		-CAcreateserial -out "$C/$1.crt" -days 2 -extfile "$C/ext" \
		2>"$C/openssl.err" || fail "openssl: $(cat "$C/openssl.err")"
	cat "$C/$1.crt" "$C/$1.key" >"$C/$1.pem"
}
ca ca
ca rogue
for i in 0 1 2; do cert "replica$i" ca "lockd-replica-$i"; done
cert client ca lockd-client
cert evil rogue lockd-replica-1

# The same ports as lib.sh chose, with TLS.
PEERS=${PEERS//tcp:\/\//tls+tcp:\/\/}
CLIENTS=${CLIENTS//tcp:\/\//tls+tcp:\/\/}
IFS=, read -ra CLIENT_URLS <<<"$CLIENTS"
# Peers authenticate by certificate here: no cell key.
PEER_KEY_FLAGS=()
EXTRA=(--tls-ca "$C/ca.pem" --tls-client-auth 1)
# --http on https:// too, with the same certificates and client auth.
mapfile -t HP < <("$LOCKD" --free-ports 3)
replica_flags() {
	printf '%s\n' --tls-cert "$C/replica$1.pem" --http "https://127.0.0.1:${HP[$1]}"
}

lc() { "$LOCKCTL" -e "$CLIENTS" --tls-ca "$C/ca.pem" --tls-cert "$C/client.pem" "$@"; }
lc_leader() { # the leader's id, once one leads
	local i out
	for i in $(seq 100); do
		out=$(lc status 2>/dev/null || true)
		awk '$2 == "leader" {print $1; found=1} END {exit !found}' <<<"$out" && return 0
		sleep 0.1
	done
	fail "no leader over TLS: $(lc status 2>&1)"
}

say "a TLS URL without a certificate is refused with a sentence"
rc=0
"$LOCKD" --id 0 --peers "$PEERS" --clients "$CLIENTS" --data "$T/none" \
	>"$T/none.log" 2>&1 || rc=$?
[[ $rc -ne 0 ]] && grep -q -- "--tls-cert" "$T/none.log" ||
	fail "started without a certificate (rc $rc): $(cat "$T/none.log")"

say "start 3 replicas with mutual TLS"
start_all
lead=$(lc_leader)
say "leader is r$lead"

say "a client with the CA's certificate acquires, reads and releases"
out=$(lc acquire tls/a --ttl 30s) || fail "acquire: $out"
tok=$(sed -n 's/.*token=\([0-9]*\).*/\1/p' <<<"$out")
sess=$(sed -n 's/.*session=\([0-9:]*\).*/\1/p' <<<"$out")
[[ -n $tok && -n $sess ]] || fail "acquire said: $out"
out=$(lc get tls/a -o json) || fail "get: $out"
[[ $out == *"\"token\":\"$tok\","* ]] || fail "get: $out"
lc release tls/a --token "$tok" --session "$sess" >/dev/null || fail "release"

say "the HTTP API on https:// asks for a client certificate too"
H="https://127.0.0.1:${HP[$lead]}"
out=$(curl -sS -m 10 --cacert "$C/ca.pem" --cert "$C/client.crt" --key "$C/client.key" \
	"$H/v1/status") || fail "https status: $out"
[[ $out == *"\"role\":\"leader\""* ]] || fail "https status: $out"
S=$(curl -sS -m 10 --cacert "$C/ca.pem" --cert "$C/client.crt" --key "$C/client.key" \
	-X POST "$H/v1/session" | sed -n 's/.*"credentials":"\([0-9:]*\)".*/\1/p')
out=$(curl -sS -m 10 --cacert "$C/ca.pem" --cert "$C/client.crt" --key "$C/client.key" \
	-X POST -H "X-Lockd-Session: $S" -d '{"ttl_ms":5000}' "$H/v1/acquire/tls/h") ||
	fail "https acquire: $out"
[[ $out == *'"lease_status":"GRANTED"'* ]] || fail "https acquire: $out"
curl -s -m 10 --cacert "$C/ca.pem" "$H/v1/status" >"$T/nocert" 2>&1 &&
	fail "https without a client certificate answered: $(cat "$T/nocert")"
curl -s -m 10 --cacert "$C/ca.pem" --cert "$C/evil.crt" --key "$C/evil.key" \
	"$H/v1/status" >"$T/evil" 2>&1 &&
	fail "https with another CA's certificate answered: $(cat "$T/evil")"
curl -s -m 5 "http://127.0.0.1:${HP[$lead]}/v1/status" >"$T/plain" 2>&1 &&
	[[ -n $(cat "$T/plain") ]] && fail "plain http on the https port answered"

say "no certificate, or one from another CA: no answer"
expect_out() { # rc file cmd...
	local want=$1 f=$2 rc=0
	shift 2
	"$@" >"$f" 2>&1 || rc=$?
	[[ $rc -eq $want ]] || fail "$* exited $rc, want $want: $(cat "$f")"
}
expect_out 4 "$T/nocert" "$LOCKCTL" -e "$CLIENTS" --tls-ca "$C/ca.pem" get tls/a
expect_out 4 "$T/evil" "$LOCKCTL" -e "$CLIENTS" --tls-ca "$C/ca.pem" \
	--tls-cert "$C/evil.pem" get tls/a
expect_out 4 "$T/wrongca" "$LOCKCTL" -e "$CLIENTS" --tls-ca "$C/rogue.pem" \
	--tls-cert "$C/client.pem" get tls/a
expect_out 2 "$T/noca" "$LOCKCTL" -e "$CLIENTS" get tls/a
grep -q -- "--tls-ca" "$T/noca" || fail "no CA: $(cat "$T/noca")"

say "plaintext garbage on the TLS ports changes nothing"
for i in 0 1 2; do
	for u in "${CLIENT_URLS[$i]}" "$(cut -d, -f$((i + 1)) <<<"$PEERS")"; do
		hp=${u#tls+tcp://}
		for _ in $(seq 5); do
			head -c 2000 /dev/urandom >"/dev/tcp/${hp%:*}/${hp##*:}" 2>/dev/null || true
		done
	done
done
[[ $(lc_leader) == "$lead" ]] || fail "the leader changed after garbage"

say "a client certificate from the cell's CA gets nothing accepted on a peer port"
IFS=, read -ra PEER_URLS_TLS <<<"$PEERS"
for i in 0 1 2; do
	# The peer port closes the connection as soon as TLS says whose it is
	# (the forger's send may still have looked as if it left).
	"$FORGE" "${PEER_URLS_TLS[$i]}" accept --to "$i" --from $(((i + 1) % 3)) \
		--copies 1 --tls-ca "$C/ca.pem" --tls-cert "$C/client.pem" \
		>"$T/forge$i.out" 2>&1 || true
	for _ in $(seq 30); do
		grep -q 'event=peer_refused.*names no replica' "$T/r$i.log" && break
		sleep 0.1
	done
	grep -q 'event=peer_refused.*names no replica' "$T/r$i.log" ||
		fail "r$i did not refuse the client certificate: $(tail -n 3 "$T/r$i.log")"
done
[[ $(lc_leader) == "$lead" ]] || fail "the leader changed after a client's forged ACCEPT"

say "one replica's certificate cannot speak for another"
v=$(( (lead + 1) % 3 )) as=$(( (lead + 2) % 3 ))
# Replica as's certificate, a PREPARE that claims to come from the leader.
# (After a pause: refusals are logged at most once a second.)
sleep 1.2
"$FORGE" "${PEER_URLS_TLS[$v]}" prepare --to "$v" --from "$lead" --copies 1 \
	--tls-ca "$C/ca.pem" --tls-cert "$C/replica$as.pem" >/dev/null ||
	fail "forge as r$as"
for _ in $(seq 30); do
	grep -q "event=peer_refused.*the sender's certificate names" "$T/r$v.log" && break
	sleep 0.1
done
grep -q "event=peer_refused.*the sender's certificate names" "$T/r$v.log" ||
	fail "r$v took r$as's word for r$lead's: $(tail -n 3 "$T/r$v.log")"
[[ $(lc_leader) == "$lead" ]] || fail "the leader changed after a posing replica's PREPARE"

ballot_of() { # the leader's ballot, from lc status
	lc status 2>/dev/null | awk '$2 == "leader" {print $4}'
}
b0=$(ballot_of)
[[ -n $b0 ]] || fail "no ballot: $(lc status 2>&1)"

say "a replica started with another replica's certificate is cut off"
f=$(( (lead + 1) % 3 )) o=$(( (lead + 2) % 3 ))
stop_replica "$f" KILL
sleep 1.2 # refusals are logged at most once a second
start_replica "$f" --tls-cert "$C/replica$o.pem"
# The leader dials it and finds replica o's name, and what it sends as f
# arrives over a connection that names o.
for _ in $(seq 50); do
	grep -qE "event=peer_refused.*(dialed peer's certificate names another|the sender's certificate names)" \
		"$T/r$lead.log" && break
	sleep 0.1
done
grep -qE "event=peer_refused.*(dialed peer's certificate names another|the sender's certificate names)" \
	"$T/r$lead.log" || fail "r$lead took r$o's certificate for r$f's: $(tail -n 3 "$T/r$lead.log")"
out=$(lc acquire tls/c --ttl 30s) || fail "the two honest replicas: $out"
[[ $(ballot_of) == "$b0" ]] || fail "the ballot moved from $b0 to $(ballot_of)"
stop_replica "$f" KILL
start_replica "$f"
lc_leader >/dev/null
# Its honest return may move the ballot once; the next step starts from
# the ballot the cell settles on.
b0=$(ballot_of)
for _ in $(seq 20); do
	sleep 0.5
	b=$(ballot_of)
	[[ -n $b && $b == "$b0" ]] && break
	b0=$b
done
[[ -n $b0 ]] || fail "no ballot: $(lc status 2>&1)"

say "a replica with a certificate from another CA cannot join or disrupt"
f=$(( (lead + 1) % 3 ))
stop_replica "$f" KILL
# It knows the cell's CA (it can check the others) but its own certificate
# is not the CA's: the others' peer ports refuse its handshakes (the same
# ld_tls_listen that refused certificate-less clients above), and they
# cannot verify its ports, so it hears no leader and keeps campaigning, and
# the cell's leader and ballot do not move.
start_replica "$f" --tls-cert "$C/evil.pem" --tls-ca "$C/ca.pem"
out=$(lc acquire tls/b --ttl 30s) || fail "the two honest replicas: $out"
sleep 2
grep -q "event=election" "$T/r$f.log" ||
	fail "the rogue replica never campaigned: $(tail -n 5 "$T/r$f.log")"
[[ $(ballot_of) == "$b0" ]] ||
	fail "the leader's ballot moved from $b0 to $(ballot_of): the rogue got in"
# Since its last start, the rogue replica has heard no leader it could verify,
# and a verifying client cannot talk to it.
awk '/event=start/ {bad=0} /event=leader_change leader=[0-9]/ {bad=1}
	END {exit bad}' "$T/r$f.log" ||
	fail "the rogue replica followed the cell: $(tail -n 5 "$T/r$f.log")"
out=$(lc status 2>/dev/null || true)
awk -v u="${CLIENT_URLS[$f]}" '$NF == u && $2 != "down" {bad=1} END {exit bad}' \
	<<<"$out" || fail "the rogue replica answered a verified client: $out"
grep -q "${CLIENT_URLS[$f]}" <<<"$out" || fail "status: $out"

say "SIGTERM: every replica exits 0"
stop_all TERM
[[ $STOP_RC -eq 0 ]] || fail "a replica exited $STOP_RC after SIGTERM"
say "ok"
