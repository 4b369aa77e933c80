# SIGTERM: held requests get 503, in-flight ones finish, every worker the
# gateway started is stopped, the pid file goes, exit status 0.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

# in-flight request finishes; workers stop; pid file removed
{
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(), upstream => 'warmup off; idle_timeout 60s; stop_grace 5s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = WG::http_get("$g->{url}/hello", timeout => 30);
	is($r->{status}, 200, 'the backend answers through the gateway');
	my @kids = gw_children($g->{pid});
	ok(@kids >= 1, 'a worker process runs');
	my $pid = fork // die;
	if ($pid == 0) {
		my $rr = WG::http_get("$g->{url}/slow?ms=1500", timeout => 30);
		POSIX::_exit($rr->{status} == 200 && $rr->{content} =~ /slow/ ? 0 : 1);
	}
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{in_flight} // 0) == 1 }, 10), 'a slow request is in flight');
	kill 'TERM', $g->{pid};
	waitpid($pid, 0);
	is($?, 0, 'the in-flight request finishes after SIGTERM');
	my $st = stop_proc($g->{pid}, 0, 30);
	is($st, 0, 'wakegate exits 0 on SIGTERM');
	ok(wait_until(sub { !grep { kill 0, $_ } @kids }, 10), 'every worker process it started is gone');
	ok(!-e $g->{pidfile}, 'the pid file is removed');
	like(gw_log($g), qr/SIGTERM, shutting down/, 'the log says why it stopped');
}

# a held request gets 503 on shutdown; a worker that ignores SIGTERM is killed
{
	my ($text, $port, $admin) = gw_conf(launch => q{trap '' TERM; sleep 100}, upstream => 'boot_timeout 60s; stop_grace 1s; hold 10 timeout=60s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $pid = fork // die;
	if ($pid == 0) {
		my $rr = WG::http_get("$g->{url}/x", timeout => 30);
		POSIX::_exit($rr->{status} == 503 ? 0 : 1);
	}
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{held} // 0) == 1 }, 10), 'a request is held during boot');
	my @kids = gw_children($g->{pid});
	kill 'TERM', $g->{pid};
	waitpid($pid, 0);
	is($?, 0, 'the held request gets a 503 on shutdown');
	my $st = stop_proc($g->{pid}, 0, 30);
	is($st, 0, 'wakegate exits 0');
	ok(wait_until(sub { !grep { kill 0, $_ } @kids }, 10), 'a worker that ignores SIGTERM is killed after stop_grace');
}

# SIGQUIT is graceful too
{
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(), upstream => 'warmup off;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	is(WG::http_get("$g->{url}/a")->{status}, 200, 'the backend answers');
	my @kids = gw_children($g->{pid});
	kill 'QUIT', $g->{pid};
	is(stop_proc($g->{pid}, 0, 30), 0, 'wakegate exits 0 on SIGQUIT');
	ok(wait_until(sub { !grep { kill 0, $_ } @kids }, 10), 'its worker is gone');
}

done_testing;
