/* The in-memory world (world.h). */
#include "world.h"

#include <stdlib.h>
#include <string.h>

/* Timers further out than this (local) are treated as "no timer". */
#define TW_HORIZON_US (1000000ull * 3600 * 24)

static void *grow(void *p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return p;
	size_t n = *cap ? *cap * 2 : 16;
	while (n < need)
		n *= 2;
	void *q = realloc(p, n * elem);
	if (q == NULL)
		abort();
	*cap = n;
	return q;
}

/* ---- the disk ------------------------------------------------------------ */

void tw_disk_init(tw_disk *d)
{
	memset(d, 0, sizeof *d);
}

void tw_disk_free(tw_disk *d)
{
	tw_disk_wipe(d);
	free(d->durable);
	free(d->pending);
	memset(d, 0, sizeof *d);
}

void tw_record_copy(px_record *dst, const px_record *src)
{
	*dst = *src;
	dst->value = px_value_ref(src->value);
	dst->snap = NULL;
	if (src->snap_len > 0) {
		dst->snap = malloc(src->snap_len);
		if (dst->snap == NULL)
			abort();
		memcpy(dst->snap, src->snap, src->snap_len);
	}
}

void tw_disk_write_owned(tw_disk *d, px_record rec, uint64_t write_id)
{
	d->pending = grow(d->pending, &d->pending_cap, d->npending + 1,
			  sizeof *d->pending);
	d->pending[d->npending++] =
		(tw_write){.rec = rec, .write_id = write_id};
}

void tw_disk_write(tw_disk *d, const px_record *recs, size_t n,
		   uint64_t write_id)
{
	for (size_t i = 0; i < n; i++) {
		px_record rec;
		tw_record_copy(&rec, &recs[i]);
		tw_disk_write_owned(d, rec, write_id);
	}
}

static void append_owned(tw_disk *d, px_record rec)
{
	d->durable = grow(d->durable, &d->durable_cap, d->ndurable + 1,
			  sizeof *d->durable);
	d->durable[d->ndurable++] = rec;
}

void tw_disk_append(tw_disk *d, const px_record *rec)
{
	px_record copy;
	tw_record_copy(&copy, rec);
	append_owned(d, copy);
}

size_t tw_disk_sync(tw_disk *d, uint64_t write_id, bool *snapshot)
{
	size_t k = 0;
	bool snap = false;
	while (k < d->npending && d->pending[k].write_id <= write_id) {
		snap |= d->pending[k].rec.type == PX_REC_SNAPSHOT;
		append_owned(d, d->pending[k].rec);
		k++;
	}
	if (k > 0) {
		memmove(d->pending, d->pending + k,
			(d->npending - k) * sizeof *d->pending);
		d->npending -= k;
	}
	if (snapshot)
		*snapshot = snap;
	return k;
}

uint64_t tw_disk_pending_id(const tw_disk *d)
{
	return d->npending ? d->pending[d->npending - 1].write_id : 0;
}

size_t tw_disk_crash(tw_disk *d, uint64_t keep_id)
{
	tw_disk_sync(d, keep_id, NULL);
	size_t lost = d->npending;
	for (size_t i = 0; i < d->npending; i++)
		px_record_clear(&d->pending[i].rec);
	d->npending = 0;
	return lost;
}

void tw_disk_lose(tw_disk *d, uint64_t write_id)
{
	size_t k = 0;
	while (k < d->npending && d->pending[k].write_id <= write_id)
		px_record_clear(&d->pending[k++].rec);
	if (k == 0)
		return;
	memmove(d->pending, d->pending + k,
		(d->npending - k) * sizeof *d->pending);
	d->npending -= k;
}

void tw_disk_wipe(tw_disk *d)
{
	for (size_t i = 0; i < d->ndurable; i++)
		px_record_clear(&d->durable[i]);
	for (size_t i = 0; i < d->npending; i++)
		px_record_clear(&d->pending[i].rec);
	d->ndurable = d->npending = 0;
}

