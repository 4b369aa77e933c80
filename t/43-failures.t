# Failures are answered clearly and fast: a worker that dies during boot, one
# that never gets healthy, a full hold queue, a hold timeout, a client that
# leaves while held.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);

my ($body, $label) = digits_input(2);

# 1. the launch command exits 1
{
	my ($text, $port, $admin) = gw_conf(launch => 'echo starting; exit 1', upstream => 'hold 10 timeout=60s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $t0 = time;
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'a worker that exits during boot gets the held request a 503');
	ok(time - $t0 < 20, 'the 503 comes at once, not after the hold timeout');
	like($r->{content}, qr/exited with status 1 during boot/, 'the 503 says the worker exited with status 1 during boot');
	like($r->{headers}{'retry-after'} // '', qr/^\d+$/, 'the 503 has a Retry-After');
	my $s = gw_status($g)->{upstreams}{digits};
	is($s->{state}, 'FAILED', '/status shows FAILED');
	$r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'a request during the backoff gets a 503 too');
	like($r->{content}, qr/exited with status 1/, 'with the same reason');
}

# 2. a command that never gets healthy
{
	my ($text, $port, $admin) = gw_conf(launch => 'exec sleep 100', upstream => 'boot_timeout 1s; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'a worker that never gets healthy gets a 503');
	like($r->{content}, qr/boot timed out after 1s/, 'the 503 says the boot timed out');
	ok(wait_until(sub { scalar(gw_children($g->{pid})) == 0 }, 15), 'the never-healthy process is killed');
}

# 2b. a worker whose warmup fails (the test backend knows no model metadata)
{
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(), upstream => 'warmup count=2; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'a worker whose warmup fails gets the held request a 503');
	like($r->{content}, qr/warmup failed/, 'the 503 says the warmup failed');
	like(gw_log($g), qr/WARMING -> FAILED \(warmup failed: /, 'the log shows WARMING -> FAILED with the reason');
	ok(wait_until(sub { scalar(gw_children($g->{pid})) == 0 }, 15), 'the worker that failed its warmup is stopped');
}

# 3. hold overflow and 4. hold timeout, on a worker that boots slowly
{
	my $slow = 'sleep 2; exec ' . worker_cmd();
	my ($text, $port, $admin) = gw_conf(launch => $slow, upstream => 'hold 1 timeout=30s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $pid = fork // die;
	if ($pid == 0) {
		my $rr = gw_predict($g, $body, timeout => 60);
		POSIX::_exit($rr->{status} == 200 ? 0 : 1);
	}
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 0) == 1 }, 10), 'the first request is held');
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'a request beyond the hold limit gets a 503');
	like($r->{content}, qr/hold queue full/, 'the 503 says the hold queue is full');
	like($r->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, 'the 503 has a Retry-After');
	waitpid($pid, 0);
	is($?, 0, 'the held request is still answered 200');
	my $boot = gw_status($g)->{upstreams}{digits};
	ok($boot->{boot_seconds} >= 1.5, 'the measured boot time includes the slow start');
}
{
	my ($text, $port, $admin) = gw_conf(launch => 'exec sleep 100', upstream => 'boot_timeout 60s; hold 10 timeout=1s; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $t0 = time;
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'a request held past the hold timeout gets a 503');
	like($r->{content}, qr/no replica ready after/, 'the 503 says no replica got ready in time');
	ok(time - $t0 < 20, 'the hold timeout is honoured');
	like($r->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, 'it has a Retry-After');
}

# 5. a client that leaves while held does not cancel the boot
{
	my $slow = 'sleep 1; exec ' . worker_cmd();
	my ($text, $port, $admin) = gw_conf(launch => $slow, upstream => 'hold 10 timeout=30s; idle_timeout 60s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
	print $s "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " . length($body) . "\r\n\r\n$body";
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 0) == 1 }, 10), 'the request is held');
	close $s;
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 1) == 0 }, 10), 'a client that leaves is removed from the hold queue');
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'READY' }, 30), 'the boot goes on to READY without waiters');
	my $r = gw_predict($g, $body);
	is($r->{status}, 200, 'the next request is served warm');
	like(slurp($g->{access}), qr/" 499 0 upstream=digits/, 'the access log shows the client that left as 499');
}

done_testing;
