/* The cell key: an HMAC-SHA256 over every peer message, so that a replica
 * acts only on messages from a holder of the key (--peer-key FILE).
 *
 * The sender appends a trailer to the codec's bytes:
 *
 *   body | "LDM1" | from (u32, big-endian) | HMAC-SHA256 (32 bytes)
 *
 * and the MAC covers a domain tag, the cell id, from, to and the body, so a
 * message made for one cell, one sender or one receiver fails anywhere else
 * (another cell with the same key and another --cell-id, a message reflected
 * back to its sender, or relayed to a third replica). The receiver checks
 * the trailer before the codec sees a byte, and the codec's from must then
 * equal the trailer's. Replay of a genuine message to its own receiver is
 * not prevented: Paxos tolerates duplicates and old messages (they are part
 * of its fault model), and a replayed message carries only what its sender
 * once said. */
#ifndef PA_PEER_AUTH_H
#define PA_PEER_AUTH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PA_KEY_BYTES_MIN 32u
#define PA_KEY_BYTES_MAX 1024u
#define PA_MAC_BYTES 32u
/* magic (4) + from (4) + MAC */
#define PA_TRAILER_BYTES (8u + PA_MAC_BYTES)

typedef struct pa_key {
	size_t len; /* 0: no key */
	uint8_t bytes[PA_KEY_BYTES_MAX];
} pa_key;

/* Reads the key file at path: a regular file of PA_KEY_BYTES_MIN to
 * PA_KEY_BYTES_MAX bytes (all of it is the key), not readable or
 * writable by others. Returns 0, or -1 with a sentence in err (the file
 * is then not used). */
int pa_key_load(const char *path, pa_key *k, char *err,
		     size_t errlen);

/* Writes the trailer for a message of len bytes at body from `from` to
 * `to` in cell cell_id. Returns 0, or -1 if the HMAC could not be
 * computed (mbedTLS out of memory). */
int pa_mac_seal(const pa_key *k, uint64_t cell_id, uint32_t from,
		     uint32_t to, const uint8_t *body, size_t len,
		     uint8_t trailer[PA_TRAILER_BYTES]);

/* Checks the trailer at the end of buf (len bytes) for a message to `to`.
 * Returns NULL with *body_len (the bytes before the trailer) and *from
 * set, or a sentence saying why the message is refused. */
const char *pa_mac_open(const pa_key *k, uint64_t cell_id,
			     uint32_t to, const uint8_t *buf, size_t len,
			     size_t *body_len, uint32_t *from);

#endif
