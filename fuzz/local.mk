# fuzz: libFuzzer harnesses for the three parsers of untrusted input, and
# the replay programs that run their corpus (seeds and regress-* crash
# reproducers) with the normal compiler on every `make check`.
# See fuzz/README.md; `make fuzz` builds the real fuzzers with clang.
check_PROGRAMS += fuzz/replay-safetensors fuzz/replay-conf fuzz/replay-request

fuzz_replay_safetensors_SOURCES = fuzz/replay_main.c fuzz/fuzz_safetensors.c
fuzz_replay_safetensors_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
fuzz_replay_safetensors_LDADD = $(MODEL_LIBS)

# The conf parser's files: the same list as gateway/conf-dump's.
fuzz_replay_conf_SOURCES = fuzz/replay_main.c fuzz/fuzz_conf.c \
	gateway/conf.c gateway/conf.h gateway/conf_int.h \
	gateway/conf_lex.c gateway/conf_cmds.c gateway/conf_redis.c \
	gateway/conf_limit.c gateway/conf_degrade.c gateway/conf_upstream.c gateway/conf_header.c gateway/conf_sleep.c gateway/conf_tls.c gateway/conf_rows.c gateway/conf_gpu.c gateway/conf_admin.c gateway/conf_auth.c \
	gateway/conf_split.c gateway/conf_scale.c gateway/split.c gateway/split.h gateway/conf_version.c gateway/conf_static.c gateway/loc_regex.c gateway/loc_regex.h \
	gateway/limit.c gateway/limit_conn.c gateway/limit_key.c gateway/limit_table.c gateway/limit_int.h gateway/limit.h gateway/degrade.c gateway/degrade.h
fuzz_replay_conf_CFLAGS = $(AM_CFLAGS) $(OPENSSL_CFLAGS) $(PCRE2_CFLAGS)
fuzz_replay_conf_LDADD = $(COMMON_LIBS) $(OPENSSL_LIBS) $(PCRE2_LIBS)

# The worker's request-body checks: request.c and the tensor.c it calls.
fuzz_replay_request_SOURCES = fuzz/replay_main.c fuzz/fuzz_request.c \
	gpu-worker/request.c gpu-worker/request.h \
	gpu-worker/tensor.c gpu-worker/tensor.h gpu-worker/worker.h
fuzz_replay_request_CFLAGS = $(AM_CFLAGS) $(JANSSON_CFLAGS)
fuzz_replay_request_LDADD = $(JANSSON_LIBS) -lm

EXTRA_DIST += fuzz/README.md fuzz/build-fuzzers.sh fuzz/corpus \
	fuzz/safetensors.dict fuzz/conf.dict fuzz/request.dict

# make fuzz: the libFuzzer binaries in fuzz/ (clang; FUZZ_CC=clang-15 to pick one).
# make fuzz-run: runs each for FUZZ_TIME seconds with FUZZ_JOBS jobs;
# new inputs go to fuzz/new-TARGET/, crashes to fuzz/crash-TARGET-*.
FUZZ_TIME = 600
FUZZ_JOBS = 1
FUZZ_TARGETS = safetensors conf request
fuzz:
	FUZZ_CC="$(FUZZ_CC)" $(SHELL) $(srcdir)/fuzz/build-fuzzers.sh \
	  $(abs_top_srcdir) $(abs_top_builddir) $(abs_top_builddir)/fuzz $(FUZZ_TARGETS)
fuzz-run: fuzz
	@for t in $(FUZZ_TARGETS); do \
	  mkdir -p fuzz/new-$$t; \
	  echo "fuzz-run: $$t for $(FUZZ_TIME)s"; \
	  fuzz/fuzz-$$t -max_total_time=$(FUZZ_TIME) -jobs=$(FUZZ_JOBS) -workers=$(FUZZ_JOBS) \
	    -timeout=10 -dict=$(abs_top_srcdir)/fuzz/$$t.dict -artifact_prefix=fuzz/crash-$$t- \
	    fuzz/new-$$t $(abs_top_srcdir)/fuzz/corpus/$$t || exit 1; \
	done
CLEANFILES += fuzz/fuzz-safetensors fuzz/fuzz-conf fuzz/fuzz-request
.PHONY: fuzz fuzz-run
