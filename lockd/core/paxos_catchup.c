/* Snapshots and catch-up: the snapshot's encoding (client table, state
 * machine, configurations), taking one every snapshot_every_slots, installing
 * one, and a lagging replica's catch-up by chosen decrees or by snapshot. */
#include "paxos_int.h"

/* ---- snapshots: client table + state machine ---------------------------- */

#define SNAP_MAGIC 0x4c44534eu  /* "LDSN": no configurations */
#define SNAP_MAGIC2 0x4c445332u /* "LDS2": configurations after clients */

void pxi_put_u32(uint8_t **p, uint32_t v)
{
	bytes_put_le32(*p, v);
	*p += 4;
}

void pxi_put_u64(uint8_t **p, uint64_t v)
{
	bytes_put_le64(*p, v);
	*p += 8;
}

int pxi_get_u32(const uint8_t **p, const uint8_t *end, uint32_t *v)
{
	if (end - *p < 4)
		return -1;
	*v = bytes_get_le32(*p);
	*p += 4;
	return 0;
}

int pxi_get_u64(const uint8_t **p, const uint8_t *end, uint64_t *v)
{
	if (end - *p < 8)
		return -1;
	*v = bytes_get_le64(*p);
	*p += 8;
	return 0;
}

void pxi_put_str(uint8_t **p, const char *s)
{
	size_t n = strlen(s);
	*(*p)++ = (uint8_t)n;
	*(*p)++ = (uint8_t)(n >> 8);
	memcpy(*p, s, n);
	*p += n;
}

int pxi_get_str(const uint8_t **p, const uint8_t *end, char *s)
{
	if (end - *p < 2)
		return -1;
	size_t n = (size_t)(*p)[0] | (size_t)(*p)[1] << 8;
	*p += 2;
	if (n >= LD_URL_BYTES_MAX || (size_t)(end - *p) < n ||
	    memchr(*p, 0, n) != NULL)
		return -1;
	memcpy(s, *p, n);
	s[n] = 0;
	*p += n;
	return 0;
}

static size_t members_size(const px_members *m)
{
	size_t n = 8 + 4;
	for (uint32_t i = 0; i < m->n; i++)
		n += 4 + 1 + 8 + 2 + strlen(m->m[i].peer) + 2 +
		     strlen(m->m[i].client);
	return n;
}

static void put_members(uint8_t **p, const px_members *m)
{
	pxi_put_u64(p, m->removed);
	pxi_put_u32(p, m->n);
	for (uint32_t i = 0; i < m->n; i++) {
		pxi_put_u32(p, m->m[i].id);
		*(*p)++ = m->m[i].voting ? 1 : 0;
		pxi_put_u64(p, m->m[i].incarnation);
		pxi_put_str(p, m->m[i].peer);
		pxi_put_str(p, m->m[i].client);
	}
}

static int get_members(const uint8_t **p, const uint8_t *end, px_members *m)
{
	memset(m, 0, sizeof *m);
	if (pxi_get_u64(p, end, &m->removed) || pxi_get_u32(p, end, &m->n) ||
	    m->n == 0 || m->n > LD_REPLICAS_MAX)
		return -1;
	for (uint32_t i = 0; i < m->n; i++) {
		px_member *x = &m->m[i];
		if (pxi_get_u32(p, end, &x->id) || x->id >= LD_REPLICA_IDS ||
		    (i > 0 && x->id <= m->m[i - 1].id) || end - *p < 1 ||
		    **p > 1)
			return -1;
		x->voting = *(*p)++ == 1;
		if (pxi_get_u64(p, end, &x->incarnation) ||
		    pxi_get_str(p, end, x->peer) ||
		    pxi_get_str(p, end, x->client))
			return -1;
	}
	return 0;
}

/* Encodes the applied state at r->commit. 0, or -1 when out of memory. */
static int snapshot_encode(px_replica *r, uint8_t **out, size_t *len);

