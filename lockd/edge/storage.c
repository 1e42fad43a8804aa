/* Durable storage on RocksDB (see storage.h for the layout and contract).
 *
 * On-disk format, version 2 (STORE_FORMAT):
 *   meta      "format", "cell_id", "replica_id", "nreplicas", "incarnation":
 *             big-endian u64 ("nreplicas" is the cell the store was made
 *             for, ids 0..n-1, or 0 for a replica that joined a running
 *             cell, whose "members" then holds the encoded configuration it
 *             joined; "incarnation" is random and nonzero, drawn when the
 *             store is made, and added to a store made before it existed)
 *   acceptor  "promise": an encoded PX_REC_PROMISE record; "joined": an
 *             encoded PX_REC_JOINED record once the replica votes
 *   ledger    big-endian u64 slot: an encoded PX_REC_VOTE record for it;
 *             the slot and 'c': an encoded PX_REC_CHOSEN record for it
 *             (sorted right after the slot's vote, so that a load meets
 *             the vote first)
 *   state     "snapshot": an encoded PX_REC_SNAPSHOT record
 * Every value, meta included, is framed: the bytes above, then a
 * big-endian CRC32C over the column family's name, the key and those bytes
 * (store_put_framed, store_unframe). RocksDB's own block and WAL checksums
 * catch damage to its files; this one also catches a value that a bug, a tool
 * or a bad sector remap put under another key or column family, and damage
 * RocksDB cannot see (a bit that flipped in memory before the write was
 * checksummed is still lost; that is out of reach here). Version 1 had no
 * frame.
 *
 * Every promise and vote is answered only after a synced write, so losing
 * one that was synced would let this acceptor break P1b/P2b after a restart.
 * The WAL is therefore replayed with kTolerateCorruptedTailRecords: an
 * incomplete final record (a write cut short by a crash, which never
 * returned) is dropped, while a checksum mismatch anywhere fails the open;
 * the default point-in-time mode would silently drop everything after it.
 * The remaining gap: a damaged record header (its length) in the WAL's last
 * 32 KiB block looks like a torn tail and truncates the log silently.
 * kAbsoluteConsistency would catch that too, but would then refuse to
 * restart after any power loss that tore the final, unacknowledged write,
 * which is the common case it exists for. paranoid_checks makes RocksDB
 * refuse damaged files at open.
 *
 * RocksDB's WAL cannot tell a log cut short at a record boundary (or
 * mid-record, in tolerate mode, which is also the gap above) from one that
 * simply ended: a WAL cut to half its length while the replica was stopped
 * came back as an older state, silently. So the store also keeps, beside
 * RocksDB's files, the sequence number up to which it knows everything was
 * synced (STORE_SYNCED_FILE: written at a clean close and at most every
 * STORE_SYNCED_EVERY_S after a synced write, atomically by rename). An
 * open that recovers less than that reports DS_CORRUPT: records that
 * were synced, and may have been acknowledged, are gone. It is a lower
 * bound: a crash after it leaves it behind, never ahead.
 *
 * An ds_store is used by one thread at a time: the write batch and the
 * counters are reused without locks. */
#include "storage.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <rocksdb/c.h>

#include "bytes.h"
#include "codec.h"

#define STORE_FORMAT 2u

/* The synced-sequence file (see above): 8 bytes big-endian, then their
 * CRC32C. RocksDB leaves files it does not name alone. */
#define STORE_SYNCED_FILE "LOCKD-SYNCED"
#define STORE_SYNCED_EVERY_S 5

/* The frame's trailer: a CRC32C. */
#define STORE_CRC_BYTES 4u

/* A write batch that grew past this (a snapshot) is freed after the write
 * rather than cleared, so one snapshot does not pin its size in memory. */
#define STORE_BATCH_KEEP_BYTES (1024u * 1024u)

enum {
	STORE_CF_DEFAULT, /* RocksDB always has it; lockd leaves it empty */
	STORE_CF_META,
	STORE_CF_ACCEPTOR,
	STORE_CF_LEDGER,
	STORE_CF_STATE,
	STORE_CF_COUNT
};

/* meta comes first so that a creation cut short by a crash leaves it before
 * the others (see store_open_existing). */
static const char *const store_cf_names[STORE_CF_COUNT] = {
	"default", "meta", "acceptor", "ledger", "state"};

enum {
	STORE_META_FORMAT,
	STORE_META_CELL,
	STORE_META_REPLICA,
	STORE_META_NREPLICAS,
	STORE_META_INCARNATION, /* optional: added when missing */
	STORE_META_COUNT
};

static const char *const store_meta_keys[STORE_META_COUNT] = {
	"format", "cell_id", "replica_id", "nreplicas", "incarnation"};

/* The configuration a store that joined a running cell started from. */
static const char store_members_key[] = "members";

static const char store_promise_key[] = "promise";
/* Present once the replica votes (PX_REC_JOINED). A store without it (an
 * empty directory, or one that lost it) makes the replica recover first. */
static const char store_joined_key[] = "joined";
static const char store_snapshot_key[] = "snapshot";
/* A snapshot the writer thread wrote (ds_write_snapshot_later) lies in
 * parts, each its own synced write, so that the loop's writes, which share
 * RocksDB's WAL with it, never wait behind more than one part: under
 * "snapshot-part" + be64(base) + be32(i), the framed bytes i * PART ..
 * of the encoded PX_REC_SNAPSHOT record. The head, written last with the
 * end of the ledger records it covers, makes it the snapshot: framed
 * magic, base, the record's length and the parts' count. It takes the
 * place of "snapshot" (the batch deletes that key and older parts). */
static const char store_snap_head_key[] = "snapshot-head";
static const char store_snap_part_prefix[] = "snapshot-part";
#define STORE_SNAP_PART_BYTES (1024u * 1024u)
#define STORE_SNAP_HEAD_MAGIC 0x534e5048u /* "SNPH" */
#define STORE_SNAP_HEAD_BYTES (4u + 8u + 8u + 8u + 4u)
#define STORE_SNAP_PART_KEY_BYTES (sizeof store_snap_part_prefix - 1 + 12u)
/* Past every part's key: the prefix with its last byte one higher. */
static const char store_snap_parts_end[] = "snapshot-paru";

struct ds_store {
	char *dir;
	rocksdb_t *db;
	rocksdb_options_t *opts, *opts_state;
	rocksdb_column_family_handle_t *cf[STORE_CF_COUNT];
	rocksdb_writeoptions_t *wo, *wo_sync;
	rocksdb_readoptions_t *ro;
	rocksdb_writebatch_t *wb;
	uint64_t snapshot_base, snapshot_bytes;
	uint64_t writes, synced_writes;
	bool broken; /* a write failed: reopen before the next (store_reopen) */
	bool opened; /* ds_open succeeded */
	uint64_t synced_seq;  /* everything up to it is synced */
	uint64_t marked_seq;  /* what STORE_SYNCED_FILE says */
	uint64_t marked_at_s; /* when it was written (monotonic) */
	/* Its origin (storage.h, ds_origin). */
	bool unborn; /* empty, and opened without an identity to give it */
	uint32_t nreplicas;
	uint64_t incarnation;
	px_members members;
	/* ds_write_snapshot_later: the newest snapshot waiting for the
	 * writer thread (lazy_lock), which holds io_lock while it writes, so
	 * that a reopen or a close waits for it. */
	bool lazy_on;
	pthread_t lazy_th;
	pthread_mutex_t lazy_lock, io_lock;
	pthread_cond_t lazy_cond;
	bool lazy_have, lazy_stop, lazy_failed;
	px_record lazy_next;
	rocksdb_writebatch_t *lazy_wb;
	char lazy_err[256];
	ds_lazy_stats lazy_stats;
};

/* ---- helpers ------------------------------------------------------------ */

