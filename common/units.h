/*
 * units: the one reader of times and sizes as wakegate's conf writes them
 * (nginx's units), shared by the gateway's conf parser and the tools that
 * take the same values on their command line (wakegate-replay), so that a
 * value means the same thing wherever it is written. Pure: no allocation.
 */
#ifndef WG_COMMON_UNITS_H
#define WG_COMMON_UNITS_H

#include <stdint.h>

/*
 * Times as nginx writes them: "250ms" "30s" "5m" "1h" "2d" "1w", combined
 * largest unit first ("1m30s", "1h30m"); a bare number is seconds. No
 * fractions, no sign. Milliseconds, or -1 when malformed or out of range.
 */
int64_t units_time_ms(const char *s);

/* "512" "10k" "10m" "1g" (either case) -> bytes; -1 when malformed or too large. */
int64_t units_size(const char *s);

/*
 * A billing granularity: a time (units_time_ms's rule) that is one second,
 * one minute or one hour, as clouds bill ("1s", "60s", "1m", "1h"). The
 * conf's billing_granularity and wakegate-replay's --granularity both read
 * it here. Milliseconds, or -1 for any other value.
 */
int64_t units_granularity_ms(const char *s);

#endif
