# wakegate-replay: traces replayed in simulated time, with results worked out
# by hand in the comments. Default request duration 0.1s.
use strict;
use warnings;
use Test::More;
use WG;
use WGReplay;

my $replay = replay_bin();

# --csv output as { policy => { gpu, cost, saving, cold, p50, p99 } }
sub replay_csv { return (replay_csv_rows([qw(gpu cost saving cold p50 p99)], @_))[0] }

my $dir = tmpdir();

# Five requests on one upstream, boot 30s:
#   0    cold start: up at 0, ready 30, busy until 31 (duration 1)
#   10   arrives while booting: waits 20s, same cold start, done at 31
#   100  fixed:60s: gap 69s > 60 -> run [0,91] billed 91; cold: ready 130, done 131
#        fixed:5m: gap 69s <= 300 -> warm, done at 101
#   1000 fixed:60s: gap 869 -> run [100,191] = 91; cold, ready 1030, done 1031
#        fixed:5m: gap 899 > 300 -> run [0,401] = 401; cold, ready 1030, done 1031
#   1010 arrives while booting: waits 20s, done at 1031
# The trace ends at the last request's end, 1011: always-on = 1011s. The
# last runs are cut where the work ends: [1000,1031] = 31s.
#   fixed:60s: 91 + 91 + 31 = 213s, 3 cold starts, waits 30,20,30,30,20
#   fixed:5m: 401 + 31 = 432s, 2 cold starts, waits 30,20,0,30,20
spew("$dir/tiny.csv", "timestamp,upstream,duration\n0,a,1\n10,a,1\n# a comment\n\n100,a,1\n1010,a,1\n1000,a,1\n");
my $r = replay_csv("$dir/tiny.csv", '--policy', 'fixed:60s', '--policy', 'all');
is($r->{'always-on'}{gpu}, '1011.0', 'always-on pays for the whole span of the trace');
is($r->{'always-on'}{cold}, 0, 'always-on never starts cold');
is($r->{'fixed:60s'}{gpu}, '213.0', 'a 60s keep-alive bills each run from boot to 60s after its last request');
is($r->{'fixed:60s'}{cold}, 3, 'a 60s keep-alive starts cold three times');
is($r->{'fixed:60s'}{p50}, '30.000', 'most requests on a 60s keep-alive wait a whole boot');
is($r->{'fixed:5m'}{gpu}, '432.0', 'a 5m keep-alive bridges the short gap and bills 432s');
is($r->{'fixed:5m'}{cold}, 2, 'a 5m keep-alive starts cold twice');
is($r->{'fixed:5m'}{p50}, '20.000', 'a request that comes during a boot waits only what is left of it');
is($r->{'fixed:5m'}{p99}, '30.000', 'the worst wait is one boot');
is($r->{'fixed:5m'}{saving}, sprintf('%.2f', 100 * (1 - 432 / 1011)), 'the saving is measured against always-on');
is($r->{adaptive}{gpu}, $r->{'fixed:5m'}{gpu}, 'adaptive with too few gaps behaves as the fixed 5 minutes');

# Billed per minute: fixed:60s runs of 91, 91, 31s bill 120 + 120 + 60;
# always-on 1011s bills 1020s; at 3.6/h a GPU-second costs 0.001.
$r = replay_csv("$dir/tiny.csv", '--policy', 'fixed:60s', '--granularity', '1m', '--price', '3.6/h');
is($r->{'fixed:60s'}{gpu}, '300.0', 'per-minute billing rounds every run up to whole minutes');
is($r->{'always-on'}{gpu}, '1020.0', 'always-on is rounded up too');
is($r->{'fixed:60s'}{cost}, '0.3000', 'the cost is GPU-hours times the price');

my ($rc, $text) = run_replay("$dir/tiny.csv", '--policy', 'adaptive', '-v');
like($text, qr/few samples 2;/, 'the verbose report says why adaptive decided as it did');
like($text, qr/^\S+tiny\.csv: 1 upstream, 5 requests/m, 'the table names the trace and its size');

# Twenty requests 30 minutes apart (0, 1800, ... 34200), billed per ms (--granularity off).
# fixed:5m: every request starts cold; a run is boot 30 + 0.1 + 300 =
# 330.1s, the last one is cut at its end (30.1s): 19 * 330.1 + 30.1 = 6302.0.
# adaptive: a cold request ends 30.1s after it came, so the gaps are 1769.9s
# (bin 29). Gaps 1-10 fall back (few samples): 10 runs of 330.1s. From
# gap 11 it pre-warms: stop at once (request 11's run: 30.1s), wake 29m -
# 1m - 30s = 1650s after the end, ready at 1680s. Request 12 finds it
# ready: run 1800.1 - 1680.1 = 120.0s. Later gaps are 1799.9s (bin 29):
# runs from 1650.1s after one request to 0.1s after the next: 8 * 150.0s.
# Total 3301.0 + 30.1 + 120.0 + 1200.0 = 4651.1s; 11 cold starts (1-11).
spew("$dir/regular.csv", join '', map { ($_ * 1800) . ",job\n" } 0 .. 19);
$r = replay_csv("$dir/regular.csv", '--granularity', 'off');
is($r->{'always-on'}{gpu}, '34200.1', 'always-on over nine and a half hours');
is($r->{'fixed:5m'}{cold}, 20, 'a 5-minute timer starts cold on every request 30 minutes apart');
is($r->{'fixed:5m'}{gpu}, '6302.0', 'and bills every boot and keep-alive');
is($r->{adaptive}{cold}, 11, 'adaptive stops starting cold once it has seen ten gaps');
is($r->{adaptive}{gpu}, '4651.1', 'and its pre-warms bill less than the 5-minute timer');
is($r->{adaptive}{p50}, '30.000', 'the learning period still shows in the median wait');

