# wakegate-replay(1): the oracle and the sleep ladder, on traces worked out
# by hand in the comments, then on the shipped traces, where the oracle
# must be the least GPU time of every policy bench/cost replays and have no
# cold start, and the ladder's numbers must agree with what it is.
use strict;
use warnings;
use Test::More;
use WG;
use WGReplay;

my $replay = replay_bin();

# --csv output as { policy => { gpu, cost, saving, cold, p50, p99, vs, wakes } }
sub replay_csv {
	my ($r, $header) = replay_csv_rows([qw(gpu cost saving cold p50 p99 vs wakes)], @_);
	is($header, 'policy,gpu_seconds,cost,saving_pct,cold_starts,wait_p50_s,wait_p99_s,gpu_vs_oracle,wakes',
		'the CSV header names the two new columns at the end') if !$main::header_seen++;
	return $r;
}

our $header_seen = 0;
my $dir = tmpdir();

# --- the oracle by hand -----------------------------------------------------------
# Boot 30s, requests (duration 1s) at 0, 10, 100, 1000, 1010:
#   run 1 starts at -30 (one boot before 0); the gap 1 -> 10 (9s) is shorter
#   than a boot: it stays up; busy until 11. Gap 11 -> 100 (89s) > 30: stop at
#   11, [-30, 11] = 41s; start at 70 (one boot before 100), busy until 101.
#   Gap 101 -> 1000: stop, [70, 101] = 31s; start at 970; the gap 1001 -> 1010
#   is short; busy until 1011: [970, 1011] = 41s. Total 113s, no wait.
# always-on bills the span 0 .. 1011 = 1011s: 1011 / 113 = 8.947x the oracle;
# fixed:60s bills 213s (t/61): 1.885x.
spew("$dir/tiny.csv", "0,a,1\n10,a,1\n100,a,1\n1000,a,1\n1010,a,1\n");
my $r = replay_csv("$dir/tiny.csv", '--policy', 'fixed:60s');
is($r->{oracle}{gpu}, '113.0', 'the oracle stays up through gaps shorter than a boot and boots just in time');
is($r->{oracle}{cold}, 0, 'the oracle never starts cold');
is($r->{oracle}{p99}, '0.000', 'and no request waits');
is($r->{oracle}{vs}, '1.000', 'the oracle is 1x itself');
is($r->{'always-on'}{vs}, sprintf('%.3f', 1011 / 113), 'always-on as a ratio to the oracle');
is($r->{'fixed:60s'}{vs}, sprintf('%.3f', 213 / 113), 'a fixed keep-alive as a ratio to the oracle');
my @rows = grep { /^[a-z]/ && !/^policy,/ } split /\n/, (run_replay("$dir/tiny.csv", '--csv', '--policy', 'fixed:60s'))[1];
is_deeply([ map { (split /,/)[0] } @rows ], [qw(always-on oracle fixed:60s)], 'always-on, then the oracle, are always replayed, first');
# a gap of exactly one boot or less is bridged; one 1ms longer is not
spew("$dir/edge.csv", "0,a,1\n31,a,1\n");
is(replay_csv("$dir/edge.csv")->{oracle}{gpu}, '62.0', 'a gap of one boot: up through it, [-30, 32] = 62s');
spew("$dir/edge2.csv", "0,a,1\n31.001,a,1\n");
is(replay_csv("$dir/edge2.csv", '--granularity', 'off')->{oracle}{gpu}, '62.0',
	'a gap one ms over a boot: two runs of 31s, the same 62s (stopping costs exactly what staying costs)');
# two upstreams: each its own runs
spew("$dir/two.csv", "0,a,1\n0,b,1\n500,b,1\n");
is(replay_csv("$dir/two.csv")->{oracle}{gpu}, '93.0', 'two upstreams: 31s for a, 31s + 31s for b');

# --- the ladder by hand -------------------------------------------------------------
# ladder:level1=20s,level2=50s,stop=500s,wake1=2s,wake2=5s,price1=0.5,price2=0.25 on tiny:
#   0     stopped: a cold start, ready at 30, waits 30, busy until 31
#   10    booting: waits 20, done at 31
#   100   idle 69s: level 2 (>= 50); asleep 30s at level 1 (20..50), 19s at level 2;
#         a level-2 wake: ready at 105, waits 5, busy until 106
#   1000  idle 894s >= stop 500: the run ends at 606, asleep another 30s at
#         level 1 and 450s at level 2: [0, 606] = 606s of which 60s at level 1,
#         469s at level 2, 77s awake: billed 77 + 0.5*60 + 0.25*469 = 224.25 -> 225s;
#         a cold start: ready 1030, waits 30, busy until 1031
#   1010  waits 20; the last run [1000, 1031] = 31s (cut where the work ends)
#   total 256s, 2 cold starts, 1 wake; waits 30 20 5 30 20: p50 20, p99 30
my $lad = 'ladder:level1=20s,level2=50s,stop=500s,wake1=2s,wake2=5s,price1=0.5,price2=0.25';
$r = replay_csv("$dir/tiny.csv", '--policy', $lad);
is($r->{$lad}{gpu}, '256.0', 'the ladder bills awake time in full and each level at its price');
is($r->{$lad}{cold}, 2, 'a request that finds the process stopped is a cold start');
is($r->{$lad}{wakes}, 1, 'one that finds it asleep is a wake');
is($r->{$lad}{p50}, '20.000', 'the median wait');
is($r->{$lad}{p99}, '30.000', 'the worst wait is a boot');
my ($rc, $text) = run_replay("$dir/tiny.csv", '--policy', $lad, '-v');
like($text, qr/^# \Q$lad\E: 2 process starts; wakes from level 1 0, level 2 1; asleep 60\.0 s at level 1, 469\.0 s at level 2, of 637\.0 s alive$/m,
	'-v gives the starts, the wakes per level and the time asleep at each');

