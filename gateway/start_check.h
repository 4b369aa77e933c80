/*
 * start_check: what `wakegate -t` can tell about a start beyond the conf's
 * syntax: the directories of the error log, access log and pid file exist
 * and are writable, and no other process holds a listen address. Reads the
 * conf only; owns nothing past the call.
 */
#ifndef WG_START_CHECK_H
#define WG_START_CHECK_H

#include <stddef.h>

struct conf;

/*
 * 0 when nothing is found wrong; -1 with the first problem in err. An
 * address in use while the conf's pid file names a live process is taken for
 * that daemon's own (testing before a reload) and passes.
 */
int start_check(const struct conf *c, char *err, size_t errlen);

#endif
