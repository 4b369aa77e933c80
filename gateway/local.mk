# gateway: the wakegate daemon.
sbin_PROGRAMS += gateway/wakegate
gateway_wakegate_SOURCES = \
	gateway/main.c gateway/gw.h \
	gateway/log.c gateway/log.h \
	gateway/upstream.c gateway/upstream.h gateway/request.h gateway/replica.c \
	gateway/hold.c gateway/hold.h gateway/client_conn.c gateway/client_conn.h \
	gateway/cost.c gateway/cost.h gateway/keepalive.c gateway/keepalive.h gateway/policy.c gateway/policy.h gateway/policy_tod.c gateway/policy_tod.h \
	gateway/schedule.c gateway/schedule.h \
	gateway/fleet.c gateway/fleet.h gateway/scale.c gateway/scale.h \
	gateway/launch.h gateway/launch_exec.c \
	gateway/launch.c gateway/launch_command.c gateway/launch_curl.c gateway/launch_curl.h \
	gateway/launch_http.c gateway/launch_k8s.c \
	gateway/server.c gateway/server.h \
	gateway/http_strict.c gateway/http_strict.h gateway/path_norm.c gateway/path_norm.h \
	gateway/log_escape.c gateway/log_escape.h \
	gateway/accesslog.c gateway/accesslog.h \
	gateway/conf.c gateway/conf.h gateway/conf_int.h \
	gateway/conf_lex.c gateway/conf_cmds.c \
	gateway/conf_limit.c gateway/conf_degrade.c gateway/conf_upstream.c \
	gateway/limit.c gateway/limit.h gateway/degrade.c gateway/degrade.h \
	gateway/ratelimit.c gateway/ratelimit.h gateway/ratelimit_redis.c gateway/ratelimit_redis.h \
	gateway/rules.c gateway/rules.h \
	gateway/metrics.c gateway/metrics.h \
	gateway/store.c gateway/store.h \
	gateway/proxy.c gateway/proxy.h gateway/proxy_int.h gateway/proxy_pool.c gateway/proxy_hdr.c gateway/proxy_hdr.h \
	gateway/tls.c gateway/tls.h
gateway_wakegate_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS) $(HIREDIS_CFLAGS) $(LIBCURL_CFLAGS) $(JANSSON_CFLAGS)
gateway_wakegate_LDADD = warmer/libwgwarmer.a $(LIBEVENT_LIBS) $(OPENSSL_LIBS) $(HIREDIS_LIBS) $(LIBCURL_LIBS) $(JANSSON_LIBS) -lm

# metrics-test, store-test: drivers for t/35-metrics.t and t/36-store.t.
check_PROGRAMS += gateway/metrics-test gateway/store-test
gateway_metrics_test_SOURCES = gateway/metrics-test.c gateway/metrics.c gateway/metrics.h
gateway_metrics_test_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
gateway_metrics_test_LDADD = $(LIBEVENT_LIBS) -lm
gateway_store_test_SOURCES = gateway/store-test.c gateway/store.c gateway/store.h
gateway_store_test_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(HIREDIS_CFLAGS)
gateway_store_test_LDADD = $(LIBEVENT_LIBS) $(HIREDIS_LIBS)

# conf-dump: prints a parsed conf as text, for t/30-conf.t.
check_PROGRAMS += gateway/conf-dump
gateway_conf_dump_SOURCES = gateway/conf-dump.c \
	gateway/conf.c gateway/conf.h gateway/conf_int.h \
	gateway/conf_lex.c gateway/conf_cmds.c \
	gateway/conf_limit.c gateway/conf_degrade.c gateway/conf_upstream.c \
	gateway/limit.c gateway/limit.h gateway/degrade.c gateway/degrade.h

# degrade-test: replays degradation scripts through gateway/degrade.c, for t/51-degrade.t.
check_PROGRAMS += gateway/degrade-test
gateway_degrade_test_SOURCES = gateway/degrade-test.c gateway/degrade.c gateway/degrade.h

# proxy-test: a standalone reverse proxy around proxy.c, for t/38-proxy.t.
check_PROGRAMS += gateway/proxy-test
gateway_proxy_test_SOURCES = gateway/proxy-test.c \
	gateway/proxy.c gateway/proxy.h gateway/proxy_int.h gateway/proxy_pool.c gateway/proxy_hdr.c gateway/proxy_hdr.h \
	gateway/client_conn.c gateway/client_conn.h gateway/log_escape.c gateway/log_escape.h
gateway_proxy_test_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JANSSON_CFLAGS)
gateway_proxy_test_LDADD = $(LIBEVENT_LIBS) $(JANSSON_LIBS)

# limit-test: replays rate-limit scripts through gateway/limit.c, for t/50-limit.t.
check_PROGRAMS += gateway/limit-test
gateway_limit_test_SOURCES = gateway/limit-test.c gateway/limit.c gateway/limit.h
