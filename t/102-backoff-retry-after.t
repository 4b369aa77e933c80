# A replica that failed waits out a backoff (1s, 2s, 4s, ... 30s) before the
# next try; a request that comes meanwhile gets a 503 at once, with the
# reason and a Retry-After (wakegate(8), FAILED: "and so do requests
# arriving during the backoff"): present, at least 1, and no larger than the
# backoff in force. t/43 checks the Retry-After of the first 503 only, which
# comes from the failed boot itself, not from the backoff.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my ($body) = digits_input(2);
my ($text, $port, $admin) = gw_conf(launch => 'echo starting; exit 1', upstream => 'hold 10 timeout=60s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub boots { my @b = gw_log($g) =~ /-> BOOTING/g; return scalar @b }
sub backoff { my @n = gw_log($g) =~ /next try in (\d+)s/g; return $n[-1] }

my $r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 503, 'a worker that exits during boot gets the held request a 503');
is(boots(), 1, 'after one boot');

# The next request normally comes within the backoff; on a loaded machine it
# may come after it and wake a new boot (which fails too, and doubles the
# backoff): go on until one is answered without a boot, by the backoff.
my ($during, $bo);
for (1 .. 6) {
	my $before = boots();
	my $x = gw_predict($g, $body, timeout => 60);
	if (boots() == $before) {
		($during, $bo) = ($x, backoff());
		last;
	}
}
ok($during, 'a request comes during a backoff (no new boot for it)') or diag(gw_log($g));
$during //= { headers => {}, content => '' };
$bo //= 0;
is($during->{status}, 503, 'it gets a 503 at once');
like($during->{content}, qr/exited with status 1 during boot/, 'naming why the replica failed');
my $ra = $during->{headers}{'retry-after'};
like($ra // '', qr/^\d+$/, 'the 503 during the backoff has a Retry-After');
cmp_ok($ra // 0, '>=', 1, 'of at least 1 second');
cmp_ok($ra // 99, '<=', $bo, "no larger than the backoff in force (${bo}s)");

# a few more during one longer backoff: each one has it, never growing
my $ok = 0;
for (1 .. 8) {
	my $before = boots();
	my $x = gw_predict($g, $body, timeout => 60);
	next if boots() != $before;	# this one woke a boot: not during a backoff
	my $b = backoff();
	my $v = $x->{headers}{'retry-after'} // 0;
	$ok++ if $x->{status} == 503 && $v >= 1 && $v <= $b;
	last if $ok >= 3;
	sleep 0.3;
}
is($ok, 3, 'three more requests during a backoff each get a Retry-After within it');

stop_proc($g->{pid});
done_testing;
