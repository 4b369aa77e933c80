# prewarm schedule: requests are counted per minute in Redis; a minute of
# the day with requests on at least 4 of the last 7 days is busy, and the
# gateway wakes the upstream (a pre-warm, not a cold start) just before a
# busy stretch starts. The counts of past days are written here by hand.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use POSIX qw(strftime);
use Time::HiRes qw(time sleep);

my ($rport) = start_redis();
my ($body) = digits_input(3);

sub redis { my $out = `redis-cli -p $rport @_`; chomp $out; return $out }

my $now_min = int(time / 60);
my $x = $now_min + 1;	# a stretch of two busy minutes starts at the next minute, every day
my $key = 'wgsch:minute:digits';
for my $k (1 .. 5) {
	redis('HSET', $key, $x - $k * 1440, 3, $x + 1 - $k * 1440, 1);
}
my $y = $now_min + 600;	# requests on 3 days only: not busy
redis('HSET', $key, $y - $_ * 1440, 2) for 1 .. 3;
my $old = $now_min - 9 * 1440;	# beyond the 8 days kept
redis('HSET', $key, $old, 5);

my ($text, $port, $admin) = gw_conf(upstream => 'prewarm schedule; idle_timeout 5m; stop_grace 2s;',
	extra => "redis 127.0.0.1:$rport prefix=wgsch:;");
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub up { return gw_status($g)->{upstreams}{digits} }

ok(wait_until(sub { (up()->{keepalive}{schedule}{loaded} // 0) }, 30), 'the gateway reads the minute counts from Redis');
my $sch = up()->{keepalive}{schedule};
is($sch->{busy_minutes}, 2, 'two minutes of the day are busy: those with requests on at least 4 of the last 7 days');
is($sch->{next_busy_start}, strftime('%H:%M', localtime($x * 60)), '/status names the next busy stretch');
is($sch->{lead_minutes}, 1, 'the wake comes a minute ahead while no boot time is measured');
ok(wait_until(sub { redis('HEXISTS', $key, $old) eq '0' }, 30), 'counts older than 8 days are deleted');

ok(wait_until(sub { (up()->{keepalive}{prewarms} // 0) >= 1 }, 30), 'the schedule wakes the upstream before the busy stretch');
ok(wait_until(sub { up()->{state} eq 'READY' }, 30), 'the pre-warmed worker becomes READY with no request');
is(up()->{cold_starts}, 0, 'a pre-warm is not counted as a cold start');
like(gw_log($g), qr/pre-warm: waking replica 0 \(schedule: a busy stretch starts at \d\d:\d\d \(requests on [45] of the last 7 days\)\)/,
	'the log says why the upstream was woken');
like(WG::http_get("$g->{admin_url}/metrics")->{content}, qr/^wakegate_prewarms_total\{upstream="digits"\} 1$/m,
	'/metrics counts the pre-warm');

my $r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'a request is answered by the pre-warmed worker');
ok(!exists $r->{headers}{'x-wakegate-cold'}, 'without waiting for a cold start');
my $m = int(time / 60);
ok(wait_until(sub { (redis('HGET', $key, $m - 1) || 0) + (redis('HGET', $key, $m) || 0) >= 1 }, 30),
	'the request is counted in its minute in Redis');
stop_proc($g->{pid});

done_testing;