int px_replica_capture(px_replica *r, uint8_t **out, size_t *len,
		       uint64_t *base, uint64_t *sum)
{
	if (snapshot_encode(r, out, len) != 0)
		return -1;
	*base = r->commit;
	*sum = px_checksum(*out, *len);
	return 0;
}

static int snapshot_encode(px_replica *r, uint8_t **out, size_t *len)
{
	uint8_t *smb = NULL;
	size_t smlen = 0;
	if (r->sm->ops->snapshot(r->sm, &smb, &smlen) != 0)
		return -1;
	size_t n = 4 + 4 + 8;
	const mem_idtab *ct = &r->clients.tab;
	for (uint32_t i = 0; i < ct->cap; i++) {
		const client_ent *c = mem_idtab_at(ct, i);
		if (c->client_id != 0)
			n += 8 + 8 + 8 + 4 + c->result_len;
	}
	n += 4;
	for (uint32_t i = 0; i < r->nconfs; i++)
		n += 8 + members_size(&r->confs[i].m);
	n += smlen;
	uint8_t *buf = malloc(n), *p = buf;
	if (buf == NULL) {
		free(smb);
		return -1;
	}
	pxi_put_u32(&p, SNAP_MAGIC2);
	pxi_put_u32(&p, pxc_count(&r->clients));
	pxi_put_u64(&p, r->commit);
	for (uint32_t i = 0; i < ct->cap; i++) {
		const client_ent *c = mem_idtab_at(ct, i);
		if (c->client_id == 0)
			continue;
		pxi_put_u64(&p, c->client_id);
		pxi_put_u64(&p, c->seq);
		pxi_put_u64(&p, c->slot);
		pxi_put_u32(&p, c->result_len);
		memcpy(p, c->result, c->result_len);
		p += c->result_len;
	}
	pxi_put_u32(&p, r->nconfs);
	for (uint32_t i = 0; i < r->nconfs; i++) {
		pxi_put_u64(&p, r->confs[i].from);
		put_members(&p, &r->confs[i].m);
	}
	if (smlen > 0)
		memcpy(p, smb, smlen);
	p += smlen;
	assert((size_t)(p - buf) == n);
	free(smb);
	*out = buf;
	*len = n;
	return 0;
}

/* Replaces the client table and the state machine from a snapshot. Validates
 * everything before changing anything. */
static int snapshot_decode(px_replica *r, const uint8_t *buf, size_t len,
			   uint64_t base)
{
	const uint8_t *p = buf, *end = buf + len;
	uint32_t magic, n;
	uint64_t at;
	if (pxi_get_u32(&p, end, &magic) ||
	    (magic != SNAP_MAGIC && magic != SNAP_MAGIC2) ||
	    pxi_get_u32(&p, end, &n) || n > LD_CLIENTS_MAX ||
	    pxi_get_u64(&p, end, &at) || at != base)
		return -1;
	const uint8_t *clients = p;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = 0, seq = 0, slot = 0;
		uint32_t rl = 0;
		if (pxi_get_u64(&p, end, &id) || id == 0 ||
		    pxi_get_u64(&p, end, &seq) || pxi_get_u64(&p, end, &slot) ||
		    pxi_get_u32(&p, end, &rl) || rl > LD_RESULT_BYTES_MAX ||
		    (size_t)(end - p) < rl)
			return -1;
		p += rl;
	}
	/* Configurations: from slots increasing, the first one governing
	 * base + 1. A snapshot without them (written before membership
	 * changes existed) keeps the one we started with. */
	conf *confs = NULL;
	uint32_t nc = 0;
	if (magic == SNAP_MAGIC2) {
		if (pxi_get_u32(&p, end, &nc) || nc == 0 || nc > PX_ALPHA + 1)
			return -1;
		confs = calloc(nc, sizeof *confs);
		if (confs == NULL)
			return -1;
		for (uint32_t i = 0; i < nc; i++) {
			uint64_t from;
			px_members m;
			if (pxi_get_u64(&p, end, &from) ||
			    get_members(&p, end, &m) ||
			    (i == 0 && from > base + 1) ||
			    (i > 0 && from <= confs[i - 1].from)) {
				free(confs);
				return -1;
			}
			pxi_conf_fill(&confs[i], &m, from,
				      MUTANT(r, PX_MUTANT_MINORITY_QUORUM));
		}
	}
	if (r->sm->ops->restore(r->sm, p, (size_t)(end - p)) != 0) {
		free(confs);
		return -1;
	}
	if (nc > 0) {
		r->nconfs = 0;
		for (uint32_t i = 0; i < nc; i++)
			*pxi_conf_push(r) = confs[i];
		free(confs);
	}
	pxc_reset(&r->clients, n);
	p = clients;
	for (uint32_t i = 0; i < n; i++) {
		uint64_t id = 0, seq = 0, slot = 0;
		uint32_t rl = 0;
		pxi_get_u64(&p, end, &id);
		pxi_get_u64(&p, end, &seq);
		pxi_get_u64(&p, end, &slot);
		pxi_get_u32(&p, end, &rl);
		pxc_put(&r->clients, id, seq, slot, p, rl);
		p += rl;
	}
	pxc_loaded(&r->clients);
	return 0;
}

