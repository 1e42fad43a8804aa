/* lockctl: the operator's command line for a lockd cell (lockctl --help).
 * One liblockclient client per run; acquire/elect with a command keep the
 * lease alive with an lc_sess and stop the command when the lease is lost. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "lockclient.h"

#ifndef LOCKD_VERSION
#define LOCKD_VERSION "unknown"
#endif

enum {
	EX_OK = 0,
	EX_NOTHELD = 1,
	EX_USAGE = 2,
	EX_NOTFOUND = 3,
	EX_UNAVAIL = 4,
	EX_LOST = 5,
	EX_NOEXEC = 127,
};

/* The help, in pieces (C11 compilers need only take strings of 4095
 * bytes); help_for prints one command's lines of the commands. */
static const char usage_head[] =
	"usage: lockctl [-e ENDPOINTS] [--tls-ca FILE] [--tls-cert FILE]\n"
	"               [--consistency MODE] [-o json] COMMAND [ARGS...]\n"
	"       lockctl --version | --help | COMMAND --help\n"
	"\n"
	"Talks to a lockd cell. ENDPOINTS is a comma-separated list of the\n"
	"replicas' client URLs (tcp://HOST:PORT,...; a bare HOST:PORT means\n"
	"tcp://HOST:PORT), from -e/--endpoints or the LOCKD_ENDPOINTS\n"
	"environment variable. -o json (before or after the command) prints\n"
	"JSON. For tls+tcp:// URLs, --tls-ca (or LOCKD_TLS_CA) names the CA\n"
	"file that verifies the replicas, and --tls-cert (or LOCKD_TLS_CERT)\n"
	"this client's certificate and key in one PEM file, for a cell that\n"
	"asks for one. Reads are linearizable (the leader answers after a\n"
	"quorum round) unless --consistency says read-your-writes or stale\n"
	"(stale: any replica, even without a leader). Every option may be\n"
	"written --name value or --name=value.\n"
	"\n";
static const char usage_cmds1[] =
	"commands:\n"
	"  status                 every replica: id, role, leader (N?: it "
	"names\n"
	"                         N, which did not answer as leader), ballot,\n"
	"                         commit, applied, lag behind the leader,\n"
	"                         voters, version, uptime, snapshot size\n"
	"  ls [PREFIX]            leases whose name starts with PREFIX\n"
	"  get NAME               holder, token, TTL, TTL left, grace, "
	"revoked,\n"
	"                         waiters, value (exit 3: the name is free)\n"
	"  acquire NAME [--ttl 10s] [--wait 0s] [--value V] [--kill-after 5s]\n"
	"          [--hold | -- CMD ARGS...]\n"
	"                         --ttl: 100ms up to the cell's --ttl-max-ms\n"
	"                         (60s unless its operator set another).\n"
	"                         without CMD: acquire, print session=S:K "
	"token=T\n"
	"                         and exit; the lease is NOT renewed: it ends\n"
	"                         after TTL + the cell's grace unless "
	"released\n"
	"                         (lockctl release NAME --token T --session "
	"S:K).\n"
	"                         --hold: print the same, then keep the lease\n"
	"                         renewed until SIGTERM or SIGINT, release it\n"
	"                         and exit 0 (as etcdctl lock NAME); exit 5 "
	"if\n"
	"                         it is lost first.\n"
	"                         with CMD: hold the lease while CMD runs\n"
	"                         (renewed in the background; LOCKCTL_NAME,\n"
	"                         LOCKCTL_TOKEN, LOCKCTL_SESSION in its\n"
	"                         environment) in its own process group. When\n"
	"                         the lease is lost, when lockctl gets "
	"SIGTERM,\n"
	"                         SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2,\n"
	"                         SIGPIPE or SIGALRM, and when CMD exits, the\n"
	"                         group and every process CMD started (even\n"
	"                         one that left the group) get SIGTERM, then\n"
	"                         SIGKILL after --kill-after; once they are\n"
	"                         gone lockctl releases the lease and exits:\n"
	"                         5 after the loss, 128+N after signal N, "
	"else\n"
	"                         CMD's status. If lockctl is killed with\n"
	"                         SIGKILL, CMD's group is killed with it and\n"
	"                         the lease ends at its expiry; what left the\n"
	"                         group survives then.\n"
	"  release NAME --token T --session S:K\n"
	"                         a lease belongs to the session that "
	"acquired\n"
	"                         it: give both, as acquire printed them "
	"(K,\n"
	"                         the session's key, keeps others from "
	"acting\n"
	"                         for it with the id GET shows)\n"
	"  proclaim NAME --value V --token T --session S:K\n"
	"                         the holder replaces its lease's value, "
	"keeping\n"
	"                         token and TTL: an elected leader announces "
	"a\n"
	"                         new value without resigning (watchers see "
	"it)\n"
	"  revoke NAME --reason TEXT\n"
	"                         force the lease to end (it passes on when "
	"it\n"
	"                         expires; the holder is never renewed "
	"again).\n"
	"                         The reason stays with the lease (get shows\n"
	"                         it) and the holder is told it\n";
static const char usage_cmds2[] =
	"  elect GROUP --value V [--ttl 10s] [--wait D] [--kill-after 5s]\n"
	"          [-- CMD ARGS...]\n"
	"                         campaign: wait for GROUP (at most --wait:\n"
	"                         exit 1 if not elected by then; default: no\n"
	"                         limit), print 'elected', then hold it while\n"
	"                         CMD runs (as acquire), or without CMD until\n"
	"                         SIGINT/SIGTERM (then resign, exit 0)\n"
	"  elect GROUP --listen [--count N] [--interval 1s]\n"
	"                         print GROUP's leader, then each change as\n"
	"                         it happens (as etcdctl elect -l): a new\n"
	"                         leader, its new value (proclaim), none\n"
	"                         (elected=0); one line each, with its ledger\n"
	"                         position; stop after N changes\n"
	"  leader GROUP           the holder's value, token and session (exit\n"
	"                         3: none)\n"
	"  watch NAME [--count N] [--interval 1s] [--from POSITION]\n"
	"                         print a line at the start and on every "
	"change\n"
	"                         of holder or token, each one, in order: its\n"
	"                         ledger position, its kind (start, held,\n"
	"                         passed: to another holder, value: the\n"
	"                         holder proclaimed a new one, free) and the\n"
	"                         lease as get prints it; stop after N\n"
	"                         changes. --from: no start line, the changes\n"
	"                         after POSITION (a position watch printed);\n"
	"                         --interval: each long-poll's wait, and the\n"
	"                         pause after an error.\n"
	"  watch --prefix PREFIX [--count N] [--interval 1s] [--from "
	"POSITION]\n"
	"                         the same for every name under PREFIX (\"\":\n"
	"                         all): start lines list them, then each\n"
	"                         change of any of them, in ledger order\n"
	"  check-token NAME TOKEN\n"
	"                         exit 0 if TOKEN is NAME's current token,\n"
	"                         else 1\n"
	"  member list            members: id, voter or learner, URLs\n"
	"  member add --id N --peer URL --client URL [--timeout 60s]\n"
	"                         add replica N (lockd --join) as a learner, "
	"then\n"
	"                         wait until it votes (exit 4 past "
	"--timeout)\n"
	"  member remove N        take replica N out; its id is never used "
	"again\n"
	"\n";
static const char usage_tail[] =
	"Durations: numbers with units ms, s, m, h: 500ms, 5s, 1.5s, 2m, "
	"1m30s.\n"
	"Names: 1-256 of [A-Za-z0-9._/:-]. TTL left (ttl_ms_left): only the\n"
	"leader keeps deadlines, on its own clock, so it is shown where the\n"
	"leader answered (get, ls and watch with the default, linearizable\n"
	"reads, as a rule) and is `unknown` (null in JSON) where another\n"
	"replica did (stale and read-your-writes reads may).\n"
	"\n"
	"JSON: one object per lease, the same keys whether it is held or free\n"
	"(\"held\": false and nulls); session ids, keys and tokens are "
	"strings\n"
	"(64-bit: JSON numbers lose them), and lockctl takes them back with "
	"or\n"
	"without their quotes; \"value\" is the value when it is UTF-8, else\n"
	"null, and \"value_base64\" always has its exact bytes.\n"
	"\n"
	"exit status: 0 ok; 1 not held / held by another session / token not\n"
	"current / not elected within --wait / the cell refused the\n"
	"membership change; 2 usage error (or a request the cell refused as\n"
	"invalid, with its sentence); 3 no such lease / no leader; 4 the cell\n"
	"is unavailable (no replica answered, or none knew a leader, in "
	"time);\n"
	"5 lost the lease while holding it; 127 CMD could not be run; 128+N\n"
	"after signal N. With CMD and the lease kept, lockctl exits with\n"
	"CMD's status (128+N if a signal N ended it).\n";

static void print_usage(void)
{
	fputs(usage_head, stdout);
	fputs(usage_cmds1, stdout);
	fputs(usage_cmds2, stdout);
	fputs(usage_tail, stdout);
}

static bool json;
static const char *prog = "lockctl";

__attribute__((format(printf, 2, 3))) static int die(int code, const char *fmt,
						     ...)
{
	va_list ap;
	fprintf(stderr, "%s: ", prog);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	if (code == EX_USAGE)
		fprintf(stderr, "Try 'lockctl --help'.\n");
	exit(code);
}

/* The exit status for a liblockclient error, after printing why. */
static int lc_die(int rv, const char *what)
{
	int code;
	switch (rv) {
	case LC_EHELD:
	case LC_ETIMEOUT:
	case LC_ENOTHOLDER:
	case LC_ELIMIT:
		code = EX_NOTHELD;
		break;
	case LC_ENOSUCH:
		code = EX_NOTFOUND;
		break;
	case LC_EINVAL:
		code = EX_USAGE;
		break;
	case LC_EREFUSED:
		code = EX_NOTHELD;
		break;
	default:
		code = EX_UNAVAIL;
		break;
	}
	/* The cell's own sentence (or the library's account of what it
	 * tried) says more than the code's: print it alone when there is
	 * one. */
	const char *detail = lc_last_error();
	fprintf(stderr, "%s: %s: %s\n", prog, what,
		detail[0] ? detail : lc_strerror(rv));
	exit(code);
}

/* ---- parsing ------------------------------------------------------------- */

/* A duration: one or more groups of a number (with an optional decimal
 * fraction) and a unit, largest first or not: 500ms, 5s, 1.5s, 2m, 1m30s,
 * 1h. Rounded down to whole milliseconds. */