# a level-1 wake, and a freed GPU: requests at 0 and 60, level 1 after 10s, wake 3s, price 0:
#   0: cold, waits 30, busy until 31; 60: idle 29s, 19s of it asleep at level 1,
#   waits 3, busy until 64. [0, 64] = 64s, 19s free: billed 45s. Waits 30, 3.
spew("$dir/one.csv", "0,a,1\n60,a,1\n");
my $l1 = 'ladder:level1=10s,level2=off,stop=off,wake1=3s,price1=0';
$r = replay_csv("$dir/one.csv", '--policy', $l1, '--policy', 'ladder:level1=10s,level2=off,stop=off,wake1=3s');
is($r->{$l1}{gpu}, '45.0', 'a freed GPU is not billed while its model sleeps at level 1');
is($r->{$l1}{p50}, '3.000', 'the request at level 1 waits the level-1 wake');
is($r->{'ladder:level1=10s,level2=off,stop=off,wake1=3s'}{gpu}, '64.0', 'at the default price 1 the sleep is billed in full');

# no sleep levels: the ladder is the fixed keep-alive of its stop= (t/61's 213s)
$r = replay_csv("$dir/tiny.csv", '--policy', 'fixed:60s', '--policy', 'ladder:level1=off,level2=off,stop=60s');
is($r->{'ladder:level1=off,level2=off,stop=60s'}{gpu}, $r->{'fixed:60s'}{gpu}, 'a ladder with no level bills as fixed:60s');
is($r->{'ladder:level1=off,level2=off,stop=60s'}{cold}, $r->{'fixed:60s'}{cold}, 'and starts cold as often');

# bad specs are refused with exit status 2
for my $bad ('ladder:level1=soon', 'ladder:price1=2', 'ladder:level1=5m,level2=1m', 'ladder:color=red',
	'ladderx', 'ladder+schedule', 'oracle+schedule') {
	($rc, $text) = run_replay("$dir/tiny.csv", '--policy', $bad);
	is($rc, 2, "--policy $bad is refused");
}

# --- the shipped traces ---------------------------------------------------------------
# Every policy bench/cost replays, the ladder billed in full and freed.
my @sweep = ((map { "fixed:$_" } qw(1m 2m 3m 5m 10m 15m 30m)), (map { "adaptive:budget=$_" } 50, 75, 100, 150),
	'schedule', 'adaptive+schedule');
my $freed = 'ladder:price1=0,price2=0';
my $instant = 'ladder:wake1=0,wake2=0';
for my $t (qw(bursty diurnal diurnal-lowvolume sparse)) {
	my $file = src("bench/traces/$t.csv");
	my %all = (%{ replay_csv($file, map { ('--policy', $_) } @sweep) },
		%{ replay_csv($file, '--policy', 'adaptive', '--policy', 'ladder', '--policy', $freed,
			'--policy', $instant) });
	my $o = $all{oracle};
	is($o->{cold}, 0, "$t: the oracle has no cold start");
	my @less = grep { $_ ne 'oracle' && $all{$_}{gpu} < $o->{gpu} } sort keys %all;
	is_deeply(\@less, [], "$t: no policy bills less GPU time than the oracle (" . scalar(keys %all) . ' policies)');
	ok(!grep({ $all{$_}{vs} < 1 } keys %all), "$t: every ratio to the oracle is at least 1");
	# the ladder at full price and with instant wakes is the same process
	# lives as a fixed 30m keep-alive; a wake delays the work it wakes for, and
	# so the rest of the run, by at most its wake time (1s by default)
	is($all{$instant}{gpu}, $all{'fixed:30m'}{gpu}, "$t: a ladder billed in full, waking in no time, costs what fixed:30m costs");
	is($all{ladder}{cold}, $all{'fixed:30m'}{cold}, "$t: the ladder starts cold as often as fixed:30m");
	my $extra = $all{ladder}{gpu} - $all{'fixed:30m'}{gpu};
	ok($extra >= 0 && $extra <= 1 * $all{ladder}{wakes},
		"$t: its wakes cost it ${extra}s more than fixed:30m, no more than 1s a wake ($all{ladder}{wakes} wakes)");
	cmp_ok($all{$freed}{gpu}, '<', $all{ladder}{gpu}, "$t: freeing the GPU while asleep bills less");
	is($all{$freed}{cold}, $all{ladder}{cold}, "$t: with the same cold starts");
	cmp_ok($all{ladder}{cold}, '<=', $all{'fixed:5m'}{cold}, "$t: the ladder starts cold no more often than fixed:5m");
	cmp_ok($all{ladder}{p99}, '<=', 30, "$t: no wait longer than a boot");
}
# where sleeping buys something: on diurnal-lowvolume, the freed ladder bills
# less than the fixed 5 minutes and has far fewer cold starts
$r = replay_csv(src('bench/traces/diurnal-lowvolume.csv'), '--policy', 'fixed:5m', '--policy', $freed);
cmp_ok($r->{$freed}{gpu}, '<', $r->{'fixed:5m'}{gpu}, 'diurnal-lowvolume: a freed ladder bills less than fixed:5m');
cmp_ok($r->{$freed}{cold} * 4, '<', $r->{'fixed:5m'}{cold}, 'with under a quarter of its cold starts');
cmp_ok($r->{$freed}{wakes}, '>', 0, 'the rest are wakes');

done_testing();
