#!/usr/bin/env bash
# lockd installed like a service (issue 12 item 3): `meson install` of the
# build under test into a staging directory puts every file in place; an
# outside program (liblockclient/examples/take_lease.c, compiled here by
# hand) builds against the installed library with only
# `pkg-config --cflags --libs lockclient`, once shared and once static, and
# takes a lease on a real cell whose replica 0 runs from the installed
# sample configuration; the installed lockctl talks to it; the man pages
# render without warnings; the unit passes `systemd-analyze verify`; the
# bash completion completes.
#
#   install.sh LOCKD PROBE BUILD_ROOT SOURCE_ROOT B_SANITIZE CC...
. "$(dirname "$0")/lib.sh"
BUILD=$(realpath "$3")
SRC=$(realpath "$4")
SANITIZE=$5
shift 5
CC=("$@")
# The outside program is built as the library was: a sanitized
# liblockclient needs the sanitizer runtimes in the program that links it.
SANFLAGS=()
if [[ $SANITIZE != none && -n $SANITIZE ]]; then
	SANFLAGS=("-fsanitize=$SANITIZE")
fi

say "meson install --destdir"
STAGE=$T/stage
meson install -C "$BUILD" --destdir "$STAGE" --no-rebuild >"$T/install.log" 2>&1 ||
	fail "meson install: $(cat "$T/install.log")"
grep '^Installing' "$T/install.log" | sed "s|$STAGE||"
PC=$(find "$STAGE" -name lockclient.pc)
[[ -n $PC ]] || fail "no lockclient.pc installed"
LIBDIR=$(dirname "$(dirname "$PC")")
USR=$STAGE$(PKG_CONFIG_PATH=$LIBDIR/pkgconfig pkg-config --variable=prefix lockclient)
for f in sbin/lockd bin/lockctl include/lockclient.h include/lc_time.h \
	share/man/man8/lockd.8 share/man/man1/lockctl.1 \
	share/bash-completion/completions/lockctl \
	share/doc/lockd/examples/lockd.conf.example \
	lib/systemd/system/lockd@.service lib/sysusers.d/lockd.conf; do
	[[ -e $USR/$f ]] || fail "not installed: $f"
done
for f in liblockclient.so liblockclient.a; do
	[[ -e $LIBDIR/$f ]] || fail "not installed: $f"
done
[[ ! -e $USR/bin/lockbench ]] || fail "lockbench is installed"

say "pkg-config against the stage"
export PKG_CONFIG_PATH=$LIBDIR/pkgconfig PKG_CONFIG_SYSROOT_DIR=$STAGE
pkg-config --modversion lockclient
read -ra PC_SHARED < <(pkg-config --cflags --libs lockclient)
echo "pkg-config --cflags --libs lockclient: ${PC_SHARED[*]}" | sed "s|$STAGE|\$STAGE|g"
echo "pkg-config --static --libs lockclient: $(pkg-config --static --libs lockclient | sed "s|$STAGE|\$STAGE|g")"
[[ " ${PC_SHARED[*]} " == *" -llockclient "* && " ${PC_SHARED[*]} " != *" -lnng "* ]] ||
	fail "shared libs: ${PC_SHARED[*]}"

say "an outside program, shared"
cp "$SRC/liblockclient/examples/take_lease.c" "$T/outside.c"
(cd "$T" && "${CC[@]}" "${SANFLAGS[@]}" -o outside-shared outside.c "${PC_SHARED[@]}") ||
	fail "cannot build against the shared library"
LD_LIBRARY_PATH=$LIBDIR ldd "$T/outside-shared" | grep "$LIBDIR/liblockclient.so.0" >/dev/null ||
	fail "outside-shared does not load the staged library: $(LD_LIBRARY_PATH=$LIBDIR ldd "$T/outside-shared")"

say "an outside program, static (liblockclient.a and its Libs.private)"
# A copy of the library directory with the archive only, so -llockclient
# cannot find the shared library: what links is what the .pc names.
mkdir -p "$T/static/pkgconfig"
cp "$LIBDIR/liblockclient.a" "$T/static/"
sed "s|^libdir=.*|libdir=$T/static|" "$PC" >"$T/static/pkgconfig/lockclient.pc"
read -ra PC_STATIC < <(PKG_CONFIG_PATH=$T/static/pkgconfig PKG_CONFIG_SYSROOT_DIR= \
	pkg-config --static --cflags --libs lockclient)
(cd "$T" && "${CC[@]}" "${SANFLAGS[@]}" -I"$USR/include" -o outside-static outside.c "${PC_STATIC[@]}") ||
	fail "cannot build against the static library with: ${PC_STATIC[*]}"
if ldd "$T/outside-static" | grep liblockclient >/dev/null; then
	fail "outside-static loads a shared liblockclient"
fi

say "a cell: replica 0 from the installed sample configuration"
HTTP_PORT=$("$LOCKD" --free-ports 1)
sed -e "s|^peers = .*|peers = $PEERS|" -e "s|^clients = .*|clients = $CLIENTS|" \
	-e "s|^peer_key = .*|peer_key = $PEER_KEY|" \
	-e "s|^http = .*|http = http://127.0.0.1:$HTTP_PORT|" \
	"$USR/share/doc/lockd/examples/lockd.conf.example" >"$T/r0.conf"
