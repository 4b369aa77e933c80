# common: the lower layer every program links (not installed): logging, the
# clock, HTTP method names and JSON error bodies, the Prometheus text writer,
# URL parsing, times and sizes as the conf writes them, the conf templates' $variables,
# libcurl's common settings, and the one file that depends on libevent's internals.
noinst_LIBRARIES += common/libwgcommon.a
common_libwgcommon_a_SOURCES = \
	common/log.c common/log.h \
	common/clock.c common/clock.h \
	common/http.c common/http.h \
	common/prom.c common/prom.h \
	common/url.c common/url.h \
	common/units.c common/units.h \
	common/vars.c common/vars.h \
	common/curl.c common/curl.h \
	common/evtricks.c common/evtricks.h
common_libwgcommon_a_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS) $(JANSSON_CFLAGS) $(LIBCURL_CFLAGS)
COMMON_LIBS = common/libwgcommon.a
