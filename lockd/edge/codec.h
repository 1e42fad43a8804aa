/* The protobuf codec: translates the core's plain structs (px_msg, px_record,
 * px_value) to and from the wire and disk formats in proto/.
 *
 * Decoding is the trust boundary. Bytes from a peer or from disk are checked
 * before anything is built from them: total size, a walk of the wire format
 * (well-formed, no duplicated singular fields, few unknown fields, bounded
 * repeated fields, so a hostile buffer cannot make the decoder allocate far
 * more than its own size), then every limit in ld_limits.h, then, for messages,
 * px_msg_validate. Bad input gets an error code, never a crash.
 *
 * Encoding refuses what decoding would refuse, so a record written to disk
 * can always be read back; for messages, the checks that need the cell's
 * size (replica ids, px_msg_validate) are left to the receiver. An encoding
 * over the limit is CD_ETOOBIG, not truncated. LD_MESSAGE_BYTES_MAX
 * holds a whole snapshot; CATCHUP is bounded by bytes in the core; a PROMISE
 * carrying LD_LOG_SLOTS_MAX maximal decrees could still outgrow it.
 *
 * Every function returns 0 or a positive CD_E... code. */
#ifndef CD_CODEC_H
#define CD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ld_limits.h"
#include "paxos.h"
#include "value.h"

#define CD_ERRORS(X)                                                   \
	X(CD_OK, "ok")                                                 \
	X(CD_ENOMEM, "out of memory")                                  \
	X(CD_ETOOBIG, "encoding over its size limit")                  \
	X(CD_EMALFORMED, "not a well-formed protobuf encoding")        \
	X(CD_ETYPE, "unknown message or record type")                  \
	X(CD_EREPLICA, "replica id out of range")                      \
	X(CD_ECOUNT, "too many votes or commands")                     \
	X(CD_ECMD, "command over the size limit or without client id") \
	X(CD_ESNAPSHOT, "snapshot over the size limit")                \
	X(CD_EFIELDS, "field missing or not allowed for this type")    \
	X(CD_EINVALID, "message rejected by px_msg_validate")

#define CD_ENUM(name, text) name,
typedef enum cd_err { CD_ERRORS(CD_ENUM) } cd_err;
#undef CD_ENUM

/* A sentence for rv (0 or an CD_E... code); never NULL. */
const char *cd_strerror(int rv);

/* One encoded durable record: a snapshot record plus room for its header. */
#define CD_RECORD_BYTES_MAX (LD_SNAPSHOT_BYTES_MAX + 1024u)

/* One encoded decree: at most a message. */
#define CD_VALUE_BYTES_MAX LD_MESSAGE_BYTES_MAX

/* A decree travels inside peer messages (CATCHUP, ACCEPT), so it may not
 * outgrow one; a decree of the most and largest commands (each with its ids
 * and framing, under 64 bytes) fits. (A snapshot travels in chunks, so its
 * record may be larger than a message.) */
_Static_assert(CD_VALUE_BYTES_MAX <= LD_MESSAGE_BYTES_MAX,
	       "a decree fits a message");
_Static_assert((unsigned long long)LD_BATCH_CMDS_MAX *(LD_CMD_BYTES_MAX +
						       64u) <=
		       CD_VALUE_BYTES_MAX,
	       "the largest decree encodes within CD_VALUE_BYTES_MAX");

/* Unknown fields tolerated in one decoded buffer (newer peers may add
 * fields); past this the buffer is malformed. */
#define CD_UNKNOWN_FIELDS_MAX 16u

/* ---- peer messages (at most LD_MESSAGE_BYTES_MAX encoded) -------------- */

/* Encodes m. On success *buf is malloc'd (the caller frees it with free) and
 * *len is its size; on error *buf is NULL. m is only read. */
int cd_msg_encode(const px_msg *m, uint8_t **buf, size_t *len);

/* Decodes a message. Replica ids (from, to, ballots) must be below
 * LD_REPLICA_IDS: whether the sender is a member is the core's to judge, as
 * membership changes by decree. buf is only read. On success *out is a new
 * message the caller frees with px_msg_free; on error *out is NULL. */
int cd_msg_decode(const uint8_t *buf, size_t len, px_msg **out);

/* ---- durable records (at most CD_RECORD_BYTES_MAX encoded) ------- */

/* Encodes rec. On success *buf is malloc'd (the caller frees it with free)
 * and *len is its size; on error *buf is NULL. rec is only read. */
int cd_record_encode(const px_record *rec, uint8_t **buf, size_t *len);

/* Decodes into *rec, which the caller then owns and releases with
 * px_record_clear. On error *rec is zeroed and holds nothing. */
int cd_record_decode(const uint8_t *buf, size_t len, px_record *rec);

/* ---- decrees (at most CD_VALUE_BYTES_MAX encoded) ---------------- */

/* Encodes v (a decree; ncmds == 0 is the no-op). On success *buf is malloc'd
 * (the caller frees it with free) and *len is its size; on error *buf is
 * NULL. v is only read. */
int cd_value_encode(const px_value *v, uint8_t **buf, size_t *len);

/* Decodes a decree. On success *out holds one reference the caller drops
 * with px_value_unref (an empty decree decodes to px_value_noop()); on
 * error *out is NULL. */
int cd_value_decode(const uint8_t *buf, size_t len, px_value **out);

/* ---- membership (at most CD_MEMBERS_BYTES_MAX encoded) ----------- */

/* A configuration as ledger.proto Members: what a replica that joined a
 * running cell keeps in its store's meta (storage.h). */
#define CD_MEMBERS_BYTES_MAX \
	(LD_REPLICAS_MAX * (2u * LD_URL_BYTES_MAX + 64u) + 64u)

/* Encodes m (at most LD_REPLICAS_MAX members, by increasing id below
 * LD_REPLICA_IDS, none of them removed). On success *buf is malloc'd (the
 * caller frees it) and *len is its size; on error *buf is NULL. */
int cd_members_encode(const px_members *m, uint8_t **buf, size_t *len);

/* Decodes into *out (the caller's; zeroed on error). */
int cd_members_decode(const uint8_t *buf, size_t len, px_members *out);

/* ---- client requests ---------------------------------------------------- */

/* protobuf-c 1.4.1 keeps only the low 32 bits of a varint sent for a 32-bit
 * field (uint32, int32, sint32, enum): ttl_ms = 2^40 + 1000 unpacks as 1000.
 * Walks the top level of a client.proto Request (buf, len) and returns 0,
 * or CD_EMALFORMED with a sentence in err naming the first such field
 * whose varint does not fit in 32 bits, or a field numbered 0 (which
 * protobuf-c keeps as an unknown field). Anything else malformed is left
 * to the unpacker (this only reads as far as it can). */
int cd_request_check(const uint8_t *buf, size_t len, char *err, size_t errlen);

#endif
