# gateway: the wakegate daemon.
sbin_PROGRAMS += gateway/wakegate
gateway_wakegate_SOURCES = \
	gateway/main.c gateway/gw.c gateway/gw.h \
	gateway/log.h \
	gateway/phase.c gateway/phase.h gateway/request.c gateway/request.h gateway/park.c gateway/park.h \
	gateway/upstream.c gateway/upstream.h gateway/upstream_set.c gateway/dispatch.c gateway/dispatch.h \
	gateway/replica.c gateway/replica.h gateway/replica_int.h gateway/replica_remote.c gateway/replica_acct.c gateway/replica_acct.h gateway/port.c gateway/port.h gateway/probe.c gateway/probe.h gateway/sleepapi.c gateway/sleepapi.h \
	gateway/hold.c gateway/hold.h gateway/client_conn.c gateway/client_conn.h gateway/clients.c gateway/clients.h \
	gateway/cost.c gateway/cost.h gateway/keepalive.c gateway/keepalive.h gateway/evict.c gateway/evict.h gateway/gpu.c gateway/gpu.h gateway/policy.c gateway/policy.h gateway/policy_tod.c gateway/policy_tod.h \
	gateway/schedule.c gateway/schedule.h \
	gateway/fleet.c gateway/fleet.h gateway/scale.c gateway/scale.h gateway/scale_rule.c gateway/scale_rule.h gateway/scale_gauge.c \
	gateway/split_phase.c gateway/split_phase.h \
	gateway/launch.h gateway/launch_exec.c gateway/launch_output.c gateway/launch_proc.c gateway/launch_proc.h gateway/launch_check.c gateway/launch_check.h \
	gateway/header_set.c gateway/header_set.h gateway/start_check.c gateway/start_check.h \
	gateway/launch.c gateway/launch_command.c gateway/launch_curl.c gateway/launch_curl.h \
	gateway/launch_http.c gateway/launch_k8s.c gateway/launch_server.c \
	gateway/replica_health.c gateway/replica_health.h \
	gateway/k8s_api.c gateway/k8s_api.h gateway/k8s.h gateway/k8s.c gateway/k8s_watch.c gateway/k8s_scale.c gateway/k8s_fleet.c gateway/k8s_rule.c gateway/k8s_rule.h \
	gateway/server.c gateway/server.h gateway/admin.c gateway/admin.h gateway/model_route.c gateway/model_route.h gateway/auth.c gateway/auth.h gateway/tenant.c gateway/tenant.h gateway/progress.c gateway/progress.h \
	gateway/accesslog.c gateway/accesslog.h gateway/sd_notify.c gateway/sd_notify.h \
	gateway/status_page.c gateway/status_page.h \
	gateway/http_strict.c gateway/http_strict.h gateway/http_strict_req.c gateway/http_strict_int.h gateway/path_norm.c gateway/path_norm.h \
	gateway/log_escape.c gateway/log_escape.h \
	gateway/conf.c gateway/conf.h gateway/conf_int.h \
	gateway/conf_lex.c gateway/conf_cmds.c gateway/conf_redis.c \
	gateway/conf_limit.c gateway/conf_degrade.c gateway/conf_upstream.c gateway/conf_header.c gateway/conf_sleep.c gateway/conf_tls.c gateway/conf_rows.c gateway/conf_gpu.c gateway/conf_admin.c gateway/conf_auth.c \
	gateway/conf_split.c gateway/conf_scale.c gateway/split.c gateway/split.h \
	gateway/conf_version.c gateway/conf_static.c gateway/loc_regex.c gateway/loc_regex.h \
	gateway/limit.c gateway/limit_conn.c gateway/limit_key.c gateway/limit_table.c gateway/limit_int.h gateway/limit.h gateway/degrade.c gateway/degrade.h \
	gateway/ratelimit.c gateway/ratelimit.h gateway/ratelimit_redis.c gateway/ratelimit_redis.h \
	gateway/rules.c gateway/rules.h \
	gateway/metrics.c gateway/metrics.h \
	gateway/store.c gateway/store.h gateway/store_int.h gateway/store_lock.c \
	gateway/redis_conn.c gateway/redis_conn.h gateway/redis_tls.c gateway/redis_tls.h gateway/fleet_peers.c gateway/fleet_peers.h \
	gateway/proxy.c gateway/proxy.h gateway/proxy_int.h gateway/proxy_pool.c gateway/proxy_1xx.c gateway/proxy_hdr.c gateway/proxy_hdr.h \
	gateway/tls.c gateway/tls.h \
	gateway/version.c gateway/version.h gateway/rollout.c gateway/rollout.h
gateway_wakegate_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS) $(HIREDIS_CFLAGS) $(LIBCURL_CFLAGS) $(JANSSON_CFLAGS) $(PCRE2_CFLAGS)
gateway_wakegate_LDADD = warmer/libwgwarmer.a $(COMMON_LIBS) $(LIBEVENT_LIBS) $(OPENSSL_LIBS) $(HIREDIS_LIBS) $(LIBCURL_LIBS) $(JANSSON_LIBS) $(PCRE2_LIBS) -lm