static uint32_t parse_duration(const char *s, const char *opt)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}};
	uint64_t total_us = 0;
	const char *p = s;
	bool ok = *p != '\0';
	while (ok && *p != '\0') {
		uint64_t whole = 0, frac = 0, scale = 1;
		const char *start = p;
		while (*p >= '0' && *p <= '9' && whole < UINT32_MAX)
			whole = whole * 10 + (uint64_t)(*p++ - '0');
		if (*p == '.') {
			p++;
			for (; *p >= '0' && *p <= '9'; p++)
				if (scale < 1000000) {
					frac = frac * 10 + (uint64_t)(*p - '0');
					scale *= 10;
				}
		}
		if (p == start || (p == start + 1 && *start == '.') ||
		    whole >= UINT32_MAX) {
			ok = false;
			break;
		}
		size_t k = 0, n = sizeof units / sizeof units[0];
		for (; k < n; k++) {
			/* ms before m, so that "m" never takes "ms". */
			if (strncmp(p, units[k].unit, strlen(units[k].unit)) ==
			    0)
				break;
		}
		if (k == n) {
			ok = false;
			break;
		}
		p += strlen(units[k].unit);
		total_us += whole * units[k].ms * 1000u +
			    frac * units[k].ms * 1000u / scale;
		if (total_us / 1000u > UINT32_MAX)
			ok = false;
	}
	if (!ok)
		die(EX_USAGE,
		    "%s: '%s' is not a duration: write numbers with units "
		    "(ms, s, m, h), e.g. 500ms, 5s, 1.5s, 2m or 1m30s",
		    opt, s);
	return (uint32_t)(total_us / 1000u);
}

/* A whole number, as lockctl prints ids and tokens: digits, or digits in
 * double quotes (JSON output prints them as strings, so that 64-bit values
 * survive tools that read numbers as doubles; `jq .token` keeps the
 * quotes). */
static uint64_t parse_u64(const char *s, const char *what)
{
	char buf[32];
	size_t n = strlen(s);
	const char *d = s;
	if (n >= 2 && s[0] == '"' && s[n - 1] == '"' && n - 2 < sizeof buf) {
		memcpy(buf, s + 1, n - 2);
		buf[n - 2] = '\0';
		d = buf;
	}
	char *end;
	errno = 0;
	unsigned long long v = strtoull(d, &end, 10);
	if (d[0] < '0' || d[0] > '9' || *end != '\0' || errno != 0)
		die(EX_USAGE, "%s: '%s' is not a whole number", what, s);
	return (uint64_t)v;
}

static void check_name(const char *name)
{
	size_t n = strlen(name);
	bool ok = n >= 1 && n <= LC_NAME_BYTES_MAX;
	for (size_t i = 0; ok && i < n; i++) {
		char ch = name[i];
		ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		     (ch >= '0' && ch <= '9') || strchr("._/:-", ch) != NULL;
	}
	if (!ok)
		die(EX_USAGE,
		    "'%s' is not a lease name: use 1-%u characters of "
		    "A-Z a-z 0-9 . _ / : -",
		    name, LC_NAME_BYTES_MAX);
}

/* One command's arguments: options (by name), positionals, and the
 * command after "--". */
typedef struct args {
	const char *cmd;
	const char *pos[4];
	int npos;
	const char *ttl, *wait, *value, *token, *session, *reason, *count,
		*interval, *kill_after, *from, *prefix;
	const char *id, *peer, *client, *timeout; /* member */
	char **exec;
	bool help, hold, listen;
} args;

/* Splits "--name=value" into name (into buf) and *value; "--name" alone
 * leaves *value NULL. Returns the name. */
static const char *split_opt(const char *s, char *buf, size_t cap,
			     const char **value)
{
	const char *eq = strchr(s, '=');
	*value = NULL;
	if (strncmp(s, "--", 2) != 0 || eq == NULL)
		return s;
	size_t n = (size_t)(eq - s) < cap - 1 ? (size_t)(eq - s) : cap - 1;
	memcpy(buf, s, n);
	buf[n] = '\0';
	*value = eq + 1;
	return buf;
}

static void opt_json(const char *v)
{
	if (strcmp(v, "json") == 0)
		json = true;
	else if (strcmp(v, "text") == 0)
		json = false;
	else
		die(EX_USAGE, "-o '%s': the output formats are json and text",
		    v);
}

static void parse_cmd(args *a, int argc, char **argv, int i)
{
	static const struct {
		const char *name;
		size_t off;
	} opts[] = {
		{"--ttl", offsetof(args, ttl)},
		{"--wait", offsetof(args, wait)},
		{"--value", offsetof(args, value)},
		{"--token", offsetof(args, token)},
		{"--session", offsetof(args, session)},
		{"--reason", offsetof(args, reason)},
		{"--count", offsetof(args, count)},
		{"--interval", offsetof(args, interval)},
		{"--kill-after", offsetof(args, kill_after)},
		{"--id", offsetof(args, id)},
		{"--peer", offsetof(args, peer)},
		{"--client", offsetof(args, client)},
		{"--timeout", offsetof(args, timeout)},
		{"--from", offsetof(args, from)},
		{"--prefix", offsetof(args, prefix)},
	};
	for (; i < argc; i++) {
		char nbuf[32];
		const char *v;
		const char *s = split_opt(argv[i], nbuf, sizeof nbuf, &v);
		if (strcmp(s, "--") == 0) {
			if (i + 1 >= argc)
				die(EX_USAGE,
				    "%s: '--' with no command after it",
				    a->cmd);
			a->exec = &argv[i + 1];
			return;
		}
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			a->help = true;
			continue;
		}
		if (strcmp(s, "--hold") == 0 && v == NULL) {
			a->hold = true;
			continue;
		}
		if (strcmp(s, "--listen") == 0 && v == NULL) {
			a->listen = true;
			continue;
		}
		if (strcmp(s, "-o") == 0 || strcmp(s, "--output") == 0) {
			if (v == NULL && i + 1 >= argc)
				die(EX_USAGE, "%s needs json or text", s);
			opt_json(v != NULL ? v : argv[++i]);
			continue;
		}
		if (s[0] == '-' && s[1] == '-') {
			bool found = false;
			for (size_t k = 0; k < sizeof opts / sizeof opts[0];
			     k++) {
				if (strcmp(s, opts[k].name) != 0)
					continue;
				if (v == NULL && i + 1 >= argc)
					die(EX_USAGE, "%s %s needs a value",
					    a->cmd, s);
				*(const char **)((char *)a + opts[k].off) =
					v != NULL ? v : argv[++i];
				found = true;
			}
			if (!found)
				die(EX_USAGE, "%s: unknown option '%s'", a->cmd,
				    s);
			continue;
		}
		if (a->npos == 4)
			die(EX_USAGE, "%s: too many arguments ('%s')", a->cmd,
			    s);
		a->pos[a->npos++] = s;
	}
}

/* ---- output -------------------------------------------------------------- */

/* Whether v[0..n) is UTF-8 (shortest forms, no surrogates, at most
 * U+10FFFF). */
