# wakegate-replay --granularity and the conf's billing_granularity read one
# rule (common/units.c): a time as the conf writes it (a bare number is
# seconds) that is one second, one minute or one hour. Whatever one refuses
# the other refuses, and the same spelling means the same thing in both
# (wakegate-replay(1) --granularity, wakegate.conf(5) billing_granularity).
use strict;
use warnings;
use Test::More;
use WG;
use WGConf;

my ($dir) = conf_setup('gran');
my $replay = ($ENV{WG_BUILD} // src('.')) . '/tools/wakegate-replay';
-x $replay or BAIL_OUT("no $replay: build first");

sub run_replay {
	my $pid = open(my $fh, '-|') // die "fork: $!";
	if (!$pid) {
		open STDERR, '>&', \*STDOUT;
		exec $replay, @_ or die "exec $replay: $!";
	}
	my $text = do { local $/; <$fh> } // '';
	close $fh;
	return ($? >> 8, $text);
}

# One request at 0 lasting 1s, a 30s boot, keep-alive 60s: the run is
# [0, 31] (cut at the trace's end), 31s; billed 60s per minute, 3600s per hour.
spew("$dir/one.csv", "timestamp,upstream,duration\n0,a,1\n");
sub billed {
	my ($rc, $text) = run_replay("$dir/one.csv", '--policy', 'fixed:60s', '--csv', @_);
	return $rc ? "exit $rc" : ($text =~ /^fixed:60s,([^,]+),/m)[0];
}

my $UPS = qq{upstream u { launch exec "w \$port"; }\nserver { listen 127.0.0.1:18080; location / { proxy_pass u; } }\n};
sub conf_gran {
	my $r = conf("billing_granularity $_[0];\n$UPS");
	return $r->{code} ? "refused" : val($r, 'billing_granularity_ms');
}

# Refused by both: a multiple that is not a cloud's unit, fractions, units
# the conf does not know, and nothing.
for my $bad ('2m', '1.5s', '5s', '90', '1min', '0') {
	my ($rc, $text) = run_replay("$dir/one.csv", '--granularity', $bad);
	is($rc, 2, "wakegate-replay refuses --granularity $bad");
	like($text, qr/--granularity must be 1s, 1m or 1h.*: \Q$bad\E/, "... and says what it takes ($bad)");
	is(conf_gran($bad), 'refused', "the conf refuses billing_granularity $bad too");
}

# Accepted by both, with the same meaning: a bare number is seconds in both.
my %ms = ('1s' => 1000, '1' => 1000, '60' => 60000, '60s' => 60000, '1m' => 60000, '1h' => 3600000, '3600' => 3600000);
for my $ok (sort keys %ms) {
	is(conf_gran($ok), $ms{$ok}, "the conf reads billing_granularity $ok as $ms{$ok}ms");
	my $want = $ms{$ok} == 1000 ? '31.0' : $ms{$ok} == 60000 ? '60.0' : '3600.0';
	is(billed('--granularity', $ok), $want, "wakegate-replay bills a 31s run as ${want}s at --granularity $ok");
}
is(billed(), '31.0', 'the default is 1s, as the conf\'s');
# replay's one addition, which no cloud bills and the conf does not take:
# off bills to the millisecond (one request of 1.5s: a 31.5s run).
spew("$dir/odd.csv", "timestamp,upstream,duration\n0,a,1.5\n");
my ($rc, $text) = run_replay("$dir/odd.csv", '--policy', 'fixed:60s', '--csv', '--granularity', 'off');
is(($text =~ /^fixed:60s,([^,]+),/m)[0], '31.5', '--granularity off bills the exact run');
is(conf_gran('off'), 'refused', 'the conf has no billing_granularity off');

done_testing();
