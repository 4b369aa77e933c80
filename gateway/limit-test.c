/*
 * limit-test: replays a script of rate-limit events against gateway/limit.c
 * so that t/50-limit.t can compare exact sequences with the leaky-bucket
 * rule. One command a line on stdin, fields separated by blanks; "#" starts
 * a comment; a KEY of "-" is the empty key. Each command prints one line:
 *   zone NAME RATE SIZE                     OK | ERROR ...   (10r/s 1m)
 *   req ZONE KEY T_MS [burst=N] [nodelay|delay=N] [dry_run]
 *   multi T_MS [dry_run] ZONE:KEY[:BURST[:DELAY|nodelay]] ...
 *        both print STATUS DELAY_MS ZONE|- RETRY_AFTER_S EXCESS_MILLI
 *        (STATUS is nginx's $limit_req_status, or UNCOUNTED)
 *   stats ZONE                              ZONE passed=N delayed=N rejected=N ...
 *   has ZONE KEY                            yes | no
 *   conn_zone NAME SIZE                     OK | ERROR ...
 *   conn ZONE KEY MAX                       OK COUNT | OVER COUNT
 *   release ZONE KEY                        OK COUNT
 *   rate TEXT                               RATE MILLI | ERROR
 *   key TEMPLATE [| addr=IP host=H uri=U request_uri=U server_name=S Header-Name:value ...]
 *                                           KEY HEX [constant] | ERROR message
 *   reset                                   frees every zone (prints nothing)
 *   bench N KEYS                            times N checks over KEYS keys: BENCH ns/check
 */
#include "config.h"
#include "gateway/limit.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#define MAX_ZONES 64
#define MAX_FIELDS 64

static limit_zone *zones[MAX_ZONES];
static limit_conn_zone *conn_zones[MAX_ZONES];
static size_t nzones, nconn;

static limit_zone *find_zone(const char *name)
{
	for (size_t i = 0; i < nzones; i++)
		if (strcmp(limit_zone_name(zones[i]), name) == 0)
			return zones[i];
	return NULL;
}

static limit_conn_zone *find_conn_zone(const char *name)
{
	for (size_t i = 0; i < nconn; i++)
		if (strcmp(limit_conn_zone_name(conn_zones[i]), name) == 0)
			return conn_zones[i];
	return NULL;
}

/* "1m", "64k", "512": bytes; 0 when invalid. */
static size_t parse_size(const char *s)
{
	char *end;
	unsigned long long n = strtoull(s, &end, 10);
	if (end == s)
		return 0;
	if (*end == 'k' || *end == 'K')
		n <<= 10, end++;
	else if (*end == 'm' || *end == 'M')
		n <<= 20, end++;
	return *end ? 0 : (size_t)n;
}

static const char *key_of(const char *k, size_t *len)
{
	*len = strcmp(k, "-") == 0 ? 0 : strlen(k);
	return k;
}

static void print_result(const struct limit_req_result *r)
{
	printf("%s %llu %s %u %llu\n",
		r->status == LIMIT_UNCOUNTED ? "UNCOUNTED" : limit_status_name(r->status),
		(unsigned long long)r->delay_ms, r->zone ? limit_zone_name(r->zone) : "-",
		r->retry_after_s, (unsigned long long)r->excess);
}

/* req ZONE KEY T_MS [burst=N] [nodelay|delay=N] [dry_run] */
static void cmd_req(char **f, int n)
{
	struct limit_req_rule r = { 0 };
	struct limit_req_result res;
	bool dry = false;
	if (n < 4 || !(r.zone = find_zone(f[1]))) {
		printf("ERROR usage or unknown zone\n");
		return;
	}
	r.key = key_of(f[2], &r.keylen);
	uint64_t now = strtoull(f[3], NULL, 10);
	for (int i = 4; i < n; i++) {
		if (strncmp(f[i], "burst=", 6) == 0)
			r.burst = (uint32_t)strtoul(f[i] + 6, NULL, 10);
		else if (strncmp(f[i], "delay=", 6) == 0)
			r.delay = (uint32_t)strtoul(f[i] + 6, NULL, 10);
		else if (strcmp(f[i], "nodelay") == 0)
			r.delay = LIMIT_NODELAY;
		else if (strcmp(f[i], "dry_run") == 0)
			dry = true;
	}
	limit_req_check_many(&r, 1, now, dry, &res);
	print_result(&res);
}

