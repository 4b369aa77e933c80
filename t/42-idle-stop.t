# Idle stop: a worker with no traffic for idle_timeout is stopped; traffic
# keeps it up; the next request starts it again. With Redis, activity is
# shared, and activity seen by another gateway keeps the worker up.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my ($rport) = start_redis();
my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 2s; stop_grace 2s;',
	extra => "redis 127.0.0.1:$rport prefix=wgtest:;");
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my ($body, $label) = digits_input(1);

sub state { return gw_status($g)->{upstreams}{digits}{state} // '' }

my $r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'the first request wakes the worker');
ok(scalar(gw_children($g->{pid})) >= 1, 'a worker process runs');

# requests every 0.4s for 3s (longer than idle_timeout) keep it up
my $end = time + 3;
my $all_ok = 1;
while (time < $end) {
	my $rr = gw_predict($g, $body);
	$all_ok &&= $rr->{status} == 200 && !exists $rr->{headers}{'x-wakegate-cold'};
	sleep 0.4;
}
ok($all_ok, 'steady traffic is answered warm');
is(state(), 'READY', 'steady traffic keeps the worker READY past idle_timeout');
is(gw_status($g)->{upstreams}{digits}{cold_starts}, 1, 'no new cold start happened under traffic');

my $score = `redis-cli -p $rport ZSCORE wgtest:activity digits`;
chomp $score;
ok($score && abs($score / 1000 - time) < 30, 'the last activity is written to Redis');

# activity seen by another gateway (written to Redis) keeps it up
my $t_stop = time;
my $keep_end = time + 3.5;
while (time < $keep_end) {
	my $ms = int(time * 1000);
	`redis-cli -p $rport ZADD wgtest:activity GT $ms digits`;
	sleep 0.3;
}
is(state(), 'READY', 'activity another gateway wrote to Redis keeps the worker up');
like(gw_log($g), qr/another gateway saw activity/, 'the log says why it stayed up');

ok(wait_until(sub { state() eq 'STOPPED' }, 30), 'after idle_timeout without traffic /status shows STOPPED');
ok(wait_until(sub { scalar(gw_children($g->{pid})) == 0 }, 10), 'the worker process is gone');
like(gw_log($g), qr/READY -> DRAINING \(idle for [\d.]+s\)/, 'the log says the worker was idle');
like(gw_log($g), qr/DRAINING -> STOPPED/, 'the log shows the stop');

$r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'the next request is answered');
ok(exists $r->{headers}{'x-wakegate-cold'}, 'it was a cold start again');
is(gw_status($g)->{upstreams}{digits}{cold_starts}, 2, '/status counts two cold starts');
my $cs = `redis-cli -p $rport HGET wgtest:stats:digits cold_starts`;
chomp $cs;
is($cs, 2, 'Redis counts two cold starts');

done_testing;
