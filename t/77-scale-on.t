#!/usr/bin/perl
# Scaling like the seed (issue 16):
#   scale_on GAUGE > V [for T] [every=T];  one more replica once the mean of
#                                         GAUGE over the READY replicas stayed above V for T
#   scale_down_cooldown T;                no scale-down for T after the last scale-up
#   headroom P%;                          scale up at target_concurrency less P%
# First what conf-dump shows and the errors (file:line); then replays
# through gateway/scale_rule.c (the scale-test driver): a load hovering at
# the threshold does not flap, a steady one scales out once after its
# window, the cooldown keeps a scale-down that far from a scale-up; then a
# real gateway in front of real wakegate-workers: gpu_util (the workers'
# wakegate_worker_busy_ratio, read from their /metrics) under 3 looping
# clients brings up a second replica after the "for" time, and the cooldown
# holds its scale-down once the load stops.
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use HTTP::Tiny;
use JSON::PP;
use POSIX qw(_exit);
use WG;
use WGConf;
use WGGateway;
use Time::HiRes qw(time sleep);

my $build = $ENV{WG_BUILD} // src('.');
my $dump = "$build/gateway/conf-dump";
my $replay = "$build/gateway/scale-test";
plan skip_all => "no $dump or $replay: build them first (make gateway/conf-dump gateway/scale-test)"
	unless -x $dump && -x $replay;
my ($dir) = conf_setup('scale');

# --- the directives ---------------------------------------------------------------


my $SRV = qq{server { listen 127.0.0.1:18080; location / { proxy_pass u; } }\n};
my $r = conf(qq{upstream u {\n launch exec "w \$port";\n replicas max=3;\n scale_on gpu_util > 70% for 2m;\n}\n}
	. qq{upstream v {\n launch exec "v \$port";\n scale_on vllm:gpu_cache_usage_perc > 0.8 every=1s;\n}\n}
	. qq{upstream w {\n launch exec "x \$port";\n scale_down_cooldown 5m;\n headroom 20%;\n}\n$SRV});
is($r->{code}, 0, 'a conf with scale_on, scale_down_cooldown and headroom loads') or diag($r->{err});
is(val($r, 'upstream.u.scale_on'), 'wakegate_worker_busy_ratio', 'gpu_util reads the worker\'s wakegate_worker_busy_ratio');
is(val($r, 'upstream.u.scale_on_above'), '0.7', '70% compares with a ratio of 0.7');
is(val($r, 'upstream.u.scale_on_for_ms'), 120000, 'for 2m is kept in ms');
is(val($r, 'upstream.u.scale_on_every_ms'), 5000, '/metrics is read every 5s by default');
is(val($r, 'upstream.v.scale_on'), 'vllm:gpu_cache_usage_perc', 'any gauge may be named');
is(val($r, 'upstream.v.scale_on_above'), '0.8', 'a bare number compares as the gauge reads');
is(val($r, 'upstream.v.scale_on_for_ms'), 120000, 'without "for" the mean must stay above for 2m, as the seed');
is(val($r, 'upstream.v.scale_on_every_ms'), 1000, 'every=1s');
is(val($r, 'upstream.w.scale_on'), 'off', 'without scale_on no gauge scales an upstream');
is(val($r, 'upstream.w.scale_down_cooldown_ms'), 300000, 'scale_down_cooldown 5m');
is(val($r, 'upstream.u.scale_down_cooldown_ms'), 0, 'scale_down_cooldown is 0 by default');
is(val($r, 'upstream.w.headroom_pct'), 20, 'headroom 20%');
is(val($r, 'upstream.u.headroom_pct'), 0, 'headroom is 0% by default');

