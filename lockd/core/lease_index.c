/* The lease names in order: an AVL tree over the lease records (their
 * ix_ fields), kept beside the name hash, so that a LIST page finds its
 * first name in O(log n) and walks on from there, instead of collecting
 * and sorting the whole table for every page. Local to each replica (not
 * part of the state machine's digest or snapshot: restore rebuilds it).
 * AVL, not a randomized tree: clients choose the names, and the height
 * must stay logarithmic whatever they choose. And the leases in token
 * order, a list (grants append: tokens only grow), which a snapshot walks
 * instead of sorting. */
#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "lease_int.h"

static int name_cmp(const char *a, uint32_t alen, const char *b, uint32_t blen)
{
	uint32_t n = alen < blen ? alen : blen;
	int c = memcmp(a, b, n);
	if (c != 0)
		return c;
	return alen < blen ? -1 : alen > blen;
}

static int rec_cmp(const lease_rec *a, const lease_rec *b)
{
	return name_cmp(a->name, a->name_len, b->name, b->name_len);
}

static int height(const lease_rec *n)
{
	return n != NULL ? n->ix_h : 0;
}

static void fix(lease_rec *n)
{
	int l = height(n->ix_l), r = height(n->ix_r);
	n->ix_h = (int8_t)(1 + (l > r ? l : r));
}

static lease_rec *rot_right(lease_rec *y)
{
	lease_rec *x = y->ix_l;
	y->ix_l = x->ix_r;
	x->ix_r = y;
	fix(y);
	fix(x);
	return x;
}

static lease_rec *rot_left(lease_rec *x)
{
	lease_rec *y = x->ix_r;
	x->ix_r = y->ix_l;
	y->ix_l = x;
	fix(x);
	fix(y);
	return y;
}

static lease_rec *balance(lease_rec *n)
{
	fix(n);
	int b = height(n->ix_l) - height(n->ix_r);
	if (b > 1) {
		if (height(n->ix_l->ix_l) < height(n->ix_l->ix_r))
			n->ix_l = rot_left(n->ix_l);
		return rot_right(n);
	}
	if (b < -1) {
		if (height(n->ix_r->ix_r) < height(n->ix_r->ix_l))
			n->ix_r = rot_right(n->ix_r);
		return rot_left(n);
	}
	return n;
}

static lease_rec *insert(lease_rec *n, lease_rec *l)
{
	if (n == NULL) {
		l->ix_l = l->ix_r = NULL;
		l->ix_h = 1;
		return l;
	}
	if (rec_cmp(l, n) < 0)
		n->ix_l = insert(n->ix_l, l);
	else
		n->ix_r = insert(n->ix_r, l);
	return balance(n);
}

static lease_rec *remove_min(lease_rec *n, lease_rec **min)
{
	if (n->ix_l == NULL) {
		*min = n;
		return n->ix_r;
	}
	n->ix_l = remove_min(n->ix_l, min);
	return balance(n);
}

static lease_rec *erase(lease_rec *n, const lease_rec *l)
{
	if (n == NULL)
		return NULL;
	int c = rec_cmp(l, n);
	if (c < 0) {
		n->ix_l = erase(n->ix_l, l);
	} else if (c > 0) {
		n->ix_r = erase(n->ix_r, l);
	} else {
		lease_rec *left = n->ix_l, *right = n->ix_r;
		if (right == NULL)
			return left;
		lease_rec *m;
		right = remove_min(right, &m);
		m->ix_l = left;
		m->ix_r = right;
		return balance(m);
	}
	return balance(n);
}

static int rec_ptr_cmp(const void *a, const void *b)
{
	return rec_cmp(*(lease_rec *const *)a, *(lease_rec *const *)b);
}

/* The balanced tree of v[0..n), sorted: O(n), no comparisons. */
static lease_rec *build(lease_rec **v, size_t n)
{
	if (n == 0)
		return NULL;
	size_t mid = n / 2;
	lease_rec *m = v[mid];
	m->ix_l = build(v, mid);
	m->ix_r = build(v + mid + 1, n - mid - 1);
	fix(m);
	return m;
}

int lease_index_build(lease_state *s)
{
	size_t n = s->by_name.n, k = 0;
	s->by_order = NULL;
	if (n == 0)
		return 0;
	lease_rec **v = malloc(n * sizeof *v);
	if (v == NULL)
		return -1;
	for (lease_rec *l = s->t_head; l != NULL && k < n; l = l->t_next)
		v[k++] = l;
	qsort(v, k, sizeof *v, rec_ptr_cmp);
	int rc = k == n ? 0 : -1;
	for (size_t i = 1; i < k && rc == 0; i++)
		if (rec_cmp(v[i - 1], v[i]) == 0)
			rc = -1; /* a name twice */
	if (rc == 0)
		s->by_order = build(v, n);
	free(v);
	return rc;
}

void lease_index_insert(lease_state *s, lease_rec *l)
{
	s->by_order = insert(s->by_order, l);
}

void lease_index_remove(lease_state *s, const lease_rec *l)
{
	s->by_order = erase(s->by_order, l);
}

lease_rec *lease_index_first(const lease_state *s, const char *key,
			     uint32_t len, bool or_equal)
{
	lease_rec *best = NULL;
	for (lease_rec *n = s->by_order; n != NULL;) {
		int c = name_cmp(n->name, n->name_len, key, len);
		if (c > 0 || (or_equal && c == 0)) {
			best = n;
			n = n->ix_l;
		} else {
			n = n->ix_r;
		}
	}
	return best;
}

/* In order, counting; asserts the order and the heights. */
static uint64_t check(const lease_rec *n, const lease_rec **prev)
{
	if (n == NULL)
		return 0;
	uint64_t k = check(n->ix_l, prev);
	assert(*prev == NULL || rec_cmp(*prev, n) < 0);
	*prev = n;
	k += 1 + check(n->ix_r, prev);
	int l = height(n->ix_l), r = height(n->ix_r);
	assert(n->ix_h == 1 + (l > r ? l : r));
	assert(l - r <= 1 && r - l <= 1);
	return k;
}

uint64_t lease_index_check(const lease_state *s)
{
	const lease_rec *prev = NULL;
	return check(s->by_order, &prev);
}

void lease_tokens_append(lease_state *s, lease_rec *l)
{
	assert(s->t_tail == NULL || s->t_tail->token < l->token);
	l->t_next = NULL;
	l->t_prev = s->t_tail;
	if (s->t_tail != NULL)
		s->t_tail->t_next = l;
	else
		s->t_head = l;
	s->t_tail = l;
}

void lease_tokens_remove(lease_state *s, lease_rec *l)
{
	if (l->t_prev != NULL)
		l->t_prev->t_next = l->t_next;
	else
		s->t_head = l->t_next;
	if (l->t_next != NULL)
		l->t_next->t_prev = l->t_prev;
	else
		s->t_tail = l->t_prev;
	l->t_prev = l->t_next = NULL;
}
