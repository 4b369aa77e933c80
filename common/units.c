/*
 * units: times and sizes as the conf writes them (units.h). Moved here from
 * the gateway's conf lexer so the tools read the same values the same way.
 */
#include "config.h"
#include "common/units.h"

#include <stdint.h>
#include <string.h>

/*
 * Parses digits at *s into *v (no sign), moving *s past them. Returns 0, or
 * -1 when there are none or the value passes limit.
 */
static int parse_digits(const char **s, int64_t limit, int64_t *v)
{
	int64_t n = 0;
	const char *p = *s;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		if (n > (limit - (*p - '0')) / 10)
			return -1;
		n = n * 10 + (*p - '0');
	}
	*s = p;
	*v = n;
	return 0;
}

int64_t units_time_ms(const char *s)
{
	static const struct { const char *u; int64_t ms; } units[] = {
		{ "w", 7LL * 24 * 3600 * 1000 }, { "d", 24LL * 3600 * 1000 },
		{ "h", 3600LL * 1000 }, { "ms", 1 }, { "m", 60LL * 1000 }, { "s", 1000 },
	};
	/* order in which units may follow each other: w d h m s ms */
	static const int rank[] = { 0, 1, 2, 5, 3, 4 };
	const int64_t limit = INT64_MAX / 4;
	int64_t total = 0;
	int last = -1;

	if (!s || !*s)
		return -1;
	while (*s) {
		int64_t n;
		int i, n_units = (int)(sizeof(units) / sizeof(units[0]));
		if (parse_digits(&s, limit, &n) < 0)
			return -1;
		if (*s == '\0') {
			/* a bare number: seconds, and only as the whole value */
			if (last != -1 || n > limit / 1000)
				return -1;
			return n * 1000;
		}
		for (i = 0; i < n_units; i++) {
			size_t ul = strlen(units[i].u);
			if (strncmp(s, units[i].u, ul) == 0 &&
			    (s[ul] == '\0' || (s[ul] >= '0' && s[ul] <= '9')))
				break;
		}
		if (i == n_units || rank[i] <= last)
			return -1;
		last = rank[i];
		s += strlen(units[i].u);
		if (n > (limit - total) / units[i].ms)
			return -1;
		total += n * units[i].ms;
	}
	return total;
}

int64_t units_size(const char *s)
{
	int64_t n, mul = 1;
	const int64_t limit = INT64_MAX / 4;

	if (!s || parse_digits(&s, limit, &n) < 0)
		return -1;
	switch (*s) {
	case '\0': return n;
	case 'k': case 'K': mul = 1024; break;
	case 'm': case 'M': mul = 1024 * 1024; break;
	case 'g': case 'G': mul = 1024 * 1024 * 1024; break;
	default: return -1;
	}
	if (s[1] != '\0' || n > limit / mul)
		return -1;
	return n * mul;
}

int64_t units_granularity_ms(const char *s)
{
	int64_t ms = units_time_ms(s);

	return ms == 1000 || ms == 60000 || ms == 3600000 ? ms : -1;
}
