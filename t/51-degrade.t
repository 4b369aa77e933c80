# Degradation rules (gateway/degrade.c), driven by gateway/degrade-test on
# a simulated clock: each condition of "degrade ... when CONDITION", first
# match wins, the "for" hysteresis both ways, and rps / p99 / error rate
# over the sliding 10-second window. Expected values are computed here from
# the rules as wakegate.conf(5) states them, not taken from a run.
use strict;
use warnings;
use Test::More;
use POSIX qw(ceil floor);
use WG;
use WGGateway;
use WGLimits;

my $drv = ($ENV{WG_BUILD} // src('.')) . '/gateway/degrade-test';
plan skip_all => "no $drv: build it first (make gateway/degrade-test)" unless -x $drv;
my $dir = tmpdir();

# Runs a script; returns the output lines keyed by "eval T" / "stats T".
sub run {
	my ($script, @wrap) = @_;
	spew("$dir/script", $script);
	my $out = `@wrap $drv < $dir/script 2>&1`;
	my %r = (status => $? >> 8, out => $out);
	for (split /\n/, $out) {
		$r{$1} = $2 if /^(eval -?\d+|stats -?\d+) (.*)$/;
	}
	return \%r;
}

# --- each condition ----------------------------------------------------------------

my $r = run(<<'EOF');
rule to small queue 100 0
queue 100
eval 1000
queue 101
eval 2000
queue 3
eval 3000
EOF
is($r->{'eval 1000'}, 'none', 'queue > 100 does not apply with 100 waiting');
is($r->{'eval 2000'}, 'to small rule 0 reason=queue 101 > 100', 'it sends requests to the small upstream with 101 waiting, and says why');
is($r->{'eval 3000'}, 'none', 'without "for" it stops applying as soon as the queue is short');

$r = run("rule to small cold 0 0\ncold 1\neval 0\ncold 0\neval 10\n");
is($r->{'eval 0'}, 'to small rule 0 reason=cold', 'a cold upstream is degraded to the small one, reason "cold"');
is($r->{'eval 10'}, 'none', 'and served itself once it is warm');

# rps: requests started in the last 10 seconds (this one included) / 10
$r = run(<<'EOF');
rule return 429 -1 rps 5 0
start 1000 50
eval 1999
start 1500
eval 2000
eval 10999
eval 11000
EOF
is($r->{'eval 1999'}, 'none', '50 requests in 10 seconds is 5 rps: not over rps > 5');
is($r->{'eval 2000'}, 'return 429 retry_after=-1 rule 0 reason=rps 5.1 > 5',
	'one more makes 5.1 rps and the rule answers 429 itself');
is($r->{'eval 10999'}, 'return 429 retry_after=-1 rule 0 reason=rps 5.1 > 5', 'the requests of second 1 count until second 10 ends');
is($r->{'eval 11000'}, 'none', 'and leave the window at second 11');

# error_rate: errors / ended requests in the window
$r = run(<<'EOF');
rule return 503 30000 error_rate 2.5 0
end 500 10 0 98
end 600 10 1 2
eval 700
end 800 10 1 1
eval 900
EOF
is($r->{'eval 700'}, 'none', '2 errors in 100 requests is 2%: not over error_rate > 2.5%');
is($r->{'eval 900'}, 'return 503 retry_after=30000 rule 0 reason=error_rate 2.97% > 2.5%',
	'3 in 101 is 2.97%: 503 with the rule\'s Retry-After');

# --- p99 over the window ----------------------------------------------------------------

srand(51);
my (@lat, $script);
for my $i (1 .. 1000) {
	my $l = 1 + int(rand(2000));
	push @lat, $l;
	$script .= "end " . (1000 + $i) . " $l 0\n";
}
my @fast = map { 1 + ($_ % 15) } 1 .. 300;
$script .= "end 12000 $_ 0\n" for @fast;
$script .= "stats 2500\nstats 12000\nstats 30000\n";
$r = run($script);
sub p99 { my @s = sort { $a <=> $b } @_; return $s[ ceil(0.99 * @s) - 1 ] }
sub p99_of { my ($line) = @_; return ($line // '') =~ /p99=(\d+)/ ? $1 : -1 }
my $want = p99(@lat);
my $got = p99_of($r->{'stats 2500'});
ok($got >= $want && $got <= $want * 1.125 + 1,
	"p99 of 1000 random latencies is $want ms, reported as $got (the top of its bucket, at most 12.5% above)");
my $want2 = p99(@fast);
is(p99_of($r->{'stats 12000'}), $want2, "once they leave the 10 s window, p99 is that of the 300 later requests ($want2 ms, exact below 16 ms)");
like($r->{'stats 30000'} // '', qr/rps=0\.000 p99=0 error_rate=0\.000 starts=0 ends=0/, 'an idle window has no rate, latency or errors');

$script =~ s/stats \d+\n//g;
$r = run("rule return 503 -1 p99 1500 0\nrule to small p99 500 0\n$script" . "eval 2500\neval 12000\n");
is($r->{'eval 2500'}, "return 503 retry_after=-1 rule 0 reason=p99 ${got}ms > 1500ms", 'p99 > 1500ms applies to slow traffic');
is($r->{'eval 12000'}, 'none', 'and not once only fast requests are in the window');

# --- first match wins --------------------------------------------------------------------

my $rules = "rule to big-queue queue 100 0\nrule to warm-one cold 0 0\nrule return 503 5000 queue 10 0\n";
my @cases = (
	[ 150, 1, 'to big-queue rule 0', 'a long queue on a cold upstream: the first rule wins' ],
	[ 50, 1, 'to warm-one rule 1', 'a queue of 50 on a cold upstream: the second rule' ],
	[ 50, 0, 'return 503 retry_after=5000 rule 2', 'a queue of 50 on a warm upstream: the third rule' ],
	[ 5, 0, 'none', 'a short queue on a warm upstream: no rule' ],
);
for my $c (@cases) {
	$r = run("${rules}queue $c->[0]\ncold $c->[1]\neval 1\n");
	like($r->{'eval 1'} // '', qr/^\Q$c->[2]\E( |$)/, $c->[3]);
}

# --- "for": hysteresis both ways -----------------------------------------------------------

# queue > 10 for 5s, sampled every second
my @q = ((20) x 12, (0) x 10, 20, 20, 0, 20, 20, 20, 0, (20) x 8);
$script = "rule to small queue 10 5000\n";
$script .= "queue $q[$_]\neval " . ($_ * 1000) . "\n" for 0 .. $#q;
$r = run($script);
my @on = grep { ($r->{'eval ' . ($_ * 1000)} // '') =~ /^to small/ } 0 .. $#q;
is_deeply(\@on, [ 5 .. 16, 34 .. 36 ],
	'with "for 5s" the rule applies 5 s after the queue grew, lasts 5 s after it shrank, and ignores short spikes');
is($r->{'eval 5000'}, 'to small rule 0 reason=queue 20 > 10', 'it applies once the condition held 5 s');
is($r->{'eval 14000'}, 'to small rule 0 reason=queue > 10 (held 5s, now 0)', 'and says it is held while the queue is already short');
is($r->{'eval 17000'}, 'none', 'it stops once the queue has been short for 5 s');

# the same rule against a reference model, on random samples at random times
sub model {
	my ($for, @samples) = @_;
	my ($seen, $was, $active, $ts, $fs) = (0, 0, 0, 0, 0);
	my @out;
	for my $s (@samples) {
		my ($t, $c) = @$s;
		$ts = $t if $c && (!$seen || !$was);
		$fs = $t if !$c && (!$seen || $was);
		($seen, $was) = (1, $c);
		$active = $active ? ($c || $t - $fs < $for) : ($c && $t - $ts >= $for);
		push @out, $active ? 1 : 0;
	}
	return @out;
}
srand(5151);
my ($t, @samples) = (0);
$script = "rule return 503 -1 queue 10 3000\n";
for (1 .. 400) {
	$t += 1 + int(rand(1500));
	my $q = rand() < 0.5 ? 0 : 50;
	push @samples, [ $t, $q > 10 ? 1 : 0 ];
	$script .= "queue $q\neval $t\n";
}
$r = run($script);
my @want = model(3000, @samples);
my @got = map { ($r->{"eval $_->[0]"} // '') =~ /^return/ ? 1 : 0 } @samples;
my $mismatch = grep { $want[$_] != $got[$_] } 0 .. $#want;
my $applied = grep { $_ } @want;
ok($applied > 0 && $applied < @want, "the random run both applies and releases the rule ($applied of 400 samples)");
is($mismatch, 0, '400 random samples agree with the documented hysteresis');

# a rule without "for" never lags
$r = run("rule to small queue 10 0\nqueue 11\neval 0\nqueue 10\neval 1\nqueue 11\neval 2\n");
is(join(',', map { $r->{"eval $_"} =~ /^to/ ? 1 : 0 } 0 .. 2), '1,0,1', 'without "for" a rule follows its condition at every sample');

# a later rule's "for" timer runs while an earlier rule wins
$r = run("rule to a cold 0 0\nrule to b queue 10 2000\ncold 1\nqueue 50\neval 0\neval 1000\ncold 0\neval 2000\n");
is($r->{'eval 2000'}, 'to b rule 1 reason=queue 50 > 10', 'a rule counts its "for" time even while an earlier rule answers');

# --- robustness and leaks -------------------------------------------------------------------

$r = run("rule sideways x\n");
is($r->{status}, 2, 'the driver refuses a bad script line');
SKIP: {
	my $vg = `command -v valgrind 2>/dev/null`;
	chomp $vg;
	skip 'valgrind is not installed', 1 unless $vg;
	skip 'degrade-test is built with a sanitizer', 1 if sanitized($drv);
	$r = run("$rules" . "start 5 3\nend 6 100 1\nqueue 500\neval 7\nstats 8\n", $vg, '-q', '--error-exitcode=99', '--leak-check=full');
	is($r->{status}, 0, 'valgrind finds nothing in the degrade module') or diag($r->{out});
}

# --- the cold rule in the running gateway ---------------------------------------------------
# What the pure module is fed (gateway/rules.c: "cold" is no READY replica)
# and what the glue does with a decision (serve elsewhere, wake the cold
# upstream). t/54 covers every rule end to end; this is the least of it.
{
	my $be = backend_cmd();
	my ($text, $port, $admin) = gw_conf_text(
		upstreams => qq{upstream big { launch exec "sleep 2; $be"; warmup off; idle_timeout 60s; stop_grace 1s; }
upstream small { launch exec "$be"; warmup off; min_warm 1; idle_timeout 60s; stop_grace 1s; }},
		locations => "\tlocation / { proxy_pass big; degrade to small when cold; }\n");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $st = sub { return gw_status($g)->{upstreams}{$_[0]}{state} // '' };
	ok(wait_until(sub { $st->('small') eq 'READY' }, 30), 'gateway: the small upstream is warm (min_warm 1)');
	my $r = WG::http_get("$g->{url}/c1", timeout => 30);
	my $big = $st->('big');
	is("$r->{status} " . ($r->{headers}{'x-wakegate-degraded'} // '-'), '200 small cold',
		'gateway: a request for the cold upstream is served by the small one, X-Wakegate-Degraded: small cold');
	like($big, qr/^(BOOTING|WARMING)$/, 'gateway: and the cold upstream is woken, not left cold');
	ok(wait_until(sub { $st->('big') eq 'READY' }, 30), 'gateway: it becomes READY');
	$r = WG::http_get("$g->{url}/c2", timeout => 30);
	is("$r->{status} " . ($r->{headers}{'x-wakegate-degraded'} // '-'), '200 -', 'gateway: then the rule no longer applies');
	stop_proc($g->{pid});
}

done_testing();
