/* The RocksDB store: records come back as written and in the order
 * px_replica_restore needs; a snapshot drops the votes it covers in the same
 * write; a directory that is not this replica's, or is damaged, is refused
 * with a sentence and never crashes the process (this test runs under ASan
 * and UBSan). Every test has its own directory under /tmp: criterion forks
 * per test and runs them in parallel. */
#define _GNU_SOURCE /* nftw */
#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "storage.h"

#define CELL 0xabcULL

static char tmp[64];  /* this test's own directory, removed after */
static char data[96]; /* tmp/data: the store, missing at the start */
static char err[512];

static const ds_identity ID = {
	.cell_id = CELL, .replica_id = 1, .nreplicas = 3};

static int rm_entry(const char *path, const struct stat *st, int flag,
		    struct FTW *ftw)
{
	return remove(path);
}

static void setup(void)
{
	strcpy(tmp, "/tmp/lockd-storage-XXXXXX");
	cr_assert_not_null(mkdtemp(tmp));
	snprintf(data, sizeof data, "%s/data", tmp);
	err[0] = '\0';
}

static void teardown(void)
{
	nftw(tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(storage, .init = setup, .fini = teardown);

/* ---- records ------------------------------------------------------------ */

static px_value *mkvalue(uint32_t ncmds, uint64_t salt)
{
	uint8_t buf[4][32];
	px_cmd cmds[4];
	cr_assert(ncmds <= 4);
	for (uint32_t i = 0; i < ncmds; i++) {
		for (uint32_t j = 0; j < sizeof buf[i]; j++)
			buf[i][j] = (uint8_t)(salt * 7 + i * 31 + j);
		cmds[i] = (px_cmd){.client_id = salt + i + 1,
				   .seq = salt * 10 + i,
				   .len = (uint32_t)(sizeof buf[i] - i),
				   .data = buf[i]};
	}
	px_value *v = px_value_new(cmds, ncmds);
	cr_assert_not_null(v);
	return v;
}

static px_record mkvote(uint64_t slot, uint64_t round)
{
	return (px_record){.type = PX_REC_VOTE,
			   .ballot = {.round = round, .id = 2},
			   .slot = slot,
			   .value = slot % 5 == 0
					    ? px_value_noop()
					    : mkvalue(1 + slot % 3, slot)};
}

static px_record mkpromise(uint64_t round)
{
	return (px_record){.type = PX_REC_PROMISE,
			   .ballot = {.round = round, .id = 0}};
}

static px_record mksnap(uint64_t base, uint32_t len)
{
	px_record r = {.type = PX_REC_SNAPSHOT, .slot = base, .snap_len = len};
	if (len > 0) {
		r.snap = malloc(len);
		cr_assert_not_null(r.snap);
		for (uint32_t i = 0; i < len; i++)
			r.snap[i] = (uint8_t)(base + i * 13);
	}
	return r;
}

static void clear_all(px_record *recs, size_t n)
{
	for (size_t i = 0; i < n; i++)
		px_record_clear(&recs[i]);
}

static void expect_same(const px_record *got, const px_record *want)
{
	cr_assert_eq(got->type, want->type);
	cr_assert_eq(got->slot, want->slot);
	cr_assert_eq(got->ballot.round, want->ballot.round);
	cr_assert_eq(got->ballot.id, want->ballot.id);
	cr_assert(px_value_equal(got->value, want->value),
		  "value of the record for slot %" PRIu64 " differs",
		  want->slot);
	cr_assert_eq(got->snap_len, want->snap_len);
	if (want->snap_len > 0)
		cr_assert(memcmp(got->snap, want->snap, want->snap_len) == 0);
}

/* ---- loading into an array ---------------------------------------------- */

typedef struct loaded {
	size_t n, cap;
	px_record *recs;
	size_t stop_at; /* return 7 at this record (1-based); 0 never */
} loaded;

static int collect(const px_record *rec, void *arg)
{
	loaded *l = arg;
	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 16;
		l->recs = realloc(l->recs, l->cap * sizeof *l->recs);
		cr_assert_not_null(l->recs);
	}
	px_record *c = &l->recs[l->n++];
	*c = *rec;
	c->value = px_value_ref(rec->value);
	if (rec->snap_len > 0) {
		c->snap = malloc(rec->snap_len);
		cr_assert_not_null(c->snap);
		memcpy(c->snap, rec->snap, rec->snap_len);
	}
	return l->n == l->stop_at ? 7 : 0;
}

static void loaded_free(loaded *l)
{
	clear_all(l->recs, l->n);
	free(l->recs);
	memset(l, 0, sizeof *l);
}

static loaded load_ok(ds_store *s)
{
	loaded l = {0};
	int rv = ds_load(s, collect, &l, err, sizeof err);
	cr_assert_eq(rv, 0, "load: %s", err);
	return l;
}

static ds_store *open_ok(const char *dir, const ds_identity *id)
{
	ds_store *s = NULL;
	int rv = ds_open(dir, id, &s, err, sizeof err);
	cr_assert_eq(rv, 0, "open %s: %s", dir, err);
	cr_assert_not_null(s);
	return s;
}

/* An open that fails with want (-1: refused; DS_CORRUPT: damaged)
 * and a sentence holding needle. */
static void open_fails(const char *dir, const ds_identity *id, int want,
		       const char *needle)
{
	ds_store *s = (ds_store *)1;
	err[0] = '\0';
	int rv = ds_open(dir, id, &s, err, sizeof err);
	cr_assert_eq(rv, want, "open %s returned %d (%s); expected %d and '%s'",
		     dir, rv, err, want, needle);
	cr_assert_null(s);
	cr_assert(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err,
		  needle);
	cr_log_info("refused as expected: %s", err);
}

static void open_refused(const char *dir, const ds_identity *id,
			 const char *needle)
{
	open_fails(dir, id, -1, needle);
}

static void open_corrupt(const char *dir, const ds_identity *id,
			 const char *needle)
{
	open_fails(dir, id, DS_CORRUPT, needle);
}

static void write_ok(ds_store *s, px_record *recs, size_t n, bool sync)
{
	int rv = ds_write(s, recs, n, sync, err, sizeof err);
	cr_assert_eq(rv, 0, "write: %s", err);
}

/* ---- raw RocksDB access, to build foreign and tampered directories ------- */

static rocksdb_t *raw_open(const char *dir, const char *const *names, int n,
			   rocksdb_column_family_handle_t **cf)
{
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_options_set_create_missing_column_families(o, 1);
	const rocksdb_options_t *cfo[8];
	for (int i = 0; i < n; i++)
		cfo[i] = o;
	char *rerr = NULL;
	rocksdb_t *db =
		rocksdb_open_column_families(o, dir, n, names, cfo, cf, &rerr);
	cr_assert_null(rerr, "raw open: %s", rerr);
	rocksdb_options_destroy(o);
	return db;
}

static void raw_close(rocksdb_t *db, rocksdb_column_family_handle_t **cf, int n)
{
	for (int i = 0; i < n; i++)
		rocksdb_column_family_handle_destroy(cf[i]);
	rocksdb_close(db);
}

static void raw_put(rocksdb_t *db, rocksdb_column_family_handle_t *cf,
		    const void *k, size_t klen, const void *v, size_t vlen)
{
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	char *rerr = NULL;
	rocksdb_put_cf(db, wo, cf, k, klen, v, vlen, &rerr);
	cr_assert_null(rerr, "raw put: %s", rerr);
	rocksdb_writeoptions_destroy(wo);
}

static const char *const LOCKD_CFS[] = {"default", "meta", "acceptor", "ledger",
					"state"};

static void be64(uint8_t *p, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		p[i] = (uint8_t)v;
}

/* ---- files in a data directory ----------------------------------------- */

/* The largest file in dir whose name starts with prefix and ends with
 * suffix; path receives its path. Returns its size, or -1 if none. */
static long find_file(const char *dir, const char *prefix, const char *suffix,
		      char *path, size_t pathlen)
{
	DIR *d = opendir(dir);
	cr_assert_not_null(d);
	long best = -1;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		size_t n = strlen(e->d_name), sl = strlen(suffix);
		if (strncmp(e->d_name, prefix, strlen(prefix)) != 0 || n < sl ||
		    strcmp(e->d_name + n - sl, suffix) != 0)
			continue;
		char p[512];
		snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
		struct stat st;
		cr_assert_eq(stat(p, &st), 0);
		if (st.st_size > best) {
			best = st.st_size;
			snprintf(path, pathlen, "%s", p);
		}
	}
	closedir(d);
	return best;
}

