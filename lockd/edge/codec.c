#include "codec.h"

#include <assert.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include <stdio.h>

#include "client.pb-c.h"
#include "ledger.pb-c.h"
#include "peer.pb-c.h"

/* The wire enums carry the core's numbers, so a range check plus a cast
 * translates them. */
_Static_assert((int)LOCKD__MSG_TYPE__MSG_PREPARE == (int)PX_MSG_PREPARE &&
		       (int)LOCKD__MSG_TYPE__MSG_SNAPSHOT ==
			       (int)PX_MSG_SNAPSHOT &&
		       (int)LOCKD__MSG_TYPE__MSG_PROBE_ACK ==
			       (int)PX_MSG_PROBE_ACK &&
		       PX_MSG_TYPE_MAX == PX_MSG_PROBE_ACK,
	       "MsgType in peer.proto must number like px_msg_type");
_Static_assert(
	(int)LOCKD__RECORD_TYPE__REC_PROMISE == (int)PX_REC_PROMISE &&
		(int)LOCKD__RECORD_TYPE__REC_VOTE == (int)PX_REC_VOTE &&
		(int)LOCKD__RECORD_TYPE__REC_SNAPSHOT == (int)PX_REC_SNAPSHOT &&
		(int)LOCKD__RECORD_TYPE__REC_CHOSEN == (int)PX_REC_CHOSEN &&
		(int)LOCKD__RECORD_TYPE__REC_JOINED == (int)PX_REC_JOINED,
	"RecordType in ledger.proto must number like px_rec_type");
_Static_assert(LD_SNAPSHOT_BYTES_MAX <= UINT32_MAX, "snap_len is a uint32_t");

#define CODEC_STRING(name, text) [name] = text,
static const char *const codec_errors[] = {CD_ERRORS(CODEC_STRING)};
#undef CODEC_STRING

const char *cd_strerror(int rv)
{
	if (rv < 0 ||
	    (size_t)rv >= sizeof codec_errors / sizeof codec_errors[0])
		return "unknown codec error";
	return codec_errors[rv];
}

/* ---- the wire walk ---------------------------------------------------- */

/* Messages nest at most PeerMsg > Vote > Decree > Command (> Ballot). */
#define CODEC_DEPTH_MAX 6

enum {
	WIRE_VARINT = 0,
	WIRE_FIXED64 = 1,
	WIRE_LEN = 2,
	WIRE_FIXED32 = 5,
};

typedef struct codec_walk {
	uint32_t unknown; /* unknown fields seen so far, in all messages */
} codec_walk;

/* The bound on every repeated field in proto/. A repeated field missing here
 * has a bound of 0: adding one to a .proto means adding its limit here. */
static uint32_t codec_repeated_max(const ProtobufCMessageDescriptor *desc,
				   const ProtobufCFieldDescriptor *f)
{
	if (desc == &lockd__decree__descriptor && f->id == 1 /* cmds */)
		return LD_BATCH_CMDS_MAX;
	if (desc == &lockd__peer_msg__descriptor && f->id == 9 /* votes */)
		return LD_LOG_SLOTS_MAX;
	if (desc == &lockd__members__descriptor && f->id == 1 /* members */)
		return LD_REPLICAS_MAX;
	return 0;
}

static int codec_wire_type(ProtobufCType t)
{
	switch (t) {
	case PROTOBUF_C_TYPE_SFIXED32:
	case PROTOBUF_C_TYPE_FIXED32:
	case PROTOBUF_C_TYPE_FLOAT:
		return WIRE_FIXED32;
	case PROTOBUF_C_TYPE_SFIXED64:
	case PROTOBUF_C_TYPE_FIXED64:
	case PROTOBUF_C_TYPE_DOUBLE:
		return WIRE_FIXED64;
	case PROTOBUF_C_TYPE_STRING:
	case PROTOBUF_C_TYPE_BYTES:
	case PROTOBUF_C_TYPE_MESSAGE:
		return WIRE_LEN;
	default:
		return WIRE_VARINT;
	}
}