/* The snapshot this replica serves from now on (buf is taken). */
static void snap_keep_sum(px_replica *r, uint8_t *buf, size_t len,
			  uint64_t base, uint64_t sum)
{
	free(r->snap);
	r->snap = buf;
	r->snap_len = len;
	r->snap_base = base;
	r->snap_sum = sum;
}

static void snap_keep(px_replica *r, uint8_t *buf, size_t len, uint64_t base)
{
	snap_keep_sum(r, buf, len, base, px_checksum(buf, len));
}

/* Installs a snapshot at base (> commit). Returns 0 or -1 (malformed). */
int pxi_install_snapshot(px_replica *r, const uint8_t *snap, size_t len,
			 uint64_t base)
{
	if (base <= r->commit || len == 0 || len > LD_SNAPSHOT_BYTES_MAX)
		return -1;
	if (snapshot_decode(r, snap, len, base) != 0)
		return -1;
	uint8_t *copy = malloc(len);
	if (copy == NULL)
		abort();
	memcpy(copy, snap, len);
	snap_keep(r, copy, len, base);
	r->commit = base;
	r->bytes_since_snap = 0;
	pxi_log_truncate(r, base + 1);
	pxi_conf_prune(r);
	r->leaving = (pxi_conf_latest(r)->m.removed & id_bit(r->cfg.id)) != 0;
	pxi_ckpt_note(r, base, r->sm->ops->digest(r->sm));
	return 0;
}

/* ---- taking snapshots ------------------------------------------------ */

/* A snapshot is taken every snapshot_every_slots applied slots at the
 * earliest, and then once the decrees applied since the last one add up to
 * its own size (so that a large table under small decrees, ticks say, is
 * not rewritten whole every few hundred slots: snapshots cost at most about
 * as many bytes as the ledger itself), or at the latest when the in-memory
 * log would run out of room for the next interval. */
#define SNAP_SLOTS_LATEST \
	(LD_LOG_SLOTS_MAX - LD_LOG_TAIL_SLOTS - LD_WINDOW_SLOTS_MAX - 1)

/* Writing a large snapshot stops the loop for a while (a million leases:
 * about half a second), so replicas stagger the latest point by id, and a
 * leader, whose stall is the whole cell's, takes a large one only then. */
#define SNAP_LARGE_BYTES (1024u * 1024u)

/* snapshot_async: a capture not back after this many election timeouts is
 * taken as lost and asked for again. */
#define SNAP_CAPTURE_PATIENCE 20u

static void snap_take(px_replica *r, uint8_t *buf, size_t len, uint64_t base,
		      uint64_t sum, px_actions *out);