/* Overwrites len bytes at off with garbage. */
static void garble(const char *path, long off, size_t len)
{
	FILE *f = fopen(path, "r+b");
	cr_assert_not_null(f, "%s", path);
	cr_assert_eq(fseek(f, off, SEEK_SET), 0);
	for (size_t i = 0; i < len; i++)
		fputc((int)(0xa5 ^ (i * 29)), f);
	cr_assert_eq(fclose(f), 0);
}

static void write_file(const char *path, const char *text)
{
	FILE *f = fopen(path, "wb");
	cr_assert_not_null(f, "%s", path);
	fputs(text, f);
	cr_assert_eq(fclose(f), 0);
}

/* A store with votes 1..n in the WAL (never flushed to an .sst). */
static void fill_votes(uint64_t n)
{
	ds_store *s = open_ok(data, &ID);
	for (uint64_t slot = 1; slot <= n; slot++) {
		px_record r = mkvote(slot, 4);
		write_ok(s, &r, 1, true);
		px_record_clear(&r);
	}
	ds_close(s);
}

/* An open that fails, or a load that fails, as corrupt: never a crash or
 * wrong data. */
static void expect_damage_noticed(void)
{
	ds_store *s = NULL;
	int rv = ds_open(data, &ID, &s, err, sizeof err);
	if (rv != 0) {
		cr_assert_null(s);
		cr_assert_eq(rv, DS_CORRUPT, "open: %s", err);
		cr_assert(strstr(err, data) != NULL, "error '%s' lacks the dir",
			  err);
		cr_log_info("open refused: %s", err);
		return;
	}
	loaded l = {0};
	rv = ds_load(s, collect, &l, err, sizeof err);
	loaded_free(&l);
	ds_close(s);
	cr_assert_eq(rv, DS_CORRUPT, "damage went unnoticed: %d %s", rv, err);
	cr_log_info("load refused: %s", err);
}

/* ---- opening ------------------------------------------------------------ */

Test(storage, create_open_close_reopen)
{
	ds_store *s = open_ok(data, &ID); /* missing: created */
	ds_stats st;
	ds_stats_get(s, &st);
	cr_assert_eq(st.votes + st.snapshot_base + st.snapshot_bytes +
			     st.writes + st.synced_writes,
		     0);
	loaded l = load_ok(s);
	cr_assert_eq(l.n, 0);
	loaded_free(&l);
	ds_close(s);

	s = open_ok(data, &ID);
	ds_close(s);

	/* An existing empty directory is as good as a missing one. */
	char empty[128];
	snprintf(empty, sizeof empty, "%s/empty", tmp);
	cr_assert_eq(mkdir(empty, 0700), 0);
	s = open_ok(empty, &ID);
	ds_close(s);
	s = open_ok(empty, &ID);
	ds_close(s);
}

Test(storage, second_open_of_the_same_directory_fails)
{
	ds_store *s = open_ok(data, &ID);
	open_refused(data, &ID, "cannot open");
	ds_close(s);
}

Test(storage, invalid_identity)
{
	ds_identity bad = {.cell_id = CELL, .replica_id = 3, .nreplicas = 3};
	open_refused(data, &bad, "1 to 7 replicas");
	bad = (ds_identity){.replica_id = 64, .nreplicas = 0};
	open_refused(data, &bad, "ids stay below 64");
	bad = (ds_identity){.replica_id = 0, .nreplicas = 8};
	open_refused(data, &bad, "1 to 7 replicas");
}

/* ---- writing and loading ----------------------------------------------- */

Test(storage, load_order_and_contents)
{
	ds_store *s = open_ok(data, &ID);

	/* Slots chosen so that a little-endian key would misorder them, and
	 * written out of order: the ledger iterates by slot. */
	const uint64_t slots[] = {65536, 2, 256, 1, 255, 3};
	const size_t nslots = sizeof slots / sizeof slots[0];
	px_record votes[6];
	for (size_t i = 0; i < nslots; i++)
		votes[i] = mkvote(slots[i], 3 + i);
	write_ok(s, votes, 3, true);
	write_ok(s, votes + 3, 3, false);

	px_record promise = mkpromise(9);
	write_ok(s, &promise, 1, true);
	/* A later promise replaces the earlier one. */
	px_record promise2 = mkpromise(11);
	write_ok(s, &promise2, 1, true);

	/* The snapshot drops the vote at slot 1 (its base). */
	px_record snap = mksnap(1, 1000);
	write_ok(s, &snap, 1, true);

	loaded l = load_ok(s);
	cr_assert_eq(l.n, 2 + nslots - 1);
	expect_same(&l.recs[0], &snap);
	expect_same(&l.recs[1], &promise2);
	const size_t order[] = {1, 5, 4, 2, 0}; /* slots 2 3 255 256 65536 */
	for (size_t i = 0; i < 5; i++)
		expect_same(&l.recs[2 + i], &votes[order[i]]);
	loaded_free(&l);

	ds_stats st;
	ds_stats_get(s, &st);
	cr_assert_eq(st.votes, 5);
	cr_assert_eq(st.snapshot_base, 1);
	cr_assert_eq(st.snapshot_bytes, 1000);

	/* The same after a reopen. */
	ds_close(s);
	s = open_ok(data, &ID);
	ds_stats_get(s, &st);
	cr_assert_eq(st.votes, 5);
	cr_assert_eq(st.snapshot_base, 1);
	cr_assert_eq(st.snapshot_bytes, 1000);
	l = load_ok(s);
	cr_assert_eq(l.n, 7);
	expect_same(&l.recs[0], &snap);
	expect_same(&l.recs[1], &promise2);
	for (size_t i = 0; i < 5; i++)
		expect_same(&l.recs[2 + i], &votes[order[i]]);
	loaded_free(&l);
	ds_close(s);

	clear_all(votes, nslots);
	px_record_clear(&promise);
	px_record_clear(&promise2);
	px_record_clear(&snap);
}

