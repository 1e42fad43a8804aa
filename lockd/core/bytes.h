/* Fixed-width integers as bytes, written once for the core and the edge:
 * little-endian for the core's own encodings (lease commands and snapshots,
 * the replica's snapshot, EXPIRE pairs), big-endian where byte order must
 * sort (storage keys) or is a wire convention (the MAC header, checksums).
 * p must hold the bytes; nothing here checks a length. */
#ifndef LD_BYTES_H
#define LD_BYTES_H

#include <stddef.h>
#include <stdint.h>

/* The low n bytes (n <= 8) of v, least significant first. */
static inline void bytes_put_le(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

/* n bytes (n <= 8), least significant first. */
static inline uint64_t bytes_get_le(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static inline void bytes_put_le32(uint8_t *p, uint32_t v)
{
	bytes_put_le(p, v, 4);
}

static inline void bytes_put_le64(uint8_t *p, uint64_t v)
{
	bytes_put_le(p, v, 8);
}

static inline uint32_t bytes_get_le32(const uint8_t *p)
{
	return (uint32_t)bytes_get_le(p, 4);
}

static inline uint64_t bytes_get_le64(const uint8_t *p)
{
	return bytes_get_le(p, 8);
}

/* The low n bytes (n <= 8) of v, most significant first. */
static inline void bytes_put_be(uint8_t *p, uint64_t v, size_t n)
{
	for (size_t i = n; i-- > 0;) {
		p[i] = (uint8_t)v;
		v >>= 8;
	}
}

/* n bytes (n <= 8), most significant first. */
static inline uint64_t bytes_get_be(const uint8_t *p, size_t n)
{
	uint64_t v = 0;
	for (size_t i = 0; i < n; i++)
		v = v << 8 | p[i];
	return v;
}

static inline void bytes_put_be32(uint8_t *p, uint32_t v)
{
	bytes_put_be(p, v, 4);
}

static inline void bytes_put_be64(uint8_t *p, uint64_t v)
{
	bytes_put_be(p, v, 8);
}

static inline uint32_t bytes_get_be32(const uint8_t *p)
{
	return (uint32_t)bytes_get_be(p, 4);
}

static inline uint64_t bytes_get_be64(const uint8_t *p)
{
	return bytes_get_be(p, 8);
}

#endif