__attribute__((format(printf, 3, 4))) static int
store_fail(char *err, size_t errlen, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

/* As store_fail, for a record or file that fails its checks. */
__attribute__((format(printf, 3, 4))) static int
store_corrupt(char *err, size_t errlen, const char *fmt, ...)
{
	if (err != NULL && errlen > 0) {
		va_list ap;
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return DS_CORRUPT;
}

/* The ledger key of a slot's PX_REC_CHOSEN: the slot, then this byte. */
#define STORE_CHOSEN_SUFFIX 'c'

/* Fails with "<prefix>: <RocksDB's own words>" and frees rerr: with
 * DS_CORRUPT when RocksDB's status is Corruption (a checksum of its
 * own failed, a file is cut short), else -1. */
static int store_fail_rocks(char *err, size_t errlen, const char *prefix,
			    char *rerr)
{
	static const char corruption[] = "Corruption:";
	bool corrupt = rerr != NULL &&
		       strncmp(rerr, corruption, sizeof corruption - 1) == 0;
	store_fail(err, errlen, "%s: %s", prefix,
		   rerr != NULL ? rerr : "unknown RocksDB error");
	rocksdb_free(rerr);
	return corrupt ? DS_CORRUPT : -1;
}

/* CRC32C (Castagnoli, reflected 0x82f63b78), table-driven; the table is
 * built once, on first use by any store. */
static uint32_t store_crc_table[256];
static pthread_once_t store_crc_once = PTHREAD_ONCE_INIT;

static void store_crc_init(void)
{
	for (uint32_t i = 0; i < 256; i++) {
		uint32_t c = i;
		for (int k = 0; k < 8; k++)
			c = c & 1 ? (c >> 1) ^ 0x82f63b78u : c >> 1;
		store_crc_table[i] = c;
	}
}

/* Extends crc (start with 0) by len bytes. */
static uint32_t store_crc(uint32_t crc, const void *p, size_t len)
{
	pthread_once(&store_crc_once, store_crc_init);
	const uint8_t *b = p;
	crc = ~crc;
	for (size_t i = 0; i < len; i++)
		crc = store_crc_table[(crc ^ b[i]) & 0xff] ^ (crc >> 8);
	return ~crc;
}

/* The checksum of value v (without its trailer) stored under key in column
 * family cf: a value copied under another key or family does not match. */
static uint32_t store_frame_crc(int cf, const void *key, size_t keylen,
				const void *v, size_t vlen)
{
	const char *name = store_cf_names[cf];
	uint8_t klen[4];
	bytes_put_be32(klen, (uint32_t)keylen);
	uint32_t crc = store_crc(0, name, strlen(name) + 1);
	crc = store_crc(crc, klen, sizeof klen);
	crc = store_crc(crc, key, keylen);
	return store_crc(crc, v, vlen);
}

/* Checks the frame of the value v (len bytes, trailer included) stored
 * under key in cf; *plen is then the length without the trailer. */
static bool store_unframe(int cf, const void *key, size_t keylen, const char *v,
			  size_t len, size_t *plen)
{
	if (len < STORE_CRC_BYTES)
		return false;
	size_t n = len - STORE_CRC_BYTES;
	const uint8_t *t = (const uint8_t *)v + n;
	uint32_t want = bytes_get_be32(t);
	*plen = n;
	return store_frame_crc(cf, key, keylen, v, n) == want;
}

static const char *store_rec_name(px_rec_type t)
{
	switch (t) {
	case PX_REC_PROMISE:
		return "promise";
	case PX_REC_VOTE:
		return "vote";
	case PX_REC_SNAPSHOT:
		return "snapshot";
	case PX_REC_CHOSEN:
		return "chosen";
	case PX_REC_JOINED:
		return "joined";
	}
	return "unknown";
}

/* Looks key up in cf. *out is NULL when the key is absent; otherwise the
 * caller destroys it with rocksdb_pinnableslice_destroy. Pinned reads avoid
 * copying a snapshot of up to LD_SNAPSHOT_BYTES_MAX. */
static int store_get(rocksdb_t *db, const rocksdb_readoptions_t *ro,
		     rocksdb_column_family_handle_t *cf, const char *key,
		     size_t keylen, rocksdb_pinnableslice_t **out,
		     const char *dir, char *err, size_t errlen)
{
	char *rerr = NULL;
	*out = rocksdb_get_pinned_cf(db, ro, cf, key, keylen, &rerr);
	if (rerr != NULL) {
		char prefix[512];
		snprintf(prefix, sizeof prefix, "cannot read key '%s' in %s",
			 key, dir);
		*out = NULL;
		return store_fail_rocks(err, errlen, prefix, rerr);
	}
	return 0;
}

/* *empty = no key in any of the n column families. */
static int store_all_empty(rocksdb_t *db, const rocksdb_readoptions_t *ro,
			   rocksdb_column_family_handle_t *const *cf, size_t n,
			   bool *empty, const char *dir, char *err,
			   size_t errlen)
{
	*empty = true;
	for (size_t i = 0; i < n && *empty; i++) {
		rocksdb_iterator_t *it =
			rocksdb_create_iterator_cf(db, ro, cf[i]);
		rocksdb_iter_seek_to_first(it);
		*empty = !rocksdb_iter_valid(it);
		char *rerr = NULL;
		rocksdb_iter_get_error(it, &rerr);
		rocksdb_iter_destroy(it);
		if (rerr != NULL) {
			char prefix[512];
			snprintf(prefix, sizeof prefix, "cannot read %s", dir);
			return store_fail_rocks(err, errlen, prefix, rerr);
		}
	}
	return 0;
}

static int store_cf_index(const char *name)
{
	for (int i = 0; i < STORE_CF_COUNT; i++)
		if (strcmp(name, store_cf_names[i]) == 0)
			return i;
	return -1;
}

/* ---- the synced-sequence file ------------------------------------------- */

static uint64_t store_mono_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec;
}

/* Records that everything up to seq is synced. Best effort: a failure
 * (a full disk) leaves the previous file, still a true lower bound. */
static void store_mark_synced(ds_store *s, uint64_t seq)
{
	if (seq <= s->marked_seq)
		return;
	char path[4096], tmp[4096];
	snprintf(path, sizeof path, "%s/" STORE_SYNCED_FILE, s->dir);
	snprintf(tmp, sizeof tmp, "%s/" STORE_SYNCED_FILE ".tmp", s->dir);
	uint8_t buf[8 + STORE_CRC_BYTES];
	bytes_put_be64(buf, seq);
	bytes_put_be32(buf + 8, store_crc(0, buf, 8));
	int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	bool ok = write(fd, buf, sizeof buf) == (ssize_t)sizeof buf &&
		  fsync(fd) == 0;
	ok = close(fd) == 0 && ok;
	if (!ok || rename(tmp, path) != 0) {
		unlink(tmp);
		return;
	}
	int dfd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		fsync(dfd);
		close(dfd);
	}
	s->marked_seq = seq;
	s->marked_at_s = store_mono_s();
}

/* Compares what RocksDB recovered with the synced-sequence file. */
static int store_check_synced(ds_store *s, char *err, size_t errlen)
{
	char path[4096];
	snprintf(path, sizeof path, "%s/" STORE_SYNCED_FILE, s->dir);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0; /* a store that never closed cleanly yet */
		return store_fail(err, errlen, "cannot read %s: %s", path,
				  strerror(errno));
	}
	uint8_t buf[8 + STORE_CRC_BYTES + 1];
	ssize_t n = read(fd, buf, sizeof buf);
	close(fd);
	if (n != 8 + STORE_CRC_BYTES ||
	    store_crc(0, buf, 8) != bytes_get_be32(buf + 8))
		return store_corrupt(err, errlen,
				     "%s is damaged: its file %s fails its "
				     "checksum",
				     s->dir, STORE_SYNCED_FILE);
	uint64_t want = bytes_get_be64(buf);
	uint64_t have = rocksdb_get_latest_sequence_number(s->db);
	if (have < want)
		return store_corrupt(
			err, errlen,
			"%s lost records that were synced: its database "
			"recovered up to sequence number %" PRIu64
			", but it had synced up to %" PRIu64
			" (a write-ahead log cut short or a disk that lied "
			"about a sync)",
			s->dir, have, want);
	s->marked_seq = want;
	s->synced_seq = have;
	return 0;
}

/* ---- opening ------------------------------------------------------------ */

enum store_dir_kind { STORE_DIR_FRESH, STORE_DIR_ROCKSDB };

/* A missing or empty directory is fresh; one holding a RocksDB database
 * (a CURRENT file) is inspected further; anything else is refused, so that
 * a mistyped path never turns someone's files into a lockd store. */
static int store_classify(const char *dir, enum store_dir_kind *kind, char *err,
			  size_t errlen)
{
	struct stat st;
	if (stat(dir, &st) != 0) {
		if (errno == ENOENT) {
			*kind = STORE_DIR_FRESH;
			return 0;
		}
		return store_fail(err, errlen, "cannot use %s: %s", dir,
				  strerror(errno));
	}
	if (!S_ISDIR(st.st_mode))
		return store_fail(err, errlen,
				  "%s is not a directory; refusing to use it",
				  dir);
	DIR *d = opendir(dir);
	if (d == NULL)
		return store_fail(err, errlen, "cannot read %s: %s", dir,
				  strerror(errno));
	bool entries = false, current = false;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		entries = true;
		if (strcmp(e->d_name, "CURRENT") == 0)
			current = true;
	}
	closedir(d);
	if (!entries) {
		*kind = STORE_DIR_FRESH;
		return 0;
	}
	if (!current)
		return store_fail(err, errlen,
				  "%s is not a lockd data directory (it is not "
				  "empty and holds no RocksDB database); "
				  "refusing to use it",
				  dir);
	*kind = STORE_DIR_ROCKSDB;
	return 0;
}