/* The record that makes a replica a voter (lockd/core/paxos.h, Recovery)
 * survives a reopen, after the promise, checksum and all: losing it would
 * only make the replica recover, but reading it as damaged moved the whole
 * store aside at every restart. */
Test(storage, joined_record_survives_a_reopen)
{
	ds_store *s = open_ok(data, &ID);
	px_record recs[2] = {mkpromise(4), {.type = PX_REC_JOINED}};
	write_ok(s, recs, 2, true);
	ds_close(s);
	s = open_ok(data, &ID);
	loaded l = load_ok(s);
	cr_assert_eq(l.n, 2);
	expect_same(&l.recs[0], &recs[0]);
	cr_assert_eq(l.recs[1].type, PX_REC_JOINED);
	loaded_free(&l);
	ds_close(s);
	clear_all(recs, 2);
}

Test(storage, revote_replaces_the_slot)
{
	ds_store *s = open_ok(data, &ID);
	px_record a = mkvote(7, 3), b = mkvote(7, 5);
	px_value_unref(b.value);
	b.value = mkvalue(2, 99);
	write_ok(s, &a, 1, true);
	write_ok(s, &b, 1, true);
	loaded l = load_ok(s);
	cr_assert_eq(l.n, 1);
	expect_same(&l.recs[0], &b);
	loaded_free(&l);
	ds_close(s);
	px_record_clear(&a);
	px_record_clear(&b);
}

/* A chosen hint sits right after its slot's vote, survives a revote (the
 * core then ignores it: its ballot no longer names the vote), and goes with
 * the votes a snapshot covers. It is not counted as a vote. */
Test(storage, chosen_hints_load_after_their_vote)
{
	ds_store *s = open_ok(data, &ID);
	px_record v3 = mkvote(3, 2), v4 = mkvote(4, 2);
	px_record c3 = {.type = PX_REC_CHOSEN,
			.slot = 3,
			.ballot = {.round = 2, .id = 2}};
	px_record c4 = c3;
	c4.slot = 4;
	px_record batch[4] = {v3, v4, c4, c3};
	write_ok(s, batch, 4, false); /* hints need no sync */
	loaded l = load_ok(s);
	cr_assert_eq(l.n, 4);
	expect_same(&l.recs[0], &v3);
	expect_same(&l.recs[1], &c3);
	expect_same(&l.recs[2], &v4);
	expect_same(&l.recs[3], &c4);
	loaded_free(&l);
	ds_stats st;
	ds_stats_get(s, &st);
	cr_assert_eq(st.votes, 2);

	px_record snap = mksnap(3, 16);
	write_ok(s, &snap, 1, true);
	l = load_ok(s);
	cr_assert_eq(l.n, 3, "the snapshot, vote 4 and its hint");
	expect_same(&l.recs[0], &snap);
	expect_same(&l.recs[1], &v4);
	expect_same(&l.recs[2], &c4);
	loaded_free(&l);
	ds_close(s);
	px_record_clear(&v3);
	px_record_clear(&v4);
	px_record_clear(&snap);
}

Test(storage, snapshot_drops_covered_votes_in_the_same_write)
{
	ds_store *s = open_ok(data, &ID);
	px_record votes[12];
	for (uint64_t i = 0; i < 12; i++)
		votes[i] = mkvote(i + 1, 2);
	write_ok(s, votes, 10, true); /* slots 1..10 */

	px_record snap = mksnap(5, 64);
	write_ok(s, &snap, 1, true);
	ds_stats st;
	ds_stats_get(s, &st);
	cr_assert_eq(st.votes, 5);
	cr_assert_eq(st.snapshot_base, 5);

	/* In one batch, order matters as written: a vote before the snapshot
	 * that covers it goes with the others; a vote after its base stays. */
	px_record batch[3] = {votes[10], mksnap(11, 32), votes[11]};
	write_ok(s, batch, 3, true); /* vote 11, snapshot 11, vote 12 */

	loaded l = load_ok(s);
	cr_assert_eq(l.n, 2);
	expect_same(&l.recs[0], &batch[1]);
	expect_same(&l.recs[1], &votes[11]);
	loaded_free(&l);
	ds_stats_get(s, &st);
	cr_assert_eq(st.votes, 1);
	cr_assert_eq(st.snapshot_base, 11);
	cr_assert_eq(st.snapshot_bytes, 32);

	/* A base of 2^64 - 1 drops every vote (the range end is past every
	 * 8-byte key). */
	px_record last = mkvote(UINT64_MAX, 2), top = mksnap(UINT64_MAX, 0);
	write_ok(s, &last, 1, false);
	write_ok(s, &top, 1, true);
	ds_stats_get(s, &st);
	cr_assert_eq(st.votes, 0);
	cr_assert_eq(st.snapshot_base, UINT64_MAX);
	px_record_clear(&last);
	px_record_clear(&top);

	ds_close(s);
	clear_all(votes, 12);
	px_record_clear(&snap);
	px_record_clear(&batch[1]);
}

/* ds_write_snapshot_later: the writer thread writes the newest snapshot
 * handed to it, with the end of the votes it covers, after the votes
 * written meanwhile; one not newer than the snapshot on disk is dropped;
 * ds_close writes what still waits. */
Test(storage, snapshots_written_later_by_the_writer_thread)
{
	ds_store *s = open_ok(data, &ID);
	cr_assert_eq(ds_lazy_snapshots(s, err, sizeof err), 0, "%s", err);
	px_record votes[12];
	for (uint64_t i = 0; i < 12; i++)
		votes[i] = mkvote(i + 1, 2);
	write_ok(s, votes, 10, true); /* slots 1..10 */

	px_record snap = mksnap(5, 64);
	ds_write_snapshot_later(s, &snap);
	cr_assert_null(snap.snap, "the store did not take the bytes");
	write_ok(s, &votes[10], 1, true); /* vote 11, perhaps before it */
	ds_lazy_stats ls;
	for (int i = 0; i < 1000; i++) {
		ds_lazy_stats_get(s, &ls);
		if (ls.written == 1)
			break;
		usleep(10000);
	}
	cr_assert_eq(ls.written, 1);
	cr_assert_eq(ls.last_base, 5);
	ds_stats st;
	ds_stats_get(s, &st);
	cr_assert_eq(st.snapshot_base, 5);
	cr_assert_eq(st.votes, 6, "votes 6..11 stay");

	/* Stale: not newer than the snapshot on disk. */
	px_record old = mksnap(4, 16);
	ds_write_snapshot_later(s, &old);
	px_record newer = mksnap(9, 32);
	ds_write_snapshot_later(s, &newer);
	ds_close(s); /* writes what waits */

	s = open_ok(data, &ID);
	ds_stats_get(s, &st);
	cr_assert_eq(st.snapshot_base, 9);
	cr_assert_eq(st.snapshot_bytes, 32);
	loaded l = load_ok(s);
	cr_assert_eq(l.n, 3, "snapshot 9, votes 10 and 11");
	cr_assert_eq(l.recs[0].type, PX_REC_SNAPSHOT);
	cr_assert_eq(l.recs[0].slot, 9);
	loaded_free(&l);
	ds_close(s);
	clear_all(votes, 12);
	px_record_clear(&snap);
	px_record_clear(&old);
	px_record_clear(&newer);
}