/* Reads a varint of at most 10 bytes at *pos; false if cut short or longer. */
static bool codec_varint(const uint8_t *p, size_t len, size_t *pos,
			 uint64_t *out)
{
	uint64_t v = 0;
	for (unsigned i = 0; i < 10; i++) {
		if (*pos >= len)
			return false;
		uint8_t b = p[(*pos)++];
		v |= (uint64_t)(b & 0x7f) << (7 * i);
		if ((b & 0x80) == 0) {
			*out = v;
			return true;
		}
	}
	return false;
}

/* One field of a protobuf encoding: its number, wire type and value. */
typedef struct codec_field {
	uint64_t id;
	int wt;       /* WIRE_* */
	uint64_t v;   /* VARINT: the value; LEN: the length; FIXED: 8 or 4 */
	size_t start; /* where the value's bytes begin (LEN: after the length)
		       */
} codec_field;

/* Reads the field at *pos and moves past it. false when it is cut short,
 * a varint is longer than 10 bytes, a length runs past len, or the wire type
 * is one proto/ never uses (groups, 3 and 4) or does not exist (6, 7). The
 * one walk of the wire, for both walkers below. */
static bool codec_field_next(const uint8_t *p, size_t len, size_t *pos,
			     codec_field *f)
{
	uint64_t key;
	if (!codec_varint(p, len, pos, &key))
		return false;
	f->id = key >> 3;
	f->wt = (int)(key & 7);
	f->v = 0;
	f->start = *pos;
	switch (f->wt) {
	case WIRE_VARINT:
		return codec_varint(p, len, pos, &f->v);
	case WIRE_FIXED64:
	case WIRE_FIXED32:
		f->v = f->wt == WIRE_FIXED64 ? 8 : 4;
		if (len - *pos < f->v)
			return false;
		*pos += (size_t)f->v;
		return true;
	case WIRE_LEN:
		if (!codec_varint(p, len, pos, &f->v) || f->v > len - *pos)
			return false;
		f->start = *pos;
		*pos += (size_t)f->v;
		return true;
	default:
		return false;
	}
}

/* Walks one message's encoding before protobuf-c unpacks it. protobuf-c
 * accepts duplicated singular fields (merging submessages, so repeated
 * fields inside could grow past any bound), keeps every unknown field, and
 * sizes repeated fields only by the buffer: a few bytes of input can cost
 * dozens of bytes of allocation each. Checking here bounds all of it. */
static int codec_walk_msg(codec_walk *w, const ProtobufCMessageDescriptor *desc,
			  const uint8_t *p, size_t len, unsigned depth)
{
	uint32_t counts[64] = {0};
	uint64_t seen = 0;
	size_t pos = 0;

	assert(desc->n_fields <= 64);
	if (depth > CODEC_DEPTH_MAX)
		return CD_EMALFORMED;
	while (pos < len) {
		codec_field fl;
		if (!codec_field_next(p, len, &pos, &fl))
			return CD_EMALFORMED;
		uint64_t id = fl.id, n = fl.v;
		int wt = fl.wt;
		size_t start = fl.start;
		if (id == 0 || id > 0x1fffffff)
			return CD_EMALFORMED;

		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field(desc,
								(unsigned)id);
		if (f == NULL) {
			if (++w->unknown > CD_UNKNOWN_FIELDS_MAX)
				return CD_EMALFORMED;
			continue;
		}
		if (wt != codec_wire_type(f->type))
			return CD_EMALFORMED;
		size_t idx = (size_t)(f - desc->fields);
		if (f->label == PROTOBUF_C_LABEL_REPEATED) {
			if (++counts[idx] > codec_repeated_max(desc, f))
				return CD_ECOUNT;
		} else {
			if (seen & (UINT64_C(1) << idx))
				return CD_EMALFORMED;
			seen |= UINT64_C(1) << idx;
		}
		if (f->type == PROTOBUF_C_TYPE_MESSAGE) {
			int rv = codec_walk_msg(w, f->descriptor, p + start,
						(size_t)n, depth + 1);
			if (rv != 0)
				return rv;
		}
	}
	return 0;
}