/* An existing database without a meta column family is either someone
 * else's or a lockd store whose creation a crash cut short before meta
 * existed. Only the latter, recognisable by holding nothing at all, is
 * taken over. It is inspected read-only: a foreign database is left as it
 * was found. */
static int store_check_foreign(const char *dir, rocksdb_options_t *opts,
			       char **names, size_t n, char *err, size_t errlen)
{
	const rocksdb_options_t *cfopts[STORE_CF_COUNT];
	rocksdb_column_family_handle_t *cf[STORE_CF_COUNT] = {0};
	char *rerr = NULL;

	for (size_t i = 0; i < n; i++)
		cfopts[i] = opts;
	rocksdb_t *db = rocksdb_open_for_read_only_column_families(
		opts, dir, (int)n, (const char *const *)names, cfopts, cf, 0,
		&rerr);
	if (db == NULL) {
		char prefix[512];
		snprintf(prefix, sizeof prefix, "cannot open %s", dir);
		return store_fail_rocks(err, errlen, prefix, rerr);
	}
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	bool empty;
	int rv = store_all_empty(db, ro, cf, n, &empty, dir, err, errlen);
	rocksdb_readoptions_destroy(ro);
	for (size_t i = 0; i < n; i++)
		rocksdb_column_family_handle_destroy(cf[i]);
	rocksdb_close(db);
	if (rv != 0)
		return rv;
	if (!empty)
		return store_fail(err, errlen,
				  "%s is not a lockd data directory (no meta "
				  "column family); refusing to use it",
				  dir);
	return 0;
}

/* Checks the column families of the database in dir before it is opened
 * for writing, which would create the missing ones. */
static int store_check_existing(const char *dir, rocksdb_options_t *opts,
				char *err, size_t errlen)
{
	char *rerr = NULL;
	size_t n = 0;
	char **names = rocksdb_list_column_families(opts, dir, &n, &rerr);
	if (rerr != NULL) {
		/* Even then RocksDB returns an (empty) list to free. */
		rocksdb_list_column_families_destroy(names, n);
		char prefix[512];
		snprintf(prefix, sizeof prefix,
			 "cannot open %s: its RocksDB database is damaged or "
			 "unreadable",
			 dir);
		return store_fail_rocks(err, errlen, prefix, rerr);
	}
	int rv = 0;
	bool meta = false;
	for (size_t i = 0; i < n && rv == 0; i++) {
		int k = store_cf_index(names[i]);
		if (k < 0)
			rv = store_fail(err, errlen,
					"%s is not a lockd data directory (it "
					"has a column family '%s', which lockd "
					"does not use); refusing to use it",
					dir, names[i]);
		meta = meta || k == STORE_CF_META;
	}
	if (rv == 0 && !meta)
		rv = store_check_foreign(dir, opts, names, n, err, errlen);
	rocksdb_list_column_families_destroy(names, n);
	return rv;
}

/* Whether dir, whose database RocksDB reports damaged before lockd could
 * read its meta column family, was a lockd store: RocksDB's OPTIONS-*
 * files (text) name its column families. Only then is the damage this
 * replica's lost memory (DS_CORRUPT, which the daemon answers by
 * moving the directory aside); anything else is refused as not ours. */
static bool store_was_ours(const char *dir)
{
	DIR *d = opendir(dir);
	if (d == NULL)
		return false;
	bool ours = false;
	struct dirent *e;
	while (!ours && (e = readdir(d)) != NULL) {
		if (strncmp(e->d_name, "OPTIONS-", 8) != 0)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
		FILE *f = fopen(path, "r");
		if (f == NULL)
			continue;
		char line[256];
		int seen = 0;
		while (fgets(line, sizeof line, f) != NULL)
			for (int i = STORE_CF_META; i < STORE_CF_COUNT; i++) {
				char want[64];
				snprintf(want, sizeof want,
					 "[CFOptions \"%s\"]",
					 store_cf_names[i]);
				if (strncmp(line, want, strlen(want)) == 0)
					seen |= 1 << i;
			}
		fclose(f);
		ours = seen ==
		       (((1 << STORE_CF_COUNT) - 1) & ~(1 << STORE_CF_DEFAULT));
	}
	closedir(d);
	return ours;
}

/* Reads meta key k into *v. *found = false when absent. */
static int store_meta_get(ds_store *s, int k, uint64_t *v, bool *found,
			  char *err, size_t errlen)
{
	rocksdb_pinnableslice_t *ps;
	const char *key = store_meta_keys[k];
	int rv = store_get(s->db, s->ro, s->cf[STORE_CF_META], key, strlen(key),
			   &ps, s->dir, err, errlen);
	if (rv != 0)
		return rv;
	*found = ps != NULL;
	if (ps == NULL)
		return 0;
	size_t len, plen;
	const char *p = rocksdb_pinnableslice_value(ps, &len);
	if (k == STORE_META_FORMAT && len == 8 &&
	    bytes_get_be64((const uint8_t *)p) != STORE_FORMAT) {
		/* Another version's unframed format key: say which. */
		*v = bytes_get_be64((const uint8_t *)p);
	} else if (len != 8 + STORE_CRC_BYTES) {
		rv = store_corrupt(err, errlen,
				   "%s is damaged: its meta key '%s' holds %zu "
				   "bytes, not %u",
				   s->dir, key, len, 8 + STORE_CRC_BYTES);
	} else if (!store_unframe(STORE_CF_META, key, strlen(key), p, len,
				  &plen)) {
		rv = store_corrupt(err, errlen,
				   "%s is damaged: its meta key '%s' fails its "
				   "checksum",
				   s->dir, key);
	} else {
		*v = bytes_get_be64((const uint8_t *)p);
	}
	rocksdb_pinnableslice_destroy(ps);
	return rv;
}

static void store_put_framed(ds_store *s, rocksdb_writebatch_t *wb, int cf,
			     const void *key, size_t keylen, const uint8_t *v,
			     size_t vlen);

/* A random nonzero 64-bit incarnation (getrandom). */
static int store_draw_incarnation(uint64_t *out, const char *dir, char *err,
				  size_t errlen)
{
	uint64_t v = 0;
	while (v == 0) {
		ssize_t n = getrandom(&v, sizeof v, 0);
		if (n != (ssize_t)sizeof v)
			return store_fail(err, errlen,
					  "cannot draw an incarnation for %s: "
					  "getrandom failed (%s)",
					  dir, strerror(errno));
	}
	*out = v;
	return 0;
}

static void store_meta_put(ds_store *s, int k, uint64_t v, uint8_t *buf)
{
	const char *key = store_meta_keys[k];
	bytes_put_be64(buf, v);
	bytes_put_be32(buf + 8, store_frame_crc(STORE_CF_META, key, strlen(key),
						buf, 8));
	rocksdb_writebatch_put_cf(s->wb, s->cf[STORE_CF_META], key, strlen(key),
				  (const char *)buf, 8 + STORE_CRC_BYTES);
}

static int store_meta_write(ds_store *s, const char *what, char *err,
			    size_t errlen)
{
	char *rerr = NULL;
	rocksdb_write(s->db, s->wo_sync, s->wb, &rerr);
	rocksdb_writebatch_clear(s->wb);
	if (rerr != NULL) {
		char prefix[512];
		snprintf(prefix, sizeof prefix, "cannot %s %s", what, s->dir);
		return store_fail_rocks(err, errlen, prefix, rerr);
	}
	return 0;
}

/* Writes a new store's identity in one synced batch: its meta keys, a
 * fresh incarnation and, for a store that joins a running cell, the
 * configuration it joins. */
static int store_meta_init(ds_store *s, const ds_identity *id, char *err,
			   size_t errlen)
{
	uint64_t inc = 0;
	if (store_draw_incarnation(&inc, s->dir, err, errlen) != 0)
		return -1;
	const uint64_t v[STORE_META_COUNT] = {
		STORE_FORMAT, id->cell_id, id->replica_id, id->nreplicas, inc};
	uint8_t buf[STORE_META_COUNT][8 + STORE_CRC_BYTES];
	uint8_t *mbuf = NULL;
	size_t mlen = 0;
	if (id->nreplicas == 0) {
		int crv = cd_members_encode(id->members, &mbuf, &mlen);
		if (crv != 0)
			return store_fail(err, errlen,
					  "cannot store the configuration "
					  "replica %" PRIu32 " joins in %s: %s",
					  id->replica_id, s->dir,
					  cd_strerror(crv));
	}
	rocksdb_writebatch_clear(s->wb);
	for (int k = 0; k < STORE_META_COUNT; k++)
		store_meta_put(s, k, v[k], buf[k]);
	if (mbuf != NULL)
		store_put_framed(s, s->wb, STORE_CF_META, store_members_key,
				 sizeof store_members_key - 1, mbuf, mlen);
	free(mbuf);
	int rv = store_meta_write(s, "initialise", err, errlen);
	if (rv != 0)
		return rv;
	s->unborn = false;
	s->nreplicas = id->nreplicas;
	s->incarnation = inc;
	if (id->nreplicas == 0)
		s->members = *id->members;
	return 0;
}