for my $bad (
	[ "upstream u {\n launch exec x;\n scale_on gpu_util >= 70%;\n}\n$SRV",
		'invalid operator ">=" in "scale_on" directive (scale_on GAUGE > VALUE [for TIME]) in test.conf:3', 'only ">"' ],
	[ "upstream u {\n launch exec x;\n scale_on gpu_util > lots;\n}\n$SRV",
		'invalid value "lots" in "scale_on" directive (such as 70% or 0.7) in test.conf:3', 'the value is a number or a percentage' ],
	[ "upstream u {\n launch exec x;\n scale_on gpu-util > 70%;\n}\n$SRV",
		'invalid gauge name "gpu-util" in "scale_on" directive in test.conf:3', 'the gauge is a Prometheus name' ],
	[ "upstream u {\n launch exec x;\n scale_on gpu_util > 70% for;\n}\n$SRV",
		'no time after "for" in "scale_on" directive in test.conf:3', '"for" needs its time' ],
	[ "upstream u {\n launch exec x;\n scale_on gpu_util > 70% every=10ms;\n}\n$SRV",
		'invalid time "10ms" in "scale_on" directive (every= at least 100ms) in test.conf:3', 'every= at least 100ms' ],
	[ "upstream u {\n launch exec x;\n scale_on gpu_util > 70% during 2m;\n}\n$SRV",
		'invalid parameter "during" in "scale_on" directive in test.conf:3', 'unknown parameters are refused' ],
	[ "upstream u {\n launch exec x;\n scale_down_cooldown soon;\n}\n$SRV",
		'invalid time "soon" in "scale_down_cooldown" directive in test.conf:3', 'the cooldown is a time' ],
	[ "upstream u {\n launch exec x;\n headroom 95%;\n}\n$SRV",
		'invalid value "95%" in "headroom" directive (0% to 90%) in test.conf:3', 'headroom at most 90%' ],
	[ "upstream u {\n launch exec x;\n headroom 20;\n}\n$SRV",
		'invalid value "20" in "headroom" directive (0% to 90%) in test.conf:3', 'headroom is a percentage' ],
	[ "upstream u { launch exec x; }\nserver {\n listen 18080;\n scale_on gpu_util > 70%;\n location / { proxy_pass u; }\n}\n",
		'"scale_on" directive is not allowed here in test.conf:4', 'scale_on stands in an upstream only' ],
) {
	my $b = conf($bad->[0]);
	isnt($b->{code}, 0, "$bad->[2] (conf-dump fails)");
	like($b->{err}, qr/\Q$bad->[1]\E$/, $bad->[2]);
}

# --- replays through scale_rule.c ------------------------------------------------------

# Runs the driver on a series (pairs t, load); returns (events text, ups, downs, min up->down gap).
sub replay {
	my ($opts, @series) = @_;
	my $in = "$dir/series";
	spew($in, join '', map { "$_->[0] $_->[1]\n" } @series);
	my $out = `'$replay' $opts < '$in'`;
	my ($u, $d, $g) = $out =~ /^ups (\d+) downs (\d+) min_up_to_down (\S+)$/m or die "scale-test: $out";
	return ($out, $u, $d, $g);
}
my $SEED = '-a 0.7 -f 120 -c 300 -b 30 -m 4';

# steady 72% for 10 minutes: one scale-out, after exactly the window, and no scale-in
my ($out, $u, $d, $g) = replay($SEED, map { [ $_ * 5, 0.72 ] } 0 .. 120);
is($u, 1, 'a steady load above 70% scales out once');
like($out, qr/^120 up 2$/m, 'after its 2 minutes, not before');
is($d, 0, 'and 72% over two replicas is not scaled back in (on one it would be above 70% again)');

# hovering at the threshold: 70% +- 3% every 5s for an hour
srand(16);
my @hover = map { [ $_ * 5, 0.70 + (rand() - 0.5) * 0.06 ] } 0 .. 720;
($out, $u, $d) = replay($SEED, @hover);
is($u + $d, 0, 'a load hovering at 70% for an hour neither scales out nor in') or diag($out);
my ($nout, $nu, $nd) = replay('-a 0.7 -f 0 -c 0 -b 30 -m 4', @hover);
cmp_ok($nu + $nd, '>', 20, "without the window and the cooldown the same load would flap ($nu out, $nd in)");