/* Size check, wire walk, then protobuf-c. *out is freed with
 * protobuf_c_message_free_unpacked. */
static int codec_unpack(const ProtobufCMessageDescriptor *desc,
			const uint8_t *buf, size_t len, size_t max,
			ProtobufCMessage **out)
{
	*out = NULL;
	assert(buf != NULL || len == 0);
	if (len > max)
		return CD_ETOOBIG;
	codec_walk w = {0};
	int rv = codec_walk_msg(&w, desc, buf, len, 0);
	if (rv != 0)
		return rv;
	/* The walk passed, so a failure here is an allocation failure or a
	 * check protobuf-c makes and the walk does not. */
	*out = protobuf_c_message_unpack(desc, NULL, len, buf);
	return *out == NULL ? CD_EMALFORMED : 0;
}

static int codec_pack(const ProtobufCMessage *pm, size_t max, uint8_t **buf,
		      size_t *len)
{
	size_t n = protobuf_c_message_get_packed_size(pm);
	if (n > max)
		return CD_ETOOBIG;
	*buf = malloc(n > 0 ? n : 1);
	if (*buf == NULL)
		return CD_ENOMEM;
	size_t packed = protobuf_c_message_pack(pm, *buf);
	assert(packed == n);
	*len = packed;
	return 0;
}

/* ---- decrees ------------------------------------------------------------ */

/* The rules every command obeys on the wire, in both directions (value.h). */
static int codec_cmd_check(uint64_t client_id, size_t len)
{
	if (client_id == 0 || len > LD_CMD_BYTES_MAX)
		return CD_ECMD;
	return 0;
}

static int codec_value_check(const px_value *v)
{
	if (v->ncmds > LD_BATCH_CMDS_MAX)
		return CD_ECOUNT;
	for (uint32_t i = 0; i < v->ncmds; i++) {
		int rv = codec_cmd_check(v->cmds[i].client_id, v->cmds[i].len);
		if (rv != 0)
			return rv;
	}
	return 0;
}

/* Builds a value from a decoded decree; *out holds one reference. */
static int codec_value_from_pb(const Lockd__Decree *d, px_value **out)
{
	px_cmd cmds[LD_BATCH_CMDS_MAX];

	*out = NULL;
	if (d->n_cmds > LD_BATCH_CMDS_MAX)
		return CD_ECOUNT;
	for (size_t i = 0; i < d->n_cmds; i++) {
		const Lockd__Command *c = d->cmds[i];
		int rv = codec_cmd_check(c->client_id, c->data.len);
		if (rv != 0)
			return rv;
		cmds[i] = (px_cmd){.client_id = c->client_id,
				   .seq = c->seq,
				   .len = (uint32_t)c->data.len,
				   .data = c->data.data};
	}
	*out = px_value_new(cmds, (uint32_t)d->n_cmds);
	/* The limits were checked above, so NULL can only mean no memory. */
	return *out == NULL ? CD_ENOMEM : 0;
}

/* Protobuf views of core structs for packing. They point at the core's
 * bytes (packing only reads them) and own just the wrapper arrays, carved
 * from slices of one pool per kind so that freeing is four calls. */
typedef struct codec_enc {
	Lockd__Command *cmds;
	Lockd__Command **cmd_ptrs;
	size_t ncmds, cmds_cap;
	Lockd__Vote *votes;
	Lockd__Vote **vote_ptrs;
	Lockd__Ballot *vote_ballots;
	Lockd__Decree *vote_decrees;
} codec_enc;

static void codec_enc_free(codec_enc *e)
{
	free(e->cmds);
	free(e->cmd_ptrs);
	free(e->votes);
	free(e->vote_ptrs);
	free(e->vote_ballots);
	free(e->vote_decrees);
}

