# "scale_p99 TIME [for TIME]": an upstream with "replicas max=N" starts one
# more replica when the p99 latency of its last 10 seconds stays above TIME
# for the "for" time (default 10s), even when concurrency alone would not.
# First what conf-dump shows and the errors (file:line), then a real gateway
# in front of test-backend.pl: slow answers sent one at a time bring up a
# second backend process, fast ones do not.
use strict;
use warnings;
use Test::More;
use WG;
use WGConf;
use WGGateway;
use Time::HiRes qw(time sleep);

my ($dir) = conf_setup('p99');

# --- the directive ---------------------------------------------------------------


my $SRV = qq{server { listen 127.0.0.1:18080; location / { proxy_pass u; } }\n};
my $r = conf(qq{upstream u {\n launch exec "w \$port";\n replicas min=0 max=3;\n scale_p99 500ms for 5s;\n}\n}
	. qq{upstream v {\n launch exec "v \$port";\n scale_p99 2s;\n}\nupstream w { launch exec "x \$port"; }\n$SRV});
is($r->{code}, 0, 'a conf with scale_p99 loads') or diag($r->{err});
is(val($r, 'upstream.u.scale_p99_ms'), 500, 'scale_p99 500ms is kept in ms');
is(val($r, 'upstream.u.scale_p99_for_ms'), 5000, 'its "for 5s" is kept in ms');
is(val($r, 'upstream.v.scale_p99_ms'), 2000, 'scale_p99 2s is 2000ms');
is(val($r, 'upstream.v.scale_p99_for_ms'), 10000, 'without "for" p99 must stay high for 10s');
is(val($r, 'upstream.w.scale_p99_ms'), 0, 'without scale_p99 latency does not scale an upstream');

for my $bad (
	[ "upstream u {\n launch exec x;\n scale_p99 fast;\n}\n$SRV",
		'invalid time "fast" in "scale_p99" directive (above 0, such as 500ms) in test.conf:3', 'a threshold must be a time' ],
	[ "upstream u {\n launch exec x;\n scale_p99 0ms;\n}\n$SRV",
		'invalid time "0ms" in "scale_p99" directive (above 0, such as 500ms) in test.conf:3', 'a threshold of 0 is refused' ],
	[ "upstream u {\n launch exec x;\n\n scale_p99 500ms during 5s;\n}\n$SRV",
		'invalid parameter "during" in "scale_p99" directive (scale_p99 TIME [for TIME]) in test.conf:4',
		'only "for" may follow the threshold' ],
	[ "upstream u {\n launch exec x;\n scale_p99 500ms for;\n}\n$SRV",
		'no time after "for" in "scale_p99" directive in test.conf:3', '"for" needs its time' ],
	[ "upstream u {\n launch exec x;\n scale_p99 500ms for soon;\n}\n$SRV",
		'invalid time "soon" in "scale_p99" directive in test.conf:3', 'the "for" time must be a time' ],
	[ "upstream u {\n launch exec x;\n}\nserver {\n listen 18080;\n scale_p99 500ms;\n location / { proxy_pass u; }\n}\n",
		'"scale_p99" directive is not allowed here in test.conf:6', 'scale_p99 stands in an upstream only' ],
) {
	my $b = conf($bad->[0]);
	isnt($b->{code}, 0, "$bad->[2] (conf-dump fails)");
	like($b->{err}, qr/\Q$bad->[1]\E$/, $bad->[2]);
}

# --- a real gateway ----------------------------------------------------------------

unless (-x bin('wakegate')) {
	diag('no wakegate built: the gateway part is skipped');
	done_testing;
	exit 0;
}

# Processes the gateway started itself (the backends; not their per-connection forks).
sub backends {
	my ($g) = @_;
	return grep { (((slurp("/proc/$_/stat") // "") =~ /^\d+ \(.*\) \S (\d+)/)[0] // 0) == $g->{pid} } gw_children($g->{pid});
}

# target_concurrency 100 with one request at a time: only latency can scale these up
my $UPS = 'warmup off; replicas min=0 max=2; target_concurrency 100; scale_p99 200ms for 1s; idle_timeout 60s; stop_grace 1s;';
my ($ts, $ps, $as) = gw_conf(launch => backend_cmd(), upstream => $UPS);
my ($tf, $pf, $af) = gw_conf(launch => backend_cmd(), upstream => $UPS);
my $slow = gw_start(conf => $ts, port => $ps, admin => $as);
my $fast = gw_start(conf => $tf, port => $pf, admin => $af);

# fast answers, one at a time, for 4s (well past "for 1s"): one backend only
is(http_get("$fast->{url}/hello", timeout => 60)->{status}, 200, 'the first fast request wakes a replica');
my ($n, $ok, $most) = (0, 0, 0);
my $end = time + 4;
while (time < $end) {
	$n++;
	$ok++ if http_get("$fast->{url}/hello", timeout => 30)->{status} == 200;
	my $k = () = backends($fast);
	$most = $k if $k > $most;
	sleep 0.02;
}
is($ok, $n, "$n fast requests sent one at a time are answered 200");
is($most, 1, 'fast answers never bring up a second backend');
unlike(gw_log($fast), qr/scale up/, 'the fast gateway logs no scale up');

# slow answers (400ms > 200ms), one at a time, until a second backend runs
is(http_get("$slow->{url}/slow?ms=400", timeout => 60)->{status}, 200, 'the first slow request wakes a replica');
is(scalar(backends($slow)), 1, 'one backend runs after the cold start');
($n, $ok) = (0, 0);
my $two = wait_until(sub {
	$n++;
	$ok++ if http_get("$slow->{url}/slow?ms=400", timeout => 30)->{status} == 200;
	return scalar(backends($slow)) == 2;
}, 40);
ok($two, 'slow answers sent one at a time bring up a second backend process');
is($ok, $n, "the $n slow requests are answered 200");
my $log = gw_log($slow);
my ($p99) = $log =~ /upstream "digits": scale up: p99 (\d+)ms > 200ms for 1s/;
ok(defined $p99, 'the log says the scale up was for p99 above 200ms for 1s') or diag($log);
cmp_ok($p99 // 0, '>=', 400, 'the p99 it logs is at least the 400ms the backend took');
like($log, qr/replica 1: STOPPED -> BOOTING \(scale up/, 'the second replica boots for the scale up');
unlike($log, qr/target_concurrency 100\), starting/, 'concurrency did not trigger it');
sub ready { return scalar grep { $_->{state} eq 'READY' } @{ (gw_status($_[0])->{upstreams}{digits} // {})->{replicas} // [] } }
ok(wait_until(sub { ready($slow) == 2 }, 30), 'the second replica becomes READY');

my @pids = (backends($slow), backends($fast));
stop_proc($_->{pid}) for $slow, $fast;
ok(wait_until(sub { !grep { kill 0, $_ } @pids }, 15), 'no backend process is left after the gateways stop');

done_testing;