/* multi T_MS [dry_run] ZONE:KEY[:BURST[:DELAY|nodelay]] ... */
static void cmd_multi(char **f, int n)
{
	struct limit_req_rule rules[MAX_FIELDS];
	struct limit_req_result res;
	size_t nr = 0;
	bool dry = false;
	if (n < 2) {
		printf("ERROR usage\n");
		return;
	}
	uint64_t now = strtoull(f[1], NULL, 10);
	for (int i = 2; i < n; i++) {
		if (strcmp(f[i], "dry_run") == 0) {
			dry = true;
			continue;
		}
		char *part[4] = { 0 };
		int np = 0;
		for (char *p = f[i], *save = NULL; np < 4 && (p = strtok_r(p, ":", &save)); p = NULL)
			part[np++] = p;
		struct limit_req_rule *r = &rules[nr];
		memset(r, 0, sizeof(*r));
		if (np < 2 || !(r->zone = find_zone(part[0]))) {
			printf("ERROR bad rule\n");
			return;
		}
		r->key = key_of(part[1], &r->keylen);
		if (np > 2)
			r->burst = (uint32_t)strtoul(part[2], NULL, 10);
		if (np > 3)
			r->delay = strcmp(part[3], "nodelay") == 0 ? LIMIT_NODELAY
				: (uint32_t)strtoul(part[3], NULL, 10);
		nr++;
	}
	limit_req_check_many(rules, nr, now, dry, &res);
	print_result(&res);
}

static void print_counters(const char *name, const struct limit_counters *c)
{
	printf("%s passed=%llu delayed=%llu rejected=%llu evicted=%llu states=%zu bytes=%zu size=%zu\n",
		name, (unsigned long long)c->passed, (unsigned long long)c->delayed,
		(unsigned long long)c->rejected, (unsigned long long)c->evicted,
		c->states, c->bytes, c->size);
}

/* The request a `key` command describes, for the variable callback. */
struct fake_req {
	unsigned char bin[16];
	size_t binlen;
	const char *addr, *host, *uri, *request_uri, *server_name;
	const char *hname[16], *hval[16];
	size_t nh;
};

static void fake_var(void *arg, enum limit_var var, const char *name, size_t namelen,
	const void **val, size_t *len)
{
	struct fake_req *q = arg;
	const char *s = NULL;
	switch (var) {
	case LIMIT_VAR_BINARY_REMOTE_ADDR:
		*val = q->bin;
		*len = q->binlen;
		return;
	case LIMIT_VAR_REMOTE_ADDR: s = q->addr; break;
	case LIMIT_VAR_HOST: s = q->host; break;
	case LIMIT_VAR_URI: s = q->uri; break;
	case LIMIT_VAR_REQUEST_URI: s = q->request_uri; break;
	case LIMIT_VAR_SERVER_NAME: s = q->server_name; break;
	case LIMIT_VAR_TENANT: break;	/* auth.c's: not in these scripts */
	case LIMIT_VAR_HTTP:
		for (size_t i = 0; i < q->nh; i++)
			if (strlen(q->hname[i]) == namelen && strncasecmp(q->hname[i], name, namelen) == 0)
				s = q->hval[i];
		break;
	}
	*val = s;
	*len = s ? strlen(s) : 0;
}

/* key TEMPLATE [| var=value ...]: the template may hold blanks. */
static void cmd_key(char *rest)
{
	struct fake_req q = { 0 };
	char err[256];
	char *bar = strstr(rest, " | ");
	if (bar) {
		*bar = '\0';
		char *save = NULL;
		for (char *a = strtok_r(bar + 3, " \t", &save); a; a = strtok_r(NULL, " \t", &save)) {
			char *eq = strchr(a, '='), *colon = strchr(a, ':');
			if (colon && (!eq || colon < eq)) {
				*colon = '\0';
				if (q.nh < 16) {
					q.hname[q.nh] = a;
					q.hval[q.nh++] = colon + 1;
				}
				continue;
			}
			if (!eq)
				continue;
			*eq++ = '\0';
			if (strcmp(a, "addr") == 0) {
				q.addr = eq;
				if (inet_pton(AF_INET, eq, q.bin) == 1)
					q.binlen = 4;
				else if (inet_pton(AF_INET6, eq, q.bin) == 1)
					q.binlen = 16;
			} else if (strcmp(a, "host") == 0) {
				q.host = eq;
			} else if (strcmp(a, "uri") == 0) {
				q.uri = eq;
			} else if (strcmp(a, "request_uri") == 0) {
				q.request_uri = eq;
			} else if (strcmp(a, "server_name") == 0) {
				q.server_name = eq;
			}
		}
	}
	limit_key *k = limit_key_compile(rest, err, sizeof(err));
	if (!k) {
		printf("ERROR %s\n", err);
		return;
	}
	static unsigned char buf[LIMIT_KEY_BUF];
	ssize_t len = limit_key_eval(k, fake_var, &q, buf, sizeof(buf));
	printf("KEY ");
	for (ssize_t i = 0; i < len; i++)
		printf("%02x", buf[i]);
	printf("%s\n", limit_key_is_constant(k) ? " constant" : "");
	limit_key_free(k);
}