# The Azure Functions format: 4 id columns, then 1440 per-minute counts.
# f1: 2 calls in minute 1 (at 15s, 45s), 1 in minute 3 (150s); f2: 1 call
# in the last minute (86370s). fixed:5m: f1 starts cold at 15 (ready 45,
# the 45s call needs no wait, done 45.1), 150 is 104.9s later: warm. f2
# starts cold. 2 cold starts; --top 1 keeps f1 alone.
my @z = (0) x 1440;
my @f1 = @z; @f1[0, 2] = (2, 1);
my @f2 = @z; $f2[1439] = 1;
spew("$dir/azure.csv", join("\n", join(',', qw(HashOwner HashApp HashFunction Trigger), 1 .. 1440),
	join(',', qw(o1 a1 f1 http), @f1), join(',', qw(o2 a2 f2 timer), @f2)) . "\n");
($rc, $text) = run_replay("$dir/azure.csv", '--azure', '--policy', 'fixed:5m');
is($rc, 0, 'an Azure Functions trace replays');
like($text, qr/2 upstreams, 4 requests/, 'each function is an upstream, each count a request');
$r = replay_csv("$dir/azure.csv", '--azure', '--policy', 'fixed:5m');
is($r->{'fixed:5m'}{cold}, 2, 'requests spread over their minute start cold as computed by hand');
($rc, $text) = run_replay("$dir/azure.csv", '--azure', '--top', '1');
like($text, qr/1 upstream, 3 requests/, '--top keeps the busiest functions only');

# Errors name the place.
spew("$dir/bad.csv", "0,a\n5,a\nsoon,a\n");
($rc, $text) = run_replay("$dir/bad.csv");
is($rc, 1, 'a malformed trace fails');
like($text, qr/bad\.csv:3: bad timestamp/, 'and the message names the file and line');
($rc, $text) = run_replay("$dir/tiny.csv", '--policy', 'sometimes');
is($rc, 2, 'an unknown policy is refused');
($rc, $text) = run_replay("$dir/tiny.csv", '--boot', 'long');
is($rc, 2, 'a boot time that is not a time is refused');

# The shipped traces: adaptive is never worse than the fixed 5 minutes on
# either count, and beats it on the bursty one.
for my $t (qw(diurnal bursty sparse)) {
	my $file = src("bench/traces/$t.csv");
	$r = replay_csv($file);
	ok($r->{adaptive}{cold} <= $r->{'fixed:5m'}{cold} && $r->{adaptive}{gpu} <= $r->{'fixed:5m'}{gpu},
		"on the $t trace adaptive starts cold no more often and costs no more than a 5-minute timer");
	ok($r->{'fixed:5m'}{saving} > 0, "on the $t trace scaling to zero saves against always-on");
}
$r = replay_csv(src('bench/traces/bursty.csv'));
ok($r->{adaptive}{cold} < $r->{'fixed:5m'}{cold}, 'on the bursty trace adaptive pre-warms before the jobs');

# prewarm schedule, run as the gateway does (lead = boot rounded up to whole
# minutes, 1 for 30s; a woken worker with no request stays up until 5
# minutes after the stretch starts). Days 0-4 (Mon-Fri) have a request at
# 09:00, day 6 (Sun) one at 12:00; billed per ms.
#   fixed:5m: six cold starts; runs of 30 + 0.1 + 300 = 330.1s on days 0-4,
#     the last (Sun 12:00) cut where its work ends, 30.1s: 1680.6s.
#   schedule: minute 09:00 is busy once 4 of the last 7 whole days had a
#     request in it, so from day 4 on (days 0-3 in its table). Days 0-3
#     start cold (4 * 330.1). Day 4: woken at 08:59, ready 08:59:30, the
#     09:00 request waits for nothing; run to 09:05:00.1: 360.1s. Days 5 and
#     6 (the weekend) still have 09:00 on 5 of their last 7 days: woken at
#     08:59 for nothing, up 60 + 300 = 360s each. Sun 12:00 starts cold
#     (30.1s). 1320.4 + 360.1 + 720 + 30.1 = 2430.6s, 5 cold starts, 3 wakes.
#   With a 90s boot the lead is 2 minutes: 4 * 390.1 + 420.1 + 2 * 420 + 90.1.
my $week = join '', map { ($_ * 86400 + 9 * 3600) . ",app\n" } 0 .. 4;
spew("$dir/week.csv", $week . (6 * 86400 + 12 * 3600) . ",app\n");
$r = replay_csv("$dir/week.csv", '--granularity', 'off', '--policy', 'fixed:5m', '--policy', 'schedule',
	'--policy', 'adaptive+schedule');