Test(storage, a_batch_with_a_bad_record_writes_nothing)
{
	ds_store *s = open_ok(data, &ID);
	px_record ok = mkvote(1, 2);
	write_ok(s, &ok, 1, true);

	/* A snapshot that would drop vote 1, then a vote without a value. */
	px_record batch[2] = {
		mksnap(3, 8),
		{.type = PX_REC_VOTE, .slot = 4, .ballot = {.round = 2}}};
	int rv = ds_write(s, batch, 2, true, err, sizeof err);
	cr_assert_eq(rv, -1);
	cr_assert(strstr(err, "vote record for slot 4") != NULL, "%s", err);

	loaded l = load_ok(s);
	cr_assert_eq(l.n, 1);
	expect_same(&l.recs[0], &ok);
	loaded_free(&l);
	ds_stats st;
	ds_stats_get(s, &st);
	cr_assert_eq(st.writes, 1);
	cr_assert_eq(st.snapshot_base, 0);

	/* The store still works. */
	px_record next = mkvote(2, 2);
	write_ok(s, &next, 1, true);
	ds_close(s);
	px_record_clear(&ok);
	px_record_clear(&next);
	clear_all(batch, 2);
}

Test(storage, load_stops_when_the_callback_says_so)
{
	ds_store *s = open_ok(data, &ID);
	px_record recs[3] = {mkpromise(2), mkvote(1, 2), mkvote(2, 2)};
	write_ok(s, recs, 3, true);
	loaded l = {.stop_at = 2};
	int rv = ds_load(s, collect, &l, err, sizeof err);
	cr_assert_eq(rv, 7);
	cr_assert_eq(l.n, 2);
	loaded_free(&l);
	ds_close(s);
	clear_all(recs, 3);
}

Test(storage, stats_count_writes_and_synced_writes)
{
	ds_store *s = open_ok(data, &ID);
	for (uint64_t i = 1; i <= 10; i++) {
		px_record r = mkvote(i, 1);
		write_ok(s, &r, 1, i % 3 == 0); /* 3, 6, 9 synced */
		px_record_clear(&r);
	}
	write_ok(s, NULL, 0, true); /* an empty synced write still counts */
	ds_stats st;
	ds_stats_get(s, &st);
	cr_assert_eq(st.writes, 11);
	cr_assert_eq(st.synced_writes, 4);
	cr_assert_eq(st.votes, 10);
	ds_close(s);
}

Test(storage, many_writes_survive_reopen, .timeout = 120)
{
	enum { N = 2000, PER = 10 };
	ds_store *s = open_ok(data, &ID);
	px_record promise = mkpromise(77);
	write_ok(s, &promise, 1, true);
	for (uint64_t first = 1; first <= N; first += PER) {
		px_record batch[PER];
		for (uint64_t i = 0; i < PER; i++)
			batch[i] = mkvote(first + i, 5 + first % 4);
		write_ok(s, batch, PER, first % 100 == 1);
		clear_all(batch, PER);
	}
	ds_close(s);

	/* Twice: first from the WAL, then from the .sst files its recovery
	 * wrote. */
	for (int round = 0; round < 2; round++) {
		s = open_ok(data, &ID);
		loaded l = load_ok(s);
		cr_assert_eq(l.n, N + 1);
		expect_same(&l.recs[0], &promise);
		for (uint64_t slot = 1; slot <= N; slot++) {
			px_record want =
				mkvote(slot, 5 + (slot - (slot - 1) % PER) % 4);
			expect_same(&l.recs[slot], &want);
			px_record_clear(&want);
		}
		loaded_free(&l);
		ds_stats st;
		ds_stats_get(s, &st);
		cr_assert_eq(st.votes, N);
		ds_close(s);
	}
	px_record_clear(&promise);
}

/* ---- refusing what is not ours ------------------------------------------ */

Test(storage, refuses_another_replicas_directory)
{
	ds_store *s = open_ok(data, &ID);
	ds_close(s);

	ds_identity other = ID;
	other.replica_id = 2;
	open_refused(data, &other,
		     "belongs to replica 1 of cell 0x0000000000000abc, not "
		     "replica 2 of cell 0x0000000000000abc");
	other = ID;
	other.cell_id = 0xdef;
	open_refused(data, &other,
		     "belongs to replica 1 of cell 0x0000000000000abc, not "
		     "replica 1 of cell 0x0000000000000def");
	/* The cell's size is not the store's to check: membership changes
	 * by decree. The store keeps its origin, whatever the flags say. */
	other = ID;
	other.nreplicas = 5;
	s = open_ok(data, &other);
	uint32_t n;
	uint64_t inc;
	ds_origin(s, &n, NULL, &inc);
	cr_assert_eq(n, 3);
	ds_close(s);

	/* Cell 0 accepts whatever cell is stored. */
	other = ID;
	other.cell_id = 0;
	s = open_ok(data, &other);
	ds_close(s);
}

Test(storage, refuses_a_directory_that_is_not_a_store)
{
	char path[256];
	cr_assert_eq(mkdir(data, 0700), 0);
	snprintf(path, sizeof path, "%s/notes.txt", data);
	write_file(path, "precious\n");
	open_refused(data, &ID, "is not a lockd data directory");
	open_refused(data, &ID, "refusing to use it");

	/* Left as it was. */
	char found[512];
	cr_assert_eq(find_file(data, "CURRENT", "", found, sizeof found), -1);

	open_refused(path, &ID, "is not a directory");
}

Test(storage, refuses_a_foreign_rocksdb_and_leaves_it_alone)
{
	const char *const names[] = {"default"};
	rocksdb_column_family_handle_t *cf[1];
	rocksdb_t *db = raw_open(data, names, 1, cf);
	raw_put(db, cf[0], "user:1", 6, "alice", 5);
	raw_close(db, cf, 1);

	open_refused(data, &ID,
		     "is not a lockd data directory (no meta column family)");

	rocksdb_options_t *o = rocksdb_options_create();
	char *rerr = NULL;
	size_t n = 0;
	char **list = rocksdb_list_column_families(o, data, &n, &rerr);
	cr_assert_null(rerr);
	cr_assert_eq(n, 1, "lockd created column families in a foreign db");
	rocksdb_list_column_families_destroy(list, n);
	rocksdb_options_destroy(o);
}

