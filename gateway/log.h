/*
 * log: the gateway's error log is common/log.h's (one implementation for
 * every program). This header stays so that the gateway's files include
 * what they always did; the gateway's convention is log_msg and the
 * log_error... macros, filtered by the conf's error_log level.
 */
#ifndef WG_LOG_H
#define WG_LOG_H

#include "common/log.h"

#endif
