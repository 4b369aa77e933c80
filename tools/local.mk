# tools: wakegate-replay (replays a request trace against keep-alive
# policies) and the policy's unit-test driver. The policy itself lives in
# gateway/ (pure code the daemon will link too).
bin_PROGRAMS += tools/wakegate-replay
tools_wakegate_replay_SOURCES = \
	tools/replay.c \
	tools/replay_gpu.c tools/replay_gpu.h gateway/evict.c gateway/evict.h \
	tools/replay_sched.c tools/replay_sched.h \
	tools/replay_ladder.c tools/replay_ladder.h \
	tools/trace.c tools/trace.h \
	gateway/policy.c gateway/policy.h gateway/policy_tod.c gateway/policy_tod.h
tools_wakegate_replay_LDADD = $(COMMON_LIBS) -lm

check_PROGRAMS += gateway/policy-test
gateway_policy_test_SOURCES = gateway/policy-test.c gateway/policy.c gateway/policy.h gateway/policy_tod.c gateway/policy_tod.h
gateway_policy_test_LDADD = -lm

check_PROGRAMS += gateway/evict-test
gateway_evict_test_SOURCES = gateway/evict-test.c gateway/evict.c gateway/evict.h gateway/policy.c gateway/policy.h gateway/policy_tod.c gateway/policy_tod.h
gateway_evict_test_LDADD = -lm

# bench/ (the traces, make-traces, cost) is in EXTRA_DIST through Makefile.am; bench/swap here.
EXTRA_DIST += bench/swap
dist_man_MANS += man/wakegate-replay.1
EXTRA_DIST += tools/mutants tools/mutants.list tools/README.md tools/callgraph