Test(storage, refuses_a_rocksdb_with_a_column_family_lockd_does_not_use)
{
	const char *const names[] = {"default", "meta", "users"};
	rocksdb_column_family_handle_t *cf[3];
	rocksdb_t *db = raw_open(data, names, 3, cf);
	raw_close(db, cf, 3);
	open_refused(data, &ID, "column family 'users'");
}

Test(storage, takes_over_an_empty_store_whose_creation_was_cut_short)
{
	/* Only "default" (crash before the column families were made). */
	const char *const names[] = {"default"};
	rocksdb_column_family_handle_t *cf[5];
	rocksdb_t *db = raw_open(data, names, 1, cf);
	raw_close(db, cf, 1);
	ds_store *s = open_ok(data, &ID);
	ds_close(s);
	s = open_ok(data, &ID);
	ds_close(s);

	/* All column families, no meta keys yet. */
	char other[128];
	snprintf(other, sizeof other, "%s/other", tmp);
	db = raw_open(other, LOCKD_CFS, 5, cf);
	raw_close(db, cf, 5);
	s = open_ok(other, &ID);
	ds_close(s);
	ds_identity wrong = ID;
	wrong.replica_id = 0;
	open_refused(other, &wrong, "belongs to replica 1");
}

Test(storage, refuses_lockd_shaped_data_without_identity)
{
	rocksdb_column_family_handle_t *cf[5];
	rocksdb_t *db = raw_open(data, LOCKD_CFS, 5, cf);
	uint8_t k[8];
	be64(k, 1);
	raw_put(db, cf[3], k, 8, "x", 1);
	raw_close(db, cf, 5);
	open_refused(data, &ID, "no format version");
}

Test(storage, refuses_another_format_version)
{
	ds_store *s = open_ok(data, &ID);
	ds_close(s);

	rocksdb_column_family_handle_t *cf[5];
	rocksdb_t *db = raw_open(data, LOCKD_CFS, 5, cf);
	uint8_t v[8];
	be64(v, 1); /* version 1 had no checksums */
	raw_put(db, cf[1], "format", 6, v, 8);
	raw_close(db, cf, 5);
	open_refused(data, &ID, "format version 1; this lockd reads version 2");
}

Test(storage, refuses_a_missing_or_malformed_meta_key)
{
	ds_store *s = open_ok(data, &ID);
	ds_close(s);

	rocksdb_column_family_handle_t *cf[5];
	rocksdb_t *db = raw_open(data, LOCKD_CFS, 5, cf);
	raw_put(db, cf[1], "replica_id", 10, "\x01", 1);
	raw_close(db, cf, 5);
	open_corrupt(data, &ID, "meta key 'replica_id' holds 1 bytes, not 12");

	db = raw_open(data, LOCKD_CFS, 5, cf);
	char *rerr = NULL;
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_delete_cf(db, wo, cf[1], "replica_id", 10, &rerr);
	cr_assert_null(rerr);
	rocksdb_writeoptions_destroy(wo);
	raw_close(db, cf, 5);
	open_refused(data, &ID, "(no replica_id in its meta column family)");
}

/* ---- origin and incarnation ---------------------------------------------- */

Test(storage, a_new_store_draws_an_incarnation_that_stays)
{
	ds_store *s = open_ok(data, &ID);
	uint32_t n;
	uint64_t inc, again;
	ds_origin(s, &n, NULL, &inc);
	cr_assert_eq(n, 3);
	cr_assert_neq(inc, 0);
	ds_close(s);
	s = open_ok(data, &ID);
	ds_origin(s, &n, NULL, &again);
	cr_assert_eq(again, inc, "the incarnation changed across a reopen");
	ds_close(s);

	/* Wiped and made again: another disk, another incarnation. */
	char cmd[512];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", data);
	cr_assert_eq(system(cmd), 0);
	s = open_ok(data, &ID);
	ds_origin(s, &n, NULL, &again);
	cr_assert_neq(again, 0);
	cr_assert_neq(again, inc);
	ds_close(s);
}

Test(storage, a_store_made_before_incarnations_gets_one_once)
{
	ds_store *s = open_ok(data, &ID);
	ds_close(s);
	rocksdb_column_family_handle_t *cf[5];
	rocksdb_t *db = raw_open(data, LOCKD_CFS, 5, cf);
	char *rerr = NULL;
	rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
	rocksdb_delete_cf(db, wo, cf[1], "incarnation", 11, &rerr);
	cr_assert_null(rerr);
	rocksdb_writeoptions_destroy(wo);
	raw_close(db, cf, 5);

	uint32_t n;
	uint64_t inc, again;
	s = open_ok(data, &ID);
	ds_origin(s, &n, NULL, &inc);
	cr_assert_neq(inc, 0);
	ds_close(s);
	s = open_ok(data, &ID);
	ds_origin(s, &n, NULL, &again);
	cr_assert_eq(again, inc);
	ds_close(s);
}

/* A replica that joins a running cell (lockd --join): its new store waits
 * unborn until the daemon has the cell's configuration, then keeps it. */
Test(storage, a_joined_store_keeps_the_configuration_it_joined)
{
	ds_identity join = {.cell_id = CELL, .replica_id = 9};
	ds_store *s = open_ok(data, &join);
	cr_assert(ds_unborn(s));
	uint32_t n;
	uint64_t inc;
	px_members m;
	ds_origin(s, &n, &m, &inc);
	cr_assert_eq(inc, 0);
	cr_assert_eq(ds_adopt(s, &join, err, sizeof err), -1);
	cr_assert(strstr(err, "a cell size or a configuration") != NULL, "%s",
		  err);

	px_members cfg = {.n = 2, .removed = 1};
	cfg.m[0] = (px_member){.id = 1, .voting = true};
	cfg.m[1] = (px_member){.id = 2, .voting = true, .incarnation = 5};
	snprintf(cfg.m[0].peer, sizeof cfg.m[0].peer, "tcp://h1:1");
	snprintf(cfg.m[0].client, sizeof cfg.m[0].client, "tcp://h1:2");
	snprintf(cfg.m[1].peer, sizeof cfg.m[1].peer, "tcp://h2:1");
	snprintf(cfg.m[1].client, sizeof cfg.m[1].client, "tcp://h2:2");
	join.members = &cfg;
	cr_assert_eq(ds_adopt(s, &join, err, sizeof err), 0, "%s", err);
	cr_assert(!ds_unborn(s));
	cr_assert_eq(ds_adopt(s, &join, err, sizeof err), -1);
	ds_close(s);

	/* Reopened without a configuration (a restart with --join asks
	 * nobody): the stored one. */
	join.members = NULL;
	s = open_ok(data, &join);
	cr_assert(!ds_unborn(s));
	ds_origin(s, &n, &m, &inc);
	cr_assert_eq(n, 0);
	cr_assert_neq(inc, 0);
	cr_assert_eq(m.n, 2);
	cr_assert_eq(m.removed, 1);
	cr_assert_eq(m.m[1].id, 2);
	cr_assert_eq(m.m[1].incarnation, 5);
	cr_assert_str_eq(m.m[1].client, "tcp://h2:2");
	ds_close(s);

	/* Another replica id is still refused. */
	join.replica_id = 8;
	open_refused(data, &join, "belongs to replica 9");
}