/* Sizes the pools for cmds_cap commands and nvotes votes. */
static int codec_enc_init(codec_enc *e, size_t cmds_cap, size_t nvotes)
{
	*e = (codec_enc){.cmds_cap = cmds_cap};
	if (cmds_cap > 0) {
		e->cmds = calloc(cmds_cap, sizeof *e->cmds);
		e->cmd_ptrs = calloc(cmds_cap, sizeof *e->cmd_ptrs);
		if (e->cmds == NULL || e->cmd_ptrs == NULL)
			goto nomem;
	}
	if (nvotes > 0) {
		e->votes = calloc(nvotes, sizeof *e->votes);
		e->vote_ptrs = calloc(nvotes, sizeof *e->vote_ptrs);
		e->vote_ballots = calloc(nvotes, sizeof *e->vote_ballots);
		e->vote_decrees = calloc(nvotes, sizeof *e->vote_decrees);
		if (e->votes == NULL || e->vote_ptrs == NULL ||
		    e->vote_ballots == NULL || e->vote_decrees == NULL)
			goto nomem;
	}
	return 0;
nomem:
	codec_enc_free(e);
	return CD_ENOMEM;
}

/* Points d at v's commands, taking v->ncmds slots of the command pool. */
static int codec_enc_value(codec_enc *e, const px_value *v, Lockd__Decree *d)
{
	int rv = codec_value_check(v);
	if (rv != 0)
		return rv;
	assert(e->ncmds + v->ncmds <= e->cmds_cap);
	lockd__decree__init(d);
	d->n_cmds = v->ncmds;
	d->cmds = v->ncmds > 0 ? &e->cmd_ptrs[e->ncmds] : NULL;
	for (uint32_t i = 0; i < v->ncmds; i++) {
		Lockd__Command *c = &e->cmds[e->ncmds++];
		lockd__command__init(c);
		c->client_id = v->cmds[i].client_id;
		c->seq = v->cmds[i].seq;
		c->data.len = v->cmds[i].len;
		c->data.data = (uint8_t *)v->cmds[i].data;
		d->cmds[i] = c;
	}
	return 0;
}

static px_ballot codec_ballot_from_pb(const Lockd__Ballot *b)
{
	if (b == NULL)
		return (px_ballot){0, 0};
	return (px_ballot){.round = b->round, .id = b->id};
}

/* Fills pb from b; returns pb, or NULL for the zero ballot, which is left
 * out like every other default value, so that the encoding stays canonical
 * (decoding then encoding gives the same bytes). */
static Lockd__Ballot *codec_ballot_to_pb(px_ballot b, Lockd__Ballot *pb)
{
	if (b.round == 0 && b.id == 0)
		return NULL;
	lockd__ballot__init(pb);
	pb->round = b.round;
	pb->id = b.id;
	return pb;
}

int cd_value_encode(const px_value *v, uint8_t **buf, size_t *len)
{
	Lockd__Decree d;
	codec_enc e;

	*buf = NULL;
	assert(v != NULL);
	int rv = codec_enc_init(&e, v->ncmds, 0);
	if (rv != 0)
		return rv;
	rv = codec_enc_value(&e, v, &d);
	if (rv == 0)
		rv = codec_pack(&d.base, CD_VALUE_BYTES_MAX, buf, len);
	codec_enc_free(&e);
	return rv;
}

int cd_value_decode(const uint8_t *buf, size_t len, px_value **out)
{
	ProtobufCMessage *pm;

	*out = NULL;
	int rv = codec_unpack(&lockd__decree__descriptor, buf, len,
			      CD_VALUE_BYTES_MAX, &pm);
	if (rv != 0)
		return rv;
	rv = codec_value_from_pb((const Lockd__Decree *)pm, out);
	protobuf_c_message_free_unpacked(pm, NULL);
	return rv;
}

/* ---- peer messages ------------------------------------------------------ */

/* What the codec checks about a message in both directions; replica ids and
 * the per-type rules are checked on decode (px_msg_validate). */
