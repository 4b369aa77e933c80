/* scale_rule: scale_on, scale_down_cooldown and headroom decisions (see scale_rule.h). */
#include "config.h"
#include "gateway/scale_rule.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

int scale_rule_up(struct scale_rule_state *st, const struct scale_rule_in *in)
{
	if (in->above < 0 || in->ready < 1 || in->n < 1 || in->coming) {
		st->high = 0;	/* no rule, nothing read, or a replica on its way: the window starts over */
		return 0;
	}
	if (in->sum / in->n <= in->above) {
		st->high = 0;
		return 0;
	}
	if (!st->high) {
		st->high = 1;
		st->high_since = in->now;
	}
	return in->now - st->high_since >= in->for_s && in->ready < in->max;
}

void scale_rule_scaled_up(struct scale_rule_state *st, double now)
{
	st->scaled_up = 1;
	st->last_up = now;
	st->high = 0;
}

int scale_rule_may_drop(const struct scale_rule_state *st, const struct scale_rule_in *in)
{
	if (st->scaled_up && in->now - st->last_up < in->cooldown_s)
		return 0;
	if (in->above >= 0 && in->n > 0 && in->ready > 1) {
		double total = in->sum / in->n * in->ready;	/* replicas without a reading count as the mean */
		if (total / (in->ready - 1) > in->above)
			return 0;
	}
	return 1;
}

int scale_rule_target(int target, int headroom_pct)
{
	int t = (int)floor((double)target * (100 - headroom_pct) / 100);
	return t < 1 ? 1 : t;
}

int scale_rule_parse_gauge(const char *text, size_t len, const char *name, double *out)
{
	size_t nl = strlen(name);
	const char *p = text, *end = text + len;
	int found = 0;
	double best = 0;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		if (!eol)
			eol = end;
		if ((size_t)(eol - p) > nl && memcmp(p, name, nl) == 0 && (p[nl] == ' ' || p[nl] == '{')) {
			const char *v = p + nl;
			if (*v == '{') {
				/* labels: skip to the closing brace, minding quoted values */
				int q = 0;
				for (v++; v < eol && (q || *v != '}'); v++) {
					if (*v == '\\' && q && v + 1 < eol)
						v++;
					else if (*v == '"')
						q = !q;
				}
				v++;
			}
			char buf[64];
			while (v < eol && *v == ' ')
				v++;
			size_t n = 0;
			while (v + n < eol && v[n] != ' ' && n + 1 < sizeof(buf))
				n++;
			memcpy(buf, v, n);
			buf[n] = '\0';
			char *e;
			double x = strtod(buf, &e);
			if (n && !*e && !isnan(x) && (!found || x > best)) {
				best = x;
				found = 1;
			}
		}
		p = eol + 1;
	}
	if (found)
		*out = best;
	return found ? 0 : -1;
}