uint64_t tw_disk_compact(tw_disk *d)
{
	size_t snap_i = SIZE_MAX, prom_i = SIZE_MAX;
	for (size_t i = 0; i < d->ndurable; i++) {
		const px_record *r = &d->durable[i];
		if (r->type == PX_REC_SNAPSHOT)
			snap_i = i;
		else if (r->type == PX_REC_PROMISE &&
			 (prom_i == SIZE_MAX ||
			  px_ballot_cmp(r->ballot, d->durable[prom_i].ballot) >=
				  0))
			prom_i = i;
	}
	if (snap_i == SIZE_MAX)
		return 0;
	uint64_t base = d->durable[snap_i].slot;
	size_t w = 0;
	for (size_t i = 0; i < d->ndurable; i++) {
		px_record *r = &d->durable[i];
		bool keep = true;
		if (r->type == PX_REC_SNAPSHOT)
			keep = i == snap_i;
		else if (r->type == PX_REC_PROMISE)
			keep = i == prom_i;
		else if (r->type == PX_REC_VOTE || r->type == PX_REC_CHOSEN)
			keep = r->slot > base;
		if (keep)
			d->durable[w++] = *r;
		else
			px_record_clear(r);
	}
	d->ndurable = w;
	return base;
}

bool tw_disk_has(const tw_disk *d, px_rec_type type)
{
	for (size_t i = 0; i < d->ndurable; i++)
		if (d->durable[i].type == type)
			return true;
	return false;
}

int tw_disk_replay(const tw_disk *d,
		   int (*restore)(void *arg, const px_record *rec), void *arg,
		   size_t *failed)
{
	/* A vote written in the same batch as a snapshot can precede it on
	 * disk, and only the snapshot moves the log window to where the vote
	 * fits. */
	size_t snap_i = SIZE_MAX;
	for (size_t i = 0; i < d->ndurable; i++)
		if (d->durable[i].type == PX_REC_SNAPSHOT)
			snap_i = i;
	for (size_t k = 0; k <= d->ndurable; k++) {
		size_t i = k == 0 ? snap_i : k - 1;
		if (i == SIZE_MAX || (k > 0 && i == snap_i))
			continue;
		int rc = restore(arg, &d->durable[i]);
		if (rc != 0) {
			if (failed)
				*failed = i;
			return rc;
		}
	}
	return 0;
}

/* ---- messages in flight -------------------------------------------------- */

void tw_pool_init(tw_pool *p)
{
	memset(p, 0, sizeof *p);
}

void tw_pool_free(tw_pool *p)
{
	for (size_t i = 0; i < p->n; i++)
		px_msg_free(p->m[i]);
	free(p->m);
	memset(p, 0, sizeof *p);
}

void tw_pool_put(tw_pool *p, px_msg *m)
{
	p->m = grow(p->m, &p->cap, p->n + 1, sizeof *p->m);
	p->m[p->n++] = m;
}

px_msg *tw_pool_take(tw_pool *p, size_t i)
{
	px_msg *m = p->m[i];
	memmove(p->m + i, p->m + i + 1, (p->n - i - 1) * sizeof *p->m);
	p->n--;
	return m;
}

/* ---- the clock ----------------------------------------------------------- */

uint64_t tw_clock_local(const tw_clock *k, uint64_t real)
{
	int64_t r = (int64_t)real;
	return k->offset_us + (uint64_t)(r + r * k->drift_ppm / 1000000);
}

uint64_t tw_clock_real(const tw_clock *k, uint64_t local_at)
{
	if (local_at <= k->offset_us)
		return 0;
	uint64_t d = local_at - k->offset_us;
	if (d > TW_HORIZON_US)
		return UINT64_MAX;
	uint64_t r = d * 1000000u / (uint64_t)(1000000 + k->drift_ppm);
	while (tw_clock_local(k, r) < local_at)
		r++;
	while (r > 0 && tw_clock_local(k, r - 1) >= local_at)
		r--;
	return r;
}