/* Reads the configuration a joined store started from. */
static int store_members_load(ds_store *s, char *err, size_t errlen)
{
	rocksdb_pinnableslice_t *ps;
	int rv = store_get(s->db, s->ro, s->cf[STORE_CF_META],
			   store_members_key, sizeof store_members_key - 1, &ps,
			   s->dir, err, errlen);
	if (rv != 0)
		return rv;
	if (ps == NULL)
		return store_corrupt(err, errlen,
				     "%s is damaged: it joined a running cell "
				     "but holds no configuration (meta key "
				     "'%s')",
				     s->dir, store_members_key);
	size_t len, plen;
	const char *p = rocksdb_pinnableslice_value(ps, &len);
	if (!store_unframe(STORE_CF_META, store_members_key,
			   sizeof store_members_key - 1, p, len, &plen)) {
		rv = store_corrupt(err, errlen,
				   "%s is damaged: its meta key '%s' fails its "
				   "checksum",
				   s->dir, store_members_key);
	} else {
		int crv = cd_members_decode((const uint8_t *)p, plen,
					    &s->members);
		if (crv != 0)
			rv = store_corrupt(err, errlen,
					   "%s is damaged: its meta key '%s' "
					   "does not decode: %s",
					   s->dir, store_members_key,
					   cd_strerror(crv));
	}
	rocksdb_pinnableslice_destroy(ps);
	return rv;
}

/* Takes a new store over (meta empty and nothing else stored) or checks that
 * the stored identity is id's. */
static int store_meta_check(ds_store *s, const ds_identity *id, char *err,
			    size_t errlen)
{
	uint64_t v[STORE_META_COUNT] = {0};
	bool found[STORE_META_COUNT];

	for (int k = 0; k < STORE_META_COUNT; k++) {
		int rv = store_meta_get(s, k, &v[k], &found[k], err, errlen);
		if (rv != 0)
			return rv;
	}
	if (!found[STORE_META_FORMAT]) {
		bool empty;
		int rv = store_all_empty(s->db, s->ro, s->cf, STORE_CF_COUNT,
					 &empty, s->dir, err, errlen);
		if (rv != 0)
			return rv;
		if (!empty)
			return store_fail(err, errlen,
					  "%s is not a lockd data directory "
					  "(no format version in its meta "
					  "column family); refusing to use it",
					  s->dir);
		if (id->nreplicas == 0 && id->members == NULL) {
			/* ds_adopt gives it one later. */
			s->unborn = true;
			return 0;
		}
		return store_meta_init(s, id, err, errlen);
	}
	if (v[STORE_META_FORMAT] != STORE_FORMAT)
		return store_fail(err, errlen,
				  "%s holds lockd data format version %" PRIu64
				  "; this lockd reads version %u only; "
				  "refusing to use it",
				  s->dir, v[STORE_META_FORMAT], STORE_FORMAT);
	for (int k = STORE_META_CELL; k < STORE_META_INCARNATION; k++)
		if (!found[k])
			return store_fail(err, errlen,
					  "%s is not a lockd data directory "
					  "(no %s in its meta column family); "
					  "refusing to use it",
					  s->dir, store_meta_keys[k]);
	uint64_t cell = v[STORE_META_CELL];
	uint64_t want_cell = id->cell_id != 0 ? id->cell_id : cell;
	if (cell != want_cell || v[STORE_META_REPLICA] != id->replica_id)
		return store_fail(
			err, errlen,
			"%s belongs to replica %" PRIu64
			" of cell 0x%016" PRIx64 ", not replica %" PRIu32
			" of cell 0x%016" PRIx64 "; refusing to use it",
			s->dir, v[STORE_META_REPLICA], cell, id->replica_id,
			want_cell);
	/* Not compared with id->nreplicas: the cell's membership changes by
	 * decree (paxos.h), so the store's origin, not the flags, says where
	 * its ledger starts. */
	if (v[STORE_META_NREPLICAS] > LD_REPLICAS_MAX ||
	    (v[STORE_META_NREPLICAS] > 0 &&
	     v[STORE_META_REPLICA] >= v[STORE_META_NREPLICAS]))
		return store_corrupt(
			err, errlen,
			"%s is damaged: its meta says replica "
			"%" PRIu64 " of a cell of %" PRIu64 " replicas",
			s->dir, v[STORE_META_REPLICA], v[STORE_META_NREPLICAS]);
	s->nreplicas = (uint32_t)v[STORE_META_NREPLICAS];
	if (s->nreplicas == 0) {
		int rv = store_members_load(s, err, errlen);
		if (rv != 0)
			return rv;
	}
	if (found[STORE_META_INCARNATION] && v[STORE_META_INCARNATION] != 0) {
		s->incarnation = v[STORE_META_INCARNATION];
	} else {
		/* A store made before incarnations: it gets one now, once. */
		uint8_t buf[8 + STORE_CRC_BYTES];
		if (store_draw_incarnation(&s->incarnation, s->dir, err,
					   errlen) != 0)
			return -1;
		rocksdb_writebatch_clear(s->wb);
		store_meta_put(s, STORE_META_INCARNATION, s->incarnation, buf);
		int rv = store_meta_write(s, "give an incarnation to", err,
					  errlen);
		if (rv != 0)
			return rv;
	}
	return 0;
}

static void store_snap_part_key(uint8_t *key, uint64_t base, uint32_t i)
{
	size_t n = sizeof store_snap_part_prefix - 1;
	memcpy(key, store_snap_part_prefix, n);
	bytes_put_be64(key + n, base);
	bytes_put_be32(key + n + 8, i);
}

/* The head of a snapshot written in parts. */
typedef struct snap_head {
	uint64_t base, len, snap_len;
	uint32_t nparts;
} snap_head;

/* Reads the head; *have false when there is none. */
static int store_snap_head_get(ds_store *s, bool *have, snap_head *h, char *err,
			       size_t errlen)
{
	*have = false;
	rocksdb_pinnableslice_t *ps;
	int rv = store_get(s->db, s->ro, s->cf[STORE_CF_STATE],
			   store_snap_head_key, sizeof store_snap_head_key - 1,
			   &ps, s->dir, err, errlen);
	if (rv != 0 || ps == NULL)
		return rv;
	size_t len, plen;
	const char *p = rocksdb_pinnableslice_value(ps, &len);
	const uint8_t *u = (const uint8_t *)p;
	bool ok =
		store_unframe(STORE_CF_STATE, store_snap_head_key,
			      sizeof store_snap_head_key - 1, p, len, &plen) &&
		plen == STORE_SNAP_HEAD_BYTES &&
		bytes_get_be32(u) == STORE_SNAP_HEAD_MAGIC;
	if (ok) {
		h->base = bytes_get_be64(u + 4);
		h->len = bytes_get_be64(u + 12);
		h->snap_len = bytes_get_be64(u + 20);
		h->nparts = bytes_get_be32(u + 28);
		ok = h->len > 0 &&
		     h->len <= (uint64_t)LD_SNAPSHOT_BYTES_MAX + 4096u &&
		     h->snap_len < h->len &&
		     h->nparts == (h->len + STORE_SNAP_PART_BYTES - 1) /
					  STORE_SNAP_PART_BYTES;
	}
	rocksdb_pinnableslice_destroy(ps);
	if (!ok)
		return store_corrupt(err, errlen,
				     "the snapshot head in %s is damaged (key "
				     "'%s' in column family 'state')",
				     s->dir, store_snap_head_key);
	*have = true;
	return 0;
}

