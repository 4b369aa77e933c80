# Several gateways, one fleet: two wakegate processes on one Redis in front of
# the same worker. Exactly one of them starts it (a lock in Redis), the other
# holds its requests and then routes to it; traffic through either keeps it
# up; a gateway killed mid-boot does not block the other past the lock's expiry.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);

my ($rport) = start_redis();
my $dir = tmpdir();
my ($body) = digits_input(1);

sub redis { my $out = `redis-cli -p $rport @_`; chomp $out; return $out }

# Two gateways with the same upstream on the same Redis prefix.
sub pair {
	my (%o) = @_;
	my @g;
	for my $i (0, 1) {
		my ($text, $port, $admin) = gw_conf(upstream => $o{upstream}, launch => $o{launch},
			extra => "redis 127.0.0.1:$rport prefix=$o{prefix};");
		push @g, gw_start(conf => $text, port => $port, admin => $admin);
	}
	return @g;
}

# Worker processes (wakegate-worker) among the descendants of a gateway.
sub workers {
	my ($g) = @_;
	return grep { (split /\0/, slurp("/proc/$_/cmdline"))[0] =~ /wakegate-worker$/ } gw_children($g->{pid});
}

# Sends each [gateway, timeout] request at once from its own process; returns the statuses.
sub parallel {
	my @pids;
	my $n = 0;
	for my $req (@_) {
		my $f = "$dir/par-" . $n++;
		unlink $f;
		my $pid = fork // die "fork: $!";
		if ($pid == 0) {
			my $r = gw_predict($req->[0], $body, timeout => $req->[1] // 60);
			spew($f, $r->{status});
			POSIX::_exit(0);
		}
		push @pids, [$pid, $f];
	}
	my @st;
	for (@pids) { waitpid($_->[0], 0); push @st, slurp($_->[1]) || 'none' }
	return @st;
}

sub state { return gw_status($_[0])->{upstreams}{digits}{state} // '' }
sub launches { my @l = (gw_log($_[0]) =~ /launch exec: pid/g); return scalar @l }

# 1. concurrent requests at both gateways: one worker, every request answered
my ($a, $b) = pair(prefix => 'wg58a:', upstream => 'idle_timeout 2s; stop_grace 2s; lock_ttl 2s;');
my @st = parallel(map { [$_] } $a, $b, $a, $b, $a, $b);
is_deeply(\@st, [(200) x 6], 'concurrent requests at both gateways are all answered 200');
is(scalar(workers($a)) + scalar(workers($b)), 1, 'exactly one worker process runs for both gateways');
is(launches($a) + launches($b), 1, 'exactly one gateway launched a worker');
my ($owner, $other) = launches($a) ? ($a, $b) : ($b, $a);
like(gw_log($other), qr/another gateway (is starting it|runs it)/, 'the other gateway says it follows the one that started it');
like(redis('GET', 'wg58a:lock:digits'), qr/^\w+ READY http:\/\/127\.0\.0\.1:\d+ 2000$/,
	'the lock in Redis names the READY worker and its URL');
is(state($other), 'READY', 'the gateway that did not start the worker shows it READY');
is(gw_status($other)->{upstreams}{digits}{cold_starts}, 0, 'the other gateway counts no cold start of its own');

# 2. traffic only through the other gateway keeps the owner's worker alive
my $end = time + 4.5;
my $all_ok = 1;
while (time < $end) {
	my $r = gw_predict($other, $body);
	$all_ok &&= $r->{status} == 200;
	sleep 0.4;
}
ok($all_ok, 'traffic through the other gateway is answered by the shared worker');
is(state($owner), 'READY', 'traffic through one gateway keeps the worker up past idle_timeout for the other');
unlike(gw_log($owner), qr/READY -> DRAINING/, 'the owner did not stop the worker while the other gateway used it');
like(gw_log($owner), qr/another gateway saw activity/, 'the owner says it stayed up for the other gateway\'s traffic');
is(scalar(workers($owner)), 1, 'still the same single worker process');

ok(wait_until(sub { state($owner) eq 'STOPPED' }, 30), 'without traffic the owner stops the worker after idle_timeout');
ok(wait_until(sub { state($other) eq 'STOPPED' }, 10), 'the other gateway sees it stopped');
ok(wait_until(sub { scalar(workers($owner)) == 0 }, 10), 'the worker process is gone');
is(redis('EXISTS', 'wg58a:lock:digits'), '0', 'the lock is released');
is(launches($other), 0, 'the other gateway never launched, warmed or stopped it');

# the next request at the other gateway wakes it there
my $r = gw_predict($other, $body, timeout => 60);
is($r->{status}, 200, 'a request after the stop is answered');
is(launches($other), 1, 'the gateway that now needs it takes the lock and starts it');
stop_proc($a->{pid});
stop_proc($b->{pid});

# 3. kill -9 the gateway holding the lock mid-boot: the other completes the wake
my $trace = "$dir/boot-trace";
my $wrap = "$dir/slow-boot.sh";
spew($wrap, "echo start \$\$ >> $trace\nsleep 4\necho exec \$\$ >> $trace\nexec " .
	worker_cmd() =~ s/\$port/\$1/r . "\n");
my ($a2, $b2) = pair(prefix => 'wg58b:', launch => "exec sh $wrap \$port",
	upstream => 'idle_timeout 30s; stop_grace 2s; lock_ttl 2s;');
my $pa = fork // die;
if ($pa == 0) { gw_predict($a2, $body, timeout => 60); POSIX::_exit(0) }
ok(wait_until(sub { gw_log($a2) =~ /took the lock/ }, 20), 'the first gateway takes the lock and starts booting');
my $rb = "$dir/rb";
my $pb = fork // die;
if ($pb == 0) {
	my $x = gw_predict($b2, $body, timeout => 90);
	spew($rb, "$x->{status} " . ($x->{headers}{'x-wakegate-cold'} // '-'));
	POSIX::_exit(0);
}
ok(wait_until(sub { gw_log($b2) =~ /another gateway is starting it/ }, 20), 'the second gateway holds its request and waits');
my $killed_at = time;
kill 'KILL', $a2->{pid};
waitpid($pa, 0);
waitpid($pb, 0);
diag(sprintf('held request at the second gateway answered %.1fs after the kill (lock_ttl 2s, boot sleeps 4s)',
	time - $killed_at));
my ($code, $cold) = split ' ', slurp($rb);
is($code, 200, 'the request held at the second gateway is answered after the first one died mid-boot');
ok($cold && $cold ne '-', 'it is marked as a cold start');
like(gw_log($b2), qr/no gateway runs it any more.*took the lock/s, 'the second gateway took the lock once it expired');
my @trace = split /\n/, slurp($trace);
is(scalar(grep { /^start/ } @trace), 2, 'each gateway began a boot');
is(scalar(grep { /^exec/ } @trace), 1, 'only one boot reached the worker: the dead gateway\'s boot did not');
is(scalar(workers($b2)), 1, 'one worker runs, started by the second gateway');
like(redis('GET', 'wg58b:lock:digits'), qr/READY/, 'the lock names the new worker as READY');
stop_proc($a2->{pid}, 'KILL', 5);
stop_proc($b2->{pid});
my @boot_pids = map { (split ' ')[1] } @trace;
ok(wait_until(sub { !grep { kill 0, $_ } @boot_pids }, 15),
	'no boot script or worker of either gateway is left running');

# 4. kill -9 the gateway running a READY worker: its worker dies with it (exec,
# parent-death signal); the other gateway stops routing there once the lock is
# not renewed, holds its requests, and starts its own worker when the lock expires
{
	my ($a3, $b3) = pair(prefix => 'wg58d:', launch => 'exec ' . worker_cmd(),
		upstream => 'idle_timeout 60s; stop_grace 2s; lock_ttl 3s;');
	is(gw_predict($a3, $body, timeout => 60)->{status}, 200, 'a worker runs, started by the first gateway');
	is(gw_predict($b3, $body, timeout => 60)->{status}, 200, 'the second gateway routes to it');
	my ($wpid) = workers($a3);
	kill 'KILL', $a3->{pid};
	ok(wait_until(sub { !kill(0, $wpid) }, 10), 'the worker of the killed gateway ends with it');
	my (%codes, $cold);
	my $end3 = time + 60;
	while (time < $end3) {
		my $x = gw_predict($b3, $body, timeout => 60);
		$codes{$x->{status}}++;
		if ($x->{status} == 200 && $x->{headers}{'x-wakegate-cold'}) { $cold = 1; last }
		sleep 0.3;
	}
	diag('answers at the second gateway after the kill: ' . join(' ', map { "$_ x$codes{$_}" } sort keys %codes));
	ok($cold, 'the second gateway starts its own worker and answers');
	like(gw_log($b3), qr/late to renew its lock/, 'it noticed the lock was no longer renewed');
	is(scalar(workers($b3)), 1, 'one worker runs, under the second gateway');
	stop_proc($a3->{pid}, 'KILL', 5);
	stop_proc($b3->{pid});
}

# 5. a redis line with no Redis behind it: the gateway acts alone
{
	my $dead = free_port();
	my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 30s;', extra => "redis 127.0.0.1:$dead prefix=wg58c:;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $x = gw_predict($g, $body, timeout => 60);
	is($x->{status}, 200, 'with Redis away a gateway still wakes the worker and answers');
	like(gw_log($g), qr/redis is away, starting it without the lock/, 'the log says it started it without the lock');
	stop_proc($g->{pid});
}

done_testing;
