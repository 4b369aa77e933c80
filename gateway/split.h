/*
 * split: A/B splits with nginx's split_clients semantics, as a pure core
 * (no libevent, no conf): the hash, the percentages and the choice. The
 * conf (conf_split.c) fills a struct split_part array; the split phase
 * (split_phase.c) evaluates the key and asks split_pick() which part wins.
 *
 * nginx 1.22's rules, kept bit for bit so that one key lands in the same
 * bucket in nginx and here: the key's bytes are hashed with MurmurHash2
 * (seed 0, little-endian words), each "P%" (up to two decimals, above 0)
 * takes the next P/100 of the 32-bit range, "*" takes whatever is left,
 * and a key past the last bucket matches none (nginx: an empty value).
 */
#ifndef WG_SPLIT_H
#define WG_SPLIT_H

#include <stddef.h>
#include <stdint.h>

/* One "P% NAME;" or "* NAME;" line of a split block. */
struct split_part {
	uint32_t percent;	/* hundredths of a percent (9000 = 90%); 0: "*" */
	uint32_t bound;		/* split_prepare(): a hash below it picks this part; 0 with "*" */
};

/* nginx's ngx_murmur_hash2() of len bytes. */
uint32_t split_murmur2(const void *data, size_t len);

/*
 * "90%", "33.33%" into hundredths of a percent (nginx's ngx_atofp with two
 * decimals); "*" into 0. Returns 0, or -1 when s is neither (also "0%").
 */
int split_parse_percent(const char *s, uint32_t *out);

/*
 * Turns the parts' percentages into hash bounds, in order, as nginx does
 * at the end of the split_clients block. Returns 0, or -1 when the total
 * is over 100% (nginx: "percent total is greater than 100%").
 */
int split_prepare(struct split_part *parts, size_t n);

/* The index of the part a key with this hash goes to, or -1 when none takes it. */
int split_pick(const struct split_part *parts, size_t n, uint32_t hash);

#endif