/* ---- damage ------------------------------------------------------------- */

Test(storage, damaged_current_file)
{
	fill_votes(5);
	char path[256];
	snprintf(path, sizeof path, "%s/CURRENT", data);
	write_file(path, "\x01garbage\xff\n");
	open_corrupt(data, &ID, "damaged or unreadable");
	cr_assert_eq(truncate(path, 0), 0);
	open_corrupt(data, &ID, "damaged or unreadable");
}

/* A damaged database that never was a lockd store (no OPTIONS file naming
 * lockd's column families) is refused, not reported as lockd's corrupt
 * records (which the daemon would move aside). */
Test(storage, a_damaged_database_that_was_never_ours_is_refused)
{
	char path[256];
	cr_assert_eq(mkdir(data, 0700), 0);
	snprintf(path, sizeof path, "%s/CURRENT", data);
	write_file(path, "x\n");
	open_refused(data, &ID, "does not look like a lockd data directory");
}

Test(storage, truncated_manifest)
{
	fill_votes(5);
	char path[512];
	cr_assert_gt(find_file(data, "MANIFEST-", "", path, sizeof path), 0);
	cr_assert_eq(truncate(path, 0), 0);
	open_corrupt(data, &ID, data);
}

Test(storage, garbled_manifest)
{
	fill_votes(5);
	char path[512];
	long size = find_file(data, "MANIFEST-", "", path, sizeof path);
	cr_assert_gt(size, 0);
	garble(path, 0, (size_t)size);
	open_corrupt(data, &ID, data);
}

Test(storage, garbled_vote_in_the_middle_of_the_wal)
{
	/* A synced vote damaged on disk must not vanish silently with every
	 * vote after it: a checksum mismatch fails the open. */
	static const char marker[] = "lockd-wal-marker";
	ds_store *s = open_ok(data, &ID);
	for (uint64_t slot = 1; slot <= 50; slot++) {
		px_record r = mkvote(slot, 4);
		if (slot == 25) {
			px_cmd c = {.client_id = 1,
				    .seq = 1,
				    .len = sizeof marker - 1,
				    .data = (const uint8_t *)marker};
			px_value_unref(r.value);
			r.value = px_value_new(&c, 1);
		}
		write_ok(s, &r, 1, true);
		px_record_clear(&r);
	}
	ds_close(s);

	char path[512];
	long size = find_file(data, "", ".log", path, sizeof path);
	cr_assert_gt(size, 1000, "expected the votes in the WAL");
	FILE *f = fopen(path, "rb");
	cr_assert_not_null(f);
	char *buf = malloc((size_t)size);
	cr_assert_not_null(buf);
	cr_assert_eq(fread(buf, 1, (size_t)size, f), (size_t)size);
	fclose(f);
	char *at = memmem(buf, (size_t)size, marker, sizeof marker - 1);
	cr_assert_not_null(at, "vote 25 not found in the WAL");
	long off = at - buf;
	free(buf);
	garble(path, off + 3, 4);
	open_corrupt(data, &ID, "Corruption");
	open_corrupt(data, &ID, data);
}

Test(storage, torn_last_wal_record_is_dropped)
{
	/* A write cut short by a crash never returned, so nobody was told it
	 * was durable: recovery drops it and keeps everything before it. */
	fill_votes(20);
	/* A crash, not the clean close fill_votes made: no record of how
	 * far the close synced. */
	char path[512];
	snprintf(path, sizeof path, "%s/LOCKD-SYNCED", data);
	cr_assert_eq(unlink(path), 0);
	long size = find_file(data, "", ".log", path, sizeof path);
	cr_assert_gt(size, 0);
	cr_assert_eq(truncate(path, size - 10), 0);
	ds_store *s = open_ok(data, &ID);
	loaded l = load_ok(s);
	cr_assert_eq(l.n, 19);
	for (uint64_t i = 0; i < 19; i++) {
		px_record want = mkvote(i + 1, 4);
		expect_same(&l.recs[i], &want);
		px_record_clear(&want);
	}
	loaded_free(&l);
	ds_close(s);
}

/* The replica stopped cleanly, so every vote was synced; a WAL cut to half
 * its length afterwards must not come back as an older state. */
Test(storage, a_wal_cut_short_after_a_clean_stop_is_caught)
{
	fill_votes(60);
	char path[512];
	long size = find_file(data, "", ".log", path, sizeof path);
	cr_assert_gt(size, 1000);
	cr_assert_eq(truncate(path, size / 2), 0);
	open_corrupt(data, &ID, "lost records that were synced");
}

/* The same cut, after a crash: the store still knows how far it had
 * synced a while ago (at its first synced write, here), so a cut that
 * reaches below that is caught too. */
Test(storage, a_wal_cut_below_what_was_synced_before_a_crash_is_caught)
{
	ds_store *s = open_ok(data, &ID);
	for (uint64_t slot = 1; slot <= 60; slot++) {
		px_record r = mkvote(slot, 4);
		write_ok(s, &r, 1, true);
		px_record_clear(&r);
	}
	/* No close: copy the directory as a crash leaves it (RocksDB's
	 * files, the WAL and the synced-sequence file as they are now). */
	char crashed[128], cmd[512];
	snprintf(crashed, sizeof crashed, "%s/crashed", tmp);
	snprintf(cmd, sizeof cmd, "cp -a %s %s && rm -f %s/LOCK", data, crashed,
		 crashed);
	cr_assert_eq(system(cmd), 0);
	ds_close(s);
	char path[512];
	long size = find_file(crashed, "", ".log", path, sizeof path);
	cr_assert_gt(size, 1000);
	cr_assert_eq(truncate(path, 200), 0); /* below the first vote or so */
	open_corrupt(crashed, &ID, "lost records that were synced");
}

Test(storage, garbled_sst)
{
	fill_votes(200);
	ds_close(open_ok(data, &ID)); /* recovery writes the .sst files */
	char path[512];
	long size = find_file(data, "", ".sst", path, sizeof path);
	cr_assert_gt(size, 2000);
	garble(path, size / 4, 64);
	expect_damage_noticed();
}

Test(storage, truncated_sst)
{
	fill_votes(200);
	ds_close(open_ok(data, &ID));
	char path[512];
	long size = find_file(data, "", ".sst", path, sizeof path);
	cr_assert_gt(size, 0);
	cr_assert_eq(truncate(path, size / 2), 0);
	expect_damage_noticed();
}