void pxi_maybe_snapshot(px_replica *r, px_actions *out)
{
	uint64_t slots = r->commit - r->snap_base;
	if (slots < r->cfg.snapshot_every_slots)
		return;
	uint64_t latest =
		SNAP_SLOTS_LATEST - (r->cfg.id % 4) * (SNAP_SLOTS_LATEST / 8);
	bool large = r->snap != NULL && r->snap_len > SNAP_LARGE_BYTES;
	if (slots < latest && r->role == PX_LEADER && large)
		return;
	/* The bytes rule staggered too: it would stop every follower at the
	 * same slot, leaving the leader without a quorum meanwhile. */
	if (slots < latest && r->snap != NULL &&
	    r->bytes_since_snap <
		    r->snap_len + r->snap_len / 4 * (r->cfg.id % 4))
		return;
	if (r->cfg.snapshot_async) {
		/* Asked already: wait for it, unless it looks lost (a child
		 * that died without a word). */
		if (r->now_us < r->snap_ask_after_us)
			return;
		r->snap_ask_after_us =
			r->now_us +
			SNAP_CAPTURE_PATIENCE * r->cfg.election_timeout_us;
		out->snapshot_want = true;
		return;
	}
	r->bytes_since_snap = 0;
	uint8_t *buf;
	size_t len;
	if (snapshot_encode(r, &buf, &len) != 0)
		return; /* out of memory: try again after the next decree */
	snap_take(r, buf, len, r->commit, px_checksum(buf, len), out);
}

/* Keeps buf as the snapshot at base, writes it, and truncates the log. */
static void snap_take(px_replica *r, uint8_t *buf, size_t len, uint64_t base,
		      uint64_t sum, px_actions *out)
{
	uint8_t *copy = malloc(len);
	if (copy == NULL) {
		free(buf);
		return;
	}
	memcpy(copy, buf, len);
	snap_keep_sum(r, buf, len, base, sum);
	pxi_persist(r, out,
		    (px_record){.type = PX_REC_SNAPSHOT,
				.slot = r->snap_base,
				.snap_len = (uint32_t)len,
				.snap = copy});
	if (r->snap_base + 1 > LD_LOG_TAIL_SLOTS)
		pxi_log_truncate(r, r->snap_base + 1 - LD_LOG_TAIL_SLOTS);
}

void pxi_on_capture(px_replica *r, const px_event *ev, px_actions *out)
{
	uint64_t base = ev->snap_base;
	/* The broken variant labels the bytes with where the replica is when
	 * they come back, not where they were taken. */
	if (MUTANT(r, PX_MUTANT_SNAP_LATE_BASE))
		base = r->commit;
	if (ev->snap == NULL) {
		/* Failed (no memory for a fork, say): ask again a little
		 * later, not at once. */
		r->snap_ask_after_us = r->now_us + r->cfg.election_timeout_us;
		return;
	}
	/* One taken before a snapshot installed since, or a duplicate: the
	 * replica has as much already. */
	if (base <= r->snap_base || base > r->commit || ev->snap_len == 0 ||
	    ev->snap_len > LD_SNAPSHOT_BYTES_MAX) {
		free(ev->snap);
		r->snap_ask_after_us = 0;
		return;
	}
	r->snap_ask_after_us = 0;
	r->bytes_since_snap = 0;
	snap_take(r, ev->snap, ev->snap_len, base, ev->snap_sum, out);
}

/* ---- catch-up ---------------------------------------------------------- */