/* Reads the parts h names into one record (the caller clears it). */
static int store_snap_parts_read(ds_store *s, const snap_head *h,
				 px_record *rec, char *err, size_t errlen)
{
	uint8_t *buf = malloc(h->len);
	if (buf == NULL)
		return store_fail(err, errlen,
				  "out of memory for a snapshot of %" PRIu64
				  " bytes",
				  h->len);
	int rv = 0;
	for (uint32_t i = 0; rv == 0 && i < h->nparts; i++) {
		uint8_t key[STORE_SNAP_PART_KEY_BYTES];
		store_snap_part_key(key, h->base, i);
		rocksdb_pinnableslice_t *ps;
		rv = store_get(s->db, s->ro, s->cf[STORE_CF_STATE],
			       (const char *)key, sizeof key, &ps, s->dir, err,
			       errlen);
		if (rv != 0)
			break;
		size_t off = (size_t)i * STORE_SNAP_PART_BYTES;
		size_t want = h->len - off < STORE_SNAP_PART_BYTES
				      ? h->len - off
				      : STORE_SNAP_PART_BYTES;
		size_t len = 0, plen = 0;
		const char *p = ps != NULL
					? rocksdb_pinnableslice_value(ps, &len)
					: NULL;
		if (ps == NULL ||
		    !store_unframe(STORE_CF_STATE, key, sizeof key, p, len,
				   &plen) ||
		    plen != want)
			rv = store_corrupt(err, errlen,
					   "the snapshot at %" PRIu64
					   " in %s is damaged: part %" PRIu32
					   " of %" PRIu32 " is %s",
					   h->base, s->dir, i, h->nparts,
					   ps == NULL ? "missing"
						      : "damaged or cut short");
		else
			memcpy(buf + off, p, want);
		if (ps != NULL)
			rocksdb_pinnableslice_destroy(ps);
	}
	if (rv == 0) {
		int crv = cd_record_decode(buf, h->len, rec);
		if (crv != 0)
			rv = store_corrupt(err, errlen,
					   "the snapshot at %" PRIu64
					   " in %s is damaged: %s",
					   h->base, s->dir, cd_strerror(crv));
		else if (rec->type != PX_REC_SNAPSHOT || rec->slot != h->base) {
			px_record_clear(rec);
			rv = store_corrupt(err, errlen,
					   "the snapshot at %" PRIu64
					   " in %s is damaged: its parts hold "
					   "another record",
					   h->base, s->dir);
		}
	}
	free(buf);
	return rv;
}

/* Learns the stored snapshot's base and size for the stats, and refuses a
 * damaged one now rather than at load. */
static int store_snapshot_scan(ds_store *s, char *err, size_t errlen)
{
	snap_head h;
	bool have;
	int hrv = store_snap_head_get(s, &have, &h, err, errlen);
	if (hrv != 0 || have) {
		if (have) {
			s->snapshot_base = h.base;
			s->snapshot_bytes = h.snap_len;
		}
		return hrv;
	}
	rocksdb_pinnableslice_t *ps;
	int rv = store_get(s->db, s->ro, s->cf[STORE_CF_STATE],
			   store_snapshot_key, sizeof store_snapshot_key - 1,
			   &ps, s->dir, err, errlen);
	if (rv != 0 || ps == NULL)
		return rv;
	size_t len, plen;
	const char *p = rocksdb_pinnableslice_value(ps, &len);
	if (!store_unframe(STORE_CF_STATE, store_snapshot_key,
			   sizeof store_snapshot_key - 1, p, len, &plen)) {
		rocksdb_pinnableslice_destroy(ps);
		return store_corrupt(err, errlen,
				     "the snapshot record in %s is damaged: "
				     "it fails its checksum (key '%s')",
				     s->dir, store_snapshot_key);
	}
	px_record rec;
	int crv = cd_record_decode((const uint8_t *)p, plen, &rec);
	rocksdb_pinnableslice_destroy(ps);
	if (crv != 0)
		return store_corrupt(err, errlen,
				     "the snapshot record in %s is damaged: %s",
				     s->dir, cd_strerror(crv));
	if (rec.type != PX_REC_SNAPSHOT)
		rv = store_corrupt(err, errlen,
				   "the snapshot record in %s is damaged: it "
				   "holds a %s record",
				   s->dir, store_rec_name(rec.type));
	s->snapshot_base = rec.slot;
	s->snapshot_bytes = rec.snap_len;
	px_record_clear(&rec);
	return rv;
}

static rocksdb_options_t *store_options(void)
{
	rocksdb_options_t *o = rocksdb_options_create();
	rocksdb_options_set_create_if_missing(o, 1);
	rocksdb_options_set_create_missing_column_families(o, 1);
	rocksdb_options_set_paranoid_checks(o, 1);
	rocksdb_options_set_wal_recovery_mode(
		o, rocksdb_tolerate_corrupted_tail_records_recovery);
	rocksdb_options_set_keep_log_file_num(o, 4);
	/* RocksDB 7.8 (Debian's build keeps its assertions) aborts the
	 * process when its info LOG, which lives in the data directory, is
	 * written again after one write to it failed: on a full disk that is
	 * the next line it logs, often from a background thread, before
	 * lockd can say anything ("Assertion `sync_without_flush_called_'
	 * failed" in WritableFileWriter). At FATAL it writes nothing there in
	 * practice, so a full disk reaches lockd as a failed write instead.
	 * lockd's own log says what went wrong. */
	rocksdb_options_set_info_log_level(o, 4 /* FATAL_LEVEL */);
	/* Flushes and compactions beside each other: a snapshot's flush must
	 * not wait for a compaction of the ledger. */
	rocksdb_options_set_max_background_jobs(o, 4);
	return o;
}

/* The state column family takes a whole snapshot at a time (75 MB for a
 * million leases). With the default two 64 MiB memtables, the second fills
 * while the first is flushed and RocksDB stops every write, the loop's
 * votes too, for the length of a flush (two seconds measured). Small
 * memtables, many of them, flush in the background as the parts come;
 * the writer thread also waits while too many wait to be flushed
 * (STORE_STATE_IMMUTABLE_MAX), so that it never reaches the stop. */
#define STORE_STATE_BUFFER_BYTES (8u * 1024u * 1024u)
#define STORE_STATE_BUFFERS 12
#define STORE_STATE_IMMUTABLE_MAX 6u

static rocksdb_options_t *store_state_options(void)
{
	rocksdb_options_t *o = store_options();
	rocksdb_options_set_write_buffer_size(o, STORE_STATE_BUFFER_BYTES);
	rocksdb_options_set_max_write_buffer_number(o, STORE_STATE_BUFFERS);
	rocksdb_options_set_min_write_buffer_number_to_merge(o, 1);
	return o;
}

/* Opens the database in s->dir with every column family of ours. */
static int store_db_open(ds_store *s, char *err, size_t errlen)
{
	/* Every existing column family is one of ours (checked by
	 * store_check_existing), so naming all of ours names every existing
	 * one, as RocksDB requires. */
	const rocksdb_options_t *cfopts[STORE_CF_COUNT];
	for (int i = 0; i < STORE_CF_COUNT; i++)
		cfopts[i] = i == STORE_CF_STATE ? s->opts_state : s->opts;
	char *rerr = NULL;
	s->db = rocksdb_open_column_families(s->opts, s->dir, STORE_CF_COUNT,
					     store_cf_names, cfopts, s->cf,
					     &rerr);
	if (s->db != NULL)
		return 0;
	memset(s->cf, 0, sizeof s->cf);
	char prefix[512];
	snprintf(prefix, sizeof prefix, "cannot open %s", s->dir);
	return store_fail_rocks(err, errlen, prefix, rerr);
}

static void store_db_close(ds_store *s)
{
	for (int i = 0; i < STORE_CF_COUNT; i++)
		if (s->cf[i] != NULL)
			rocksdb_column_family_handle_destroy(s->cf[i]);
	memset(s->cf, 0, sizeof s->cf);
	if (s->db != NULL)
		rocksdb_close(s->db);
	s->db = NULL;
}

int ds_open(const char *dir, const ds_identity *id, ds_store **out, char *err,
	    size_t errlen)
{
	*out = NULL;
	if (dir == NULL || dir[0] == '\0')
		return store_fail(err, errlen, "no data directory given");
	if (id->nreplicas > LD_REPLICAS_MAX ||
	    id->replica_id >= LD_REPLICA_IDS ||
	    (id->nreplicas > 0 && id->replica_id >= id->nreplicas))
		return store_fail(
			err, errlen,
			"cannot open %s for replica %" PRIu32 " of %" PRIu32
			": a cell starts with 1 to %d replicas, numbered "
			"from 0, and ids stay below %u",
			dir, id->replica_id, id->nreplicas, LD_REPLICAS_MAX,
			LD_REPLICA_IDS);

	enum store_dir_kind kind = STORE_DIR_FRESH;
	if (store_classify(dir, &kind, err, errlen) != 0)
		return -1;
	int rv;

	ds_store *s = calloc(1, sizeof *s);
	if (s == NULL || (s->dir = strdup(dir)) == NULL) {
		free(s);
		return store_fail(err, errlen, "cannot open %s: out of memory",
				  dir);
	}
	s->opts = store_options();
	s->opts_state = store_state_options();
	s->wo = rocksdb_writeoptions_create();
	s->wo_sync = rocksdb_writeoptions_create();
	rocksdb_writeoptions_set_sync(s->wo_sync, 1);
	s->ro = rocksdb_readoptions_create();
	s->wb = rocksdb_writebatch_create();

	if ((kind == STORE_DIR_ROCKSDB &&
	     (rv = store_check_existing(dir, s->opts, err, errlen)) != 0) ||
	    (rv = store_db_open(s, err, errlen)) != 0) {
		if (rv == DS_CORRUPT && !store_was_ours(dir)) {
			size_t n = err != NULL ? strnlen(err, errlen) : 0;
			if (n + 1 < errlen)
				snprintf(err + n, errlen - n,
					 "; it does not look like a lockd "
					 "data directory either: refusing to "
					 "use it");
			rv = -1;
		}
		ds_close(s);
		return rv;
	}
	if ((rv = store_check_synced(s, err, errlen)) != 0 ||
	    (rv = store_meta_check(s, id, err, errlen)) != 0 ||
	    (rv = store_snapshot_scan(s, err, errlen)) != 0) {
		ds_close(s);
		return rv;
	}
	s->opened = true;
	*out = s;
	return 0;
}

