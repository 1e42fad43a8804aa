#!/usr/bin/env bash
# liblockclient exports its lc_ API and nothing else (issue 16): not the
# protobuf-c code it links (lockd__*), which would clash with a program's
# own copy, nor its lci_ insides. $1 is the shared library.
set -euo pipefail
lib=$1
mapfile -t syms < <(nm -D --defined-only "$lib" | awk '{print $NF}')
((${#syms[@]} >= 30)) || { echo "FAIL: only ${#syms[@]} symbols in $lib"; exit 1; }
bad=()
for s in "${syms[@]}"; do
	[[ $s == lc_* ]] || bad+=("$s")
done
if ((${#bad[@]} > 0)); then
	echo "FAIL: $lib exports ${#bad[@]} symbols that are not lc_ API: ${bad[*]}"
	exit 1
fi
# A lookup in an associative array, not printf | grep -q: grep -q exits at
# its first match, printf then dies of SIGPIPE, and pipefail fails the test.
declare -A have=()
for s in "${syms[@]}"; do have[$s]=1; done
for s in lc_open lc_close lc_acquire lc_session_open lc_campaign lc_observe \
	lc_open_shared lc_renew_many; do
	[[ -n ${have[$s]:-} ]] || { echo "FAIL: $s is not exported"; exit 1; }
done
echo "ok: ${#syms[@]} symbols, all lc_"
