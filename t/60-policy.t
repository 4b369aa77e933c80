# The keep-alive / pre-warm policy on hand-made idle gaps (gateway/policy-test
# feeds gaps to gateway/policy.c and prints the decision). Defaults: boot 30s,
# fixed 5m, percentile 99, prewarm 5, samples 10, margin 10% capped at 1m,
# keep-alive within 1m..1h, overflow 20%. See wakegate-replay(1).
use strict;
use warnings;
use Test::More;
use WG;

my $prog = ($ENV{WG_BUILD} // src('.')) . '/gateway/policy-test';
-x $prog or BAIL_OUT("no $prog: build first (make gateway/policy-test)");

# runs policy-test with @args; returns ({key => value}, exit status, stderr+stdout)
sub decide {
	my @args = @_;
	my $pid = open(my $fh, '-|') // die "fork: $!";
	if (!$pid) {
		open STDERR, '>&', \*STDOUT;
		exec $prog, @args or die "exec $prog: $!";
	}
	my $text = do { local $/; <$fh> } // '';
	close $fh;
	my $rc = $? >> 8;
	my %d = map { /^(\S+) (.*)$/ ? ($1, $2) : () } split /\n/, $text;
	return (\%d, $rc, $text);
}

# Regular gaps of 30 minutes: all 20 in bin 30 (30..31 min). head = 30m,
# tail = 31m. Pre-warm at 30m - margin(1m: 10% of 30m is 3m, capped) - boot
# 30s = 28m30s = 1710000 ms; stop at 31m + 1m = 32m = 1920000 ms.
my ($d) = decide('30m*20');
is($d->{reason}, 'pre-warm', 'regular 30-minute gaps make the policy pre-warm');
is($d->{keepalive_ms}, 0, 'with regular gaps the worker stops right after a request');
is($d->{prewarm_ms}, 1710000, 'it wakes the worker a boot and a margin before the next request is due');
ok($d->{prewarm_ms} < 30 * 60000 && $d->{prewarm_ms} > 25 * 60000, 'the pre-warm comes a little before 30 minutes');
is($d->{until_ms}, 1920000, 'a pre-warmed worker stops a margin after the latest gap seen');
is($d->{expected_cold}, '0.0000', 'no cold start is expected on such regular traffic');
is($d->{roundtrip}, 'ok', 'the histogram reads back from its string unchanged');
is($d->{hist}, 'v1 o0 30:20', 'the histogram string names the overflow and the non-empty bins');

# The same with a 15-minute boot: head - margin = 29m is under 2 * boot, so
# stopping cannot pay off. Keeping up to tail + margin = 32m would spend
# 30.5m a gap (no cold start) against fixed's 5m + a 15m boot = 20m (always
# cold): neither is better on both counts, so the fixed timer stays.
($d) = decide('--boot', '15m', '30m*20');
is($d->{prewarm_ms}, 0, 'a boot too long for the gaps is not pre-warmed');
is($d->{reason}, 'fixed does best', 'a keep-alive that costs more than the fixed timer is not chosen');
is($d->{keepalive_ms}, 300000, 'the worker keeps the fixed 5 minutes');

# Few samples: 3 gaps < samples (10) -> fixed 5m.
($d) = decide('30m*3');
is($d->{reason}, 'few samples', 'with few gaps seen the policy falls back to the fixed keep-alive');
is($d->{keepalive_ms}, 300000, 'the fallback is the fixed 5 minutes');
is($d->{prewarm_ms}, 0, 'the fallback does not pre-warm');
($d) = decide('--policy', 'adaptive:fixed=7m,samples=4', '30m*3');
is($d->{keepalive_ms}, 420000, 'the fallback keep-alive can be configured');

# Gaps all beyond the histogram's 4 hours: 100% overflow > 20%.
($d) = decide('5h*20');
is($d->{reason}, 'gaps beyond range', 'gaps beyond the histogram fall back to the fixed keep-alive');
is($d->{keepalive_ms}, 300000, 'that fallback is the fixed 5 minutes too');
is($d->{overflow}, 20, 'the long gaps are counted as overflow');
is($d->{hist}, 'v1 o20', 'overflow alone serializes without bins');

# Bursts: 5000 gaps of 2s (bin 0), 12 pauses of 230m (bin 230). tail (99%)
# is bin 0 -> keep-alive 1m + 6s = 66000 ms. The 12 long gaps (>= samples):
# head 230m -> wake at 230m - 1m - 30s = 13710000 ms, stop at 231m + 1m =
# 13920000 ms.
($d) = decide('2s*5000', '230m*12');
is($d->{reason}, 'keep-alive, then pre-warm', 'bursts with regular pauses keep the worker up, then pre-warm for the next burst');
is($d->{keepalive_ms}, 66000, 'the keep-alive covers the gaps inside a burst plus a margin');
is($d->{prewarm_ms}, 13710000, 'the pre-warm comes a boot and a margin before the next burst');
is($d->{until_ms}, 13920000, 'the pre-warmed worker waits a margin past the latest pause');

# Too few pauses to trust (5 < 10): keep-alive to the tail only, which
# dominates fixed (same cold starts on the pauses, 66s instead of 300s up).
($d) = decide('2s*5000', '230m*5');
is($d->{reason}, 'keep-alive to tail', 'few long pauses: keep up through the bursts, no pre-warm');
is($d->{keepalive_ms}, 66000, 'that keep-alive is the tail of the gaps plus a margin');

# Gaps without memory: the quantiles of an exponential with a 20-minute
# mean. No schedule beats the fixed timer on both cost and cold starts.
my @exp = map { sprintf '%.0fs', -1200 * log(1 - ($_ - 0.5) / 200) } 1 .. 200;
($d) = decide(@exp);
is($d->{reason}, 'fixed does best', 'random (Poisson) traffic stays on the fixed keep-alive');
is($d->{keepalive_ms}, 300000, 'which is the 5-minute timer');

# Without the guard the tail decides, as in the paper: the 99th percentile
# of those 200 gaps is the 198th, 87.6 minutes (bin 87), so the keep-alive
# would be 88m + 1m, clamped to the 1-hour maximum.
($d) = decide('--policy', 'adaptive:guard=off', @exp);
is($d->{reason}, 'keep-alive to tail', 'with the guard off random traffic is kept up to its tail');
is($d->{keepalive_ms}, 3600000, 'and that tail is clamped to the 1-hour maximum');

# Gaps all under the fixed timer and too short to stop in (bin 0):
# keeping up to their tail (1m + 6s) costs the same on them as 5m; the
# shorter keep-alive is chosen.
($d) = decide('50s*50');
is($d->{reason}, 'keep-alive to tail', 'when a shorter keep-alive costs no more on the gaps seen it is chosen');
is($d->{keepalive_ms}, 66000, 'it is the tail bin\'s upper edge plus a 10% margin');

# A fixed policy ignores the histogram.
($d) = decide('--policy', 'fixed:2m', '30m*20');
is($d->{reason}, 'fixed', 'a fixed policy always answers its timer');
is($d->{keepalive_ms}, 120000, 'with its own time');

# The string form: --load reads it back and decides the same.
($d) = decide('--load', 'v1 o0 30:20');
is($d->{prewarm_ms}, 1710000, 'a histogram loaded from its string decides like the original');
($d) = decide('--load', 'v1 o2 0:7 239:1', '1s');
is($d->{hist}, 'v1 o2 0:8 239:1', 'gaps observed after loading add to the loaded counts');
is($d->{samples}, 11, 'the loaded string carries the sample count');

# Bounded counts: a bin at 2^31 halves every count before it grows.
($d) = decide('--load', 'v1 o3 0:2147483647 5:9', '10s', '10s');
is($d->{hist}, 'v1 o1 0:1073741825 5:4', 'a full bin halves the whole histogram instead of overflowing');
is($d->{roundtrip}, 'ok', 'a halved histogram still reads back unchanged');

my ($bad, $rc, $text) = decide('--load', 'v1 o0 30:0');
is($rc, 2, 'a malformed histogram string is refused');
like($text, qr/not a histogram/, 'and the refusal says why');
($bad, $rc) = decide('--load', 'v1 o0 240:1');
is($rc, 2, 'a bin beyond 4 hours is refused');
($bad, $rc, $text) = decide('--policy', 'adaptive:bogus=1', '1m');
is($rc, 2, 'an unknown adaptive option is refused');
like($text, qr/unknown option/, 'and the message names the problem');
($bad, $rc) = decide('--policy', 'adaptive:prewarm=99,percentile=50', '1m');
is($rc, 2, 'a head percentile above the tail percentile is refused');

# The time-of-day plan (policy_tod.h), from per-minute counts of 7 days
# (policy-test --tod DAYS WDAY0 ...; day 0 a Monday). Slot 10 = weekday 10:00-10:59.
#
# Five weekdays with a request every 8 minutes from 10:00 to 10:56: per day
# 7 gaps of 8 minutes (bin 7, scored at 7.5 min), and 4 gaps of ~23 hours
# between days (overflow) = 39 gaps, all in slot 10. The fixed 5m timer
# stops after every one: 39 x (5m + 30s boot) = 12870 s, 39 cold starts.
# A 10-minute keep-alive bridges the 8-minute gaps: 35 x 450 s + 4 x
# (10m + 30s) = 18270 s, 4 cold starts: it costs more than the fixed timer,
# so with the default budget (100%) the plan cannot take it; the cheapest
# plan (1m everywhere) has as many cold starts as fixed: off.
my @office = map { "$_/10:00+8*8" } 0 .. 4;
($d) = decide('--tod', 7, 1, @office);
is($d->{on}, 0, 'without GPU time to spare the time-of-day plan stays off');
like($d->{reason}, qr/not enough fewer cold starts/, 'and it says it would not save cold starts');
is($d->{gaps}, 39, 'a request every 8 minutes for an hour on 5 days is 39 gaps');
is($d->{fixed_up_s}, '12870.0', 'the fixed timer on those gaps costs 39 x 330 s');
is($d->{fixed_cold}, 39, 'and cold-starts on every gap');

# With budget=150% (19305 s) the 10-minute keep-alive fits.
($d) = decide('--tod', 7, 1, '--policy', 'adaptive:budget=150', @office);
is($d->{on}, 1, 'a budget of 150% of the fixed timer turns the plan on');
my %slot = map { /^slot (\d+) (\d+) (\d+)$/ ? ($1 => [$2, $3]) : () } split /\n/, (decide('--tod', 7, 1, '--policy', 'adaptive:budget=150', @office))[2];
is($slot{10}[0], 600, 'the busy hour gets the 10-minute keep-alive that bridges its 8-minute gaps');
is($d->{up_s}, '18270.0', 'the plan would have cost 35 x 450 s + 4 x 630 s on those days');
is($d->{cold}, 4, 'and cold-started only on the first request of each day');
is(scalar(keys %slot), 1, 'slots without any gap keep the fixed timer (no pool to share)');

# Add stray requests at night and on the weekend (30 of them, hours
# apart): the fixed timer spends 5m30s on each, a 1-minute keep-alive 1m30s.
# That saving pays for the busy hour's longer keep-alive: the plan turns on
# with the default budget.
my @strays = map { my $d = $_; map { sprintf '%d/%02d:17', $d, $_ } 0, 2, 4, 6, 20, 22 } 0 .. 4;
my %night = map { /^slot (\d+) (\d+) (\d+)$/ ? ($1 => [$2, $3]) : () }
	split /\n/, (decide('--tod', 7, 1, @office, @strays))[2];
($d) = decide('--tod', 7, 1, @office, @strays);
is($d->{on}, 1, 'GPU time saved at night pays for a longer keep-alive in the busy hour');
is($d->{reason}, 'time of day', 'the reason names the time-of-day plan');
is($night{10}[0], 600, 'the busy hour keeps the worker up 10 minutes');
is($night{2}[0], 60, 'an hour of stray requests gets the shortest keep-alive');
ok($d->{up_s} <= $d->{fixed_up_s}, 'the plan costs no more GPU time than the fixed timer on the same days');
ok($d->{cold} <= 0.8 * $d->{fixed_cold}, 'and has at least a fifth fewer cold starts');
is($night{30}[0], 60, 'a weekend hour with no gaps of its own shares the pooled keep-alive');

($d) = decide('--tod', 7, 1, '--policy', 'adaptive:tod=off', @office, @strays);
is($d->{on}, 0, 'tod=off leaves the fixed timer');
($d) = decide('--tod', 7, 1, '0/10:00+8*3');
is($d->{on}, 0, 'two gaps are too few for a plan');
like($d->{reason}, qr/too few gaps/, 'and the plan says so');
($bad, $rc, $text) = decide('--policy', 'adaptive:budget=0', '1m');
is($rc, 2, 'a budget of 0% is refused');

done_testing();