static int codec_msg_check(const px_msg *m)
{
	if (m->type < PX_MSG_PREPARE || m->type > PX_MSG_TYPE_MAX)
		return CD_ETYPE;
	if (m->nvotes > LD_LOG_SLOTS_MAX)
		return CD_ECOUNT;
	if (m->nvotes > 0 && m->votes == NULL)
		return CD_EFIELDS;
	if (m->value != NULL) {
		int rv = codec_value_check(m->value);
		if (rv != 0)
			return rv;
	}
	for (uint32_t i = 0; i < m->nvotes; i++) {
		if (m->votes[i].value == NULL)
			return CD_EFIELDS;
		int rv = codec_value_check(m->votes[i].value);
		if (rv != 0)
			return rv;
	}
	if (m->snap_len > LD_SNAPSHOT_CHUNK_BYTES_MAX ||
	    m->snap_total > LD_SNAPSHOT_BYTES_MAX)
		return CD_ESNAPSHOT;
	if (m->snap_len > 0 && m->snap == NULL)
		return CD_EFIELDS;
	return 0;
}

int cd_msg_encode(const px_msg *m, uint8_t **buf, size_t *len)
{
	Lockd__PeerMsg pm;
	Lockd__Ballot ballot;
	Lockd__Decree value;
	codec_enc e;

	*buf = NULL;
	assert(m != NULL);
	int rv = codec_msg_check(m);
	if (rv != 0)
		return rv;
	size_t ncmds = m->value != NULL ? m->value->ncmds : 0;
	for (uint32_t i = 0; i < m->nvotes; i++)
		ncmds += m->votes[i].value->ncmds;
	rv = codec_enc_init(&e, ncmds, m->nvotes);
	if (rv != 0)
		return rv;

	lockd__peer_msg__init(&pm);
	pm.type = (Lockd__MsgType)m->type;
	pm.from = m->from;
	pm.to = m->to;
	pm.ballot = codec_ballot_to_pb(m->ballot, &ballot);
	pm.slot = m->slot;
	pm.commit = m->commit;
	pm.snapshot_base = m->base;
	pm.flags = m->flags;
	pm.heartbeat = m->hb;
	pm.digest_slot = m->dslot;
	pm.digest = m->digest;
	pm.verified_slot = m->vslot;
	pm.verified_digest = m->vdigest;
	pm.incarnation = m->incarnation;
	if (m->value != NULL) {
		rv = codec_enc_value(&e, m->value, &value);
		if (rv != 0)
			goto out;
		pm.value = &value;
	}
	pm.n_votes = m->nvotes;
	pm.votes = m->nvotes > 0 ? e.vote_ptrs : NULL;
	for (uint32_t i = 0; i < m->nvotes; i++) {
		Lockd__Vote *v = &e.votes[i];
		lockd__vote__init(v);
		v->slot = m->votes[i].slot;
		v->chosen = m->votes[i].chosen;
		v->ballot = codec_ballot_to_pb(m->votes[i].ballot,
					       &e.vote_ballots[i]);
		rv = codec_enc_value(&e, m->votes[i].value, &e.vote_decrees[i]);
		if (rv != 0)
			goto out;
		v->value = &e.vote_decrees[i];
		e.vote_ptrs[i] = v;
	}
	pm.snap.len = m->snap_len;
	pm.snap.data = m->snap;
	pm.snap_offset = m->snap_off;
	pm.snap_total = m->snap_total;
	pm.snap_sum = m->snap_sum;
	rv = codec_pack(&pm.base, LD_MESSAGE_BYTES_MAX, buf, len);
out:
	codec_enc_free(&e);
	return rv;
}

/* Fills m (zeroed, owned by the caller) from pm; on error m holds whatever
 * was built so far, for px_msg_free. */