bool ds_unborn(const ds_store *s)
{
	return s->unborn;
}

int ds_adopt(ds_store *s, const ds_identity *id, char *err, size_t errlen)
{
	if (!s->unborn)
		return store_fail(err, errlen,
				  "%s already has an identity: it cannot take "
				  "another",
				  s->dir);
	if (id->nreplicas == 0 && id->members == NULL)
		return store_fail(err, errlen,
				  "%s needs a cell size or a configuration to "
				  "start from",
				  s->dir);
	return store_meta_init(s, id, err, errlen);
}

void ds_origin(const ds_store *s, uint32_t *nreplicas, px_members *members,
	       uint64_t *incarnation)
{
	*nreplicas = s->nreplicas;
	if (members != NULL) {
		if (s->nreplicas == 0)
			*members = s->members;
		else
			memset(members, 0, sizeof *members);
	}
	*incarnation = s->incarnation;
}

static void lazy_stop(ds_store *s);

void ds_close(ds_store *s)
{
	if (s == NULL)
		return;
	lazy_stop(s); /* the snapshot waiting is written first */
	if (s->db != NULL && s->opened && !s->broken) {
		/* A clean close: sync what the last writes left unsynced, and
		 * say how far that is. */
		char *rerr = NULL;
		rocksdb_flush_wal(s->db, 1, &rerr);
		if (rerr == NULL)
			store_mark_synced(
				s, rocksdb_get_latest_sequence_number(s->db));
		rocksdb_free(rerr);
	}
	store_db_close(s);
	if (s->wb != NULL)
		rocksdb_writebatch_destroy(s->wb);
	if (s->ro != NULL)
		rocksdb_readoptions_destroy(s->ro);
	if (s->wo_sync != NULL)
		rocksdb_writeoptions_destroy(s->wo_sync);
	if (s->wo != NULL)
		rocksdb_writeoptions_destroy(s->wo);
	if (s->opts != NULL)
		rocksdb_options_destroy(s->opts);
	if (s->opts_state != NULL)
		rocksdb_options_destroy(s->opts_state);

	free(s->dir);
	free(s);
}

/* ---- writing ------------------------------------------------------------ */

/* Puts the framed value v under key in cf: v, then its checksum (two
 * slices, so a large snapshot is not copied once more). */
static void store_put_framed(ds_store *s, rocksdb_writebatch_t *wb, int cf,
			     const void *key, size_t keylen, const uint8_t *v,
			     size_t vlen)
{
	uint8_t crc[STORE_CRC_BYTES];
	bytes_put_be32(crc, store_frame_crc(cf, key, keylen, v, vlen));
	const char *k = key;
	const char *parts[2] = {(const char *)v, (const char *)crc};
	size_t sizes[2] = {vlen, sizeof crc};
	rocksdb_writebatch_putv_cf(wb, s->cf[cf], 1, &k, &keylen, 2, parts,
				   sizes);
}

/* Into wb: the end of the ledger records a snapshot at base covers, votes
 * and hints <= base: [0, base + 1). For base = 2^64 - 1 the end is 9
 * bytes, after every 8-byte key. */
static void store_drop_ledger_through(ds_store *s, rocksdb_writebatch_t *wb,
				      uint64_t base)
{
	uint8_t lo[8] = {0}, hi[9] = {0};
	size_t hilen = 8;
	if (base == UINT64_MAX) {
		memset(hi, 0xff, 8);
		hilen = 9;
	} else {
		bytes_put_be64(hi, base + 1);
	}
	rocksdb_writebatch_delete_range_cf(wb, s->cf[STORE_CF_LEDGER],
					   (const char *)lo, sizeof lo,
					   (const char *)hi, hilen);
}

/* Adds rec to the batch. The batch copies the bytes, so the encoding is
 * freed at once. */
static int store_batch_add(ds_store *s, rocksdb_writebatch_t *wb,
			   const px_record *rec, size_t *bytes, char *err,
			   size_t errlen)
{
	uint8_t *buf;
	size_t len;
	int crv = cd_record_encode(rec, &buf, &len);
	if (crv != 0)
		return store_fail(
			err, errlen,
			"cannot store the %s record for slot %" PRIu64 ": %s",
			store_rec_name(rec->type), rec->slot, cd_strerror(crv));
	uint8_t key[9];
	switch (rec->type) {
	case PX_REC_PROMISE:
		store_put_framed(s, wb, STORE_CF_ACCEPTOR, store_promise_key,
				 sizeof store_promise_key - 1, buf, len);
		break;
	case PX_REC_JOINED:
		store_put_framed(s, wb, STORE_CF_ACCEPTOR, store_joined_key,
				 sizeof store_joined_key - 1, buf, len);
		break;
	case PX_REC_VOTE:
		bytes_put_be64(key, rec->slot);
		store_put_framed(s, wb, STORE_CF_LEDGER, key, 8, buf, len);
		break;
	case PX_REC_CHOSEN:
		bytes_put_be64(key, rec->slot);
		key[8] = STORE_CHOSEN_SUFFIX;
		store_put_framed(s, wb, STORE_CF_LEDGER, key, 9, buf, len);
		break;
	case PX_REC_SNAPSHOT:
		/* The snapshot and the end of the votes it covers are one
		 * atomic write: state and applied position never disagree on
		 * disk. */
		store_put_framed(s, wb, STORE_CF_STATE, store_snapshot_key,
				 sizeof store_snapshot_key - 1, buf, len);
		rocksdb_writebatch_delete_cf(wb, s->cf[STORE_CF_STATE],
					     store_snap_head_key,
					     sizeof store_snap_head_key - 1);
		rocksdb_writebatch_delete_range_cf(
			wb, s->cf[STORE_CF_STATE], store_snap_part_prefix,
			sizeof store_snap_part_prefix - 1, store_snap_parts_end,
			sizeof store_snap_parts_end - 1);
		store_drop_ledger_through(s, wb, rec->slot);
		break;
	}
	free(buf);
	*bytes += len;
	return 0;
}

/* After a failed write RocksDB keeps refusing writes (its background error
 * stays set, and the C API of 7.8 has no rocksdb_resume): a fresh handle
 * recovers from what reached the WAL and takes writes again once the
 * cause is gone. The failed batch may or may not be in the recovered
 * state; the caller writes it again, which is harmless: every record
 * overwrites its key with the same value. */
static int store_reopen(ds_store *s, char *err, size_t errlen)
{
	if (s->lazy_on)
		pthread_mutex_lock(&s->io_lock);
	store_db_close(s);
	int rv = store_db_open(s, err, errlen);
	if (rv == 0)
		s->broken = false;
	if (s->lazy_on) {
		pthread_mutex_lock(&s->lazy_lock);
		s->lazy_failed = false;
		pthread_mutex_unlock(&s->lazy_lock);
		pthread_mutex_unlock(&s->io_lock);
	}
	return rv;
}

/* ---- snapshots written by a thread of their own --------------------------
 *
 * A snapshot of a large table is a large write (a million leases: 75 MB,
 * most of a second with its sync), and nothing waits for it: the disk's
 * older snapshot and the ledger after it restore the same state until it
 * lands, because the ledger records it drops go in the same batch. So
 * the loop hands it over and goes on; the thread writes the newest one
 * waiting, and drops one that a newer snapshot on disk (installed from a
 * peer, say) makes stale. */

static uint64_t store_mono_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* Into wb: the head of the snapshot at base (its parts written), in place
 * of the single-key snapshot and older parts; the end of the ledger
 * records it covers, as store_batch_add's. */