static bool utf8_valid(const uint8_t *v, size_t n)
{
	for (size_t i = 0; i < n;) {
		uint8_t c = v[i];
		size_t len = c < 0x80             ? 1
			     : (c & 0xe0) == 0xc0 ? 2
			     : (c & 0xf0) == 0xe0 ? 3
			     : (c & 0xf8) == 0xf0 ? 4
						  : 0;
		if (len == 0 || i + len > n || (len == 2 && c < 0xc2))
			return false;
		uint32_t cp = len == 1 ? c : c & (0x3fu >> (len - 1));
		for (size_t k = 1; k < len; k++) {
			if ((v[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (v[i + k] & 0x3fu);
		}
		if ((len == 3 && cp < 0x800) || (len == 4 && cp < 0x10000) ||
		    cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += len;
	}
	return true;
}

/* A JSON string of UTF-8 bytes: quotes, backslashes and control
 * characters escaped, the rest as is. */
static void json_str(const char *s, size_t n)
{
	putchar('"');
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];
		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void json_cstr(const char *s)
{
	json_str(s, strlen(s));
}

/* A 64-bit id or token as a JSON string: tools that read JSON numbers as
 * doubles (JavaScript, jq) keep only 53 bits. */
static void json_u64(uint64_t v)
{
	printf("\"%" PRIu64 "\"", v);
}

static void base64(const uint8_t *v, size_t n)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopq"
				  "rstuvwxyz0123456789+/";
	for (size_t i = 0; i < n; i += 3) {
		uint32_t x = (uint32_t)v[i] << 16;
		if (i + 1 < n)
			x |= (uint32_t)v[i + 1] << 8;
		if (i + 2 < n)
			x |= v[i + 2];
		putchar(tab[x >> 18 & 63]);
		putchar(tab[x >> 12 & 63]);
		putchar(i + 1 < n ? tab[x >> 6 & 63] : '=');
		putchar(i + 2 < n ? tab[x & 63] : '=');
	}
}

/* "value": the bytes as a string when they are UTF-8, else null; and
 * "value_base64": always the exact bytes. */
static void json_value(const uint8_t *v, size_t n)
{
	printf("\"value\":");
	if (utf8_valid(v, n))
		json_str((const char *)v, n);
	else
		printf("null");
	printf(",\"value_base64\":\"");
	base64(v, n);
	putchar('"');
}

/* Text: printable ASCII as is, the rest as \xNN. */
static void text_value(const uint8_t *v, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (v[i] > 0x20 && v[i] < 0x7f && v[i] != '\\')
			putchar(v[i]);
		else
			printf("\\x%02x", v[i]);
	}
}

/* A lease's fields, one shape whether it is held or free (l NULL): in
 * JSON the same keys (null where a free name has none), without braces;
 * in text the same keys (- where a free name has none). ttl_ms_left is
 * known only when the leader answered (only it keeps deadlines, on its own
 * clock): otherwise null, and `unknown` in the text. */
static void lease_fields(const char *name, const lc_lease_info *l)
{
	if (json) {
		printf("\"name\":");
		json_cstr(name);
		printf(",\"held\":%s,\"holder\":", l ? "true" : "false");
		if (l)
			json_u64(l->holder);
		else
			printf("null");
		printf(",\"token\":");
		if (l)
			json_u64(l->token);
		else
			printf("null");
		printf(",");
		if (l)
			json_value(l->value, l->value_len);
		else
			printf("\"value\":null,\"value_base64\":null");
		if (l)
			printf(",\"ttl_ms\":%" PRIu32, l->ttl_ms);
		else
			printf(",\"ttl_ms\":null");
		if (l && l->ttl_ms_left >= 0)
			printf(",\"ttl_ms_left\":%" PRId64, l->ttl_ms_left);
		else
			printf(",\"ttl_ms_left\":null");
		printf(",\"in_grace\":%s,\"revoked\":%s,\"revoke_reason\":",
		       l && l->in_grace ? "true" : "false",
		       l && l->revoked ? "true" : "false");
		if (l && l->revoked && l->revoke_reason[0] != '\0')
			json_cstr(l->revoke_reason);
		else
			printf("null");
		printf(",\"waiters\":%" PRIu32, l ? l->waiters : 0);
		return;
	}
	if (l == NULL) {
		printf("name=%s held=0 holder=- token=- ttl_ms=- "
		       "ttl_ms_left=- in_grace=0 revoked=0 revoke_reason=- "
		       "waiters=0 value=",
		       name);
		return;
	}
	printf("name=%s held=1 holder=%" PRIu64 " token=%" PRIu64
	       " ttl_ms=%" PRIu32,
	       l->name, l->holder, l->token, l->ttl_ms);
	if (l->ttl_ms_left >= 0)
		printf(" ttl_ms_left=%" PRId64, l->ttl_ms_left);
	else
		printf(" ttl_ms_left=unknown");
	printf(" in_grace=%d revoked=%d revoke_reason=", l->in_grace,
	       l->revoked);
	/* One word: spaces and the unprintable as \xNN. */
	if (!l->revoked || l->revoke_reason[0] == '\0')
		putchar('-');
	for (const char *p = l->revoked ? l->revoke_reason : ""; *p; p++)
		if (*p > ' ' && *p < 0x7f && *p != '\\')
			putchar(*p);
		else
			printf("\\x%02x", (unsigned char)*p);
	printf(" waiters=%" PRIu32 " value=", l->waiters);
	text_value(l->value, l->value_len);
}

static void print_info(const char *name, const lc_lease_info *l)
{
	if (json)
		putchar('{');
	lease_fields(name, l);
	printf(json ? "}\n" : "\n");
}

/* ---- commands ------------------------------------------------------------ */

static const char *tls_ca, *tls_cert;
static lc_consistency consistency = LC_LINEARIZABLE;

static void copy_path(char *dst, size_t cap, const char *src, const char *what)
{
	if (src == NULL)
		return;
	if (strlen(src) >= cap)
		die(EX_USAGE, "%s: a path of at most %zu bytes, please", what,
		    cap - 1);
	strcpy(dst, src);
}

static lc_client *open_client(const char *endpoints, uint64_t session,
			      uint64_t session_key, uint32_t call_timeout_ms)
{
	lc_options o;
	lc_options_init(&o);
	o.session_key = session_key;
	copy_path(o.tls_ca_file, sizeof o.tls_ca_file, tls_ca, "--tls-ca");
	copy_path(o.tls_cert_key_file, sizeof o.tls_cert_key_file, tls_cert,
		  "--tls-cert");
	o.session = session;
	o.read_consistency = consistency;
	o.attempt_timeout_ms = 1000;
	o.call_timeout_ms = call_timeout_ms;
	/* Above every seq an earlier lockctl of the same session used. */
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	o.seq_base =
		(uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
	/* HOST:PORT without a scheme means tcp://HOST:PORT. */
	char *eps = malloc(2 * strlen(endpoints) + 8 * LC_ENDPOINTS_MAX + 1);
	if (eps == NULL)
		die(EX_UNAVAIL, "out of memory");
	eps[0] = '\0';
	for (const char *p = endpoints; p != NULL;) {
		const char *comma = strchr(p, ',');
		size_t len = comma ? (size_t)(comma - p) : strlen(p);
		while (len > 0 && (*p == ' ' || *p == '\t')) {
			p++;
			len--;
		}
		char *end = eps + strlen(eps);
		if (end != eps)
			*end++ = ',';
		bool bare = len > 0 && memmem(p, len, "://", 3) == NULL;
		sprintf(end, "%s%.*s", bare ? "tcp://" : "", (int)len, p);
		p = comma ? comma + 1 : NULL;
	}
	lc_client *c;
	int rv = lc_open(eps, &o, &c);
	free(eps);
	if (rv == LC_EINVAL)
		die(EX_USAGE, "bad endpoints '%s': %s", endpoints,
		    lc_last_error());
	if (rv != LC_OK)
		lc_die(rv, "cannot open a client");
	return c;
}

/* "1h02m", "3m04s", "12s": a replica's uptime, short. */
static void fmt_uptime(char *buf, size_t cap, uint64_t s)
{
	if (s >= 86400)
		snprintf(buf, cap, "%" PRIu64 "d%02" PRIu64 "h", s / 86400,
			 s % 86400 / 3600);
	else if (s >= 3600)
		snprintf(buf, cap, "%" PRIu64 "h%02" PRIu64 "m", s / 3600,
			 s % 3600 / 60);
	else if (s >= 60)
		snprintf(buf, cap, "%" PRIu64 "m%02" PRIu64 "s", s / 60,
			 s % 60);
	else
		snprintf(buf, cap, "%" PRIu64 "s", s);
}

/* "512B", "3.1KiB", "24.0MiB". */
static void fmt_bytes(char *buf, size_t cap, uint64_t b)
{
	if (b < 1024)
		snprintf(buf, cap, "%" PRIu64 "B", b);
	else if (b < 1024 * 1024)
		snprintf(buf, cap, "%.1fKiB", (double)b / 1024);
	else if (b < 1024ull * 1024 * 1024)
		snprintf(buf, cap, "%.1fMiB", (double)b / (1024 * 1024));
	else
		snprintf(buf, cap, "%.1fGiB",
			 (double)b / (1024.0 * 1024 * 1024));
}

static int cmd_status(lc_client *c)
{
	uint32_t n = lc_endpoint_count(c);
	lc_replica_status *st = calloc(n, sizeof *st);
	bool *ok = calloc(n, sizeof *ok);
	if (st == NULL || ok == NULL)
		die(EX_UNAVAIL, "out of memory");
	uint64_t lead_applied = 0;
	bool have_lead = false;
	int answered = 0;
	for (uint32_t i = 0; i < n; i++) {
		ok[i] = lc_status(c, i, &st[i]) == LC_OK;
		if (!ok[i]) {
			fprintf(stderr, "%s: %s did not answer: %s\n", prog,
				lc_endpoint_url(c, i), lc_last_error());
			continue;
		}
		answered++;
		if (strcmp(st[i].role, "leader") == 0 &&
		    st[i].applied >= lead_applied) {
			lead_applied = st[i].applied;
			have_lead = true;
		}
	}
	/* A replica may name a leader that did not answer (dead, or cut
	 * off): it has not noticed yet. Such a leader is shown as N?. The
	 * leader's id is known from its own answer, so one that answered
	 * and says it leads is never marked. */
	bool stale_named = false;
	if (json)
		printf("[");
	else
		printf("%-4s %-10s %-6s %-12s %-10s %-10s %-6s %-7s %-8s %-7s "
		       "%-8s %s\n",
		       "ID", "ROLE", "LEADER", "BALLOT", "COMMIT", "APPLIED",
		       "LAG", "VOTERS", "VERSION", "UPTIME", "SNAPSHOT",
		       "ENDPOINT");
	bool first = true;
	for (uint32_t i = 0; i < n; i++) {
		const lc_replica_status *s = &st[i];
		const char *url = lc_endpoint_url(c, i);
		bool leader_seen = false;
		for (uint32_t k = 0; k < n && s->leader >= 0; k++)
			leader_seen |= ok[k] &&
				       (int32_t)st[k].id == s->leader &&
				       strcmp(st[k].role, "leader") == 0;
		bool named_dead = ok[i] && s->leader >= 0 && !leader_seen;
		stale_named |= named_dead;
		/* Statuses are asked one after another, so a replica asked
		 * after the leader may have applied more: no lag then. */
		uint64_t lag = have_lead && lead_applied > s->applied
				       ? lead_applied - s->applied
				       : 0;
		if (json) {
			printf("%s{\"endpoint\":", first ? "" : ",");
			first = false;
			json_cstr(url);
			if (!ok[i]) {
				printf(",\"up\":false}");
				continue;
			}
			printf(",\"up\":true,\"id\":%" PRIu32
			       ",\"role\":\"%s\",\"leader\":%" PRId32
			       ",\"leader_answered\":%s"
			       ",\"ballot\":\"%" PRIu64 ".%" PRIu32
			       "\",\"commit\":%" PRIu64 ",\"applied\":%" PRIu64
			       ",\"lag\":",
			       s->id, s->role, s->leader,
			       leader_seen ? "true" : "false", s->ballot_round,
			       s->ballot_id, s->commit, s->applied);
			if (have_lead)
				printf("%" PRIu64, lag);
			else
				printf("null");
			printf(",\"leases\":%" PRIu64
			       ",\"voter\":%s,\"member\":%s"
			       ",\"members\":%" PRIu32 ",\"voters\":%" PRIu32
			       ",\"version\":",
			       s->leases, s->voter ? "true" : "false",
			       s->member ? "true" : "false", s->members,
			       s->voters);
			json_cstr(s->version);
			printf(",\"uptime_s\":%" PRIu64
			       ",\"snapshot_bytes\":%" PRIu64 "}",
			       s->uptime_s, s->snapshot_bytes);
			continue;
		}
		if (!ok[i]) {
			printf("%-4s %-10s %-6s %-12s %-10s %-10s %-6s %-7s "
			       "%-8s %-7s %-8s %s\n",
			       "-", "down", "-", "-", "-", "-", "-", "-", "-",
			       "-", "-", url);
			continue;
		}
		char ballot[48], lagb[24], lead[16], up[24], snap[24];
		snprintf(ballot, sizeof ballot, "%" PRIu64 ".%" PRIu32,
			 s->ballot_round, s->ballot_id);
		if (have_lead)
			snprintf(lagb, sizeof lagb, "%" PRIu64, lag);
		else
			snprintf(lagb, sizeof lagb, "?");
		if (s->leader >= 0)
			snprintf(lead, sizeof lead, "%" PRId32 "%s", s->leader,
				 named_dead ? "?" : "");
		else
			snprintf(lead, sizeof lead, "none");
		fmt_uptime(up, sizeof up, s->uptime_s);
		fmt_bytes(snap, sizeof snap, s->snapshot_bytes);
		char voters[24];
		snprintf(voters, sizeof voters, "%" PRIu32 "/%" PRIu32,
			 s->voters, s->members);
		printf("%-4" PRIu32 " %-10s %-6s %-12s %-10" PRIu64
		       " %-10" PRIu64 " %-6s %-7s %-8s %-7s %-8s %s\n",
		       s->id, s->role, lead, ballot, s->commit, s->applied,
		       lagb, voters, s->version[0] ? s->version : "?", up, snap,
		       url);
	}
	if (json)
		printf("]\n");
	else if (stale_named)
		fprintf(stderr,
			"%s: N?: that replica names N as leader, but N did not "
			"answer as leader: it is down or cut off, and the "
			"replica has not noticed yet\n",
			prog);
	free(st);
	free(ok);
	if (answered == 0) {
		fprintf(stderr,
			"%s: no replica answered: is the cell up, and "
			"are the endpoints right?\n",
			prog);
		return EX_UNAVAIL;
	}
	return have_lead ? EX_OK : EX_NOTFOUND;
}

static bool ls_one(const lc_lease_info *info, void *arg)
{
	int *n = arg;
	if (json && (*n)++ > 0)
		printf(",");
	print_info(info->name, info);
	return true;
}

static int cmd_ls(lc_client *c, const char *prefix)
{
	int n = 0;
	if (json)
		printf("[");
	int rv = lc_list(c, prefix, ls_one, &n, NULL);
	if (json)
		printf("]\n");
	if (rv != LC_OK)
		lc_die(rv, "cannot list leases");
	return EX_OK;
}

static int cmd_get(lc_client *c, const char *name)
{
	lc_lease_info info;
	int rv = lc_get(c, name, &info);
	if (rv != LC_OK && rv != LC_ENOSUCH)
		lc_die(rv, "cannot read the lease");
	print_info(name, rv == LC_OK ? &info : NULL);
	return rv == LC_OK ? EX_OK : EX_NOTFOUND;
}

/* A group's leader (info NULL: none) as leader and elect --listen print
 * it; in text, --listen's lines begin with the position and say
 * elected=0 when there is none. */
static void print_leader(const char *group, const lc_leader_info *li,
			 const lc_lease_info *info, bool listen)
{
	if (json) {
		/* One shape, elected or not (null where no leader has it). */
		printf("{\"group\":");
		json_cstr(group);
		printf(",\"elected\":%s,\"holder\":", info ? "true" : "false");
		if (info)
			json_u64(info->holder);
		else
			printf("null");
		printf(",\"token\":");
		if (info)
			json_u64(info->token);
		else
			printf("null");
		printf(",");
		if (info)
			json_value(info->value, info->value_len);
		else
			printf("\"value\":null,\"value_base64\":null");
		printf(",\"position\":%" PRIu64 "}\n", li->position);
	} else if (listen && info == NULL) {
		printf("position=%" PRIu64
		       " elected=0 value= token=- holder=-\n",
		       li->position);
	} else if (info) {
		if (listen)
			printf("position=%" PRIu64 " elected=1 ", li->position);
		printf("value=");
		text_value(info->value, info->value_len);
		printf(" token=%" PRIu64 " holder=%" PRIu64 "\n", info->token,
		       info->holder);
	}
	fflush(stdout);
}

static int cmd_leader(lc_client *c, const char *group)
{
	lc_leader_info *li = malloc(sizeof *li);
	if (li == NULL)
		die(EX_UNAVAIL, "out of memory");
	int rv = lc_leader(c, group, li);
	if (rv != LC_OK && rv != LC_ENOSUCH)
		lc_die(rv, "cannot read the group");
	const lc_lease_info *info = rv == LC_OK ? &li->lease : NULL;
	print_leader(group, li, info, false);
	if (info == NULL)
		fprintf(stderr, "%s: group %s has no leader\n", prog, group);
	free(li);
	return info ? EX_OK : EX_NOTFOUND;
}

static int cmd_check(lc_client *c, const char *name, uint64_t token)
{
	bool cur;
	int rv = lc_check(c, name, token, &cur);
	if (rv != LC_OK)
		lc_die(rv, "cannot check the token");
	if (json) {
		printf("{\"name\":");
		json_cstr(name);
		printf(",\"token\":");
		json_u64(token);
		printf(",\"current\":%s}\n", cur ? "true" : "false");
	} else {
		printf("%s\n", cur ? "current" : "not current");
	}
	return cur ? EX_OK : EX_NOTHELD;
}

static volatile sig_atomic_t got_signal;

static void on_signal(int sig)
{
	got_signal = sig;
}

static void sleep_ms(uint32_t ms)
{
	struct timespec ts = {(time_t)(ms / 1000u),
			      (long)(ms % 1000u) * 1000000L};
	nanosleep(&ts, NULL);
}

static bool signalled(void *arg)
{
	(void)arg;
	return got_signal != 0;
}

/* One watch line: the position and kind of the event, then the lease in
 * the shape get prints. Kinds: start (the state watch began from), held
 * (a free name was granted), passed (it went to another holder, a new
 * token: a waiter after a release or an expiry), free (it ended). */
static void print_event(const char *name, const lc_leader_info *li,
			const char *kind)
{
	const lc_lease_info *l = li->elected ? &li->lease : NULL;
	if (json) {
		printf("{\"position\":%" PRIu64 ",\"event\":\"%s\","
		       "\"history_lost\":%s,",
		       li->position, kind, li->history_lost ? "true" : "false");
		lease_fields(name, l);
		printf("}\n");
	} else {
		printf("position=%" PRIu64 " event=%s history_lost=%d ",
		       li->position, kind, li->history_lost);
		lease_fields(name, l);
		putchar('\n');
	}
	fflush(stdout);
}

/* elect --listen: the group's leader now (if it has one, as etcdctl
 * elect -l), then every change of it (lc_observe: none skipped, across
 * failover): a new leader, a new value, none; until a signal or count. */
static int cmd_elect_listen(lc_client *c, const char *group, uint64_t count,
			    uint32_t interval_ms)
{
	lc_observe_options oo;
	lc_observe_options_init(&oo);
	oo.interval_ms = interval_ms;
	oo.cancelled = signalled;
	lc_leader_info *li = malloc(sizeof *li);
	if (li == NULL)
		die(EX_UNAVAIL, "out of memory");
	uint64_t changes = 0, position = 0, token = 0;
	bool first = true, err_said = false;
	while (!got_signal) {
		int rv = first ? lc_leader(c, group, li)
			       : lc_observe(c, group, position, token, &oo, li);
		if (rv == LC_ECANCELED)
			break;
		if (rv != LC_OK && rv != LC_ENOSUCH) {
			if (!err_said)
				fprintf(stderr,
					"%s: elect --listen %s: %s (%s); "
					"still trying\n",
					prog, group, lc_strerror(rv),
					lc_last_error());
			err_said = true;
			sleep_ms(interval_ms);
			continue;
		}
		err_said = false;
		if (li->history_lost)
			fprintf(stderr,
				"%s: elect --listen %s: the replica could not "
				"replay the changes since position %" PRIu64
				"; this is the current leader, and leaders in "
				"between may have been missed\n",
				prog, group, position);
		if (!first || li->elected)
			print_leader(group, li, li->elected ? &li->lease : NULL,
				     true);
		if (!first)
			changes++;
		first = false;
		position = li->position;
		token = li->elected ? li->lease.token : 0;
		if (count > 0 && changes >= count)
			break;
	}
	free(li);
	return EX_OK;
}

/* The first state read (or, --from P, the first change after ledger
 * position P), then each change (lc_observe: the cell's WATCH, so none is
 * skipped), resuming from the last one printed. */
static int cmd_watch(lc_client *c, const char *name, uint64_t count,
		     uint32_t interval_ms, bool from_set, uint64_t from)
{
	lc_observe_options oo;
	lc_observe_options_init(&oo);
	oo.interval_ms = interval_ms;
	oo.cancelled = signalled;
	lc_leader_info *li = malloc(sizeof *li);
	if (li == NULL)
		die(EX_UNAVAIL, "out of memory");
	/* With --from the state at P is unknown: a token no lease has makes
	 * the first change after P count whatever it is. */
	uint64_t changes = 0, position = from, token = UINT64_MAX;
	bool first = !from_set, err_said = false, was_held = false;
	bool known = !from_set;
	while (!got_signal) {
		int rv = first ? lc_leader(c, name, li)
			       : lc_observe(c, name, position, token, &oo, li);
		if (rv == LC_ECANCELED)
			break;
		if (rv != LC_OK && rv != LC_ENOSUCH) {
			if (!err_said)
				fprintf(stderr,
					"%s: watch %s: %s (%s); still "
					"trying\n",
					prog, name, lc_strerror(rv),
					lc_last_error());
			err_said = true;
			sleep_ms(interval_ms);
			continue;
		}
		err_said = false;
		if (li->history_lost)
			fprintf(stderr,
				"%s: watch %s: the replica could not replay "
				"the changes since position %" PRIu64
				"; this is the current state, and changes "
				"in between may have been missed\n",
				prog, name, position);
		const char *kind =
			first          ? "start"
			: !li->elected ? "free"
			: known && was_held && li->lease.token == token
				? "value"
			: known && was_held ? "passed"
					    : "held";
		if (!first)
			changes++;
		first = false;
		known = true;
		was_held = li->elected;
		position = li->position;
		token = li->elected ? li->lease.token : 0;
		print_event(name, li, kind);
		if (count > 0 && changes >= count)
			break;
	}
	free(li);
	return EX_OK;
}

/* watch --prefix: one line per lease at the start (a listing), then every
 * change of every name under the prefix, each with its position and kind
 * (held, free), in ledger order, resuming from the last position seen
 * (lc_watch_prefix reports all the changes at one position at once). */
#define WATCH_CHANGES_MAX 1000u

typedef struct watch_listing {
	lc_lease_info *v;
	size_t n, cap;
} watch_listing;

static bool watch_list_one(const lc_lease_info *info, void *arg)
{
	watch_listing *w = arg;
	if (w->n == w->cap) {
		w->cap = w->cap ? 2 * w->cap : 64;
		w->v = realloc(w->v, w->cap * sizeof *w->v);
		if (w->v == NULL)
			die(EX_UNAVAIL, "out of memory");
	}
	w->v[w->n++] = *info;
	return true;
}

/* Start lines: the leases under prefix, at the position the listing
 * reached (lc_list's last page). */
static void watch_start_lines(lc_client *c, const char *prefix)
{
	watch_listing w = {0};
	int rv = lc_list(c, prefix, watch_list_one, &w, NULL);
	if (rv != LC_OK)
		lc_die(rv, "cannot list the prefix");
	lc_leader_info *li = malloc(sizeof *li);
	if (li == NULL)
		die(EX_UNAVAIL, "out of memory");
	for (size_t i = 0; i < w.n; i++) {
		*li = (lc_leader_info){.elected = true,
				       .position = lc_known_position(c)};
		li->lease = w.v[i];
		print_event(w.v[i].name, li, "start");
	}
	free(li);
	free(w.v);
}

static int cmd_watch_prefix(lc_client *c, const char *prefix, uint64_t count,
			    uint32_t interval_ms, bool from_set, uint64_t from)
{
	lc_change *ch = malloc(WATCH_CHANGES_MAX * sizeof *ch);
	lc_leader_info *li = malloc(sizeof *li);
	if (ch == NULL || li == NULL)
		die(EX_UNAVAIL, "out of memory");
	uint64_t position = from;
	if (!from_set) {
		watch_start_lines(c, prefix);
		position = lc_known_position(c);
	}
	uint64_t changes = 0;
	bool err_said = false;
	while (!got_signal) {
		size_t n;
		bool lost;
		uint64_t at;
		int rv = lc_watch_prefix(c, prefix, position, interval_ms, ch,
					 WATCH_CHANGES_MAX, &n, &at, &lost);
		if (rv == LC_ETIMEOUT) {
			position = at;
			continue;
		}
		if (rv != LC_OK) {
			if (!err_said)
				fprintf(stderr,
					"%s: watch --prefix %s: %s (%s); still "
					"trying\n",
					prog, prefix, lc_strerror(rv),
					lc_last_error());
			err_said = true;
			sleep_ms(interval_ms);
			continue;
		}
		err_said = false;
		if (lost) {
			fprintf(stderr,
				"%s: watch --prefix %s: the replica could not "
				"replay the changes since position %" PRIu64
				"; listing the current state, and changes in "
				"between may have been missed\n",
				prog, prefix, position);
			watch_start_lines(c, prefix);
			position = at > lc_known_position(c)
					   ? at
					   : lc_known_position(c);
			continue;
		}
		for (size_t i = 0; i < n; i++) {
			memset(li, 0, sizeof *li);
			li->elected = ch[i].held;
			li->position = at;
			li->lease = ch[i].lease;
			print_event(ch[i].lease.name, li,
				    ch[i].held ? "held" : "free");
		}
		position = at;
		changes += n;
		if (count > 0 && changes >= count)
			break;
	}
	free(li);
	free(ch);
	return EX_OK;
}

static volatile sig_atomic_t lease_state, jeopardy_seen;

static void on_lease(lc_lease_state st, const char *name, uint64_t token,
		     void *arg)
{
	(void)arg;
	if (st == LC_LEASE_JEOPARDY)
		fprintf(stderr,
			"%s: lease %s (token %" PRIu64 ") in jeopardy: "
			"renewals are failing\n",
			prog, name, token);
	else if (st == LC_LEASE_HELD && lease_state == LC_LEASE_JEOPARDY)
		fprintf(stderr, "%s: lease %s renewed again\n", prog, name);
	if (st == LC_LEASE_JEOPARDY)
		jeopardy_seen = 1;
	else if (st == LC_LEASE_HELD)
		jeopardy_seen = 0;
	lease_state = st;
}

/* ---- running CMD under a lease ---------------------------------------------
 *
 * Nothing of CMD may run once the lease is gone. CMD runs in its own
 * process group, and lockctl is a child subreaper (PR_SET_CHILD_SUBREAPER),
 * so that a descendant that leaves the group (setsid) and is orphaned comes
 * back to lockctl instead of init. On the lease's loss, on a signal to
 * lockctl (stop_signals) and when CMD exits, lockctl sends SIGTERM (and
 * SIGCONT) to the group and to every descendant, SIGKILL after
 * --kill-after to whatever is left, waits for all of them to be gone, and
 * only then releases the lease. If lockctl itself is killed with SIGKILL it
 * can do none of that: CMD dies with it (PR_SET_PDEATHSIG), and a guard
 * process, which lockctl's death wakes (the end of a pipe), kills CMD's
 * process group. What left the group survives that, and the lease is held
 * until it expires. */

/* The signals that stop lockctl: CMD is stopped, the lease released, and
 * lockctl exits 128 + the signal. */
static const int stop_signals[] = {SIGTERM, SIGINT,  SIGHUP,  SIGQUIT,
				   SIGUSR1, SIGUSR2, SIGPIPE, SIGALRM};

typedef struct runner {
	pid_t child; /* CMD, the leader of its process group */
	pid_t guard; /* kills the group if lockctl dies first; 0: none */
	int status;  /* CMD's wait status, once reaped */
	bool reaped;
} runner;

/* Reaps every child that ended (CMD, the guard, orphans lockctl inherited
 * as their subreaper). */
static void reap(runner *r)
{
	int st;
	pid_t w;
	while ((w = waitpid(-1, &st, WNOHANG)) > 0) {
		if (w == r->child) {
			r->status = st;
			r->reaped = true;
		} else if (w == r->guard) {
			r->guard = 0;
		}
	}
}

/* Sends sig (0: none) to CMD's group and to every live process descending
 * from lockctl or in that group, the guard excepted; returns how many
 * there were. Reads /proc: one pass collects (pid, ppid, pgrp). */
static int signal_tree(const runner *r, int sig)
{
	typedef struct {
		pid_t pid, ppid, pgrp;
		bool mine;
	} proc;
	proc *v = NULL;
	size_t n = 0, cap = 0;
	DIR *d = opendir("/proc");
	struct dirent *de;
	while (d != NULL && (de = readdir(d)) != NULL) {
		char path[300], buf[512];
		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", de->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		size_t len = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[len] = '\0';
		/* pid (comm) state ppid pgrp ...; comm may hold anything */
		char *rp = strrchr(buf, ')');
		char state;
		int ppid, pgrp;
		if (rp == NULL ||
		    sscanf(rp + 1, " %c %d %d", &state, &ppid, &pgrp) != 3 ||
		    state == 'Z' || state == 'X')
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 256;
			proc *g = realloc(v, cap * sizeof *v);
			if (g == NULL)
				break;
			v = g;
		}
		v[n++] = (proc){(pid_t)atoi(de->d_name), (pid_t)ppid,
				(pid_t)pgrp, false};
	}
	if (d != NULL)
		closedir(d);
	pid_t self = getpid();
	/* Descendants: mark children of marked processes until none is
	 * added (a tree; n passes at most). */
	for (bool more = true; more;) {
		more = false;
		for (size_t i = 0; i < n; i++) {
			if (v[i].mine)
				continue;
			bool m = v[i].ppid == self || v[i].pgrp == r->child;
			for (size_t k = 0; !m && k < n; k++)
				m = v[k].mine && v[k].pid == v[i].ppid;
			if (m && v[i].pid != r->guard && v[i].pid != self) {
				v[i].mine = true;
				more = true;
			}
		}
	}
	int alive = 0;
	if (sig != 0)
		kill(-r->child, sig);
	for (size_t i = 0; i < n; i++) {
		if (!v[i].mine)
			continue;
		alive++;
		if (sig != 0) {
			kill(v[i].pid, sig);
			if (sig == SIGTERM)
				kill(v[i].pid, SIGCONT); /* a stopped one */
		}
	}
	if (sig == SIGTERM)
		kill(-r->child, SIGCONT);
	free(v);
	return alive;
}

/* SIGTERM to CMD and everything it started, SIGKILL after kill_after_ms to
 * what is left; returns once none is alive (or 5 s after the SIGKILL). */
static void stop_tree(runner *r, uint32_t kill_after_ms)
{
	reap(r);
	if (signal_tree(r, 0) == 0)
		return;
	signal_tree(r, SIGTERM);
	uint64_t kill_at = lc_now_us() + (uint64_t)kill_after_ms * 1000u;
	bool killed = false;
	for (;;) {
		sleep_ms(20);
		reap(r);
		if (signal_tree(r, 0) == 0)
			return;
		uint64_t now = lc_now_us();
		if (!killed && now >= kill_at) {
			fprintf(stderr,
				"%s: the command outlived --kill-after: "
				"SIGKILL\n",
				prog);
			signal_tree(r, SIGKILL);
			killed = true;
		} else if (killed && now >= kill_at + 5000000u) {
			fprintf(stderr,
				"%s: processes of the command are still "
				"there 5 s after SIGKILL\n",
				prog);
			return;
		}
	}
}

/* Starts argv in its own process group, with the guard beside it. */
static void start_cmd(runner *r, char **argv, const char *name, uint64_t token,
		      uint64_t session)
{
	char tok[32], sess[32];
	snprintf(tok, sizeof tok, "%" PRIu64, token);
	snprintf(sess, sizeof sess, "%" PRIu64, session);
	/* Here, not in the child: a forked child of a threaded process
	 * should call nothing that may allocate. */
	setenv("LOCKCTL_NAME", name, 1);
	setenv("LOCKCTL_TOKEN", tok, 1);
	setenv("LOCKCTL_SESSION", sess, 1);
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	int gp[2];
	if (pipe2(gp, O_CLOEXEC) != 0)
		die(EX_NOEXEC, "cannot make a pipe: %s", strerror(errno));
	pid_t parent = getpid();
	fflush(stdout);
	fflush(stderr);
	r->child = fork();
	if (r->child < 0)
		die(EX_NOEXEC, "cannot fork: %s", strerror(errno));
	if (r->child == 0) {
		setpgid(0, 0);
		/* The command dies with lockctl: a kill -9 of lockctl must
		 * not leave it running without the lease. */
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		if (getppid() != parent)
			_exit(EX_LOST);
		for (size_t i = 0;
		     i < sizeof stop_signals / sizeof *stop_signals; i++)
			signal(stop_signals[i], SIG_DFL);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execvp(argv[0], argv);
		fprintf(stderr, "%s: cannot run '%s': %s\n", prog, argv[0],
			strerror(errno));
		_exit(EX_NOEXEC);
	}
	setpgid(r->child, r->child); /* whichever of the two runs first */
	r->guard = fork();
	if (r->guard == 0) {
		/* Waits for lockctl's end (the pipe's write end closes with
		 * it), then kills CMD's group. Signals meant for lockctl
		 * (a terminal's ^C) do not stop it. */
		for (size_t i = 0;
		     i < sizeof stop_signals / sizeof *stop_signals; i++)
			signal(stop_signals[i], SIG_IGN);
		close(gp[1]);
		char b;
		while (read(gp[0], &b, 1) < 0 && errno == EINTR)
			;
		kill(-r->child, SIGKILL);
		_exit(0);
	}
	if (r->guard < 0)
		r->guard = 0; /* PR_SET_PDEATHSIG still kills CMD */
	close(gp[0]);
	/* gp[1] stays open (close-on-exec) for as long as lockctl lives. */
}

/* Why a lease went, asked of the cell on a thread of its own as soon as the
 * loss is seen (the lease is still in the table then, revoked or not), so
 * that stopping the command never waits for the answer. */
typedef struct loss_query {
	lc_client *c;
	const char *name;
	uint64_t token;
	pthread_t thread;
	bool started;
} loss_query;

static void *explain_loss(void *arg)
{
	const loss_query *q = arg;
	lc_lease_info info;
	int rv = lc_get(q->c, q->name, &info);
	if (rv == LC_OK && info.token == q->token && info.revoked)
		fprintf(stderr,
			"%s: the lease on %s was revoked by an operator "
			"(reason: %s); the name passes on when it expires\n",
			prog, q->name,
			info.revoke_reason[0] ? info.revoke_reason
					      : "none given");
	else if (rv == LC_OK && info.token != q->token)
		fprintf(stderr,
			"%s: the lease on %s ended at the cell and passed on "
			"(token %" PRIu64 " now)\n",
			prog, q->name, info.token);
	else if (rv == LC_OK || rv == LC_ENOSUCH)
		fprintf(stderr,
			"%s: the lease on %s ended at the cell (it expired: "
			"renewals did not reach it in time)\n",
			prog, q->name);
	return NULL;
}

/* Holds s's lease on name while argv runs (or, argv NULL, until a signal)
 * and returns lockctl's exit status: CMD's when it ended by itself, 5 when
 * the lease was lost, 128 + N after signal N (0 after SIGTERM or SIGINT
 * without CMD: --hold and elect without CMD end that way). */
static int hold(lc_client *c, lc_sess *s, const char *name, const lc_lease *l,
		char **argv, uint32_t kill_after_ms)
{
	runner r = {0};
	if (argv != NULL)
		start_cmd(&r, argv, name, l->token, lc_session(c));
	bool lost = false;
	int sig = 0; /* the signal that ended the hold */
	for (;;) {
		if (argv != NULL) {
			reap(&r);
			if (r.reaped)
				break;
		}
		if (got_signal) {
			sig = got_signal;
			break;
		}
		if (!lc_session_held(s, name)) {
			lost = true;
			break;
		}
		sleep_ms(20);
	}
	loss_query q = {c, name, l->token, 0, false};
	if (lost) {
		fprintf(stderr,
			"%s: lost the lease on %s (token %" PRIu64 ")%s\n",
			prog, name, l->token,
			argv != NULL ? ": stopping the command (SIGTERM, then "
				       "SIGKILL after --kill-after)"
				     : "");
		/* After jeopardy the cell was not answering: asking it why
		 * would only wait out the client's timeout. */
		if (jeopardy_seen)
			fprintf(stderr,
				"%s: renewals did not reach the cell before "
				"the lease's deadline\n",
				prog);
		else
			q.started = pthread_create(&q.thread, NULL,
						   explain_loss, &q) == 0;
	} else if (sig != 0 && argv != NULL)
		fprintf(stderr,
			"%s: %s: stopping the command (SIGTERM, then SIGKILL "
			"after --kill-after), then releasing %s\n",
			prog, strsignal(sig), name);
	if (argv != NULL) {
		stop_tree(&r, kill_after_ms);
		if (r.guard > 0) {
			kill(r.guard, SIGKILL);
			waitpid(r.guard, NULL, 0);
		}
	}
	lc_session_close(s); /* releases the lease if still held */
	if (q.started)
		pthread_join(q.thread, NULL);
	if (lost)
		return EX_LOST;
	if (sig != 0)
		return argv == NULL && (sig == SIGTERM || sig == SIGINT)
			       ? EX_OK
			       : 128 + sig;
	if (WIFEXITED(r.status))
		return WEXITSTATUS(r.status);
	if (WIFSIGNALED(r.status))
		return 128 + WTERMSIG(r.status);
	return EX_OK;
}

static lc_sess *open_session(lc_client *c)
{
	lc_session_options so;
	lc_session_options_init(&so);
	so.callback = on_lease;
	lc_sess *s;
	int rv = lc_session_open(c, &so, &s);
	if (rv != LC_OK)
		lc_die(rv, "cannot start a session");
	return s;
}

/* What acquire prints on stdout: the session with its key (S:K), which
 * release needs to act for it (a session's id alone is not enough), and
 * the token. */
static void print_grant(lc_client *c, const char *name, const lc_lease *l)
{
	if (json) {
		printf("{\"name\":");
		json_cstr(name);
		printf(",\"session\":");
		json_u64(lc_session(c));
		printf(",\"session_key\":");
		json_u64(lc_session_key(c));
		printf(",\"credential\":\"%" PRIu64 ":%" PRIu64 "\",\"token\":",
		       lc_session(c), lc_session_key(c));
		json_u64(l->token);
		printf(",\"ttl_ms\":%" PRIu32 "}\n", l->ttl_ms);
	} else {
		printf("session=%" PRIu64 ":%" PRIu64 " token=%" PRIu64 "\n",
		       lc_session(c), lc_session_key(c), l->token);
	}
	fflush(stdout);
}

static int cmd_acquire(lc_client *c, const args *a)
{
	const char *name = a->pos[0];
	uint32_t ttl = a->ttl ? parse_duration(a->ttl, "--ttl") : 10000;
	uint32_t wait = a->wait ? parse_duration(a->wait, "--wait") : 0;
	uint32_t kill_after =
		a->kill_after ? parse_duration(a->kill_after, "--kill-after")
			      : 5000;
	const char *v = a->value ? a->value : "";
	lc_lease l;
	if (a->exec == NULL && !a->hold) {
		int rv = lc_acquire(c, name, ttl, wait, v, strlen(v), &l);
		if (rv == LC_EHELD || rv == LC_ETIMEOUT) {
			fprintf(stderr,
				"%s: %s is held by session %" PRIu64 "%s\n",
				prog, name, l.holder,
				rv == LC_ETIMEOUT ? " (the wait ran out)" : "");
			return EX_NOTHELD;
		}
		if (rv != LC_OK)
			lc_die(rv, "cannot acquire the lease");
		print_grant(c, name, &l);
		return EX_OK;
	}
	lc_sess *s = open_session(c);
	int rv = lc_session_acquire(s, name, ttl, wait, v, strlen(v), &l);
	if (rv == LC_EHELD || rv == LC_ETIMEOUT) {
		fprintf(stderr, "%s: %s is held by session %" PRIu64 "%s\n",
			prog, name, l.holder,
			rv == LC_ETIMEOUT ? " (the wait ran out)" : "");
		lc_session_close(s);
		return EX_NOTHELD;
	}
	if (rv != LC_OK) {
		lc_session_close(s);
		lc_die(rv, "cannot acquire the lease");
	}
	if (a->hold)
		print_grant(c, name, &l);
	fprintf(stderr,
		"%s: holding %s session=%" PRIu64 " token=%" PRIu64 "%s\n",
		prog, name, lc_session(c), l.token,
		a->hold ? " until SIGTERM or SIGINT" : "");
	return hold(c, s, name, &l, a->exec, kill_after);
}

typedef struct campaign_report {
	lc_client *c;
	const char *group;
	bool said, said_own;
} campaign_report;

static void on_campaign(int rv, uint64_t holder, void *arg)
{
	campaign_report *r = arg;
	if ((rv == LC_ETIMEOUT || rv == LC_EHELD) &&
	    holder == lc_session(r->c)) {
		if (!r->said_own)
			fprintf(stderr, "%s: campaign for %s: %s\n", prog,
				r->group, lc_last_error());
		r->said_own = true;
		return;
	}
	if (rv == LC_ETIMEOUT || rv == LC_EHELD) {
		if (!r->said)
			fprintf(stderr,
				"%s: campaigning for %s (held by session "
				"%" PRIu64 ")\n",
				prog, r->group, holder);
		r->said = true;
		return;
	}
	fprintf(stderr, "%s: campaign for %s: %s (%s); retrying\n", prog,
		r->group, lc_strerror(rv), lc_last_error());
}

static int cmd_elect(lc_client *c, const args *a)
{
	const char *group = a->pos[0];
	uint32_t ttl = a->ttl ? parse_duration(a->ttl, "--ttl") : 10000;
	uint32_t kill_after =
		a->kill_after ? parse_duration(a->kill_after, "--kill-after")
			      : 5000;
	uint32_t wait = a->wait ? parse_duration(a->wait, "--wait") : 0;
	lc_sess *s = open_session(c);
	lc_lease l;
	campaign_report rep = {c, group, false, false};
	lc_campaign_options co;
	lc_campaign_options_init(&co);
	co.wait_ms = 5000;
	co.timeout_ms = wait;
	co.cancelled = signalled;
	co.progress = on_campaign;
	co.arg = &rep;
	int rv =
		lc_campaign(s, group, a->value, strlen(a->value), ttl, &co, &l);
	if (rv == LC_ECANCELED || rv == LC_ETIMEOUT) {
		lc_session_close(s);
		if (rv == LC_ETIMEOUT)
			fprintf(stderr,
				"%s: not elected within --wait: %s is held "
				"by session %" PRIu64 "\n",
				prog, group, l.holder);
		return EX_NOTHELD;
	}
	if (rv != LC_OK) {
		lc_session_close(s);
		lc_die(rv, "cannot campaign");
	}
	if (json) {
		printf("{\"elected\":true,\"group\":");
		json_cstr(group);
		printf(",\"token\":");
		json_u64(l.token);
		printf(",\"session\":");
		json_u64(lc_session(c));
		printf(",\"credential\":\"%" PRIu64 ":%" PRIu64 "\"}\n",
		       lc_session(c), lc_session_key(c));
	} else {
		/* session=S:K, as acquire prints it: what proclaim (and
		 * release) need to act for this session. */
		printf("elected token=%" PRIu64 " session=%" PRIu64 ":%" PRIu64
		       "\n",
		       l.token, lc_session(c), lc_session_key(c));
	}
	fflush(stdout);
	return hold(c, s, group, &l, a->exec, kill_after);
}

/* ---- membership ------------------------------------------------------------
 */

/* Checks `member list|add|remove` before the cell is asked. */
static void member_args(const args *a, uint32_t *timeout_ms, uint32_t *id)
{
	const char *sub = a->pos[0];
	bool add = strcmp(sub, "add") == 0, rm = strcmp(sub, "remove") == 0;
	if (!add && !rm && strcmp(sub, "list") != 0)
		die(EX_USAGE,
		    "member %s: the member commands are list, add and remove",
		    sub);
	if (a->npos != (rm ? 2 : 1))
		die(EX_USAGE, "member %s takes %s", sub,
		    rm ? "the replica id to remove" : "no more arguments");
	if (!add && (a->id || a->peer || a->client))
		die(EX_USAGE,
		    "member %s: --id, --peer and --client are for "
		    "member add",
		    sub);
	if (!add && !rm && a->timeout)
		die(EX_USAGE, "member list takes no --timeout");
	if (a->ttl || a->wait || a->value || a->token || a->session ||
	    a->reason || a->count || a->interval || a->kill_after)
		die(EX_USAGE, "member %s takes no lease options", sub);
	if (a->timeout)
		*timeout_ms = parse_duration(a->timeout, "--timeout");
	if (*timeout_ms == 0)
		die(EX_USAGE, "--timeout must be more than 0");
	const char *ids = add ? a->id : rm ? a->pos[1] : NULL;
	if (add && (a->id == NULL || a->peer == NULL || a->client == NULL))
		die(EX_USAGE,
		    "member add needs --id N --peer URL --client URL: the "
		    "new replica's id (one the cell never used) and the "
		    "URLs it was started with (lockd --join --listen-peer "
		    "URL --listen-client URL)");
	if (ids != NULL) {
		uint64_t v = parse_u64(ids, "replica id");
		if (v >= LC_REPLICA_IDS)
			die(EX_USAGE, "replica ids are 0 to %u, not %s",
			    LC_REPLICA_IDS - 1, ids);
		*id = (uint32_t)v;
	}
	if (add && (strlen(a->peer) >= LC_URL_BYTES_MAX ||
		    strlen(a->client) >= LC_URL_BYTES_MAX ||
		    strcmp(a->peer, a->client) == 0 ||
		    strstr(a->peer, "://") == NULL ||
		    strstr(a->client, "://") == NULL))
		die(EX_USAGE,
		    "--peer and --client want two different URLs "
		    "(tcp://HOST:PORT) under %u bytes",
		    LC_URL_BYTES_MAX);
}

static void member_print(const lc_members *m)
{
	if (json) {
		printf("[");
		for (uint32_t i = 0; i < m->n; i++) {
			const lc_member *x = &m->m[i];
			printf("%s{\"id\":%" PRIu32 ",\"peer\":", i ? "," : "",
			       x->id);
			json_str(x->peer, strlen(x->peer));
			printf(",\"client\":");
			json_str(x->client, strlen(x->client));
			printf(",\"voting\":%s,\"leader\":%s}",
			       x->voting ? "true" : "false",
			       (int32_t)x->id == m->leader ? "true" : "false");
		}
		printf("]\n");
		return;
	}
	printf("%-4s %-8s %-6s %-32s %s\n", "ID", "ROLE", "LEADER", "PEER",
	       "CLIENT");
	for (uint32_t i = 0; i < m->n; i++) {
		const lc_member *x = &m->m[i];
		printf("%-4" PRIu32 " %-8s %-6s %-32s %s\n", x->id,
		       x->voting ? "voter" : "learner",
		       (int32_t)x->id == m->leader ? "yes" : "", x->peer,
		       x->client);
	}
	if (m->removed != 0) {
		printf("removed:");
		for (uint32_t id = 0; id < LC_REPLICA_IDS; id++)
			if (m->removed >> id & 1u)
				printf(" %" PRIu32, id);
		printf("\n");
	}
}

static uint64_t now_ms(void)
{
	return lc_now_us() / 1000u;
}

/* member add: the change, then a wait until the learner votes. */
static int member_add(lc_client *c, const args *a, uint32_t id,
		      uint32_t timeout_ms)
{
	uint64_t end = now_ms() + timeout_ms;
	lc_members *m = calloc(1, sizeof *m);
	if (m == NULL)
		die(EX_UNAVAIL, "out of memory");
	int rv = lc_member_add(c, id, a->peer, a->client, m);
	if (rv != LC_OK) {
		free(m);
		lc_close(c);
		lc_die(rv, "cannot add the member");
	}
	fprintf(stderr,
		"%s: replica %" PRIu32 " is a member%s; waiting (up to %" PRIu32
		" s) for the leader to promote it to voter once it has "
		"caught up\n",
		prog, id, m->change_position ? "" : " (it already was)",
		timeout_ms / 1000);
	for (;;) {
		const lc_member *x = lc_members_find(m, id);
		if (x != NULL && x->voting) {
			printf("added %" PRIu32 ": voting\n", id);
			free(m);
			return EX_OK;
		}
		if (got_signal || now_ms() >= end)
			break;
		sleep_ms(200);
		rv = lc_members_list(c, m);
		if (rv != LC_OK)
			fprintf(stderr,
				"%s: member list: %s (%s); asking again\n",
				prog, lc_strerror(rv), lc_last_error());
		if (rv == LC_OK && lc_members_find(m, id) == NULL) {
			free(m);
			fprintf(stderr,
				"%s: replica %" PRIu32 " is no longer a member "
				"(removed meanwhile?)\n",
				prog, id);
			return EX_NOTHELD;
		}
	}
	free(m);
	fprintf(stderr,
		"%s: replica %" PRIu32 " is a member but not yet a voter "
		"after %" PRIu32 " s: is it running (lockd --id %" PRIu32
		" --join ...) and can it reach the others at its peer URL %s? "
		"The leader promotes it once it has caught up; 'lockctl member "
		"list' shows when\n",
		prog, id, timeout_ms / 1000, id, a->peer);
	return EX_UNAVAIL;
}

static int cmd_member(lc_client *c, const args *a, uint32_t id,
		      uint32_t timeout_ms)
{
	const char *sub = a->pos[0];
	if (strcmp(sub, "add") == 0)
		return member_add(c, a, id, timeout_ms);
	lc_members *m = calloc(1, sizeof *m);
	if (m == NULL)
		die(EX_UNAVAIL, "out of memory");
	int rv;
	if (strcmp(sub, "list") == 0) {
		rv = lc_members_list(c, m);
		if (rv != LC_OK) {
			free(m);
			lc_close(c);
			lc_die(rv, "cannot list the members");
		}
		member_print(m);
		free(m);
		return EX_OK;
	}
	rv = lc_member_remove(c, id, m);
	free(m);
	if (rv != LC_OK) {
		lc_close(c);
		lc_die(rv, "cannot remove the member");
	}
	printf("removed %" PRIu32 "\n", id);
	return EX_OK;
}

/* COMMAND --help: the command's entries of the usage text (an entry is a
 * line indented by two that names it, its synopsis up to a run of two
 * spaces, continued on lines indented by fewer than the description's
 * column, then its description), as a usage of its own. */
#define HELP_DESC_COLUMN 25

static void help_for(const char *cmd)
{
	size_t n = strlen(cmd);
	char desc[4096];
	size_t dlen = 0;
	bool on = false, first = true;
	const char *parts[] = {usage_cmds1, usage_cmds2};
	for (size_t k = 0; k < 2; k++) {
		for (const char *line = parts[k]; line && *line;) {
			const char *end = strchr(line, '\n');
			size_t len = end ? (size_t)(end - line) : strlen(line);
			size_t ind = 0;
			while (ind < len && line[ind] == ' ')
				ind++;
			if (ind == 2)
				on = strncmp(line + 2, cmd, n) == 0 &&
				     (line[2 + n] == ' ' || 2 + n == len);
			else if (len == 0 || ind == 0)
				on = false;
			if (on && ind < HELP_DESC_COLUMN) {
				/* Synopsis, and perhaps a description after
				 * a run of spaces. */
				const char *syn = line + ind;
				const char *gap = strstr(syn, "  ");
				size_t slen = gap != NULL && gap < line + len
						      ? (size_t)(gap - syn)
						      : len - ind;
				if (ind == 2 && dlen > 0 && dlen < sizeof desc)
					desc[dlen++] = '\n'; /* another entry */
				if (ind == 2)
					printf("%s lockctl [OPTIONS] %.*s",
					       first ? "usage:" : "\n      ",
					       (int)slen, syn);
				else
					printf(" %.*s", (int)slen, syn);
				first = false;
				const char *rest = syn + slen;
				while (rest < line + len && *rest == ' ')
					rest++;
				if (rest < line + len)
					dlen += (size_t)snprintf(
						desc + dlen, sizeof desc - dlen,
						"  %.*s\n",
						(int)(line + len - rest), rest);
			} else if (on && dlen < sizeof desc) {
				dlen += (size_t)snprintf(
					desc + dlen, sizeof desc - dlen,
					"  %.*s\n", (int)(len - ind),
					line + ind);
			}
			if (dlen >= sizeof desc)
				dlen = sizeof desc - 1;
			line = end ? end + 1 : NULL;
		}
	}
	printf("\n\n%s\nOPTIONS (before the command; -o json also after "
	       "it): -e ENDPOINTS,\n--tls-ca FILE, --tls-cert FILE, "
	       "--consistency MODE, -o json; durations,\nnames, output and "
	       "exit status: lockctl --help, and lockctl(1).\n",
	       desc);
}

int main(int argc, char **argv)
{
	const char *endpoints = getenv("LOCKD_ENDPOINTS");
	tls_ca = getenv("LOCKD_TLS_CA");
	tls_cert = getenv("LOCKD_TLS_CERT");
	int i = 1;
	for (; i < argc; i++) {
		char nbuf[32];
		const char *v;
		const char *s = split_opt(argv[i], nbuf, sizeof nbuf, &v);
		if (strcmp(s, "-h") == 0 || strcmp(s, "--help") == 0) {
			print_usage();
			return EX_OK;
		}
		if (strcmp(s, "--version") == 0) {
			printf("lockctl %s (liblockclient)\n", LOCKD_VERSION);
			return EX_OK;
		}
		bool takes = strcmp(s, "-e") == 0 ||
			     strcmp(s, "--endpoints") == 0 ||
			     strcmp(s, "--consistency") == 0 ||
			     strcmp(s, "--tls-ca") == 0 ||
			     strcmp(s, "--tls-cert") == 0 ||
			     strcmp(s, "-o") == 0 || strcmp(s, "--output") == 0;
		if (takes && v == NULL) {
			if (i + 1 >= argc)
				die(EX_USAGE, "%s needs a value", s);
			v = argv[++i];
		}
		if (strcmp(s, "-e") == 0 || strcmp(s, "--endpoints") == 0) {
			endpoints = v;
		} else if (strcmp(s, "--consistency") == 0) {
			if (strcmp(v, "linearizable") == 0)
				consistency = LC_LINEARIZABLE;
			else if (strcmp(v, "read-your-writes") == 0)
				consistency = LC_READ_YOUR_WRITES;
			else if (strcmp(v, "stale") == 0)
				consistency = LC_STALE;
			else
				die(EX_USAGE,
				    "--consistency wants linearizable, "
				    "read-your-writes or stale, not '%s'",
				    v);
		} else if (strcmp(s, "--tls-ca") == 0) {
			tls_ca = v;
		} else if (strcmp(s, "--tls-cert") == 0) {
			tls_cert = v;
		} else if (strcmp(s, "-o") == 0 || strcmp(s, "--output") == 0) {
			opt_json(v);
		} else if (s[0] == '-') {
			die(EX_USAGE, "unknown option '%s'", argv[i]);
		} else {
			break;
		}
	}
	if (i >= argc)
		die(EX_USAGE, "no command given");
	args a;
	memset(&a, 0, sizeof a);
	a.cmd = argv[i];
	static const struct {
		const char *name;
		int min, max;
		bool exec;
	} cmds[] = {
		{"status", 0, 0, false},      {"ls", 0, 1, false},
		{"get", 1, 1, false},         {"acquire", 1, 1, true},
		{"release", 1, 1, false},     {"revoke", 1, 1, false},
		{"proclaim", 1, 1, false},    {"elect", 1, 1, true},
		{"leader", 1, 1, false},      {"watch", 0, 1, false},
		{"check-token", 2, 2, false}, {"member", 1, 2, false},
	};
	size_t k = 0;
	for (; k < sizeof cmds / sizeof cmds[0]; k++)
		if (strcmp(cmds[k].name, a.cmd) == 0)
			break;
	if (k == sizeof cmds / sizeof cmds[0])
		die(EX_USAGE,
		    "unknown command '%s': the commands are status, ls, get, "
		    "acquire, release, proclaim, revoke, elect, leader, watch, "
		    "check-token and member",
		    a.cmd);
	parse_cmd(&a, argc, argv, i + 1);
	if (a.help) {
		help_for(a.cmd);
		return EX_OK;
	}
	if (a.npos < cmds[k].min || a.npos > cmds[k].max)
		die(EX_USAGE, "%s takes %d%s argument%s, not %d", a.cmd,
		    cmds[k].min,
		    cmds[k].max > cmds[k].min
			    ? (cmds[k].max == 2 ? " or 2" : " or 1")
			    : "",
		    cmds[k].max == 1 ? "" : "s", a.npos);
	if (a.exec != NULL && !cmds[k].exec)
		die(EX_USAGE, "%s does not run a command after '--'", a.cmd);
	if (a.hold && (strcmp(a.cmd, "acquire") != 0 || a.exec != NULL))
		die(EX_USAGE, "--hold is for acquire without a command: it "
			      "holds the lease until SIGTERM or SIGINT");
	if (a.prefix != NULL && strcmp(a.cmd, "watch") != 0)
		die(EX_USAGE, "--prefix is for watch");
	if (strcmp(a.cmd, "watch") == 0 && (a.npos == 1) == (a.prefix != NULL))
		die(EX_USAGE, "watch takes a NAME or --prefix PREFIX (\"\": "
			      "every name), not both");
	if (a.prefix != NULL && a.prefix[0] != '\0')
		check_name(a.prefix);
	if (a.from != NULL && strcmp(a.cmd, "watch") != 0)
		die(EX_USAGE, "--from is for watch");
	if (a.from != NULL)
		parse_u64(a.from, "--from");
	/* Check everything the user typed before touching the cell. */
	const char *cmd = a.cmd;
	bool member = strcmp(cmd, "member") == 0;
	uint32_t member_timeout_ms = 60000, member_id = 0;
	if (member)
		member_args(&a, &member_timeout_ms, &member_id);
	else if (strcmp(cmd, "ls") != 0 && strcmp(cmd, "status") != 0 &&
		 a.npos > 0)
		check_name(a.pos[0]);
	if (a.ttl)
		parse_duration(a.ttl, "--ttl");
	if (a.wait)
		parse_duration(a.wait, "--wait");
	if (a.interval)
		parse_duration(a.interval, "--interval");
	if (a.kill_after)
		parse_duration(a.kill_after, "--kill-after");
	if (a.value && strlen(a.value) > LC_VALUE_BYTES_MAX)
		die(EX_USAGE, "--value is over %u bytes", LC_VALUE_BYTES_MAX);
	uint64_t token = 0, session = 0, session_key = 0;
	if (strcmp(cmd, "release") == 0 || strcmp(cmd, "proclaim") == 0) {
		if (a.token == NULL || a.session == NULL)
			die(EX_USAGE,
			    "%s needs --token T and --session S:K, as "
			    "'lockctl acquire' (or elect) printed them: a "
			    "lease belongs to the session that acquired it",
			    cmd);
		token = parse_u64(a.token, "--token");
		/* S:K, the session and its key (a session made without a
		 * key is S alone). */
		char sbuf[64];
		snprintf(sbuf, sizeof sbuf, "%s", a.session);
		char *colon = strchr(sbuf, ':');
		if (colon != NULL) {
			*colon = '\0';
			session_key = parse_u64(colon + 1, "--session's key");
		}
		session = parse_u64(sbuf, "--session");
		if (session == 0 || session > LC_SESSION_MAX)
			die(EX_USAGE, "--session %s is out of range",
			    a.session);
	}
	if (strcmp(cmd, "check-token") == 0)
		token = parse_u64(a.pos[1], "TOKEN");
	if (strcmp(cmd, "revoke") == 0 && a.reason == NULL)
		die(EX_USAGE, "revoke needs --reason TEXT: say why, it is "
			      "kept with the lease");
	if (a.listen && strcmp(cmd, "elect") != 0)
		die(EX_USAGE, "--listen is for elect");
	if (a.listen && (a.value != NULL || a.exec != NULL || a.ttl != NULL ||
			 a.wait != NULL))
		die(EX_USAGE, "elect --listen only watches GROUP: it takes "
			      "--count and --interval, not --value, --ttl, "
			      "--wait or a command");
	if (strcmp(cmd, "elect") == 0 && !a.listen && a.value == NULL)
		die(EX_USAGE, "elect needs --value V: what 'leader' prints "
			      "for the winner (e.g. its address)");
	uint64_t count = a.count ? parse_u64(a.count, "--count") : 0;
	if (endpoints == NULL || endpoints[0] == '\0')
		die(EX_USAGE, "no endpoints: give -e tcp://HOST:PORT,... or "
			      "set LOCKD_ENDPOINTS");

	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	for (size_t si = 0; si < sizeof stop_signals / sizeof *stop_signals;
	     si++)
		sigaction(stop_signals[si], &sa, NULL);

	lc_client *c = open_client(endpoints, session, session_key,
				   member ? member_timeout_ms : 5000);
	int rc = EX_OK;
	if (strcmp(cmd, "status") == 0) {
		rc = cmd_status(c);
	} else if (strcmp(cmd, "ls") == 0) {
		rc = cmd_ls(c, a.npos ? a.pos[0] : "");
	} else if (strcmp(cmd, "get") == 0) {
		rc = cmd_get(c, a.pos[0]);
	} else if (strcmp(cmd, "leader") == 0) {
		rc = cmd_leader(c, a.pos[0]);
	} else if (strcmp(cmd, "check-token") == 0) {
		rc = cmd_check(c, a.pos[0], token);
	} else if (strcmp(cmd, "watch") == 0 && a.prefix != NULL) {
		rc = cmd_watch_prefix(
			c, a.prefix, count,
			a.interval ? parse_duration(a.interval, "--interval")
				   : 1000,
			a.from != NULL,
			a.from ? parse_u64(a.from, "--from") : 0);
	} else if (strcmp(cmd, "watch") == 0) {
		rc = cmd_watch(
			c, a.pos[0], count,
			a.interval ? parse_duration(a.interval, "--interval")
				   : 1000,
			a.from != NULL,
			a.from ? parse_u64(a.from, "--from") : 0);
	} else if (strcmp(cmd, "acquire") == 0) {
		rc = cmd_acquire(c, &a);
	} else if (strcmp(cmd, "elect") == 0 && a.listen) {
		rc = cmd_elect_listen(
			c, a.pos[0], count,
			a.interval ? parse_duration(a.interval, "--interval")
				   : 1000);
	} else if (strcmp(cmd, "elect") == 0) {
		rc = cmd_elect(c, &a);
	} else if (member) {
		rc = cmd_member(c, &a, member_id, member_timeout_ms);
	} else if (strcmp(cmd, "release") == 0) {
		int rv = lc_release(c, a.pos[0], token);
		if (rv != LC_OK) {
			lc_close(c);
			lc_die(rv, "cannot release the lease");
		}
		printf("released\n");
	} else if (strcmp(cmd, "proclaim") == 0) {
		const char *v = a.value != NULL ? a.value : "";
		int rv = lc_proclaim(c, a.pos[0], token, v, strlen(v));
		if (rv != LC_OK) {
			lc_close(c);
			lc_die(rv, "cannot proclaim the value");
		}
		printf("proclaimed %s\n", a.pos[0]);
	} else if (strcmp(cmd, "revoke") == 0) {
		int rv = lc_revoke(c, a.pos[0], a.reason);
		if (rv != LC_OK) {
			lc_close(c);
			lc_die(rv, "cannot revoke the lease");
		}
		printf("revoked %s (reason: %s)\n", a.pos[0], a.reason);
	}
	lc_close(c);
	return rc;
}
