/*
 * loc_regex: location regexes on PCRE2 (loc_regex.h). Written against
 * PCRE2 10.42 (Debian 12). The interpreter, not the JIT: location patterns
 * are short and a match takes microseconds either way, while JIT code is
 * opaque to valgrind (every check reads as uninitialised), which the tests
 * run the gateway under. The interpreter's backtracking frames live in the
 * match data (10.41+) and are kept across calls: after the first match of
 * a pattern, matching allocates nothing.
 */
#include "config.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "gateway/loc_regex.h"

/* Enough for any location pattern a person writes; a runaway one gives up here. */
#define LOC_REGEX_MATCH_LIMIT	100000
#define LOC_REGEX_DEPTH_LIMIT	10000

struct loc_regex {
	pcre2_code *code;
	pcre2_match_data *md;		/* one: the loop is the only caller */
	pcre2_match_context *mc;	/* the limits above */
	int warned;			/* the limit was hit once: said in the log */
	char pattern[128];		/* for that log line, cut */
};

struct loc_regex *loc_regex_new(const char *pattern, int caseless, char *err, size_t errlen)
{
	int ec;
	PCRE2_SIZE off;
	struct loc_regex *re = calloc(1, sizeof(*re));

	if (!re) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	re->code = pcre2_compile((PCRE2_SPTR)pattern, PCRE2_ZERO_TERMINATED,
				 (caseless ? PCRE2_CASELESS : 0) | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF,
				 &ec, &off, NULL);
	if (!re->code) {
		PCRE2_UCHAR msg[256];
		if (pcre2_get_error_message(ec, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", ec);
		snprintf(err, errlen, "%s at offset %zu", (char *)msg, (size_t)off);
		free(re);
		return NULL;
	}
	re->md = pcre2_match_data_create(1, NULL);	/* match or not: one pair is enough */
	re->mc = pcre2_match_context_create(NULL);
	if (!re->md || !re->mc) {
		snprintf(err, errlen, "out of memory");
		loc_regex_free(re);
		return NULL;
	}
	pcre2_set_match_limit(re->mc, LOC_REGEX_MATCH_LIMIT);
	pcre2_set_depth_limit(re->mc, LOC_REGEX_DEPTH_LIMIT);
	snprintf(re->pattern, sizeof(re->pattern), "%s", pattern);
	return re;
}

int loc_regex_match(struct loc_regex *re, const char *path, size_t len)
{
	int rc = pcre2_match(re->code, (PCRE2_SPTR)path, len, 0, 0, re->md, re->mc);

	if (rc >= 0)
		return 1;
	if (rc != PCRE2_ERROR_NOMATCH && !re->warned) {
		PCRE2_UCHAR msg[160];
		re->warned = 1;
		if (pcre2_get_error_message(rc, msg, sizeof(msg)) < 0)
			snprintf((char *)msg, sizeof(msg), "error %d", rc);
		log_warn("location ~ \"%s\": %s; taken as no match (said once)", re->pattern, (char *)msg);
	}
	return 0;
}

void loc_regex_free(struct loc_regex *re)
{
	if (!re)
		return;
	pcre2_match_context_free(re->mc);
	pcre2_match_data_free(re->md);
	pcre2_code_free(re->code);
	free(re);
}