# As the unit runs it: --config, and --data on the command line.
"$LOCKD" --config "$T/r0.conf" --data "$T/r0" >>"$T/r0.log" 2>&1 &
echo $! >"$T/r0.pid"
start_replica 1
start_replica 2
wait_leader >/dev/null
# r0 may learn of the leader a moment after the one wait_leader asked.
ok=0
for _ in $(seq 100); do
	if http_get "http://127.0.0.1:$HTTP_PORT" /health | grep '"health":true' >/dev/null; then
		ok=1
		break
	fi
	sleep 0.1
done
((ok)) || fail "r0 /health from the sample config"

say "the outside programs take a lease on it"
LD_LIBRARY_PATH=$LIBDIR "$T/outside-shared" "$CLIENTS" install/shared 1 \
	>"$T/shared.out" 2>&1 || fail "outside-shared: $(cat "$T/shared.out")"
cat "$T/shared.out"
grep -q "^took install/shared token=" "$T/shared.out" || fail "outside-shared: $(cat "$T/shared.out")"
"$T/outside-static" "$CLIENTS" install/static 1 >"$T/static.out" 2>&1 ||
	fail "outside-static: $(cat "$T/static.out")"
cat "$T/static.out"
grep -q "^took install/static token=" "$T/static.out" || fail "outside-static: $(cat "$T/static.out")"

say "the installed lockctl"
LD_LIBRARY_PATH=$LIBDIR "$USR/bin/lockctl" -e "$CLIENTS" status >"$T/status" 2>&1 ||
	fail "installed lockctl status: $(cat "$T/status")"
grep -q leader "$T/status" || fail "status: $(cat "$T/status")"

say "man pages render without warnings"
if command -v man >/dev/null; then
	for m in "$USR/share/man/man8/lockd.8" "$USR/share/man/man1/lockctl.1"; do
		MANWIDTH=80 man --warnings -l "$m" >"$T/man.out" 2>"$T/man.err" ||
			fail "man $m: $(cat "$T/man.err")"
		[[ ! -s $T/man.err ]] || fail "man $m warns: $(cat "$T/man.err")"
		grep -q "EXIT STATUS" "$T/man.out" || fail "man $m: no EXIT STATUS"
	done
	# Every option lockd --help names is in lockd(8), and every command
	# lockctl --help names is in lockctl(1).
	MANWIDTH=200 man -l "$USR/share/man/man8/lockd.8" 2>/dev/null >"$T/lockd.man"
	for o in $("$LOCKD" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		grep -q -- "$o" "$T/lockd.man" || fail "lockd(8) lacks $o"
	done
	MANWIDTH=200 man -l "$USR/share/man/man1/lockctl.1" 2>/dev/null >"$T/lockctl.man"
	for o in $(LD_LIBRARY_PATH=$LIBDIR "$USR/bin/lockctl" --help | grep -o -- '--[a-z][a-z-]*' | sort -u); do
		grep -q -- "$o" "$T/lockctl.man" || fail "lockctl(1) lacks $o"
	done
else
	echo "SKIP: no man(1) here (tools/install-deps installs man-db)"
fi

say "systemd-analyze verify lockd@.service"
if command -v systemd-analyze >/dev/null; then
	# An instance of the template, with ExecStart pointing into the stage
	# (verify checks that the binary is there).
	mkdir -p "$T/units"
	sed "s|^ExecStart=/|ExecStart=$STAGE/|" \
		"$USR/lib/systemd/system/lockd@.service" >"$T/units/lockd@.service"
	grep -q "^ExecStart=$USR/sbin/lockd --config " "$T/units/lockd@.service" ||
		fail "ExecStart: $(grep ExecStart "$T/units/lockd@.service")"
	ln -s lockd@.service "$T/units/lockd@r0.service"
	systemd-analyze verify --man=no "$T/units/lockd@r0.service" >"$T/verify" 2>&1 ||
		fail "systemd-analyze verify: $(cat "$T/verify")"
	[[ ! -s $T/verify ]] || fail "systemd-analyze verify warns: $(cat "$T/verify")"
	echo "systemd-analyze verify: no complaint"
else
	echo "SKIP: no systemd-analyze here"
fi

say "bash completion"
bash --norc -c '
	source "$1" || exit 1
	complete -p lockctl | grep -- "-F _lockctl" >/dev/null || exit 2
	c() { COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _lockctl; echo "${COMPREPLY[*]}"; }
	[[ $(c lockctl ac) == acquire ]] || exit 3
	[[ $(c lockctl -e h:1 --consistency st) == stale ]] || exit 4
	[[ $(c lockctl elect g --li) == --listen ]] || exit 5
	[[ $(c lockctl member r) == remove ]] || exit 6
	echo "lockctl ac<TAB>: $(c lockctl ac)"
' _ "$USR/share/bash-completion/completions/lockctl" || fail "completion (step $?)"
say "ok"