Test(storage, damaged_ledger_record)
{
	fill_votes(5);
	rocksdb_column_family_handle_t *cf[5];
	rocksdb_t *db = raw_open(data, LOCKD_CFS, 5, cf);
	uint8_t k[8];
	be64(k, 3);
	raw_put(db, cf[3], k, 8, "\xff\xff\xff", 3);
	raw_close(db, cf, 5);

	ds_store *s = open_ok(data, &ID);
	loaded l = {0};
	int rv = ds_load(s, collect, &l, err, sizeof err);
	cr_assert_eq(rv, DS_CORRUPT, "%d %s", rv, err);
	cr_assert(strstr(err, "ledger record at slot 3") != NULL, "%s", err);
	cr_assert(strstr(err, "is damaged") != NULL, "%s", err);
	cr_assert(strstr(err, "checksum") != NULL, "%s", err);
	cr_assert_eq(l.n, 2); /* slots 1 and 2 came first */
	loaded_free(&l);
	ds_close(s);
}

Test(storage, vote_under_the_wrong_slot)
{
	/* A well-formed vote for slot 9 stored under slot 4. */
	px_record v = mkvote(9, 1);
	ds_store *s = open_ok(data, &ID);
	write_ok(s, &v, 1, true);
	ds_close(s);
	px_record_clear(&v);

	rocksdb_column_family_handle_t *cf[5];
	rocksdb_t *db = raw_open(data, LOCKD_CFS, 5, cf);
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	uint8_t k9[8], k4[8];
	be64(k9, 9);
	be64(k4, 4);
	char *rerr = NULL;
	size_t len;
	char *val = rocksdb_get_cf(db, ro, cf[3], (char *)k9, 8, &len, &rerr);
	cr_assert_not_null(val);
	raw_put(db, cf[3], k4, 8, val, len);
	rocksdb_free(val);
	rocksdb_readoptions_destroy(ro);
	raw_close(db, cf, 5);

	/* The checksum covers the key: the copy fails it. */
	s = open_ok(data, &ID);
	loaded l = {0};
	cr_assert_eq(ds_load(s, collect, &l, err, sizeof err), DS_CORRUPT, "%s",
		     err);
	cr_assert(strstr(err, "ledger record at slot 4") &&
			  strstr(err, "checksum") && strstr(err, data),
		  "%s", err);
	cr_assert_eq(l.n, 0, "nothing before slot 4");
	loaded_free(&l);
	ds_close(s);
}

Test(storage, damaged_snapshot_record)
{
	ds_store *s = open_ok(data, &ID);
	ds_close(s);
	rocksdb_column_family_handle_t *cf[5];
	rocksdb_t *db = raw_open(data, LOCKD_CFS, 5, cf);
	raw_put(db, cf[4], "snapshot", 8, "\x08\x09\x0a", 3);
	raw_close(db, cf, 5);
	open_corrupt(data, &ID, "snapshot record in");
}

/* ---- checksums ---------------------------------------------------------- */

/* Reads the raw value under key in column family cf (index in LOCKD_CFS),
 * lets edit change it, and writes it back under key2 in cf2 (the same key
 * and family when key2 is NULL). */
static void tamper(int cf, const void *key, size_t klen, int cf2,
		   const void *key2, size_t klen2,
		   void (*edit)(char *v, size_t len))
{
	rocksdb_column_family_handle_t *h[5];
	rocksdb_t *db = raw_open(data, LOCKD_CFS, 5, h);
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	char *rerr = NULL;
	size_t len;
	char *v = rocksdb_get_cf(db, ro, h[cf], key, klen, &len, &rerr);
	cr_assert_null(rerr);
	cr_assert_not_null(v, "nothing stored under that key");
	if (edit != NULL)
		edit(v, len);
	if (key2 == NULL) {
		key2 = key;
		klen2 = klen;
	}
	raw_put(db, h[cf2], key2, klen2, v, len);
	rocksdb_free(v);
	rocksdb_readoptions_destroy(ro);
	raw_close(db, h, 5);
}

static void flip_middle(char *v, size_t len)
{
	v[len / 2] ^= 0x10;
}

static void flip_last(char *v, size_t len)
{
	v[len - 1] ^= 0x01; /* the checksum itself */
}

/* A store with a promise, votes 1..4 and a chosen hint for slot 2. */
static void fill_all_kinds(void)
{
	ds_store *s = open_ok(data, &ID);
	px_record recs[6] = {mkpromise(8),
			     mkvote(1, 3),
			     mkvote(2, 3),
			     mkvote(3, 3),
			     mkvote(4, 3),
			     {.type = PX_REC_CHOSEN,
			      .slot = 2,
			      .ballot = {.round = 3, .id = 2}}};
	write_ok(s, recs, 6, true);
	ds_close(s);
	clear_all(recs, 6);
}

/* The load reports corruption naming needle and the directory, and passes
 * on at most max_before records first: never the damaged one. */
static void expect_load_corrupt(const char *needle, size_t max_before)
{
	ds_store *s = open_ok(data, &ID);
	loaded l = {0};
	int rv = ds_load(s, collect, &l, err, sizeof err);
	ds_close(s);
	cr_assert_eq(rv, DS_CORRUPT, "load returned %d: %s", rv, err);
	cr_assert(strstr(err, needle) != NULL, "error '%s' lacks '%s'", err,
		  needle);
	cr_assert(strstr(err, data) != NULL, "error '%s' lacks the dir", err);
	cr_assert_leq(l.n, max_before, "%zu records came before the damage",
		      l.n);
	loaded_free(&l);
	cr_log_info("corrupt as expected: %s", err);
}

Test(storage, a_flipped_byte_in_the_promise_is_caught)
{
	fill_all_kinds();
	tamper(2, "promise", 7, 2, NULL, 0, flip_middle);
	expect_load_corrupt("the promise record", 0);
	cr_assert(strstr(err, "key 'promise'") != NULL, "%s", err);
}

Test(storage, a_flipped_byte_in_a_vote_is_caught)
{
	fill_all_kinds();
	uint8_t k[8];
	be64(k, 3);
	tamper(3, k, 8, 3, NULL, 0, flip_middle);
	/* the promise, vote 1, vote 2 and its hint came first */
	expect_load_corrupt("ledger record at slot 3", 4);
	cr_assert(strstr(err, "checksum") != NULL, "%s", err);
}

Test(storage, a_flipped_checksum_is_caught)
{
	fill_all_kinds();
	uint8_t k[8];
	be64(k, 1);
	tamper(3, k, 8, 3, NULL, 0, flip_last);
	expect_load_corrupt("ledger record at slot 1", 1);
}

Test(storage, a_flipped_byte_in_a_chosen_hint_is_caught)
{
	fill_all_kinds();
	uint8_t k[9];
	be64(k, 2);
	k[8] = 'c';
	tamper(3, k, 9, 3, NULL, 0, flip_middle);
	expect_load_corrupt("chosen record at slot 2", 3);
}

