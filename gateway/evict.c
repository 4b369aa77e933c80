/* evict: the choice of eviction victims by expected penalty (see evict.h). */
#include "config.h"
#include "gateway/evict.h"
#include "gateway/policy.h"

/* F(t): the fraction of gaps shorter than t seconds, evenly spread inside each minute bin. */
static double cdf(const struct policy_hist *h, double t_s)
{
	double bin_s = POLICY_BIN_MS / 1000.0;
	if (t_s <= 0 || h->total == 0)
		return 0;
	double below = 0;
	int full = (int)(t_s / bin_s);
	for (int i = 0; i < full && i < POLICY_BINS; i++)
		below += h->bin[i];
	if (full < POLICY_BINS)
		below += h->bin[full] * ((t_s - full * bin_s) / bin_s);
	return below / (double)h->total;
}

double evict_p_within(const struct policy_hist *h, double idle_s, double window_s, uint32_t min_samples)
{
	if (!h || h->total < min_samples || h->total == 0)
		return -1;
	double f0 = cdf(h, idle_s), f1 = cdf(h, idle_s + window_s);
	double left = 1 - f0;
	if (left <= 1e-12)
		return 1;	/* every gap seen was shorter than this one: a request is overdue */
	double p = (f1 - f0) / left;
	return p < 0 ? 0 : p > 1 ? 1 : p;
}

double evict_penalty(const struct evict_cand *c, uint32_t min_samples)
{
	double p = evict_p_within(c->hist, c->idle_s, c->reload_s, min_samples);
	return p < 0 ? -1 : p * c->reload_s;
}

int evict_choose(const struct evict_cand *c, int n, int64_t need, int prio, uint32_t min_samples,
		 int *out, int *lru)
{
	int m = 0;
	int64_t freed = 0;
	*lru = 0;
	for (int i = 0; i < n; i++)
		if (!c[i].pinned && c[i].priority <= prio) {
			out[m++] = i;
			freed += c[i].bytes;
			if (evict_penalty(&c[i], min_samples) < 0)
				*lru = 1;
		}
	if (freed < need || m == 0)
		return 0;
	/* insertion sort (n is a handful): cheapest first; a lower priority before a higher one at equal cost */
	for (int i = 1; i < m; i++) {
		int x = out[i], j = i;
		while (j > 0) {
			const struct evict_cand *a = &c[out[j - 1]], *b = &c[x];
			double ka = *lru ? -a->idle_s : evict_penalty(a, min_samples);
			double kb = *lru ? -b->idle_s : evict_penalty(b, min_samples);
			if (ka < kb || (ka == kb && a->priority <= b->priority))
				break;
			out[j] = out[j - 1];
			j--;
		}
		out[j] = x;
	}
	int k = 0;
	freed = 0;
	while (k < m && freed < need)
		freed += c[out[k++]].bytes;
	/* A cheap small victim taken before a large one may not be needed once
	 * the large one is in: evicting it would cost its penalty and free
	 * nothing the requester needs. Keep such victims, costliest first. */
	for (int i = k - 2; i >= 0; i--) {
		if (freed - c[out[i]].bytes < need)
			continue;
		freed -= c[out[i]].bytes;
		for (int j = i; j < k - 1; j++)
			out[j] = out[j + 1];
		k--;
	}
	return k;
}