void pxi_maybe_catchup(px_replica *r, px_actions *out)
{
	if (r->role == PX_LEADER || r->known_commit <= r->commit ||
	    r->known_commit_from < 0 ||
	    (uint32_t)r->known_commit_from == r->cfg.id)
		return;
	if (r->catchup_sent_us != 0 &&
	    r->now_us < r->catchup_sent_us + r->cfg.retry_us)
		return;
	px_msg *m = pxi_msg_new(r, PX_MSG_CATCHUP_REQ,
				(uint32_t)r->known_commit_from);
	m->slot = r->commit + 1;
	/* A snapshot half received goes on where it stopped, if the replica
	 * asked still serves it; one this replica has passed is dropped. */
	if (r->rx.base != 0 && r->rx.base <= r->commit)
		pxi_snap_rx_drop(r);
	if (r->rx.base != 0) {
		m->base = r->rx.base;
		m->snap_off = r->rx.have;
		m->snap_sum = r->rx.sum;
	}
	r->catchup_sent_us = r->now_us;
	r->catchup_to = r->known_commit_from;
	r->catchup_asked_us = r->now_us;
	pxi_emit(r, out, m);
}

void pxi_on_catchup_req(px_replica *r, const px_msg *m, px_actions *out)
{
	if (m->slot > r->commit)
		return;
	if (m->slot < r->log_start || entry_at(r, m->slot) == NULL ||
	    entry_at(r, m->slot)->chosen == NULL) {
		if (r->snap == NULL || r->snap_base < m->slot)
			return;
		/* One chunk per request: the requester asks for the next
		 * when this one is in (flow control), and again from where
		 * it stands when one is lost (resumption). It goes on only
		 * with the snapshot it has begun: same base, same bytes. */
		uint64_t off = 0;
		if (m->base == r->snap_base && m->snap_sum == r->snap_sum &&
		    m->snap_off < r->snap_len)
			off = m->snap_off;
		size_t n = r->snap_len - off;
		if (n > r->cfg.snapshot_chunk_bytes)
			n = r->cfg.snapshot_chunk_bytes;
		px_msg *s = pxi_msg_new(r, PX_MSG_SNAPSHOT, m->from);
		s->snap = malloc(n);
		if (s->snap == NULL)
			abort();
		memcpy(s->snap, r->snap + off, n);
		s->snap_len = (uint32_t)n;
		s->snap_off = off;
		s->snap_total = r->snap_len;
		s->snap_sum = r->snap_sum;
		s->base = r->snap_base;
		pxi_emit(r, out, s);
		return;
	}
	uint64_t hi = r->commit;
	if (hi - m->slot + 1 > LD_CATCHUP_SLOTS_MAX)
		hi = m->slot + LD_CATCHUP_SLOTS_MAX - 1;
	px_msg *c = pxi_msg_new(r, PX_MSG_CATCHUP, m->from);
	c->votes = calloc(hi - m->slot + 1, sizeof *c->votes);
	if (c->votes == NULL)
		abort();
	/* Bounded by bytes too, so the message always encodes; the requester
	 * asks again from where this one ends. */
	size_t bytes = 0;
	for (uint64_t s = m->slot; s <= hi; s++) {
		const entry *e = entry_at(r, s);
		if (e == NULL || e->chosen == NULL)
			break;
		size_t vb = 64;
		for (uint32_t i = 0; i < e->chosen->ncmds; i++)
			vb += 32 + e->chosen->cmds[i].len;
		if (c->nvotes > 0 && bytes + vb > LD_CATCHUP_BYTES_MAX)
			break;
		bytes += vb;
		c->votes[c->nvotes++] =
			(px_vote){.slot = s, .value = px_value_ref(e->chosen)};
	}
	c->slot = m->slot;
	pxi_emit(r, out, c);
}

/* Whether m answers the catch-up request this replica made last. */
static bool catchup_asked(const px_replica *r, const px_msg *m)
{
	return r->catchup_to == (int32_t)m->from &&
	       r->now_us < r->catchup_asked_us + r->cfg.election_timeout_us;
}

void pxi_on_catchup(px_replica *r, const px_msg *m, px_actions *out)
{
	/* A leader learns only from its own quorums (see the top). */
	if (r->role == PX_LEADER || !catchup_asked(r, m))
		return;
	pxi_note_commit(r, m);
	uint64_t before = r->commit;
	for (uint32_t i = 0; i < m->nvotes; i++)
		pxi_learn(r, m->votes[i].slot, m->votes[i].value);
	pxi_advance(r, out);
	if (r->commit > before)
		r->catchup_progress_us = r->now_us;
	r->catchup_sent_us = 0;
	pxi_maybe_catchup(r, out);
}