static void store_snap_commit(ds_store *s, rocksdb_writebatch_t *wb,
			      uint64_t base, size_t len, uint32_t snap_len,
			      uint32_t nparts)
{
	uint8_t head[STORE_SNAP_HEAD_BYTES];
	bytes_put_be32(head, STORE_SNAP_HEAD_MAGIC);
	bytes_put_be64(head + 4, base);
	bytes_put_be64(head + 12, len);
	bytes_put_be64(head + 20, snap_len);
	bytes_put_be32(head + 28, nparts);
	store_put_framed(s, wb, STORE_CF_STATE, store_snap_head_key,
			 sizeof store_snap_head_key - 1, head, sizeof head);
	rocksdb_writebatch_delete_cf(wb, s->cf[STORE_CF_STATE],
				     store_snapshot_key,
				     sizeof store_snapshot_key - 1);
	uint8_t lo[STORE_SNAP_PART_KEY_BYTES], hi[STORE_SNAP_PART_KEY_BYTES];
	store_snap_part_key(lo, 0, 0);
	store_snap_part_key(hi, base, 0);
	rocksdb_writebatch_delete_range_cf(wb, s->cf[STORE_CF_STATE],
					   (const char *)lo, sizeof lo,
					   (const char *)hi, sizeof hi);
	store_drop_ledger_through(s, wb, base);
}

/* Waits (up to 10 s) while the state column family has
 * STORE_STATE_IMMUTABLE_MAX memtables waiting to be flushed. */
