# Shared by the integration tests: sourced with the lockd binary and the
# lockd-probe binary as $1 and $2. Gives each test its own temp dir and free
# ports, starts and stops replicas, and kills everything it started on exit
# (logs are printed when the test fails; LOCKD_IT_KEEP=1 keeps the dir).
set -euo pipefail

LOCKD=$(realpath "$1")
PROBE=$(realpath "$2")
T=$(mktemp -d "${TMPDIR:-/tmp}/lockd-it.XXXXXX")
N=3
EXTRA=()
export LOCKD_PROBE_TIMEOUT_MS=${LOCKD_PROBE_TIMEOUT_MS:-10000}
# Sanitizer builds: a leak or UB report fails the replica's exit code.
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-halt_on_error=1:print_stacktrace=1}

cleanup() {
	local rc=$? i
	for i in $(seq 0 $((N - 1))); do
		if [[ -f "$T/r$i.pid" ]]; then
			kill -KILL "$(cat "$T/r$i.pid")" 2>/dev/null || true
		fi
	done
	wait 2>/dev/null || true
	if [[ $rc -ne 0 ]]; then
		for i in $(seq 0 $((N - 1))); do
			[[ -f "$T/r$i.log" ]] || continue
			echo "==== r$i.log (last 40 lines)"
			tail -n 40 "$T/r$i.log"
		done
	fi
	if [[ -n ${LOCKD_IT_KEEP:-} ]]; then
		echo "kept $T"
	else
		rm -rf "$T"
	fi
	exit $rc
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*" >&2
	exit 1
}

say() {
	echo "--- [${SECONDS}s] $*"
}