void pxi_snap_rx_drop(px_replica *r)
{
	free(r->rx.buf);
	memset(&r->rx, 0, sizeof r->rx);
}

/* Takes a chunk into the snapshot being received. Returns true when the
 * snapshot is whole and its checksum holds (then r->rx holds it). */
static bool snap_rx_chunk(px_replica *r, const px_msg *m)
{
	if (m->snap_off == 0) {
		/* The start of a snapshot: of a newer one, or of the same
		 * again (the sender could not go on where we were). */
		pxi_snap_rx_drop(r);
		r->rx.base = m->base;
		r->rx.total = m->snap_total;
		r->rx.sum = m->snap_sum;
	} else if (m->base != r->rx.base || m->snap_total != r->rx.total ||
		   m->snap_sum != r->rx.sum || m->snap_off != r->rx.have) {
		/* A duplicate, a late one, or one of another snapshot. */
		return false;
	}
	if (r->rx.have + m->snap_len > r->rx.cap) {
		/* Grows as chunks come, so only bytes received take room. */
		size_t cap = r->rx.cap ? r->rx.cap : 4096;
		while (cap < r->rx.have + m->snap_len)
			cap *= 2;
		if (cap > r->rx.total)
			cap = (size_t)r->rx.total;
		uint8_t *b = realloc(r->rx.buf, cap);
		if (b == NULL)
			abort();
		r->rx.buf = b;
		r->rx.cap = cap;
	}
	memcpy(r->rx.buf + r->rx.have, m->snap, m->snap_len);
	r->rx.have += m->snap_len;
	if (m->snap_len > 0)
		r->catchup_progress_us = r->now_us;
	if (r->rx.have < r->rx.total)
		return false;
	if (px_checksum(r->rx.buf, (size_t)r->rx.total) != r->rx.sum &&
	    !MUTANT(r, PX_MUTANT_SNAP_NO_CHECKSUM)) {
		/* Damaged on its way: ask for it again from the start. */
		pxi_snap_rx_drop(r);
		return false;
	}
	return true;
}

void pxi_on_snapshot(px_replica *r, const px_msg *m, px_actions *out)
{
	if (r->role == PX_LEADER || m->base <= r->commit ||
	    !catchup_asked(r, m))
		return;
	pxi_note_commit(r, m);
	bool whole = snap_rx_chunk(r, m);
	r->catchup_sent_us = 0;
	if (!whole) {
		/* The next chunk, or this one again. */
		pxi_maybe_catchup(r, out);
		return;
	}
	uint64_t base = r->rx.base;
	size_t len = (size_t)r->rx.total;
	uint8_t *snap = r->rx.buf;
	r->rx.buf = NULL;
	pxi_snap_rx_drop(r);
	if (pxi_install_snapshot(r, snap, len, base) != 0) {
		free(snap);
		pxi_maybe_catchup(r, out);
		return;
	}
	pxi_persist(r, out,
		    (px_record){.type = PX_REC_SNAPSHOT,
				.slot = base,
				.snap_len = (uint32_t)len,
				.snap = snap});
	out->installed_snapshot = true;
	out->snapshot_base = base;
	/* The state our digests described is gone: so are they, and what
	 * comparing them found. */
	memset(r->ckpts, 0, sizeof r->ckpts);
	r->digest_alarm = PX_DIGEST_OK;
	pxi_ckpt_note(r, base, r->sm->ops->digest(r->sm));
	if (r->role == PX_CANDIDATE)
		pxi_become_follower(r, out, r->now_us);
	pxi_advance(r, out);
	r->catchup_sent_us = 0;
	pxi_maybe_catchup(r, out);
}
