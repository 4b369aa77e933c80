/* split: nginx's split_clients hashing and bucket choice (see split.h). */
#include "config.h"
#include "gateway/split.h"

#include <string.h>

/* Bit for bit src/core/ngx_murmurhash.c: a tail of 1..3 bytes folds in before the last multiply. */
uint32_t split_murmur2(const void *data, size_t len)
{
	const unsigned char *d = data;
	uint32_t h = 0 ^ (uint32_t)len, k;

	while (len >= 4) {
		k = d[0];
		k |= (uint32_t)d[1] << 8;
		k |= (uint32_t)d[2] << 16;
		k |= (uint32_t)d[3] << 24;
		k *= 0x5bd1e995;
		k ^= k >> 24;
		k *= 0x5bd1e995;
		h *= 0x5bd1e995;
		h ^= k;
		d += 4;
		len -= 4;
	}
	switch (len) {
	case 3:
		h ^= (uint32_t)d[2] << 16;
		/* fall through */
	case 2:
		h ^= (uint32_t)d[1] << 8;
		/* fall through */
	case 1:
		h ^= d[0];
		h *= 0x5bd1e995;
	}
	h ^= h >> 13;
	h *= 0x5bd1e995;
	h ^= h >> 15;
	return h;
}

int split_parse_percent(const char *s, uint32_t *out)
{
	size_t len = strlen(s);
	if (len == 1 && s[0] == '*') {
		*out = 0;
		return 0;
	}
	if (len < 2 || s[len - 1] != '%')
		return -1;
	len--;
	/* ngx_atofp(s, len, 2): digits, at most one dot, at most two decimals */
	uint64_t v = 0;
	int dot = 0, decimals = 0;
	for (size_t i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (dot)
				return -1;
			dot = 1;
			continue;
		}
		if (s[i] < '0' || s[i] > '9')
			return -1;
		if (dot && ++decimals > 2)
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
		if (v > 1000000)
			return -1;	/* far past 100%: split_prepare() would refuse it anyway */
	}
	while (decimals++ < 2)
		v *= 10;
	if (v == 0)
		return -1;	/* nginx: "0%" is invalid */
	*out = (uint32_t)v;
	return 0;
}

int split_prepare(struct split_part *parts, size_t n)
{
	uint32_t sum = 0, last = 0;
	for (size_t i = 0; i < n; i++) {
		sum = parts[i].percent ? sum + parts[i].percent : 10000;
		if (sum > 10000)
			return -1;
		if (parts[i].percent) {
			/* nginx adds into a uint32_t: 100% is 0xffffffff, and a rounding down per part */
			last += (uint32_t)(parts[i].percent * (uint64_t)0xffffffff / 10000);
			parts[i].bound = last;
		} else {
			parts[i].bound = 0;
		}
	}
	return 0;
}

int split_pick(const struct split_part *parts, size_t n, uint32_t hash)
{
	for (size_t i = 0; i < n; i++)
		if (hash < parts[i].bound || parts[i].percent == 0)
			return (int)i;
	return -1;
}
