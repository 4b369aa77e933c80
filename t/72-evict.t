# Eviction by expected penalty on hand-made candidates (gateway/evict-test
# feeds them to gateway/evict.c, the code the gateway and wakegate-replay
# share, and prints what it computes and chooses). A candidate's histogram
# has one-minute bins, read as if its gaps were spread evenly inside each;
# fewer than 10 gaps (--samples) is no history. Results worked out by hand.
use strict;
use warnings;
use Test::More;
use WG;

my $prog = ($ENV{WG_BUILD} // src('.')) . '/gateway/evict-test';
-x $prog or BAIL_OUT("no $prog: build first (make gateway/evict-test)");

# runs evict-test; returns ({p => [...], penalty => [...], chosen, lru, victims => "I I"}, exit status, text)
sub choose {
	my @args = @_;
	my $pid = open(my $fh, '-|') // die "fork: $!";
	if (!$pid) {
		open STDERR, '>&', \*STDOUT;
		exec $prog, @args or die "exec $prog: $!";
	}
	my $text = do { local $/; <$fh> } // '';
	close $fh;
	my $rc = $? >> 8;
	my %d = (p => [], penalty => []);
	for (split /\n/, $text) {
		if (/^(p|penalty) (\d+) (\S+)$/) {
			$d{$1}[$2] = $3;
		} elsif (/^victims ?(.*)$/) {
			$d{victims} = $1;
		} elsif (/^(\S+) (\S+)$/) {
			$d{$1} = $2;
		}
	}
	return (\%d, $rc, $text);
}

# 10 gaps of 30s (bin 0: 0-60s) and 10 of 150s (bin 2: 120-180s), 20 in all.
# Idle 30s, reload 60s: F(30) = 10 * 0.5 / 20 = 0.25, F(90) = 10 / 20 = 0.5
# (bin 1 is empty): P = (0.5 - 0.25) / (1 - 0.25) = 1/3, penalty 20s.
# Idle 60s, reload 90s: F(60) = 0.5, F(150) = (10 + 10 * 0.5) / 20 = 0.75:
# P = 0.25 / 0.5 = 0.5, penalty 45s.
my $two = 'gaps=30s*10,150s*10';
my ($d) = choose('--need', '1g', "idle=30:reload=60:bytes=1g:$two", "idle=60:reload=90:bytes=1g:$two");
is($d->{p}[0], '0.333333', 'P(next request within the reload | idle so far) reads the histogram evenly within a bin');
is($d->{penalty}[0], '20.000000', 'the penalty is that chance times the reload time');
is($d->{p}[1], '0.500000', 'a longer idle time conditions on the gaps still possible');
is($d->{penalty}[1], '45.000000', 'a slower reload weighs more');
is($d->{lru}, 0, 'with history for every candidate the choice is by penalty');
is($d->{victims}, '0', 'the cheaper of the two is evicted');
is($d->{chosen}, 1, 'one victim is enough for the memory asked for');

# Every gap seen was shorter than the idle time so far: the request is overdue, P = 1.
($d) = choose('--need', '1g', 'idle=90:reload=30:bytes=1g:gaps=30s*20');
is($d->{p}[0], '1.000000', 'a replica idle longer than every gap it ever had is as good as asked for again');

# A replica that is idle in a long pause: gaps of 10 minutes, idle 1s, reload 5s: F stays 0.
($d) = choose('--need', '1g', 'idle=1:reload=5:bytes=1g:gaps=10m*20');
is($d->{penalty}[0], '0.000000', 'no chance of a request within the reload costs nothing');

# No history: 9 gaps are under --samples 10; with one such candidate the
# whole choice falls back to least recently used: the longest idle goes.
($d) = choose('--need', '1g', "idle=30:reload=60:bytes=1g:$two", 'idle=200:reload=60:bytes=1g:gaps=30s*9',
	'idle=100:reload=60:bytes=1g');
is($d->{penalty}[1], '-1.000000', 'too few gaps is no history');
is($d->{penalty}[2], '-1.000000', 'no histogram is no history');
is($d->{lru}, 1, 'a candidate without history makes the choice least recently used');
is($d->{victims}, '1', 'least recently used evicts the one idle longest');
($d) = choose('--need', '2g', "idle=300:reload=60:bytes=1g:$two", 'idle=200:reload=60:bytes=1g',
	'idle=100:reload=60:bytes=1g');
is($d->{victims}, '0 1', 'least recently used takes them oldest first until the memory is free');
($d) = choose('--samples', '9', '--need', '1g', "idle=30:reload=60:bytes=1g:$two", 'idle=200:reload=60:bytes=1g:gaps=30s*9');
is($d->{lru}, 0, 'the number of gaps that counts as history is a parameter');

# Pins: the pinned one is the cheapest (penalty 0) and still stays.
my $cheap = 'idle=1:reload=5:bytes=4g:gaps=10m*20';
my $dear = "idle=30:reload=60:bytes=4g:$two";
($d) = choose('--need', '4g', "$cheap:pin", $dear);
is($d->{victims}, '1', 'a pinned replica is never evicted, even the cheapest');
($d) = choose('--need', '8g', "$cheap:pin", $dear);
is($d->{chosen}, 0, 'when only evicting the pinned one would make room, nothing is evicted');
is($d->{victims}, '', 'and no victim is named');

# Priorities: a requester of priority 0 may not evict a priority-2 replica; one of priority 2 may.
($d) = choose('--need', '4g', "$cheap:prio=2", $dear);
is($d->{victims}, '1', 'a lower priority never evicts a higher one, however cheap');
($d) = choose('--prio', '2', '--need', '4g', "$cheap:prio=2", $dear);
is($d->{victims}, '0', 'an equal or higher priority may evict it');
($d) = choose('--need', '4g', "$cheap:prio=2");
is($d->{chosen}, 0, 'with only higher priorities idle, a lower-priority requester waits');
# At equal penalty the lower priority goes first.
($d) = choose('--prio', '5', '--need', '4g', "$cheap:prio=3", "$cheap:prio=1");
is($d->{victims}, '1', 'at equal penalty the lower priority is evicted first');

# Not enough memory even from every eligible candidate: nothing is evicted.
($d) = choose('--need', '9g', $cheap, $dear);
is($d->{chosen}, 0, 'when all idle replicas together do not free enough, none is evicted');

# Cheapest first: penalties 45 (0), 20 (1), 0 (2), all needed.
($d) = choose('--need', '3g', "idle=60:reload=90:bytes=1g:$two", "idle=30:reload=60:bytes=1g:$two",
	'idle=1:reload=5:bytes=1g:gaps=10m*20');
is($d->{victims}, '2 1 0', 'victims come cheapest first');
($d) = choose('--need', '2g', "idle=60:reload=90:bytes=1g:$two", "idle=30:reload=60:bytes=1g:$two",
	'idle=1:reload=5:bytes=1g:gaps=10m*20');
is($d->{victims}, '2 1', 'and only as many as the memory needs');

# A small cheap victim is not evicted when the large one chosen after it frees
# enough alone: 1g (penalty 0) then 4g (penalty 7.56); need 4g -> the 4g one only.
($d) = choose('--need', '4g', 'idle=1:reload=5:bytes=1g:gaps=10m*20', "idle=1:reload=30:bytes=4g:$two");
is($d->{victims}, '1', 'a victim whose memory is not needed once a larger one is chosen is kept');
is($d->{penalty}[1], '7.563025', 'F(1) = 1/120, F(31) = 31/120: P = 30/119');

# Errors go to stderr with a non-zero exit.
my (undef, $rc, $text) = choose('idle=x');
is($rc, 2, 'a malformed candidate is refused');
like($text, qr/bad number: x/, 'and the message names it');

done_testing();
