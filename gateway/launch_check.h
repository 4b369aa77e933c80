/*
 * launch_check: what `wakegate -t` can tell about a conf's exec launchers
 * without starting anything: the prefix they run in exists, the program each
 * launch command runs is there and executable, and the bundled worker's
 * --model file is readable. Reads the conf only; owns nothing past the call.
 */
#ifndef WG_LAUNCH_CHECK_H
#define WG_LAUNCH_CHECK_H

#include <stddef.h>

struct conf;

/* 0 when nothing is found wrong; -1 with the first problem in err, naming the
 * upstream and the conf's file:line. A command the check cannot read without
 * a shell (quotes, $(...), pipes, a builtin) passes unchecked. */
int launch_check(const struct conf *c, char *err, size_t errlen);

#endif