/* Times limit_req_check() on a 10m zone, one key after another. */
static void cmd_bench(unsigned long n, unsigned long keys)
{
	uint64_t rate;
	limit_parse_rate("100r/s", 6, &rate);
	limit_zone *z = limit_zone_new("bench", 10 << 20, rate);
	struct timespec a, b;
	unsigned long rejected = 0;
	char key[32];
	if (!z || !keys) {
		printf("ERROR\n");
		limit_zone_free(z);
		return;
	}
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (unsigned long i = 0; i < n; i++) {
		int len = snprintf(key, sizeof(key), "k%lu", i % keys);
		rejected += limit_req_check(z, key, (size_t)len, 1000 + i / 1000, 10, LIMIT_NODELAY,
			false, NULL) == LIMIT_REJECT;
	}
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n;
	printf("BENCH %.0f ns/check (%lu checks, %lu keys, %lu rejected)\n", ns, n, keys, rejected);
	limit_zone_free(z);
}

static void free_zones(void)
{
	for (size_t i = 0; i < nzones; i++)
		limit_zone_free(zones[i]);
	for (size_t i = 0; i < nconn; i++)
		limit_conn_zone_free(conn_zones[i]);
	nzones = nconn = 0;
}

static void run(char *line)
{
	char *f[MAX_FIELDS], *save = NULL, copy[4096];
	int n = 0;
	snprintf(copy, sizeof(copy), "%s", line);
	for (char *p = strtok_r(line, " \t", &save); p && n < MAX_FIELDS; p = strtok_r(NULL, " \t", &save))
		f[n++] = p;
	if (n == 0 || f[0][0] == '#')
		return;
	struct limit_counters c;
	if (strcmp(f[0], "zone") == 0 && n == 4) {
		uint64_t rate;
		size_t size = parse_size(f[3]);
		if (find_zone(f[1]) || nzones == MAX_ZONES ||
		    limit_parse_rate(f[2], strlen(f[2]), &rate) < 0) {
			printf("ERROR bad zone\n");
		} else if (!(zones[nzones] = limit_zone_new(f[1], size, rate))) {
			printf("ERROR zone too small\n");
		} else {
			nzones++;
			printf("OK\n");
		}
	} else if (strcmp(f[0], "conn_zone") == 0 && n == 3) {
		if (find_conn_zone(f[1]) || nconn == MAX_ZONES ||
		    !(conn_zones[nconn] = limit_conn_zone_new(f[1], parse_size(f[2])))) {
			printf("ERROR bad zone\n");
		} else {
			nconn++;
			printf("OK\n");
		}
	} else if (strcmp(f[0], "req") == 0) {
		cmd_req(f, n);
	} else if (strcmp(f[0], "multi") == 0) {
		cmd_multi(f, n);
	} else if (strcmp(f[0], "stats") == 0 && n == 2) {
		limit_zone *z = find_zone(f[1]);
		limit_conn_zone *cz = find_conn_zone(f[1]);
		if (z)
			limit_zone_counters(z, &c);
		else if (cz)
			limit_conn_zone_counters(cz, &c);
		if (z || cz)
			print_counters(f[1], &c);
		else
			printf("ERROR unknown zone\n");
	} else if (strcmp(f[0], "has") == 0 && n == 3 && find_zone(f[1])) {
		size_t len;
		const char *k = key_of(f[2], &len);
		printf("%s\n", limit_zone_has(find_zone(f[1]), k, len) ? "yes" : "no");
	} else if ((strcmp(f[0], "conn") == 0 && n == 4) || (strcmp(f[0], "release") == 0 && n == 3)) {
		limit_conn_zone *cz = find_conn_zone(f[1]);
		size_t len;
		const char *k = key_of(f[2], &len);
		if (!cz) {
			printf("ERROR unknown zone\n");
		} else if (f[0][0] == 'c') {
			int rc = limit_conn_acquire(cz, k, len, (uint32_t)strtoul(f[3], NULL, 10));
			printf("%s %u\n", rc == 0 ? "OK" : "OVER", limit_conn_count(cz, k, len));
		} else {
			limit_conn_release(cz, k, len);
			printf("OK %u\n", limit_conn_count(cz, k, len));
		}
	} else if (strcmp(f[0], "rate") == 0 && n == 2) {
		uint64_t rate;
		if (limit_parse_rate(f[1], strlen(f[1]), &rate) < 0)
			printf("ERROR\n");
		else
			printf("RATE %llu\n", (unsigned long long)rate);
	} else if (strcmp(f[0], "bench") == 0 && n == 3) {
		cmd_bench(strtoul(f[1], NULL, 10), strtoul(f[2], NULL, 10));
	} else if (strcmp(f[0], "reset") == 0) {
		free_zones();
	} else if (strcmp(f[0], "key") == 0) {
		char *rest = copy + strspn(copy, " \t") + 3;
		cmd_key(rest + strspn(rest, " \t"));
	} else {
		printf("ERROR unknown command %s\n", f[0]);
	}
}

int main(void)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	setvbuf(stdout, NULL, _IOLBF, 0);
	while ((len = getline(&line, &cap, stdin)) >= 0) {
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		run(line);
	}
	free(line);
	free_zones();
	return 0;
}