static void lazy_wait_for_flushes(ds_store *s)
{
	for (int i = 0; i < 1000; i++) {
		uint64_t n = 0;
		if (rocksdb_property_int_cf(s->db, s->cf[STORE_CF_STATE],
					    "rocksdb.num-immutable-mem-table",
					    &n) != 0 ||
		    n < STORE_STATE_IMMUTABLE_MAX)
			return;
		struct timespec ts = {0, 10 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
}

/* Writes rec (the writer thread, io_lock held). */
static void lazy_write(ds_store *s, const px_record *rec)
{
	pthread_mutex_lock(&s->lazy_lock);
	bool stale = rec->slot <= s->snapshot_base;
	pthread_mutex_unlock(&s->lazy_lock);
	if (stale || s->db == NULL) {
		pthread_mutex_lock(&s->lazy_lock);
		s->lazy_stats.skipped++;
		pthread_mutex_unlock(&s->lazy_lock);
		return;
	}
	uint64_t t0 = store_mono_ms();
	char err[256] = "";
	uint8_t *buf;
	size_t len;
	int rv = 0;
	int crv = cd_record_encode(rec, &buf, &len);
	if (crv != 0) {
		store_fail(err, sizeof err,
			   "cannot store the snapshot at %" PRIu64 ": %s",
			   rec->slot, cd_strerror(crv));
		rv = -1;
		buf = NULL;
	}
	uint32_t nparts = (uint32_t)((len + STORE_SNAP_PART_BYTES - 1) /
				     STORE_SNAP_PART_BYTES);
	/* The parts, one synced write each; then the head that makes them
	 * the snapshot, with the end of the ledger records it covers. */
	for (uint32_t i = 0; rv == 0 && i <= nparts; i++) {
		rocksdb_writebatch_clear(s->lazy_wb);
		if (i < nparts) {
			uint8_t key[STORE_SNAP_PART_KEY_BYTES];
			store_snap_part_key(key, rec->slot, i);
			size_t off = (size_t)i * STORE_SNAP_PART_BYTES;
			size_t n = len - off < STORE_SNAP_PART_BYTES
					   ? len - off
					   : STORE_SNAP_PART_BYTES;
			store_put_framed(s, s->lazy_wb, STORE_CF_STATE, key,
					 sizeof key, buf + off, n);
		} else {
			store_snap_commit(s, s->lazy_wb, rec->slot, len,
					  rec->snap_len, nparts);
		}
		lazy_wait_for_flushes(s);
		char *rerr = NULL;
		rocksdb_write(s->db, s->wo_sync, s->lazy_wb, &rerr);
		if (rerr != NULL) {
			char prefix[512];
			snprintf(prefix, sizeof prefix,
				 "cannot write a snapshot to %s", s->dir);
			store_fail_rocks(err, sizeof err, prefix, rerr);
			rv = -1;
		}
	}
	free(buf);
	rocksdb_writebatch_destroy(s->lazy_wb);
	s->lazy_wb = rocksdb_writebatch_create();
	pthread_mutex_lock(&s->lazy_lock);
	if (rv == 0) {
		s->snapshot_base = rec->slot;
		s->snapshot_bytes = rec->snap_len;
		s->lazy_stats.written++;
		s->lazy_stats.last_base = rec->slot;
		s->lazy_stats.last_bytes = rec->snap_len;
		s->lazy_stats.last_ms = store_mono_ms() - t0;
	} else {
		/* The loop's next write says so and reopens (ds_write). */
		s->lazy_failed = true;
		s->lazy_stats.failed++;
		snprintf(s->lazy_err, sizeof s->lazy_err, "%s", err);
	}
	pthread_mutex_unlock(&s->lazy_lock);
}

static void *lazy_main(void *arg)
{
	ds_store *s = arg;
	pthread_mutex_lock(&s->lazy_lock);
	for (;;) {
		while (!s->lazy_have && !s->lazy_stop)
			pthread_cond_wait(&s->lazy_cond, &s->lazy_lock);
		if (!s->lazy_have)
			break; /* stopping, nothing left */
		px_record rec = s->lazy_next;
		s->lazy_have = false;
		pthread_mutex_unlock(&s->lazy_lock);
		pthread_mutex_lock(&s->io_lock);
		lazy_write(s, &rec);
		pthread_mutex_unlock(&s->io_lock);
		px_record_clear(&rec);
		pthread_mutex_lock(&s->lazy_lock);
	}
	pthread_mutex_unlock(&s->lazy_lock);
	return NULL;
}

int ds_lazy_snapshots(ds_store *s, char *err, size_t errlen)
{
	if (s->lazy_on)
		return 0;
	s->lazy_wb = rocksdb_writebatch_create();
	pthread_mutex_init(&s->lazy_lock, NULL);
	pthread_mutex_init(&s->io_lock, NULL);
	pthread_cond_init(&s->lazy_cond, NULL);
	if (pthread_create(&s->lazy_th, NULL, lazy_main, s) != 0) {
		pthread_cond_destroy(&s->lazy_cond);
		pthread_mutex_destroy(&s->io_lock);
		pthread_mutex_destroy(&s->lazy_lock);
		rocksdb_writebatch_destroy(s->lazy_wb);
		s->lazy_wb = NULL;
		return store_fail(err, errlen,
				  "cannot start the snapshot writer thread");
	}
	s->lazy_on = true;
	return 0;
}

/* Stops the writer once it has written what waits. */
static void lazy_stop(ds_store *s)
{
	if (!s->lazy_on)
		return;
	pthread_mutex_lock(&s->lazy_lock);
	s->lazy_stop = true;
	pthread_cond_signal(&s->lazy_cond);
	pthread_mutex_unlock(&s->lazy_lock);
	pthread_join(s->lazy_th, NULL);
	if (s->lazy_have)
		px_record_clear(&s->lazy_next);
	pthread_cond_destroy(&s->lazy_cond);
	pthread_mutex_destroy(&s->io_lock);
	pthread_mutex_destroy(&s->lazy_lock);
	rocksdb_writebatch_destroy(s->lazy_wb);
	s->lazy_wb = NULL;
	s->lazy_on = false;
}

void ds_write_snapshot_later(ds_store *s, px_record *rec)
{
	assert(rec->type == PX_REC_SNAPSHOT && s->lazy_on);
	px_record take = *rec;
	*rec = (px_record){.type = PX_REC_SNAPSHOT, .slot = rec->slot};
	pthread_mutex_lock(&s->lazy_lock);
	if (s->lazy_have && s->lazy_next.slot >= take.slot) {
		px_record_clear(&take); /* an older one than what waits */
		s->lazy_stats.skipped++;
	} else {
		if (s->lazy_have) {
			px_record_clear(&s->lazy_next);
			s->lazy_stats.skipped++;
		}
		s->lazy_next = take;
		s->lazy_have = true;
		pthread_cond_signal(&s->lazy_cond);
	}
	pthread_mutex_unlock(&s->lazy_lock);
}

void ds_lazy_stats_get(ds_store *s, ds_lazy_stats *st)
{
	memset(st, 0, sizeof *st);
	if (!s->lazy_on)
		return;
	pthread_mutex_lock(&s->lazy_lock);
	*st = s->lazy_stats;
	pthread_mutex_unlock(&s->lazy_lock);
}

int ds_write(ds_store *s, const px_record *recs, size_t n, bool sync, char *err,
	     size_t errlen)
{
	size_t bytes = 0;
	int rv = 0;
	const px_record *snap = NULL;

	if (s->lazy_on) {
		/* A snapshot the writer thread failed to write leaves RocksDB
		 * refusing writes: say why, and reopen. */
		pthread_mutex_lock(&s->lazy_lock);
		bool failed = s->lazy_failed;
		if (failed)
			store_fail(err, errlen, "%s", s->lazy_err);
		pthread_mutex_unlock(&s->lazy_lock);
		if (failed && !s->broken) {
			s->broken = true;
			return -1;
		}
	}
	if (s->broken && store_reopen(s, err, errlen) != 0)
		return -1;
	rocksdb_writebatch_clear(s->wb);
	for (size_t i = 0; i < n && rv == 0; i++) {
		rv = store_batch_add(s, s->wb, &recs[i], &bytes, err, errlen);
		if (recs[i].type == PX_REC_SNAPSHOT)
			snap = &recs[i];
	}
	if (rv == 0) {
		char *rerr = NULL;
		rocksdb_write(s->db, sync ? s->wo_sync : s->wo, s->wb, &rerr);
		if (rerr != NULL) {
			/* RocksDB then refuses further writes (a background
			 * error) until the database is reopened. */
			char prefix[512];
			snprintf(prefix, sizeof prefix, "cannot write to %s",
				 s->dir);
			store_fail_rocks(err, errlen, prefix, rerr);
			rv = -1;
			s->broken = true;
		}
	}
	if (bytes > STORE_BATCH_KEEP_BYTES) {
		rocksdb_writebatch_destroy(s->wb);
		s->wb = rocksdb_writebatch_create();
	} else {
		rocksdb_writebatch_clear(s->wb);
	}
	if (rv != 0)
		return rv;
	s->writes++;
	if (sync) {
		/* One thread: the latest sequence number is this write's,
		 * and the WAL sync covered everything before it. */
		s->synced_writes++;
		s->synced_seq = rocksdb_get_latest_sequence_number(s->db);
		if (store_mono_s() >= s->marked_at_s + STORE_SYNCED_EVERY_S)
			store_mark_synced(s, s->synced_seq);
	}
	if (snap != NULL) {
		if (s->lazy_on)
			pthread_mutex_lock(&s->lazy_lock);
		s->snapshot_base = snap->slot;
		s->snapshot_bytes = snap->snap_len;
		if (s->lazy_on)
			pthread_mutex_unlock(&s->lazy_lock);
	}
	return 0;
}

/* ---- loading ------------------------------------------------------------ */

/* Checks the frame of the value p (len bytes) stored under key in cf and
 * decodes the record of type want in it into *rec (the caller clears it).
 * what names it in errors ("the promise record", "ledger record at slot
 * 3"); keyname is the key as a person reads it. */
static int store_decode(ds_store *s, int cf, const void *key, size_t keylen,
			const char *keyname, const char *p, size_t len,
			px_rec_type want, const char *what, px_record *rec,
			char *err, size_t errlen)
{
	size_t plen;
	if (!store_unframe(cf, key, keylen, p, len, &plen))
		return store_corrupt(err, errlen,
				     "%s in %s is damaged: the value under key "
				     "%s in column family '%s' fails its "
				     "checksum",
				     what, s->dir, keyname, store_cf_names[cf]);
	int crv = cd_record_decode((const uint8_t *)p, plen, rec);
	if (crv != 0)
		return store_corrupt(err, errlen, "%s in %s is damaged: %s",
				     what, s->dir, cd_strerror(crv));
	if (rec->type != want) {
		store_corrupt(err, errlen,
			      "%s in %s is damaged: it holds a %s record", what,
			      s->dir, store_rec_name(rec->type));
		px_record_clear(rec);
		return DS_CORRUPT;
	}
	return 0;
}

static int store_stopped(int rv, char *err, size_t errlen)
{
	store_fail(err, errlen, "loading stopped: the callback returned %d",
		   rv);
	return rv;
}

/* Loads the single record under key in cf, if there is one. */
static int store_load_one(ds_store *s, int cf, const char *key,
			  px_rec_type want,
			  int (*fn)(const px_record *rec, void *arg), void *arg,
			  char *err, size_t errlen)
{
	rocksdb_pinnableslice_t *ps;
	int rv = store_get(s->db, s->ro, s->cf[cf], key, strlen(key), &ps,
			   s->dir, err, errlen);
	if (rv != 0 || ps == NULL)
		return rv;
	char what[64], keyname[64];
	snprintf(what, sizeof what, "the %s record", store_rec_name(want));
	snprintf(keyname, sizeof keyname, "'%s'", key);
	size_t len;
	const char *p = rocksdb_pinnableslice_value(ps, &len);
	px_record rec;
	rv = store_decode(s, cf, key, strlen(key), keyname, p, len, want, what,
			  &rec, err, errlen);
	rocksdb_pinnableslice_destroy(ps);
	if (rv != 0)
		return rv;
	rv = fn(&rec, arg);
	px_record_clear(&rec);
	return rv != 0 ? store_stopped(rv, err, errlen) : 0;
}

int ds_load(ds_store *s, int (*fn)(const px_record *rec, void *arg), void *arg,
	    char *err, size_t errlen)
{
	snap_head h;
	bool have;
	int rv = store_snap_head_get(s, &have, &h, err, errlen);
	if (rv == 0 && have) {
		px_record rec;
		rv = store_snap_parts_read(s, &h, &rec, err, errlen);
		if (rv == 0) {
			int frv = fn(&rec, arg);
			px_record_clear(&rec);
			if (frv != 0)
				rv = store_stopped(frv, err, errlen);
		}
	} else if (rv == 0) {
		rv = store_load_one(s, STORE_CF_STATE, store_snapshot_key,
				    PX_REC_SNAPSHOT, fn, arg, err, errlen);
	}
	if (rv == 0)
		rv = store_load_one(s, STORE_CF_ACCEPTOR, store_promise_key,
				    PX_REC_PROMISE, fn, arg, err, errlen);
	if (rv == 0)
		rv = store_load_one(s, STORE_CF_ACCEPTOR, store_joined_key,
				    PX_REC_JOINED, fn, arg, err, errlen);
	if (rv != 0)
		return rv;

	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(
		s->db, s->ro, s->cf[STORE_CF_LEDGER]);
	for (rocksdb_iter_seek_to_first(it); rv == 0 && rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);
		bool chosen = klen == 9 && k[8] == STORE_CHOSEN_SUFFIX;
		if (klen != 8 && !chosen) {
			rv = store_corrupt(
				err, errlen,
				"the ledger in %s is damaged: it holds "
				"a key of %zu bytes, not a slot",
				s->dir, klen);
			break;
		}
		uint64_t slot = bytes_get_be64((const uint8_t *)k);
		char what[64], keyname[64];
		snprintf(what, sizeof what, "%s record at slot %" PRIu64,
			 chosen ? "chosen" : "ledger", slot);
		snprintf(keyname, sizeof keyname, "%" PRIu64 "%s", slot,
			 chosen ? "+'c'" : "");
		px_record rec;
		rv = store_decode(s, STORE_CF_LEDGER, k, klen, keyname, v, vlen,
				  chosen ? PX_REC_CHOSEN : PX_REC_VOTE, what,
				  &rec, err, errlen);
		if (rv != 0)
			break;
		if (rec.slot != slot) {
			rv = store_corrupt(err, errlen,
					   "%s in %s is damaged: it holds the "
					   "record for slot %" PRIu64,
					   what, s->dir, rec.slot);
		} else {
			rv = fn(&rec, arg);
			if (rv != 0)
				store_stopped(rv, err, errlen);
		}
		px_record_clear(&rec);
	}
	char *rerr = NULL;
	rocksdb_iter_get_error(it, &rerr);
	rocksdb_iter_destroy(it);
	if (rerr != NULL) {
		char prefix[512];
		snprintf(prefix, sizeof prefix, "cannot read the ledger in %s",
			 s->dir);
		/* A read error outranks a stop the callback asked for. */
		return store_fail_rocks(err, errlen, prefix, rerr);
	}
	return rv;
}

/* ---- stats -------------------------------------------------------------- */

void ds_stats_get(ds_store *s, ds_stats *st)
{
	memset(st, 0, sizeof *st);
	if (s->lazy_on)
		pthread_mutex_lock(&s->lazy_lock);
	st->snapshot_base = s->snapshot_base;
	st->snapshot_bytes = s->snapshot_bytes;
	if (s->lazy_on)
		pthread_mutex_unlock(&s->lazy_lock);
	st->writes = s->writes;
	st->synced_writes = s->synced_writes;
	if (s->db == NULL) /* a reopen failed: nothing to count */
		return;
	/* Counted, not tracked: a vote may overwrite one already stored and a
	 * snapshot drops an unknown number, so only the ledger itself knows.
	 * It holds at most about LD_LOG_SLOTS_MAX keys. */
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(
		s->db, s->ro, s->cf[STORE_CF_LEDGER]);
	for (rocksdb_iter_seek_to_first(it); rocksdb_iter_valid(it);
	     rocksdb_iter_next(it)) {
		size_t klen;
		rocksdb_iter_key(it, &klen);
		st->votes += klen == 8;
	}
	rocksdb_iter_destroy(it);
}