# a slow swell around the threshold (70% +- 6%, 20-minute period): it follows the load, no faster
my $pi = 4 * atan2(1, 1);
my @swell = map { [ $_ * 5, 0.70 + 0.06 * sin(2 * $pi * $_ * 5 / 360) ] } 0 .. 720;
($out, $u, $d, $g) = replay($SEED, @swell);
cmp_ok($u, '<=', 6, "a 6-minute swell around 70% (10 in the hour) scales out at most once per window + cooldown ($u)");
cmp_ok($d, '<=', $u, "and in no more often ($d)");
ok($g < 0 || $g >= 300, "no scale-in within the 5m cooldown of a scale-out (shortest $g s)") or diag($out);
my ($cout, $cu, $cd, $cg) = replay('-a 0.7 -f 120 -c 0 -b 30 -m 4', @swell);
ok($cg >= 0 && $cg < 300 && $cu > $u, "without the cooldown the same swell cycles more ($cu times) and scales in sooner ($cg s after a scale-out)")
	or diag($cout);

# --- a real gateway ---------------------------------------------------------------------

unless (-x bin('wakegate')) {
	diag('no wakegate built: the gateway part is skipped');
	done_testing;
	exit 0;
}
my $maker = "$build/models/make-synthetic";
unless (-x $maker) {
	diag("no $maker: the gateway part is skipped");
	done_testing;
	exit 0;
}
my $model = "$dir/syn.safetensors";
system($maker, '16m', $model) == 0 or die "make-synthetic failed";

my $UPS = 'warmup off; replicas min=0 max=2; target_concurrency 100; idle_timeout 2s; stop_grace 1s; '
	. 'scale_on gpu_util > 20% for 3s every=500ms; scale_down_cooldown 25s;';
my ($text, $port, $admin) = gw_conf(launch => worker_cmd(model => $model), upstream => $UPS);
my $gw = gw_start(conf => $text, port => $port, admin => $admin);
my $body = encode_json({ input => [ map { [ map { ($_ % 7) / 7 } 1 .. 64 ] } 1 .. 8 ] });
is(http_post("$gw->{url}/predict", $body, timeout => 60)->{status}, 200, 'the first request wakes replica 0');

