# keepalive adaptive, time of day: from the per-minute request counts of the
# last 7 local days (PREFIX minute:UPSTREAM in Redis) the gateway plans one
# keep-alive per hour of the day, on weekdays and on weekends, that spends
# no more GPU time than the fixed timer (idle_timeout) would have and saves
# cold starts; it replaces the fixed fallback of the adaptive policy. The
# counts of past days are written here by hand, so nothing is waited for.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

$ENV{TZ} = 'UTC';	# the gateway's local time is UTC: local days are UTC days
my ($rport) = start_redis();
my ($body) = digits_input(4);

sub redis { my $out = `redis-cli -p $rport @_`; chomp $out; return $out }
sub ka { return gw_status($_[0])->{upstreams}{digits}{keepalive} // {} }
sub tod { return ka($_[0])->{time_of_day} // {} }

# --- wakegate -t checks the new parameters
{
	my $dir = tmpdir();
	my ($text) = gw_conf(upstream => "keepalive adaptive budget=abc;");
	spew("$dir/tod-bad.conf", $text);
	my @lines = split /\n/, $text;
	my ($line) = grep { $lines[$_ - 1] =~ /budget=abc/ } 1 .. @lines;
	my $out = `@{[bin('wakegate')]} -t -p $dir -c $dir/tod-bad.conf 2>&1`;
	isnt($? >> 8, 0, 'wakegate -t fails on "keepalive adaptive budget=abc"');
	like($out, qr/invalid budget "abc" in "keepalive" directive.* in \Q$dir\E\/tod-bad.conf:$line$/m,
		'the error names the parameter, the file and the line');
	($text) = gw_conf(upstream => "keepalive adaptive tod=maybe;");
	spew("$dir/tod-bad2.conf", $text);
	$out = `@{[bin('wakegate')]} -t -p $dir -c $dir/tod-bad2.conf 2>&1`;
	like($out, qr/invalid value "maybe" of tod= in "keepalive" directive/, 'tod= takes only on or off');
	($text) = gw_conf(upstream => "keepalive adaptive min=1m max=1h percentile=95 budget=150% tod=on;");
	spew("$dir/tod-good.conf", $text);
	$out = `@{[bin('wakegate')]} -t -p $dir -c $dir/tod-good.conf 2>&1`;
	is($? >> 8, 0, 'keepalive adaptive takes all five parameters, budget with a % sign') or diag($out);
}

# --- seven past days: busy around this hour of the day, quiet otherwise
# Around the current hour (from an hour before to three after) there was a
# request every 3 minutes on each of the last 7 days: gaps of 2-3 minutes,
# each a cold start under a 2-minute idle_timeout, none under a 3-minute
# keep-alive (20 gaps an hour a day: even the 2 weekend days give a slot
# enough gaps of its own). Elsewhere one request every 3 hours.
my $now_min = int(time / 60);
my $hs = $now_min - $now_min % 60;
my %f;
for my $k (1 .. 7) {
	my $base = $hs - $k * 1440;
	for (my $m = $base - 60; $m < $base + 180; $m += 3) { $f{$m} = 2 }
}
for (my $m = $hs - 8 * 1440 + 37; $m < $hs - 60; $m += 180) {
	my $d = ($m - $hs) % 1440;
	next if $d < 210 || $d >= 1440 - 90;	# not next to a busy stretch
	$f{$m} = 1;
}
redis('HSET', 'wgtod1:minute:digits', map { ($_, $f{$_}) } sort keys %f);
is(redis('HLEN', 'wgtod1:minute:digits'), scalar(keys %f), 'seven days of minute counts are in Redis');

my $hour = (gmtime)[2];
my $half = (gmtime)[6] % 6 == 0 ? 'weekends' : 'weekdays';
my $quiet = ($hour + 12) % 24;

{
	my ($text, $port, $admin) = gw_conf(upstream => 'keepalive adaptive; idle_timeout 2m; stop_grace 2s;',
		extra => "redis 127.0.0.1:$rport prefix=wgtod1:;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	ok(wait_until(sub { (tod($g)->{gaps} // 0) > 0 }, 30), 'the gateway reads the minute counts and makes a plan')
		or diag(explain(tod($g)), gw_log($g));
	my $t = tod($g);
	ok($t->{on}, 'the time-of-day plan is on') or diag(explain($t));
	is($t->{reason}, 'time of day', '/status says why');
	is($t->{budget_pct}, 100, 'the budget is the fixed timer\'s GPU time by default');
	ok($t->{cold_starts_7d} <= 0.8 * $t->{fixed_cold_starts_7d},
		"on the last 7 days the plan has far fewer cold starts than the fixed timer ($t->{cold_starts_7d} vs $t->{fixed_cold_starts_7d})");
	ok($t->{gpu_seconds_7d} <= $t->{fixed_gpu_seconds_7d} + 1e-6,
		"and no more GPU time ($t->{gpu_seconds_7d}s vs $t->{fixed_gpu_seconds_7d}s)");
	is(scalar(@{ $t->{keepalive_seconds}{$_} }), 24, "/status lists 24 keep-alives for $_") for qw(weekdays weekends);
	ok($t->{gaps_by_hour}{$half}[$hour] >= 20, "the current hour of the $half has gaps of its own ($t->{gaps_by_hour}{$half}[$hour])");
	ok($t->{keepalive_seconds}{$half}[$hour] >= 180,
		"this busy hour of the day keeps the worker up 3 minutes or more ($t->{keepalive_seconds}{$half}[$hour]s)");
	ok($t->{keepalive_seconds}{$half}[$quiet] < 120,
		"a quiet hour stops it sooner than idle_timeout ($t->{keepalive_seconds}{$half}[$quiet]s)");
	like(gw_log($g), qr/upstream "digits": keepalive adaptive: time-of-day plan on \(\d+ cold starts instead of \d+ on the last 7 days/,
		'the log says the plan is on and what it saves');

	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 200, 'a request is answered');
	ok(wait_until(sub { gw_status($g)->{upstreams}{digits}{state} eq 'READY' && (ka($g)->{reason} // '') =~ /time of day/ }, 30),
		'once idle, the keep-alive comes from the time-of-day plan') or diag(explain(ka($g)));
	my $k = ka($g);
	my $slot_ka = $k->{time_of_day}{keepalive_seconds}{$half}[(gmtime)[2]];
	ok($k->{decision_keepalive_seconds} >= 180, "the worker stays up $k->{decision_keepalive_seconds}s, not idle_timeout's 120s");
	is($k->{decision_keepalive_seconds}, $slot_ka, 'that is the plan\'s keep-alive for the current hour');
	is($k->{keepalive_seconds}, $k->{decision_keepalive_seconds}, 'and it is the keep-alive in force');
	like(WG::http_get("$g->{admin_url}/metrics")->{content}, qr/^wakegate_keepalive_seconds\{upstream="digits"\} $slot_ka$/m,
		'/metrics shows it');
	is(gw_status($g)->{upstreams}{digits}{state}, 'READY', 'the worker is still up');
	stop_proc($g->{pid});
}

# --- the same counts with tod=off: the fixed fallback
{
	my ($text, $port, $admin) = gw_conf(upstream => 'keepalive adaptive tod=off; idle_timeout 2m; stop_grace 2s;',
		extra => "redis 127.0.0.1:$rport prefix=wgtod1:;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 200, 'with tod=off a request is answered');
	ok(wait_until(sub { ka($g)->{gaps_loaded} && gw_status($g)->{upstreams}{digits}{state} eq 'READY' }, 30),
		'the worker is up and idle');
	my $k = ka($g);
	is($k->{decision_keepalive_seconds}, 120, 'with tod=off the keep-alive stays idle_timeout');
	is($k->{reason}, 'few samples', 'the fixed fallback, for want of gaps');
	ok(!$k->{time_of_day}{on}, 'the plan is off');
	like($k->{time_of_day}{reason}, qr/tod=off/, 'because the conf says so');
	stop_proc($g->{pid});
}

# --- no history: the plan stays off and says why
{
	my ($text, $port, $admin) = gw_conf(upstream => 'keepalive adaptive; idle_timeout 2m; stop_grace 2s;',
		extra => "redis 127.0.0.1:$rport prefix=wgtod2:;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	ok(wait_until(sub { exists tod($g)->{gaps} }, 30), 'a gateway with no minute counts reads them too');
	my $t = tod($g);
	ok(!$t->{on}, 'with no history the plan is off');
	like($t->{reason}, qr/too few gaps/, '/status says why');
	is(ka($g)->{decision_keepalive_seconds}, 120, 'and the keep-alive is idle_timeout');
	like(gw_log($g), qr/time-of-day plan off \(time of day: too few gaps/, 'the log says so');
	stop_proc($g->{pid});
}

done_testing;
