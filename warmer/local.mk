# warmer: the warmup library the gateway links, and the wakegate-warmer CLI.
noinst_LIBRARIES += warmer/libwgwarmer.a
warmer_libwgwarmer_a_SOURCES = warmer/warmer.c warmer/warmer.h warmer/warmer_progress.h \
	warmer/curl_loop.c warmer/curl_loop.h
warmer_libwgwarmer_a_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(LIBCURL_CFLAGS) $(JANSSON_CFLAGS)

bin_PROGRAMS += warmer/wakegate-warmer
warmer_wakegate_warmer_SOURCES = warmer/cli.c
warmer_wakegate_warmer_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(LIBCURL_CFLAGS)
warmer_wakegate_warmer_LDADD = warmer/libwgwarmer.a $(COMMON_LIBS) $(LIBEVENT_LIBS) $(LIBCURL_LIBS) $(JANSSON_LIBS)

# warmer-check: many warmers, cancelled at awkward moments (t/25-warmer.t runs it).
check_PROGRAMS += warmer/warmer-check
warmer_warmer_check_SOURCES = warmer/warmer-check.c
warmer_warmer_check_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(LIBCURL_CFLAGS)
warmer_warmer_check_LDADD = warmer/libwgwarmer.a $(COMMON_LIBS) $(LIBEVENT_LIBS) $(LIBCURL_LIBS) $(JANSSON_LIBS)
