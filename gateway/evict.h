/*
 * evict: which idle replicas to stop (or put to sleep) so that another fits
 * in a GPU's memory. Pure: no I/O, no clock, no allocation; the gateway
 * (gpu.c) and wakegate-replay (tools/) run the same choice.
 *
 * The cost of evicting a replica is the expected penalty: the chance that
 * its next request comes within the time it takes to bring it back, times
 * that time, P(next request within reload_s | idle for idle_s) * reload_s,
 * with P from the replica's histogram of idle gaps (policy.h), read within a
 * bin as if gaps were spread evenly over it. A replica whose next request is
 * far off costs little to evict even when it reloads slowly; one likely to
 * be asked again soon costs its reload. With too little history (fewer
 * than min_samples gaps for any candidate) the choice falls back to least
 * recently used: the longest idle goes first.
 *
 * Bounds: a pinned replica is never chosen; nor one whose priority is above
 * the requester's (a lower priority never evicts a higher one). Callers pass
 * only idle candidates (nothing in flight or held).
 */
#ifndef WG_EVICT_H
#define WG_EVICT_H

#include <stdint.h>

struct policy_hist;

struct evict_cand {
	double idle_s;			/* since its last activity */
	double reload_s;		/* measured boot + warmup (or wake) time; > 0 */
	const struct policy_hist *hist;	/* its idle gaps; NULL: none */
	int pinned;
	int priority;
	int64_t bytes;			/* what evicting it frees */
};

/* P(the next request comes within window_s | idle for idle_s so far), from h; -1 when h has under min_samples gaps. */
double evict_p_within(const struct policy_hist *h, double idle_s, double window_s, uint32_t min_samples);

/* The expected penalty of evicting c now (seconds of waiting it causes, in expectation); -1 without history. */
double evict_penalty(const struct evict_cand *c, uint32_t min_samples);

/*
 * Chooses victims among n candidates, cheapest first, until their bytes add
 * up to need, for a requester of priority prio; then keeps any of them whose
 * bytes turn out not to be needed (a small cheap one taken before a large
 * one that alone suffices), costliest first. Writes their indexes to out
 * (at most n) and returns how many; returns 0 (and chooses none) when even
 * all eligible candidates do not free need. *lru is set to 1 when the
 * choice fell back to least recently used.
 */
int evict_choose(const struct evict_cand *c, int n, int64_t need, int prio, uint32_t min_samples,
		 int *out, int *lru);

#endif
