#!/usr/bin/env bash
# The status page in a real browser: headless Chromium from Debian, driven
# through chromedriver by browser.py (WebDriver over urllib), loads / from a
# running cell, and what it shows must match `lockctl status` and
# `lockctl ls`; a lease taken while it is open shows up in its live
# changes. Installs chromium and chromium-driver when they are missing.
# The screenshot goes to $4; its path is printed.
# args: lockd lockd-probe lockctl screenshot.png
. "$(dirname "$0")/lib.sh"
LOCKCTL=$(realpath "$3")
SHOT=$4
HERE=$(dirname "$(realpath "$0")")

if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
	say "installing chromium and chromium-driver (Debian)"
	sudo=()
	[[ $(id -u) -eq 0 ]] || sudo=(sudo)
	export DEBIAN_FRONTEND=noninteractive
	"${sudo[@]}" apt-get install -y chromium chromium-driver >"$T/apt.log" 2>&1 ||
		{ "${sudo[@]}" apt-get update >>"$T/apt.log" 2>&1 &&
			"${sudo[@]}" apt-get install -y chromium chromium-driver >>"$T/apt.log" 2>&1; } ||
		fail "cannot install chromium: $(tail -n 5 "$T/apt.log")"
fi
command -v jq >/dev/null || fail "jq is needed (tools/install-deps)"

start_http_cell
lead=$(wait_leader)
export LOCKD_ENDPOINTS=$CLIENTS

say "three leases held by lockctl (renewed while the page looks)"
HOLDERS=()
for n in app/primary db/migration jobs/nightly; do
	"$LOCKCTL" acquire "$n" --ttl 10s --value "on-$(basename "$n")" --hold \
		>"$T/hold-${n//\//_}" 2>&1 &
	HOLDERS+=($!)
done
for _ in $(seq 100); do
	[[ $("$LOCKCTL" ls -o json | jq -s '[.[] | if type == "array" then .[] else . end] | length') -eq 3 ]] && break
	sleep 0.1
done

# Under a loaded machine (ASan, two cores) the leader can change between
# asking who leads and loading the page: a page that does not come from the
# leader with the three leases is loaded again from the leader of then.
loaded=0
for try in 1 2 3 4 5; do
	lead=$(wait_leader)
	say "load the page at the leader (r$lead), try $try"
	S=$(curl -s -XPOST "${HTTP_URLS[$lead]}/v1/session" | jq -r .credentials)
	NEW=web/new$try
	timeout 90 python3 "$HERE/browser.py" "$(command -v chromedriver)" \
		"${HTTP_URLS[$lead]}/?wait_ms=2000" "$SHOT" \
		--after "curl -s -XPOST -H 'X-Lockd-Session: $S' -d '{\"ttl_ms\":30000,\"value\":\"from-curl\"}' ${HTTP_URLS[$lead]}/v1/acquire/$NEW" \
		>"$T/page" || {
		echo "  browser.py: $(cat "$T/page")"
		continue
	}
	page=$(sed -n 1p "$T/page")
	if jq -e '.leases | length >= 3 and all(.[5] | test("^[0-9]+ ms$"))' \
		<<<"$page" >/dev/null; then
		loaded=1
		break
	fi
	echo "  not the leader's page with three leases: $page"
done
((loaded)) || fail "no try loaded the leader's page with its leases: $(cat "$T/page")"
after=$(sed -n 2p "$T/page")
echo "  page:  $page"
echo "  after: $after"

say "the replicas match lockctl status"
"$LOCKCTL" status -o json >"$T/status"
cat "$T/status"
want=$(jq -c 'map({id: (.id|tostring), role: .role}) | sort_by(.id)' "$T/status")
got=$(jq -c '.replicas | map({id: .[0], role: .[1]}) | sort_by(.id)' <<<"$page")
[[ $want == "$got" ]] || fail "replicas: lockctl says $want, the page $got"
jq -e '.replicas | all(.[10] == "ok")' <<<"$page" >/dev/null || fail "a replica is not healthy on the page"

say "the leases match lockctl ls"
"$LOCKCTL" ls -o json >"$T/ls"
cat "$T/ls"
# (as the page listed them again after the live change: web/new too)
want=$(jq -s -c '[.[] | if type == "array" then .[] else . end] |
	map({name, holder, token, value}) | sort_by(.name)' "$T/ls")
got=$(jq -c '.after.leases | map({name: .[0], holder: .[1], token: .[3], value: .[2]}) |
	sort_by(.name)' <<<"$after")
[[ $want == "$got" ]] || fail "leases: lockctl says $want, the page $got"
jq -e '.leases | length >= 3 and all(.[5] | test("^[0-9]+ ms$"))' <<<"$page" >/dev/null ||
	fail "the leader's page shows no TTL left"

say "a lease taken while the page is open shows up live"
jq -e --arg n "$NEW" '.change | test($n + " held by [0-9]+ token [0-9]+ value from-curl")' <<<"$after" >/dev/null ||
	fail "no live change for $NEW: $after"
jq -e --arg n "$NEW" '.after.leases | map(.[0]) | index($n) != null' <<<"$after" >/dev/null ||
	fail "$NEW is not in the table after the change"

[[ -s $SHOT ]] || fail "no screenshot"
echo "screenshot: $(realpath "$SHOT")"

kill -TERM "${HOLDERS[@]}" 2>/dev/null || true
wait "${HOLDERS[@]}" 2>/dev/null || true
stop_all
[[ $STOP_RC -eq 0 ]] || fail "a replica exited with $STOP_RC"
say "ok"