sub states { return map { $_->{state} } @{ (gw_status($_[0])->{upstreams}{digits} // {})->{replicas} // [] } }
sub ready { return scalar grep { $_ eq 'READY' } states($_[0]) }
is(ready($gw), 1, 'one replica is READY');

my $stop = "$dir/stop";
my $t0 = time;
my @kids;
for (1 .. 3) {
	my $kid = fork // die;
	if (!$kid) {
		my $h = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
		my ($n, $bad) = (0, 0);
		until (-e $stop) {
			my $res = $h->post("$gw->{url}/predict", { content => $body, headers => { 'Content-Type' => 'application/json' } });
			$n++;
			$bad++ unless $res->{status} == 200;
		}
		spew("$dir/kid-$$", "$n $bad");
		_exit(0);
	}
	push @kids, $kid;
}
my $t_up;
ok(wait_until(sub { my $st = (states($gw))[1]; $st && $st ne 'STOPPED' and $t_up = time }, 60),
	'3 looping clients bring up a second replica');
$t_up //= time;
my $log = gw_log($gw);
like($log, qr/scale up: wakegate_worker_busy_ratio mean [\d.]+ > 0\.2 for 3s over 1 ready, starting replica 1/,
	'the log says gpu_util (wakegate_worker_busy_ratio) above 20% for 3s scaled it up');
like($log, qr/replica 1: STOPPED -> BOOTING \(scale up/, 'replica 1 boots for the scale up');
unlike($log, qr/target_concurrency 100\), starting/, 'concurrency did not trigger it');
cmp_ok($t_up - $t0, '>=', 3, sprintf('not before the 3s window (%.1fs after the load began)', $t_up - $t0));
my $m = HTTP::Tiny->new->get("$gw->{admin_url}/metrics")->{content};
my ($mean) = $m =~ /^wakegate_scale_on_mean\{upstream="digits"\} (\S+)$/m;
cmp_ok($mean // 0, '>', 0.2, "wakegate_scale_on_mean shows the mean it compares (" . ($mean // 'none') . ")");
like($m, qr/^wakegate_scale_on_readings\{upstream="digits"\} [12]$/m, 'wakegate_scale_on_readings counts the replicas read');
my $sc = gw_status($gw)->{upstreams}{digits}{scale} // {};
is($sc->{scale_on}{gauge}, 'wakegate_worker_busy_ratio', '/status shows the scale_on gauge');
ok(defined $sc->{scale_on}{mean} && $sc->{scale_on}{readings} >= 1, "and its mean ($sc->{scale_on}{mean}) over $sc->{scale_on}{readings} reading(s)");
ok($sc->{cooldown_seconds} > 15 && $sc->{cooldown_seconds} <= 25, "and the cooldown left after the scale up ($sc->{cooldown_seconds}s)");
ok(wait_until(sub { ready($gw) == 2 }, 30), 'the second replica becomes READY');
sleep 2;
spew($stop, '');
waitpid($_, 0) for @kids;
my $t_end = time;
my ($n, $bad) = (0, 0);
for (@kids) { my ($a, $b) = split ' ', slurp("$dir/kid-$_"); $n += $a; $bad += $b }
is($bad, 0, "the $n requests under load are all answered 200");

# The heavy load is gone; one light client (a request every 0.25s, which
# least-busy routing sends to replica 0) keeps the upstream active, so that
# replica 1 alone idles. idle_timeout 2s and the busy ratio's 10s window
# would let it go some 12s after the load; the cooldown (25s from the scale
# up) holds it longer.
my $light = fork // die;
if (!$light) {
	my $h = HTTP::Tiny->new(timeout => 30, keep_alive => 0);
	until (-e "$stop.light") {
		$h->post("$gw->{url}/predict", { content => $body, headers => { 'Content-Type' => 'application/json' } });
		sleep 0.25;
	}
	_exit(0);
}
my $t_down;
ok(wait_until(sub { gw_log($gw) =~ /replica 1 had nothing in flight .*scaling down/ and $t_down = time }, 60),
	'once the load is gone replica 1 is scaled down') or diag(gw_log($gw));
spew("$stop.light", '');
waitpid($light, 0);
cmp_ok(($t_down // 0) - $t_up, '>=', 24, sprintf('but not within the 25s cooldown of the scale up (%.1fs after it, %.1fs after the load ended)',
	($t_down // 0) - $t_up, ($t_down // 0) - $t_end));
cmp_ok(($t_down // 0) - $t_end, '>', 14, 'so it was held past idle_timeout and the busy window');
like(gw_log($gw), qr/replica 1: READY -> DRAINING .*cause=scale_down/, 'the drain\'s cause is scale_down');

stop_proc($gw->{pid});

# headroom 40% of target_concurrency 5 is 3: four slow requests at once start a
# second replica, where without headroom they fit the target
my $HUPS = 'warmup off; replicas min=0 max=2; target_concurrency 5; idle_timeout 60s; stop_grace 1s;';
my ($th, $ph, $ah) = gw_conf(launch => backend_cmd(), upstream => "$HUPS headroom 40%;");
my ($tn, $pn, $an) = gw_conf(launch => backend_cmd(), upstream => $HUPS);
my $gh = gw_start(conf => $th, port => $ph, admin => $ah);
my $gn = gw_start(conf => $tn, port => $pn, admin => $an);
for my $x ($gh, $gn) {
	is(http_get("$x->{url}/hello", timeout => 60)->{status}, 200, 'a first request wakes replica 0');
}
is(gw_status($gh)->{upstreams}{digits}{scale}{target_concurrency}, 3, '/status shows the target in force: 5 less 40%');
is(gw_status($gn)->{upstreams}{digits}{scale}{target_concurrency}, 5, 'and 5 without headroom');
my @slow;
for my $x ($gh, $gn) {
	for (1 .. 4) {
		my $kid = fork // die;
		if (!$kid) {
			my $res = HTTP::Tiny->new(timeout => 30)->get("$x->{url}/slow?ms=3000");
			_exit($res->{status} == 200 ? 0 : 1);
		}
		push @slow, $kid;
	}
}
ok(wait_until(sub { gw_log($gh) =~ /4 requests for 1 ready replica \(target_concurrency 3\), starting replica 1/ }, 20),
	'with headroom 40% four requests in flight start a second replica (target 5 less 40% is 3)') or diag(gw_log($gh));
my $all = 1;
for (@slow) { waitpid($_, 0); $all = 0 if $? }
ok($all, 'the eight slow requests are answered 200');
unlike(gw_log($gn), qr/starting replica 1/, 'without headroom the same four requests fit target_concurrency 5');
stop_proc($_->{pid}) for $gh, $gn;
done_testing;
