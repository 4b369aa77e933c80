# boot_timeout bounds WHEN a replica that never gets healthy is failed
# (wakegate.conf(5): "How long a replica may take from launch to a healthy
# answer before it counts as failed"): the held request's 503 comes no
# earlier than boot_timeout after the launch and within 1.8 times it. t/43 §2
# checks the 503's message, which is built from the conf value, not its time.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my $bt = 2;	# seconds; 1.8x leaves 1.6s for the 100 ms tick and a loaded machine
my ($body) = digits_input(2);
my ($text, $port, $admin) = gw_conf(launch => 'exec sleep 100',
	upstream => "boot_timeout ${bt}s; hold 10 timeout=60s; stop_grace 1s;");
my $g = gw_start(conf => $text, port => $port, admin => $admin);

for my $round (1, 2) {
	# the request wakes the replica: it is sent before the launch, so the
	# time to its answer is at least the time from the launch
	my $t0 = time;
	my $r = gw_predict($g, $body, timeout => 60);
	my $dt = time - $t0;
	diag(sprintf('round %d: boot_timeout %ds, 503 after %.2fs', $round, $bt, $dt));
	is($r->{status}, 503, "round $round: a replica that never gets healthy gets the held request a 503");
	like($r->{content}, qr/boot timed out after ${bt}s/, "round $round: saying the boot timed out");
	cmp_ok($dt, '>=', $bt - 0.05, "round $round: not before boot_timeout");
	cmp_ok($dt, '<=', 1.8 * $bt, "round $round: within 1.8x boot_timeout");
	like($r->{headers}{'retry-after'} // '', qr/^[1-9]\d*$/, "round $round: with a Retry-After");
	ok(wait_until(sub { scalar(gw_children($g->{pid})) == 0 }, 15), "round $round: the never-healthy process is killed");
	last if $round == 2;
	# a second boot, from FAILED once its backoff (1s) has passed
	ok(wait_until(sub { my $x = gw_status($g)->{upstreams}{digits}{state} // ''; $x eq 'FAILED' }, 5), 'the replica is FAILED');
	sleep 1.2;
}

stop_proc($g->{pid});
done_testing;