static int codec_msg_from_pb(const Lockd__PeerMsg *pm, px_msg *m)
{
	if ((int)pm->type < (int)PX_MSG_PREPARE ||
	    (int)pm->type > (int)PX_MSG_TYPE_MAX)
		return CD_ETYPE;
	m->type = (px_msg_type)pm->type;
	m->from = pm->from;
	m->to = pm->to;
	m->ballot = codec_ballot_from_pb(pm->ballot);
	/* Ids are the cell's whole id space, not its current size: members
	 * come and go (paxos.h, membership), and the core refuses a message
	 * from an id that is not a member. */
	if (m->from >= LD_REPLICA_IDS || m->to >= LD_REPLICA_IDS ||
	    m->ballot.id >= LD_REPLICA_IDS)
		return CD_EREPLICA;
	m->slot = pm->slot;
	m->commit = pm->commit;
	m->base = pm->snapshot_base;
	m->flags = pm->flags;
	m->hb = pm->heartbeat;
	m->dslot = pm->digest_slot;
	m->digest = pm->digest;
	m->vslot = pm->verified_slot;
	m->vdigest = pm->verified_digest;
	m->incarnation = pm->incarnation;
	m->snap_off = pm->snap_offset;
	m->snap_total = pm->snap_total;
	m->snap_sum = pm->snap_sum;
	if (pm->n_votes > LD_LOG_SLOTS_MAX)
		return CD_ECOUNT;
	if (pm->snap.len > LD_SNAPSHOT_CHUNK_BYTES_MAX ||
	    pm->snap_total > LD_SNAPSHOT_BYTES_MAX)
		return CD_ESNAPSHOT;
	if (pm->value != NULL) {
		int rv = codec_value_from_pb(pm->value, &m->value);
		if (rv != 0)
			return rv;
	}
	if (pm->n_votes > 0) {
		m->votes = calloc(pm->n_votes, sizeof *m->votes);
		if (m->votes == NULL)
			return CD_ENOMEM;
	}
	for (size_t i = 0; i < pm->n_votes; i++) {
		const Lockd__Vote *pv = pm->votes[i];
		px_vote *v = &m->votes[i];
		if (pv->value == NULL)
			return CD_EFIELDS;
		v->slot = pv->slot;
		v->chosen = pv->chosen;
		v->ballot = codec_ballot_from_pb(pv->ballot);
		if (v->ballot.id >= LD_REPLICA_IDS)
			return CD_EREPLICA;
		int rv = codec_value_from_pb(pv->value, &v->value);
		if (rv != 0)
			return rv;
		m->nvotes++;
	}
	if (pm->snap.len > 0) {
		m->snap = malloc(pm->snap.len);
		if (m->snap == NULL)
			return CD_ENOMEM;
		memcpy(m->snap, pm->snap.data, pm->snap.len);
		m->snap_len = (uint32_t)pm->snap.len;
	}
	return 0;
}

int cd_msg_decode(const uint8_t *buf, size_t len, px_msg **out)
{
	ProtobufCMessage *pm;

	*out = NULL;
	int rv = codec_unpack(&lockd__peer_msg__descriptor, buf, len,
			      LD_MESSAGE_BYTES_MAX, &pm);
	if (rv != 0)
		return rv;
	px_msg *m = calloc(1, sizeof *m);
	if (m == NULL) {
		rv = CD_ENOMEM;
	} else {
		rv = codec_msg_from_pb((const Lockd__PeerMsg *)pm, m);
		if (rv == 0)
			rv = codec_msg_check(m);
		if (rv == 0 && px_msg_validate(m, LD_REPLICA_IDS) != 0)
			rv = CD_EINVALID;
	}
	protobuf_c_message_free_unpacked(pm, NULL);
	if (rv != 0) {
		px_msg_free(m);
		return rv;
	}
	*out = m;
	return 0;
}

/* ---- durable records ---------------------------------------------------- */

/* The shape of a record, in both directions: each type carries exactly its
 * own fields, so nothing written can fail to read back. */
static int codec_record_check(const px_record *rec)
{
	if (rec->type < PX_REC_PROMISE || rec->type > PX_REC_JOINED)
		return CD_ETYPE;
	if (rec->ballot.id >= LD_REPLICA_IDS)
		return CD_EREPLICA;
	/* A VOTE carries a value, a CHOSEN hint may, the others never. */
	if (rec->type == PX_REC_VOTE
		    ? rec->value == NULL
		    : rec->value != NULL && rec->type != PX_REC_CHOSEN)
		return CD_EFIELDS;
	if (rec->value != NULL) {
		int rv = codec_value_check(rec->value);
		if (rv != 0)
			return rv;
	}
	if (rec->snap_len > LD_SNAPSHOT_BYTES_MAX)
		return CD_ESNAPSHOT;
	if (rec->snap_len > 0 &&
	    (rec->type != PX_REC_SNAPSHOT || rec->snap == NULL))
		return CD_EFIELDS;
	return 0;
}

