#!/bin/sh
# wakegate quick start, on a fresh Debian 12 machine, as root:
#   ./quickstart.sh         installs what is missing, builds, starts wakegate on conf/wakegate.conf
#   ./quickstart.sh test    installs what is missing, builds, runs the whole test suite
set -eu
cd "$(dirname "$0")"
mode=${1:-start}

pkgs="build-essential autoconf automake libtool pkg-config perl curl redis-server openssl libio-socket-ssl-perl valgrind
      libevent-dev libssl-dev libhiredis-dev libcurl4-openssl-dev libjansson-dev"
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
	echo "usage: $0 [start|test]" >&2
	exit 2
	;;
esac
