# gateway: the wakegate daemon.
sbin_PROGRAMS += gateway/wakegate
gateway_wakegate_SOURCES = \
	gateway/main.c \
	gateway/conf.c gateway/conf.h
gateway_wakegate_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS) $(HIREDIS_CFLAGS) $(LIBCURL_CFLAGS) $(JANSSON_CFLAGS)
gateway_wakegate_LDADD = warmer/libwgwarmer.a $(LIBEVENT_LIBS) $(OPENSSL_LIBS) $(HIREDIS_LIBS) $(LIBCURL_LIBS) $(JANSSON_LIBS) -lm
