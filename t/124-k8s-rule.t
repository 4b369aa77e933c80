# The count of a kubernetes upstream's Deployment (launch kubernetes ...
# service=), replayed through gateway/k8s_rule.c (the k8s-rule-test
# driver) in a moment: up at once as requests pile up, down only after the
# cooldown with no decision wanting the count, never while scale_p99 or
# scale_on hold it, to 0 once idle, and one PATCH per change. The same rule
# runs against the stand-in API server in t/120..t/123.
use strict;
use warnings;
use Test::More;
use WG;

my $build = $ENV{WG_BUILD} // src('.');
my $replay = "$build/gateway/k8s-rule-test";
plan skip_all => "no $replay: build it first (make gateway/k8s-rule-test)" unless -x $replay;

# replay(options, [T, LOAD, flags] ...) -> (["T N" ...], patches)
sub replay {
	my ($opts, @series) = @_;
	my $in = tmpdir() . '/series';
	spew($in, join '', map { join(' ', @$_) . "\n" } @series);
	my $out = `$replay $opts < $in`;
	my ($p) = $out =~ /^patches (\d+)$/m or die "k8s-rule-test: $out";
	return ([ grep { !/^patches/ } split /\n/, $out ], $p);
}
# a line every 0.5s from a to b with this load
sub span { my ($a, $b, $load, @f) = @_; return map { [ $a + $_ * 0.5, $load, @f ] } 0 .. int(($b - $a) * 2 + 1e-9) }

# a burst: one request, then nine held, all answered by 1.5s (the last line with a load at 1s); target 2, max 3, cooldown 2s, idle_timeout 5s
my ($s, $p) = replay('-t 2 -c 2 -i 5 -m 3', [0, 1], [0.1, 5], [0.2, 9], span(0.5, 1, 9), span(1.5, 10, 0));
is_deeply($s, ['0 1', '0.1 3', '3 1', '6 0'],
	'burst: 0 -> 1 -> 3 (capped at max) as requests pile up, 1 after the 2s cooldown, 0 once idle for 5s after the last load (1s)');
is($p, 4, 'four PATCHes: one per change');

# a load that swings across the threshold every second for 30s: no flapping inside the cooldown
($s, $p) = replay('-t 2 -c 10 -i 60 -m 4', map { [$_, $_ % 2 ? 1 : 3] } 0 .. 30);
is_deeply($s, ['0 2'], 'a load swinging between 1 and 3 (target 2) keeps 2: each swing back up restarts the cooldown');

# scale_p99 / scale_on: more= asks for one over READY; keep holds the count past the cooldown
($s) = replay('-t 10 -c 2 -i 60 -m 4', [0, 1], [1, 1, 'more=2'], span(1.5, 10, 1, 'keep'), span(10.5, 15, 1));
is_deeply($s, ['0 1', '1 2', '12 1'],
	'more=2 raises the count with little load; keep holds it; the cooldown runs once keep ends');

# min_warm 1: a floor that idle does not cross
($s, $p) = replay('-t 2 -c 1 -i 2 -m 2 -f 1', span(0, 10, 0));
is_deeply($s, ['0 1'], 'a floor of 1 is sent at once, and kept through idle');

# nothing at all: nothing is sent until idle_timeout, then 0 (a Deployment left up by a gateway before this one)
($s) = replay('-t 2 -c 1 -i 3 -m 2', span(0, 5, 0));
is_deeply($s, ['3 0'], 'an idle start sends nothing, then 0 once idle_timeout passed');

done_testing;