is($r->{'fixed:5m'}{cold}, 6, 'without the schedule every request of the week starts cold');
is($r->{'fixed:5m'}{gpu}, '1680.6', 'and the 5-minute timer bills each cold run');
is($r->{schedule}{cold}, 5, 'the schedule pre-warms the fifth 09:00, after four days that had one');
is($r->{schedule}{gpu}, '2430.6', 'and bills its wakes, the weekend ones with no request included');
is($r->{'adaptive+schedule'}{cold}, 5, 'adaptive with the schedule, on too few gaps, pre-warms the same');
($rc, $text) = run_replay("$dir/week.csv", '--policy', 'schedule', '-v');
like($text, qr/schedule woke the stopped worker 3 times/, 'the verbose report counts the wakes');
$r = replay_csv("$dir/week.csv", '--granularity', 'off', '--policy', 'schedule', '--boot', '90s');
is($r->{schedule}{gpu}, '2910.6', 'a 90s boot makes the schedule wake two minutes ahead');
spew("$dir/four.csv", join '', map { ($_ * 86400 + 9 * 3600) . ",app\n" } 0 .. 3);
$r = replay_csv("$dir/four.csv", '--policy', 'schedule');
is($r->{schedule}{cold}, 4, 'with three past days nothing is busy yet: the schedule learns only from the past');
($rc, $text) = run_replay("$dir/week.csv", '--policy', 'fixed:5m+later');
is($rc, 2, 'a policy can only be added to with +schedule');

# The low-volume diurnal trace: the same checks as the others.
$r = replay_csv(src('bench/traces/diurnal-lowvolume.csv'));
ok($r->{adaptive}{cold} <= $r->{'fixed:5m'}{cold} && $r->{adaptive}{gpu} <= $r->{'fixed:5m'}{gpu},
	'on the low-volume trace adaptive starts cold no more often and costs no more than a 5-minute timer');
ok($r->{schedule}{cold} <= $r->{'fixed:5m'}{cold}, 'on the low-volume trace the schedule saves cold starts');

# The shipped traces are what make-traces writes with its fixed seed.
SKIP: {
	skip 'no python3', 1 unless system('python3 -c 1 2>/dev/null') == 0;
	my $gen = "$dir/gen";
	mkdir $gen or die "mkdir $gen: $!";
	system("python3 " . src('bench/traces/make-traces') . " $gen >/dev/null") == 0
		or die "make-traces failed";
	my @diff = grep { slurp("$gen/$_.csv") ne slurp(src("bench/traces/$_.csv")) }
		qw(diurnal diurnal-lowvolume bursty sparse);
	is("@diff", '', 'make-traces writes exactly the shipped traces from its fixed seed');
}

# The time-of-day plan in simulated time. Two weeks (day 0 a Monday); on
# each weekday a request every 8 minutes from 10:00 to 10:56 (8) and stray
# requests at 00:17, 02:17, 04:17, 06:17, 20:17 and 22:17 (6): 140 requests.
# The fixed 5m timer starts cold on every one of them: 140.
# The plan for a day is made from the days before it. Day 3 is the first
# whose history gives the 10:00 hour (slot 10) 20 gaps of its own: 3 x (7
# gaps of 8 minutes + the gap from 10:56 to 20:17) = 24. From then on the
# plan keeps the worker up 10 minutes in that hour, paid for by stopping
# after 1 minute at night: on the 7 weekdays from day 3 on, only the 10:00
# request of the 8 starts cold: 140 - 7 x 7 = 91 cold starts.
my @office;
for my $day (grep { $_ % 7 < 5 } 0 .. 13) {
	push @office, map { $day * 86400 + 36000 + 480 * $_ } 0 .. 7;
	push @office, map { $day * 86400 + $_ * 3600 + 1020 } 0, 2, 4, 6, 20, 22;
}
spew("$dir/office.csv", join '', map { "$_,office\n" } sort { $a <=> $b } @office);
$r = replay_csv("$dir/office.csv", '--policy', 'fixed:5m', '--policy', 'adaptive', '--policy', 'adaptive:tod=off');
is($r->{'fixed:5m'}{cold}, 140, 'the fixed timer starts cold on every request 8 minutes or hours apart');
is($r->{adaptive}{cold}, 91, 'the time-of-day plan bridges the busy hour from the fourth day on');
ok($r->{adaptive}{gpu} <= $r->{'fixed:5m'}{gpu}, 'and it costs no more GPU time than the fixed timer');
is($r->{'adaptive:tod=off'}{cold}, 140, 'without the plan the adaptive policy has nothing better than the fixed timer here');
my (undef, $vtext) = run_replay("$dir/office.csv", '--policy', 'adaptive', '-v');
like($vtext, qr/time of day \d+;/, 'wakegate-replay -v counts the decisions the plan made');

done_testing();
