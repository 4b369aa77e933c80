# The worker is SIGKILLed during boot, during warmup, in the middle of a
# request and in the middle of an event stream. Each time: the in-flight
# request gets a 502 (or, once its header is out, a cut stream the client can
# see), held requests get a 503 with the reason or go to a new replica, no
# client is left hanging, and the next request is served. WG_VALGRIND=1 runs
# each gateway under valgrind.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my $dir = tmpdir();

# SIGKILLs the worker's whole process group at once (the launcher gives it its
# own), as the kernel would kill a one-process worker: the test backend forks a
# process a connection, and killing those one by one would let the gateway see
# a connection end while the listener still accepts.
sub kill_worker {
	my ($g) = @_;
	my @k = gw_children($g->{pid});
	my %groups = map { (getpgrp_of($_) // $_) => 1 } @k;
	kill 'KILL', map { -$_ } keys %groups;
	kill 'KILL', @k;
	return scalar @k;
}
sub getpgrp_of { my $st = slurp("/proc/$_[0]/stat") or return undef; return $st =~ /^\d+ \(.*\) \S \d+ (\d+)/ ? $1 : undef }
sub state_of { my ($g) = @_; return gw_status($g)->{upstreams}{digits}{state} // '' }
sub field { my ($g, $f) = @_; return gw_status($g)->{upstreams}{digits}{$f} // 0 }

# Runs GET url in a child; returns (pid, file) where file gets "STATUS\nBODY".
my $nreq = 0;
sub bg_get {
	my ($url) = @_;
	my $file = "$dir/bg-" . ++$nreq;
	my $pid = fork // die;
	if ($pid == 0) {
		my $r = WG::http_get($url, timeout => 60);
		spew($file, "$r->{status}\n$r->{content}");
		POSIX::_exit(0);
	}
	return ($pid, $file);
}
sub bg_wait { my ($pid, $file) = @_; waitpid($pid, 0); return split /\n/, slurp($file), 2 }

# 1. killed during boot: the held request gets a 503 with the reason at once
{
	my $flag = "$dir/slow-boot";
	spew($flag, '1');
	my $launch = "if [ -e $flag ]; then sleep 30; fi; " . backend_cmd();
	my ($text, $port, $admin) = gw_conf(launch => $launch, upstream => 'warmup off; hold 10 timeout=60s; boot_timeout 60s; stop_grace 1s;');
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	my @req = bg_get("$g->{url}/a");
	my @req2 = bg_get("$g->{url}/b");
	ok(wait_until(sub { field($g, 'held') == 2 }, 20), 'two requests are held while the worker boots');
	unlink $flag;
	ok(kill_worker($g) >= 1, 'the booting worker is SIGKILLed');
	my $t0 = time;
	my ($st, $body) = bg_wait(@req);
	my ($st2) = bg_wait(@req2);
	is($st, 503, 'the held request gets a 503');
	is($st2, 503, 'the other held request gets a 503 too');
	like($body, qr/killed by signal 9 during boot/, 'the 503 says the worker was killed during boot');
	ok(time - $t0 < 10, 'the 503s come at once, not after the hold timeout');
	ok(wait_until(sub { WG::http_get("$g->{url}/c", timeout => 30)->{status} == 200 }, 30),
		'after the backoff the next request wakes a new worker and is served');
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
}

# 2. killed during warmup (a warmup of 10 slow requests)
{
	my $wbody = "$dir/warm.json";
	spew($wbody, '{}');
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(),
		upstream => "warmup path=/slow?ms=400 body=$wbody count=10 timeout=60s; hold 10 timeout=60s; stop_grace 1s;");
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	my @req = bg_get("$g->{url}/a");
	ok(wait_until(sub { state_of($g) eq 'WARMING' }, 20), 'the worker boots and warms up');
	sleep 0.5;
	ok(kill_worker($g) >= 1, 'the warming worker is SIGKILLed');
	my ($st, $body) = bg_wait(@req);
	is($st, 503, 'the held request gets a 503');
	like($body, qr/during warmup|warmup failed/, 'the 503 says it failed during warmup');
	ok(wait_until(sub { WG::http_get("$g->{url}/c", timeout => 30)->{status} == 200 }, 40),
		'after the backoff the next request is served by a new worker');
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
}

# 3. killed in the middle of a slow request, with one more queued behind it
# 4. killed in the middle of an event stream
{
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(),
		upstream => 'warmup off; max_conns 1; hold 10 timeout=60s; idle_timeout 60s; stop_grace 1s;');
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	is(WG::http_get("$g->{url}/warm", timeout => 30)->{status}, 200, 'the worker is up');
	my @slow = bg_get("$g->{url}/slow?ms=8000");
	ok(wait_until(sub { field($g, 'in_flight') == 1 }, 10), 'a slow request is in flight');
	my @queued = bg_get("$g->{url}/queued");
	ok(wait_until(sub { field($g, 'held') >= 1 }, 10), 'a second request waits behind it (max_conns 1)');
	my $t0 = time;
	kill_worker($g);
	my ($st, $body) = bg_wait(@slow);
	is($st, 502, 'the in-flight request gets a 502');
	like($body, qr/error/, 'with a reason');
	ok(time - $t0 < 7, 'at once, not when the slow answer would have come');
	my ($st2, $body2) = bg_wait(@queued);
	ok($st2 == 200 || ($st2 == 503 && $body2 =~ /\w/), "the waiting request goes to a new worker or gets a 503 with a reason (got $st2)");
	note("queued request: $st2 $body2");
	ok(wait_until(sub { WG::http_get("$g->{url}/next", timeout => 30)->{status} == 200 }, 30), 'the next request is served');

	# the stream
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 30) or die;
	print $s "GET /sse?n=100&ms=100 HTTP/1.1\r\nHost: x\r\n\r\n";
	$s->blocking(0);
	my $got = '';
	ok(wait_until(sub { my $n = sysread($s, my $b, 65536); $got .= $b if $n; $got =~ /data: event 2/ }, 20), 'the stream has begun');
	kill_worker($g);
	my $closed = wait_until(sub { my $n = sysread($s, my $b, 65536); $got .= $b if $n; defined $n && $n == 0 }, 20);
	ok($closed, 'the client of a stream whose worker died is not left hanging: its connection ends');
	unlike($got, qr/\r\n0\r\n\r\n$/, 'the stream ends without a final chunk, so the client knows it was cut');
	unlike($got, qr/data: event 100/, 'the stream was really cut');
	close $s;
	ok(wait_until(sub { WG::http_get("$g->{url}/after", timeout => 30)->{status} == 200 }, 30), 'the next request after the cut stream is served');
	ok(kill(0, $g->{pid}), 'the gateway is still running');

	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
}

# 5. killed with 8 requests in flight and 40 waiting for a slot
SKIP: {
	my $many = manyconn_bin();
	skip 'no C compiler for manyconn', 7 unless $many;
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(),
		upstream => 'warmup off; max_conns 8; hold 100 timeout=60s; idle_timeout 60s; stop_grace 1s;');
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	is(WG::http_get("$g->{url}/warm", timeout => 30)->{status}, 200, 'the worker is up');
	my $out = "$dir/many.out";
	my $pid = fork // die;
	if ($pid == 0) {
		open STDOUT, '>', $out or die;
		exec $many, '127.0.0.1', $port, 48, '/slow?ms=1000', 60 or POSIX::_exit(127);
	}
	ok(wait_until(sub { field($g, 'in_flight') == 8 && field($g, 'held') == 40 }, 20), '8 slow requests are in flight and 40 wait for a slot');
	kill_worker($g);
	waitpid($pid, 0);
	my $t = slurp($out);
	my %c = $t =~ /^status (\d+) (\d+)$/mg;
	my ($failed) = $t =~ /^failed (\d+)$/m;
	note($t);
	is($failed, 0, 'all 48 clients get an answer, none hangs');
	is(($c{200} // 0) + ($c{502} // 0) + ($c{503} // 0), 48, 'each answer is a 200 (from the new worker), a 502 (in flight) or a 503');
	is($c{502} // 0, 8, 'the 8 in flight get the 502s');
	ok(wait_until(sub { WG::http_get("$g->{url}/after", timeout => 30)->{status} == 200 }, 30), 'the gateway serves after that');
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
}

done_testing;
