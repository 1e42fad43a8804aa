/* The protobuf codec: translates the core's plain structs (ld_msg, ld_record,
 * ld_value) to and from the wire and disk formats in proto/.
 *
 * Decoding is the trust boundary. Bytes from a peer or from disk are checked
 * before anything is built from them: total size, a walk of the wire format
 * (well-formed, no duplicated singular fields, few unknown fields, bounded
 * repeated fields, so a hostile buffer cannot make the decoder allocate far
 * more than its own size), then every limit in limits.h, then, for messages,
 * ld_msg_validate. Bad input gets an error code, never a crash.
 *
 * Encoding refuses what decoding would refuse, so a record written to disk
 * can always be read back; for messages, the checks that need the cell's
 * size (replica ids, ld_msg_validate) are left to the receiver. An encoding
 * over the limit is LD_CODEC_ETOOBIG, not truncated. LD_MESSAGE_BYTES_MAX
 * holds a whole snapshot; CATCHUP is bounded by bytes in the core; a PROMISE
 * carrying LD_LOG_SLOTS_MAX maximal decrees could still outgrow it.
 *
 * Every function returns 0 or a positive LD_CODEC_E... code. */
#ifndef LD_CODEC_H
#define LD_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "ld_limits.h"
#include "paxos.h"
#include "value.h"

#define LD_CODEC_ERRORS(X)                                                   \
	X(LD_CODEC_OK, "ok")                                                 \
	X(LD_CODEC_ENOMEM, "out of memory")                                  \
	X(LD_CODEC_ETOOBIG, "encoding over its size limit")                  \
	X(LD_CODEC_EMALFORMED, "not a well-formed protobuf encoding")        \
	X(LD_CODEC_ETYPE, "unknown message or record type")                  \
	X(LD_CODEC_EREPLICA, "replica id out of range")                      \
	X(LD_CODEC_ECOUNT, "too many votes or commands")                     \
	X(LD_CODEC_ECMD, "command over the size limit or without client id") \
	X(LD_CODEC_ESNAPSHOT, "snapshot over the size limit")                \
	X(LD_CODEC_EFIELDS, "field missing or not allowed for this type")    \
	X(LD_CODEC_EINVALID, "message rejected by ld_msg_validate")

#define LD_CODEC_ENUM(name, text) name,
typedef enum ld_codec_err { LD_CODEC_ERRORS(LD_CODEC_ENUM) } ld_codec_err;
#undef LD_CODEC_ENUM

/* A sentence for rv (0 or an LD_CODEC_E... code); never NULL. */
const char *ld_codec_strerror(int rv);

/* One encoded durable record: a snapshot record plus room for its header. */
#define LD_CODEC_RECORD_BYTES_MAX (LD_SNAPSHOT_BYTES_MAX + 1024u)

/* One encoded decree: at most a message. */
#define LD_CODEC_VALUE_BYTES_MAX LD_MESSAGE_BYTES_MAX

/* Unknown fields tolerated in one decoded buffer (newer peers may add
 * fields); past this the buffer is malformed. */
#define LD_CODEC_UNKNOWN_FIELDS_MAX 16u

/* ---- peer messages (at most LD_MESSAGE_BYTES_MAX encoded) -------------- */

/* Encodes m. On success *buf is malloc'd (the caller frees it with free) and
 * *len is its size; on error *buf is NULL. m is only read. */
int ld_codec_msg_encode(const ld_msg *m, uint8_t **buf, size_t *len);

/* Decodes a message. Replica ids (from, to, ballots) must be below
 * LD_REPLICA_IDS: whether the sender is a member is the core's to judge, as
 * membership changes by decree. buf is only read. On success *out is a new
 * message the caller frees with ld_msg_free; on error *out is NULL. */
int ld_codec_msg_decode(const uint8_t *buf, size_t len, ld_msg **out);

/* ---- durable records (at most LD_CODEC_RECORD_BYTES_MAX encoded) ------- */

/* Encodes rec. On success *buf is malloc'd (the caller frees it with free)
 * and *len is its size; on error *buf is NULL. rec is only read. */
int ld_codec_record_encode(const ld_record *rec, uint8_t **buf, size_t *len);

/* Decodes into *rec, which the caller then owns and releases with
 * ld_record_clear. On error *rec is zeroed and holds nothing. */
int ld_codec_record_decode(const uint8_t *buf, size_t len, ld_record *rec);

/* ---- decrees (at most LD_CODEC_VALUE_BYTES_MAX encoded) ---------------- */

/* Encodes v (a decree; ncmds == 0 is the no-op). On success *buf is malloc'd
 * (the caller frees it with free) and *len is its size; on error *buf is
 * NULL. v is only read. */
int ld_codec_value_encode(const ld_value *v, uint8_t **buf, size_t *len);

/* Decodes a decree. On success *out holds one reference the caller drops
 * with ld_value_unref (an empty decree decodes to ld_value_noop()); on
 * error *out is NULL. */
int ld_codec_value_decode(const uint8_t *buf, size_t len, ld_value **out);

/* ---- membership (at most LD_CODEC_MEMBERS_BYTES_MAX encoded) ----------- */

/* A configuration as ledger.proto Members: what a replica that joined a
 * running cell keeps in its store's meta (storage.h). */
#define LD_CODEC_MEMBERS_BYTES_MAX \
	(LD_REPLICAS_MAX * (2u * LD_URL_BYTES_MAX + 64u) + 64u)

/* Encodes m (at most LD_REPLICAS_MAX members, by increasing id below
 * LD_REPLICA_IDS, none of them removed). On success *buf is malloc'd (the
 * caller frees it) and *len is its size; on error *buf is NULL. */
int ld_codec_members_encode(const ld_members *m, uint8_t **buf, size_t *len);

/* Decodes into *out (the caller's; zeroed on error). */
int ld_codec_members_decode(const uint8_t *buf, size_t len, ld_members *out);

/* ---- client requests ---------------------------------------------------- */

/* protobuf-c 1.4.1 keeps only the low 32 bits of a varint sent for a 32-bit
 * field (uint32, int32, sint32, enum): ttl_ms = 2^40 + 1000 unpacks as 1000.
 * Walks the top level of a client.proto Request (buf, len) and returns 0,
 * or LD_CODEC_EMALFORMED with a sentence in err naming the first such field
 * whose varint does not fit in 32 bits. Anything else malformed is left to
 * the unpacker (this only reads as far as it can). */
int ld_codec_request_check(const uint8_t *buf, size_t len, char *err,
			   size_t errlen);

#endif