# The status page is edited as gateway/status_page.html and compiled in as
# one C string (status_page.c includes the generated header).
gateway/wakegate-status_page.$(OBJEXT): gateway/status_page_html.h
gateway/status_page_html.h: gateway/status_page.html
	@$(MKDIR_P) gateway
	$(AM_V_GEN)sed -e 's/\\/\\\\/g' -e 's/"/\\"/g' -e 's/^/"/' -e 's/$$/\\n"/' \
	  $(srcdir)/gateway/status_page.html > $@.tmp && mv $@.tmp $@
CLEANFILES += gateway/status_page_html.h
EXTRA_DIST += gateway/status_page.html

# metrics-test, store-test: drivers for t/35-metrics.t and t/36-store.t.
check_PROGRAMS += gateway/metrics-test gateway/store-test
gateway_metrics_test_SOURCES = gateway/metrics-test.c gateway/metrics.c gateway/metrics.h
gateway_metrics_test_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS)
gateway_metrics_test_LDADD = $(COMMON_LIBS) $(LIBEVENT_LIBS) -lm
gateway_store_test_SOURCES = gateway/store-test.c gateway/store.c gateway/store.h gateway/store_int.h \
	gateway/store_lock.c gateway/redis_conn.c gateway/redis_conn.h gateway/redis_tls.c gateway/redis_tls.h
gateway_store_test_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(OPENSSL_CFLAGS) $(HIREDIS_CFLAGS)
gateway_store_test_LDADD = $(COMMON_LIBS) $(LIBEVENT_LIBS) $(OPENSSL_LIBS) $(HIREDIS_LIBS)

# conf-dump: prints a parsed conf as text, for t/30-conf.t.
check_PROGRAMS += gateway/conf-dump
gateway_conf_dump_SOURCES = gateway/conf-dump.c \
	gateway/conf.c gateway/conf.h gateway/conf_int.h \
	gateway/conf_lex.c gateway/conf_cmds.c gateway/conf_redis.c \
	gateway/conf_limit.c gateway/conf_degrade.c gateway/conf_upstream.c gateway/conf_header.c gateway/conf_sleep.c gateway/conf_tls.c gateway/conf_rows.c gateway/conf_gpu.c gateway/conf_admin.c gateway/conf_auth.c \
	gateway/conf_split.c gateway/conf_scale.c gateway/split.c gateway/split.h \
	gateway/conf_version.c gateway/conf_static.c gateway/loc_regex.c gateway/loc_regex.h \
	gateway/limit.c gateway/limit_conn.c gateway/limit_key.c gateway/limit_table.c gateway/limit_int.h gateway/limit.h gateway/degrade.c gateway/degrade.h
gateway_conf_dump_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(PCRE2_CFLAGS)
gateway_conf_dump_LDADD = $(COMMON_LIBS) $(OPENSSL_LIBS) $(PCRE2_LIBS)

# split-test: nginx's split_clients choice through gateway/split.c, for t/76-split.t.
check_PROGRAMS += gateway/split-test
gateway_split_test_SOURCES = gateway/split-test.c gateway/split.c gateway/split.h

# k8s-rule-test: replays load series through gateway/k8s_rule.c, for t/124-k8s-rule.t.
check_PROGRAMS += gateway/k8s-rule-test
gateway_k8s_rule_test_SOURCES = gateway/k8s-rule-test.c gateway/k8s_rule.c gateway/k8s_rule.h

# scale-test: replays gauge series through gateway/scale_rule.c, for t/77-scale-on.t.
check_PROGRAMS += gateway/scale-test
gateway_scale_test_SOURCES = gateway/scale-test.c gateway/scale_rule.c gateway/scale_rule.h

# degrade-test: replays degradation scripts through gateway/degrade.c, for t/51-degrade.t.
check_PROGRAMS += gateway/degrade-test
gateway_degrade_test_SOURCES = gateway/degrade-test.c gateway/degrade.c gateway/degrade.h

# proxy-test: a standalone reverse proxy around proxy.c, for t/38-proxy.t.
check_PROGRAMS += gateway/proxy-test
gateway_proxy_test_SOURCES = gateway/proxy-test.c \
	gateway/proxy.c gateway/proxy.h gateway/proxy_int.h gateway/proxy_pool.c gateway/proxy_1xx.c gateway/proxy_hdr.c gateway/proxy_hdr.h \
	gateway/client_conn.c gateway/client_conn.h gateway/log_escape.c gateway/log_escape.h
gateway_proxy_test_CFLAGS = $(AM_CFLAGS) $(LIBEVENT_CFLAGS) $(JANSSON_CFLAGS)
gateway_proxy_test_LDADD = $(COMMON_LIBS) $(LIBEVENT_LIBS) $(JANSSON_LIBS)

# limit-test: replays rate-limit scripts through gateway/limit.c, for t/50-limit.t.
check_PROGRAMS += gateway/limit-test
gateway_limit_test_SOURCES = gateway/limit-test.c gateway/limit.c gateway/limit_conn.c gateway/limit_key.c gateway/limit_table.c gateway/limit_int.h gateway/limit.h