int cd_record_encode(const px_record *rec, uint8_t **buf, size_t *len)
{
	Lockd__Record pr;
	Lockd__Ballot ballot;
	Lockd__Decree value;
	codec_enc e;

	*buf = NULL;
	assert(rec != NULL);
	int rv = codec_record_check(rec);
	if (rv != 0)
		return rv;
	rv = codec_enc_init(&e, rec->value != NULL ? rec->value->ncmds : 0, 0);
	if (rv != 0)
		return rv;
	lockd__record__init(&pr);
	pr.type = (Lockd__RecordType)rec->type;
	pr.ballot = codec_ballot_to_pb(rec->ballot, &ballot);
	pr.slot = rec->slot;
	if (rec->value != NULL) {
		rv = codec_enc_value(&e, rec->value, &value);
		assert(rv == 0); /* checked by codec_record_check */
		pr.value = &value;
	}
	pr.snap.len = rec->snap_len;
	pr.snap.data = rec->snap;
	rv = codec_pack(&pr.base, CD_RECORD_BYTES_MAX, buf, len);
	codec_enc_free(&e);
	return rv;
}

int cd_record_decode(const uint8_t *buf, size_t len, px_record *rec)
{
	ProtobufCMessage *pm;
	px_record r = {0};

	memset(rec, 0, sizeof *rec);
	int rv = codec_unpack(&lockd__record__descriptor, buf, len,
			      CD_RECORD_BYTES_MAX, &pm);
	if (rv != 0)
		return rv;
	const Lockd__Record *pr = (const Lockd__Record *)pm;
	if ((int)pr->type < (int)PX_REC_PROMISE ||
	    (int)pr->type > (int)PX_REC_JOINED) {
		rv = CD_ETYPE;
		goto out;
	}
	r.type = (px_rec_type)pr->type;
	r.ballot = codec_ballot_from_pb(pr->ballot);
	r.slot = pr->slot;
	if (pr->snap.len > LD_SNAPSHOT_BYTES_MAX) {
		rv = CD_ESNAPSHOT;
		goto out;
	}
	if (pr->value != NULL) {
		rv = codec_value_from_pb(pr->value, &r.value);
		if (rv != 0)
			goto out;
	}
	if (pr->snap.len > 0) {
		r.snap = malloc(pr->snap.len);
		if (r.snap == NULL) {
			rv = CD_ENOMEM;
			goto out;
		}
		memcpy(r.snap, pr->snap.data, pr->snap.len);
		r.snap_len = (uint32_t)pr->snap.len;
	}
	rv = codec_record_check(&r);
out:
	protobuf_c_message_free_unpacked(pm, NULL);
	if (rv != 0) {
		px_record_clear(&r);
		return rv;
	}
	*rec = r;
	return 0;
}

/* ---- membership ----------------------------------------------------------
 */

/* What a configuration must be, both ways: at most LD_REPLICAS_MAX members,
 * by increasing id below LD_REPLICA_IDS, none of them removed, URLs
 * NUL-terminated within LD_URL_BYTES_MAX. */
static int codec_members_check(const px_members *m)
{
	if (m->n > LD_REPLICAS_MAX)
		return CD_ECOUNT;
	for (uint32_t i = 0; i < m->n; i++) {
		const px_member *e = &m->m[i];
		if (e->id >= LD_REPLICA_IDS ||
		    (i > 0 && e->id <= m->m[i - 1].id) ||
		    (m->removed >> e->id & 1u))
			return CD_EREPLICA;
		if (memchr(e->peer, '\0', sizeof e->peer) == NULL ||
		    memchr(e->client, '\0', sizeof e->client) == NULL)
			return CD_EFIELDS;
	}
	return 0;
}

