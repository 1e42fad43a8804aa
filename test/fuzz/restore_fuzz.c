/* A replica restoring a stored record (node.h ln_node_restore after
 * codec.h cd_record_decode): what lockd does with every record it reads
 * back at start-up, snapshots (the ledger's configuration history and the
 * lease table inside) included. Refused records are refused; none may
 * crash the replica, which then still steps. */
#include <stdlib.h>

#include "codec.h"
#include "fuzz.h"
#include "node.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	px_record r;
	if (cd_record_decode(data, size, &r) != 0)
		return 0;
	ln_config cfg;
	ln_config_default(&cfg, 0, 3);
	ln_node *n = ln_node_new(&cfg);
	FUZZ_CHECK(n != NULL);
	(void)ln_node_restore(n, &r);
	ln_actions a;
	ln_actions_init(&a);
	ln_event ev = {.type = LN_EV_TICK, .now_us = 1000000};
	(void)ln_node_step(n, &ev, &a);
	ln_actions_free(&a);
	ln_node_free(n);
	px_record_clear(&r);
	return 0;
}
