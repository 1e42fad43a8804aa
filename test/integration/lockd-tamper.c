/* lockd-tamper DIR CF: flips one byte in the middle of the first value
 * stored in column family CF ("acceptor", "ledger", "state" or "meta") of
 * the stopped replica's data directory DIR, as a bad sector or a bug
 * would, and prints the key it damaged. It opens the RocksDB database
 * directly, so RocksDB's own file checksums still hold: only lockd's
 * record checksums can notice. Exit 0 done, 1 failed, 2 usage. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <rocksdb/c.h>

static const char *const cfs[] = {"default", "meta", "acceptor", "ledger",
				  "state"};
#define NCF 5

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: lockd-tamper DIR CF\n");
		return 2;
	}
	int want = -1;
	for (int i = 0; i < NCF; i++)
		if (strcmp(argv[2], cfs[i]) == 0)
			want = i;
	if (want < 0) {
		fprintf(stderr, "lockd-tamper: no column family '%s'\n",
			argv[2]);
		return 2;
	}
	rocksdb_options_t *o = rocksdb_options_create();
	const rocksdb_options_t *cfo[NCF];
	for (int i = 0; i < NCF; i++)
		cfo[i] = o;
	rocksdb_column_family_handle_t *cf[NCF];
	char *err = NULL;
	rocksdb_t *db = rocksdb_open_column_families(o, argv[1], NCF, cfs, cfo,
						     cf, &err);
	if (db == NULL) {
		fprintf(stderr, "lockd-tamper: cannot open %s: %s\n", argv[1],
			err);
		return 1;
	}
	rocksdb_readoptions_t *ro = rocksdb_readoptions_create();
	rocksdb_iterator_t *it = rocksdb_create_iterator_cf(db, ro, cf[want]);
	rocksdb_iter_seek_to_first(it);
	int rc = 1;
	if (!rocksdb_iter_valid(it)) {
		fprintf(stderr, "lockd-tamper: nothing stored in %s\n",
			argv[2]);
	} else {
		size_t klen, vlen;
		const char *k = rocksdb_iter_key(it, &klen);
		const char *v = rocksdb_iter_value(it, &vlen);
		char *key = malloc(klen + 1), *val = malloc(vlen + 1);
		memcpy(key, k, klen);
		memcpy(val, v, vlen);
		val[vlen / 2] ^= 0x04;
		rocksdb_writeoptions_t *wo = rocksdb_writeoptions_create();
		rocksdb_writeoptions_set_sync(wo, 1);
		rocksdb_put_cf(db, wo, cf[want], key, klen, val, vlen, &err);
		rocksdb_writeoptions_destroy(wo);
		if (err != NULL) {
			fprintf(stderr, "lockd-tamper: %s\n", err);
		} else {
			printf("flipped byte %zu of %zu under key ", vlen / 2,
			       vlen);
			for (size_t i = 0; i < klen; i++)
				printf("%02x", (unsigned char)key[i]);
			printf(" in %s\n", argv[2]);
			rc = 0;
		}
		free(key);
		free(val);
	}
	rocksdb_iter_destroy(it);
	rocksdb_readoptions_destroy(ro);
	for (int i = 0; i < NCF; i++)
		rocksdb_column_family_handle_destroy(cf[i]);
	rocksdb_close(db);
	rocksdb_options_destroy(o);
	rocksdb_free(err);
	return rc;
}