Test(storage, a_value_in_the_wrong_column_family_is_caught)
{
	/* A well-formed promise record, but stored as the ledger's slot 9:
	 * its checksum names the acceptor family and the key "promise". */
	fill_all_kinds();
	uint8_t k[8];
	be64(k, 9);
	tamper(2, "promise", 7, 3, k, 8, NULL);
	expect_load_corrupt("ledger record at slot 9", 6);
}

Test(storage, a_flipped_byte_in_the_snapshot_is_caught_at_open)
{
	ds_store *s = open_ok(data, &ID);
	px_record snap = mksnap(7, 300);
	write_ok(s, &snap, 1, true);
	ds_close(s);
	px_record_clear(&snap);
	tamper(4, "snapshot", 8, 4, NULL, 0, flip_middle);
	open_corrupt(data, &ID, "the snapshot record in");
	open_corrupt(data, &ID, "checksum");
}

/* A snapshot written in parts (ds_write_snapshot_later): a flipped byte
 * in a part, or in the head, is caught. */
static void write_parts_snapshot(uint64_t base)
{
	ds_store *s = open_ok(data, &ID);
	cr_assert_eq(ds_lazy_snapshots(s, err, sizeof err), 0, "%s", err);
	px_record snap = mksnap(base, 3000);
	ds_write_snapshot_later(s, &snap);
	ds_close(s);
	px_record_clear(&snap);
}

Test(storage, a_flipped_byte_in_a_snapshot_part_is_caught)
{
	write_parts_snapshot(7);
	uint8_t k[sizeof "snapshot-part" - 1 + 12];
	memcpy(k, "snapshot-part", sizeof "snapshot-part" - 1);
	be64(k + sizeof "snapshot-part" - 1, 7);
	memset(k + sizeof "snapshot-part" - 1 + 8, 0, 4);
	tamper(4, k, sizeof k, 4, NULL, 0, flip_middle);
	expect_load_corrupt("part 0 of 1 is damaged", 0);
}

Test(storage, a_flipped_byte_in_a_snapshot_head_is_caught_at_open)
{
	write_parts_snapshot(7);
	tamper(4, "snapshot-head", 13, 4, NULL, 0, flip_middle);
	open_corrupt(data, &ID, "the snapshot head");
}

Test(storage, a_flipped_byte_in_a_meta_key_is_caught_at_open)
{
	ds_close(open_ok(data, &ID));
	tamper(1, "replica_id", 10, 1, NULL, 0, flip_middle);
	open_corrupt(data, &ID, "meta key 'replica_id' fails its checksum");
	/* Another replica's identity, intact, is still a refusal. */
	ds_identity other = ID;
	other.replica_id = 2;
	char other_dir[128];
	snprintf(other_dir, sizeof other_dir, "%s/other", tmp);
	ds_close(open_ok(other_dir, &ID));
	open_refused(other_dir, &other, "belongs to replica 1");
}

/* ---- failing writes ----------------------------------------------------- */

static char mnt[128]; /* a tmpfs under tmp, when the test mounts one */

static void unmount(void)
{
	if (mnt[0] != '\0')
		umount2(mnt, MNT_DETACH);
	teardown();
}

/* On a full filesystem a write fails with RocksDB's sentence; nothing of
 * it counts. Once space is back, the same batch written again succeeds
 * (the store reopens RocksDB, which otherwise refuses every later write),
 * and everything acknowledged before is still there. Needs root (tmpfs). */
Test(storage, a_write_on_a_full_disk_fails_then_succeeds_when_space_returns,
     .fini = unmount, .timeout = 60)
{
	snprintf(mnt, sizeof mnt, "%s/mnt", tmp);
	cr_assert_eq(mkdir(mnt, 0700), 0);
	if (mount("tmpfs", mnt, "tmpfs", 0, "size=4m") != 0) {
		mnt[0] = '\0';
		cr_skip_test("cannot mount a tmpfs (%s): not root?",
			     strerror(errno));
	}
	char dir[160], filler[160];
	snprintf(dir, sizeof dir, "%s/data", mnt);
	snprintf(filler, sizeof filler, "%s/filler", mnt);
	FILE *f = fopen(filler, "wb");
	cr_assert_not_null(f);
	static char block[64 * 1024];
	memset(block, 0x5a, sizeof block);
	for (int i = 0; i < 40; i++) /* 2.5 MiB of the 4 */
		cr_assert_eq(fwrite(block, 1, sizeof block, f), sizeof block);
	cr_assert_eq(fclose(f), 0);

	ds_store *s = open_ok(dir, &ID);
	px_record big = mksnap(0, 0);
	uint64_t slot = 1;
	int rv = 0;
	for (; slot < 100000; slot++) {
		px_record v = mkvote(slot, 2);
		px_cmd c = {.client_id = 1,
			    .seq = slot,
			    .len = 4000,
			    .data = (const uint8_t *)block};
		px_value_unref(v.value);
		v.value = px_value_new(&c, 1);
		big = v;
		rv = ds_write(s, &big, 1, true, err, sizeof err);
		if (rv != 0)
			break;
		px_record_clear(&big);
	}
	cr_assert_eq(rv, -1, "the disk never filled");
	cr_assert(strstr(err, "No space left on device") != NULL, "%s", err);
	cr_log_info("full after %" PRIu64 " votes: %s", slot - 1, err);

	/* Still full: the retry fails again, without crashing. */
	rv = ds_write(s, &big, 1, true, err, sizeof err);
	cr_assert_eq(rv, -1);

	cr_assert_eq(unlink(filler), 0);
	rv = ds_write(s, &big, 1, true, err, sizeof err);
	cr_assert_eq(rv, 0, "after freeing space: %s", err);
	px_record_clear(&big);
	ds_close(s);

	s = open_ok(dir, &ID);
	loaded l = load_ok(s);
	cr_assert_eq(l.n, slot, "votes 1..%" PRIu64 " are all there", slot);
	for (uint64_t i = 0; i < l.n; i++)
		cr_assert_eq(l.recs[i].slot, i + 1);
	loaded_free(&l);
	ds_close(s);
}

/* ---- speed (printed, not asserted) -------------------------------------- */

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

Test(storage, bench_synced_vote_writes, .timeout = 120)
{
	enum { N = 1000 };
	ds_store *s = open_ok(data, &ID);
	px_record r = mkvote(1, 1);
	for (int i = 0; i < 50; i++) { /* warm up */
		r.slot = (uint64_t)i + 1;
		write_ok(s, &r, 1, true);
	}
	double t0 = now_s();
	for (int i = 0; i < N; i++) {
		r.slot = (uint64_t)i + 100;
		write_ok(s, &r, 1, true);
	}
	double dt = now_s() - t0;
	px_record_clear(&r);
	ds_stats st;
	ds_stats_get(s, &st);
	cr_assert_eq(st.synced_writes, N + 50);
	ds_close(s);
	fprintf(stderr,
		"storage bench: %d synced one-vote writes: %.0f writes/s, "
		"%.1f us each (alone: --filter 'storage/bench*')\n",
		N, N / dt, dt / N * 1e6);
}