int cd_members_encode(const px_members *m, uint8_t **buf, size_t *len)
{
	*buf = NULL;
	int rv = codec_members_check(m);
	if (rv != 0)
		return rv;
	Lockd__Members pm;
	Lockd__Member em[LD_REPLICAS_MAX];
	Lockd__Member *ptrs[LD_REPLICAS_MAX];
	lockd__members__init(&pm);
	for (uint32_t i = 0; i < m->n; i++) {
		lockd__member__init(&em[i]);
		em[i].id = m->m[i].id;
		em[i].voting = m->m[i].voting;
		em[i].incarnation = m->m[i].incarnation;
		em[i].peer = (char *)m->m[i].peer;
		em[i].client = (char *)m->m[i].client;
		ptrs[i] = &em[i];
	}
	pm.n_members = m->n;
	pm.members = m->n > 0 ? ptrs : NULL;
	pm.removed = m->removed;
	return codec_pack(&pm.base, CD_MEMBERS_BYTES_MAX, buf, len);
}

int cd_members_decode(const uint8_t *buf, size_t len, px_members *out)
{
	ProtobufCMessage *pm;
	memset(out, 0, sizeof *out);
	int rv = codec_unpack(&lockd__members__descriptor, buf, len,
			      CD_MEMBERS_BYTES_MAX, &pm);
	if (rv != 0)
		return rv;
	const Lockd__Members *p = (const Lockd__Members *)pm;
	px_members m = {0};
	if (p->n_members > LD_REPLICAS_MAX) {
		rv = CD_ECOUNT;
		goto out;
	}
	m.n = (uint32_t)p->n_members;
	m.removed = p->removed;
	for (uint32_t i = 0; i < m.n; i++) {
		const Lockd__Member *e = p->members[i];
		if (strlen(e->peer) >= LD_URL_BYTES_MAX ||
		    strlen(e->client) >= LD_URL_BYTES_MAX) {
			rv = CD_EFIELDS;
			goto out;
		}
		m.m[i].id = e->id;
		m.m[i].voting = e->voting;
		m.m[i].incarnation = e->incarnation;
		strcpy(m.m[i].peer, e->peer);
		strcpy(m.m[i].client, e->client);
	}
	rv = codec_members_check(&m);
	if (rv == 0)
		*out = m;
out:
	protobuf_c_message_free_unpacked(pm, NULL);
	return rv;
}

/* ---- client requests ------------------------------------------------------
 */

static bool codec_is_32bit(ProtobufCType t)
{
	return t == PROTOBUF_C_TYPE_UINT32 || t == PROTOBUF_C_TYPE_INT32 ||
	       t == PROTOBUF_C_TYPE_SINT32 || t == PROTOBUF_C_TYPE_ENUM;
}

int cd_request_check(const uint8_t *buf, size_t len, char *err, size_t errlen)
{
	const ProtobufCMessageDescriptor *desc = &lockd__request__descriptor;
	size_t pos = 0;
	while (pos < len) {
		codec_field fl;
		if (!codec_field_next(buf, len, &pos, &fl))
			return 0;
		/* protobuf-c 1.4.1 keeps a field numbered 0 as an unknown
		 * field, which it then packs into bytes it cannot unpack
		 * (found by test/fuzz/request_fuzz.c): no such field exists. */
		if (fl.id == 0) {
			snprintf(err, errlen,
				 "field number 0 is not a protobuf field");
			return CD_EMALFORMED;
		}
		if (fl.wt != WIRE_VARINT)
			continue;
		if (fl.id > UINT32_MAX)
			return 0;
		const ProtobufCFieldDescriptor *f =
			protobuf_c_message_descriptor_get_field(
				desc, (unsigned)fl.id);
		/* (The enums here have no negative values, which would take
		 * ten bytes.) */
		if (f != NULL && codec_is_32bit(f->type) && fl.v > UINT32_MAX) {
			snprintf(err, errlen,
				 "%s does not fit in 32 bits: %llu is over %u",
				 f->name, (unsigned long long)fl.v, UINT32_MAX);
			return CD_EMALFORMED;
		}
	}
	return 0;
}