mapfile -t PORTS < <("$LOCKD" --free-ports 6)
[[ ${#PORTS[@]} -eq 6 ]] || fail "no free ports"
PEER_URLS=()
CLIENT_URLS=()
for i in 0 1 2; do
	PEER_URLS+=("tcp://127.0.0.1:${PORTS[$i]}")
	CLIENT_URLS+=("tcp://127.0.0.1:${PORTS[$((i + 3))]}")
done
PEERS=$(IFS=,; echo "${PEER_URLS[*]}")
CLIENTS=$(IFS=,; echo "${CLIENT_URLS[*]}")

# The cell key: every replica this file starts authenticates its peer
# messages with it (lockd refuses plain tcp:// peers without one). A test
# that wants none sets PEER_KEY_FLAGS=() (and passes --insecure-peers).
PEER_KEY=$T/peer.key
head -c 32 /dev/urandom >"$PEER_KEY"
chmod 600 "$PEER_KEY"
PEER_KEY_FLAGS=(--peer-key "$PEER_KEY")

# Flags for one replica only, one per line (none here; tls.sh gives each
# replica its own certificate).
replica_flags() { :; }

start_replica() { # id [flags...]
	local i=$1 own
	shift
	mapfile -t own < <(replica_flags "$i")
	"$LOCKD" --id "$i" --peers "$PEERS" --clients "$CLIENTS" \
		--data "$T/r$i" "${PEER_KEY_FLAGS[@]}" "${EXTRA[@]}" "${own[@]}" \
		"$@" >>"$T/r$i.log" 2>&1 &
	echo $! >"$T/r$i.pid"
}

start_all() {
	local i
	for i in 0 1 2; do start_replica "$i"; done
}

alive() { # id
	[[ -f "$T/r$1.pid" ]] && kill -0 "$(cat "$T/r$1.pid")" 2>/dev/null
}

# Stops a replica with a signal (default TERM) and waits for it; its exit
# status is left in STOP_RC. KILL is SIGKILL: nothing is flushed or closed.
# (Not in $(...): a subshell cannot wait for the test's children.)
STOP_RC=0
stop_replica() { # id [signal]
	local i=$1 sig=${2:-TERM} pid
	pid=$(cat "$T/r$i.pid")
	kill -"$sig" "$pid" 2>/dev/null || true
	STOP_RC=0
	wait "$pid" 2>/dev/null || STOP_RC=$?
	rm -f "$T/r$i.pid"
}

# Signals every live replica at once, waits for all; STOP_RC is the last
# non-zero exit status, or 0.
stop_all() { # [signal]
	local sig=${1:-TERM} i p rc pids=()
	for i in 0 1 2; do
		if alive "$i"; then
			pids+=("$(cat "$T/r$i.pid")")
			kill -"$sig" "${pids[-1]}" 2>/dev/null || true
		fi
	done
	STOP_RC=0
	for p in "${pids[@]}"; do
		rc=0
		wait "$p" 2>/dev/null || rc=$?
		[[ $rc -eq 0 ]] || STOP_RC=$rc
	done
	rm -f "$T"/r*.pid
}

# http_get http://HOST:PORT PATH: the whole response (status line, headers,
# body) on stdout, over bash's /dev/tcp (no curl needed).
http_get() {
	local hp=${1#http://}
	exec 3<>"/dev/tcp/${hp%:*}/${hp##*:}" || return 1
	printf 'GET %s HTTP/1.1\r\nHost: %s\r\nConnection: close\r\n\r\n' "$2" "$hp" >&3
	timeout 5 cat <&3
	exec 3<&-
}

# probe ENDPOINTS args...: one request, its key=value line on stdout.
probe() {
	"$PROBE" "$@"
}

kv() { # line key
	sed -n "s/.*\\b$2=\\([^ ]*\\).*/\\1/p" <<<"$1" | head -n 1
}

# Waits until some replica says it leads and every live replica names it;
# prints its id.
wait_leader() { # [timeout_s]
	local deadline=$((SECONDS + ${1:-15})) i line lead agree
	local -a named
	while ((SECONDS < deadline)); do
		lead=-1
		agree=1
		named=()
		for i in 0 1 2; do
			alive "$i" || continue
			if ! line=$(LOCKD_PROBE_TIMEOUT_MS=1000 probe "${CLIENT_URLS[$i]}" status 2>/dev/null); then
				agree=0
				continue
			fi
			[[ $(kv "$line" role) == leader ]] && lead=$i
			named+=("$(kv "$line" leader)")
		done
		for i in "${named[@]}"; do
			[[ $i == "$lead" ]] || agree=0
		done
		if [[ $lead -ge 0 && $agree -eq 1 ]]; then
			echo "$lead"
			return 0
		fi
		sleep 0.2
	done
	fail "no leader that every live replica names"
}

# Waits until replica id has applied at least pos.
wait_applied() { # id pos [timeout_s]
	local deadline=$((SECONDS + ${3:-15})) line a
	while ((SECONDS < deadline)); do
		line=$(LOCKD_PROBE_TIMEOUT_MS=1000 probe "${CLIENT_URLS[$1]}" status 2>/dev/null) || true
		a=$(kv "$line" applied)
		if [[ -n $a && $a -ge $2 ]]; then
			return 0
		fi
		sleep 0.2
	done
	fail "r$1 did not apply position $2 (at ${a:-?})"
}

# acquire name session seq ttl: asserts GRANTED; prints the token.
wait_voter() { # id [timeout_s]: until r<id> no longer says role=recovering
	local deadline=$((SECONDS + ${2:-20})) line r
	while ((SECONDS < deadline)); do
		line=$(LOCKD_PROBE_TIMEOUT_MS=1000 probe "${CLIENT_URLS[$1]}" status 2>/dev/null) || true
		r=$(kv "$line" role)
		if [[ -n $r && $r != recovering ]]; then
			return 0
		fi
		sleep 0.2
	done
	fail "r$1 is still recovering (${line:-no answer})"
}
acquire_ok() {
	local line
	line=$(probe "$CLIENTS" acquire "$1" "$2" "$3" "$4") ||
		fail "acquire $1: $line"
	[[ $(kv "$line" lease_status) == GRANTED ]] || fail "acquire $1: $line"
	kv "$line" token
}

position_of() { # line
	kv "$1" position
}

# Starts replicas 0-2, each serving HTTP (--http) on a free port and naming
# the others' (--http-urls): the HTTP API's tests. Sets HTTP_URLS (by
# replica id) and HTTP_ALL (comma-separated).
start_http_cell() {
	local hp i
	mapfile -t hp < <("$LOCKD" --free-ports 3)
	HTTP_URLS=()
	for i in 0 1 2; do HTTP_URLS+=("http://127.0.0.1:${hp[$i]}"); done
	HTTP_ALL=$(IFS=,; echo "${HTTP_URLS[*]}")
	say "start 3 replicas with --http and --http-urls"
	for i in 0 1 2; do
		start_replica "$i" --http "${HTTP_URLS[$i]}" --http-urls "$HTTP_ALL"
	done
}
