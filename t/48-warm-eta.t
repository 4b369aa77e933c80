# min_warm keeps replicas up from the start; Retry-After is the measured
# boot + warmup time, not a constant.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

{
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(), upstream => 'warmup off; min_warm 1; idle_timeout 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'READY' }, 30), 'min_warm 1 starts a replica with no request');
	sleep 2.5;
	is(gw_status($g)->{upstreams}{digits}{state}, 'READY', 'min_warm 1 keeps it up past idle_timeout');
	my $r = WG::http_get("$g->{url}/x");
	is($r->{status}, 200, 'it answers');
	ok(!exists $r->{headers}{'x-wakegate-cold'}, 'without a cold start');
}

{
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(boot => 2),
		upstream => 'warmup off; hold 1 timeout=30s; idle_timeout 1s; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	is(WG::http_get("$g->{url}/x", timeout => 60)->{status}, 200, 'a first cold start of a 2s boot is answered');
	my $boot = gw_status($g)->{upstreams}{digits}{boot_seconds};
	ok($boot >= 1.9, 'its boot time is measured');
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 30), 'it goes idle and stops');
	my $pid = fork // die;
	if ($pid == 0) {
		my $r = WG::http_get("$g->{url}/x", timeout => 60);
		POSIX::_exit($r->{status} == 200 ? 0 : 1);
	}
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 0) == 1 }, 10), 'the next request is held');
	my $r = WG::http_get("$g->{url}/x", timeout => 60);
	is($r->{status}, 503, 'one more overflows the hold queue');
	my $want = int($boot) + ($boot > int($boot) ? 1 : 0);
	ok(abs(($r->{headers}{'retry-after'} // 0) - $want) <= 1, "Retry-After is the measured boot time, rounded up (about $want s)");
	waitpid($pid, 0);
	is($?, 0, 'the held one is answered');
}

done_testing;
