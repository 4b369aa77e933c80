#!/bin/sh
# wakegate quick start, on a fresh Debian 12 machine, as root:
#   ./quickstart.sh         installs what is missing, builds, starts wakegate on conf/wakegate.conf
#   ./quickstart.sh test    installs what is missing, builds, runs the whole test suite
#   ./quickstart.sh test-sanitizers
#                           builds a second copy with ASan+UBSan in wakegate-asan/ and runs
#                           the tests that cover the riskiest C under it (CI runs it after test)
set -eu
cd "$(dirname "$0")"
mode=${1:-start}

pkgs="build-essential autoconf automake libtool pkg-config perl curl redis-server openssl libio-socket-ssl-perl valgrind
      libevent-dev libssl-dev libhiredis-dev libcurl4-openssl-dev libjansson-dev libopenblas-dev libpcre2-dev
      dpkg-dev debhelper lintian chromium libyaml-libyaml-perl nginx wrk haproxy"
missing=
for p in $pkgs; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing="$missing $p"
done
if [ -n "$missing" ]; then
	echo "quickstart: installing$missing"
	SUDO=; [ "$(id -u)" = 0 ] || SUDO=sudo
	$SUDO apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $missing
fi

if [ ! -x configure ] || [ configure.ac -nt configure ]; then autoreconf -fi; fi
if [ ! -f Makefile ] || [ configure -nt Makefile ]; then ./configure; fi
make -j"$(nproc)"

case "$mode" in
test)
	exec make check
	;;
test-sanitizers)
	# This tree is configured in place, so automake refuses a second (VPATH) build
	# from it: build the distribution's files, copied to wakegate-asan/, instead.
	# The subset: the worker's loader and API, the conf parser, limits, policy and
	# replay, the fuzz corpus, the proxy, a cold start, streaming, the faults, the
	# client-socket watch, the HTTP scanner and checks, max_clients, the
	# Kubernetes watch's stream parser, regex locations, server lines and the
	# Redis TLS relay.
	tests="11-safetensors 20-worker-api 30-conf 31-conf-rules 38-proxy 41-cold-start
	       46-stream 50-limit 60-policy 61-replay 70-fuzz-corpus 80-faults-worker
	       81-faults-redis 82-faults-reload 83-faults-clients 84-faults-backend 85-many-held
	       90-client-watch 111-http-strict 112-upstream-framing 117-max-clients 120-k8s-pods
	       121-k8s-endpoints 131-regex-location 132-server-upstream 118-redis-tls"
	rm -rf wakegate-asan
	make -s distdir distdir=wakegate-asan
	cd wakegate-asan
	./configure -q --enable-sanitizers
	make -s -j"$(nproc)" check PROVE=true	# builds the programs and test programs, runs no test
	mkdir reports
	# ASan errors and leaks of every process the tests start land in reports/;
	# a UBSan error aborts its process (-fno-sanitize-recover), which fails its test.
	set --
	for t in $tests; do set -- "$@" "t/$t.t"; done
	rc=0
	ASAN_OPTIONS=log_path=$PWD/reports/asan UBSAN_OPTIONS=print_stacktrace=1 WG_BUILD=$PWD WG_SRC=$PWD \
		prove -It/lib "$@" || rc=$?	# one at a time: the fault tests time things
	if [ -n "$(ls reports)" ]; then
		cat reports/*
		echo "quickstart: sanitizer reports above, in wakegate-asan/reports/" >&2
		rc=1
	fi
	exit $rc
	;;
start)
	# the default conf records idle time and cold starts in Redis on 6379
	if ! redis-cli -p 6379 ping >/dev/null 2>&1; then
		redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no --daemonize yes >/dev/null
		echo "quickstart: started redis-server on 127.0.0.1:6379 (stop it with: redis-cli -p 6379 shutdown)"
	fi
	port=$(sed -n 's/^[[:space:]]*listen[[:space:]]\{1,\}\([0-9.]*:\)\{0,1\}\([0-9]\{1,\}\).*/\2/p' conf/wakegate.conf | head -n 1)
	echo "wakegate: starting on http://127.0.0.1:$port (conf/wakegate.conf; Ctrl-C stops it)"
	echo "try:  curl -s http://127.0.0.1:$port/predict -H 'Content-Type: application/json' -d @models/example.json"
	exec gateway/wakegate -p "$PWD" -c conf/wakegate.conf
	;;
*)
	echo "usage: $0 [start|test|test-sanitizers]" >&2
	exit 2
	;;
esac
