# SIGHUP under load loses nothing: requests held while the worker boots and
# requests served while the conf is reloaded again and again are all answered
# 200. SIGTERM under load drains: in-flight requests complete, held ones get a
# 503, the gateway exits 0.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my $many = manyconn_bin();
plan skip_all => 'no C compiler for t/lib/manyconn.c' unless $many;

# Runs manyconn in the background; returns a sub that waits and gives {code => count, failed => n}.
my $nbg = 0;
sub many {
	my ($port, $n, $path) = @_;
	my $out = "$dir/many-" . ++$nbg;
	my $pid = fork // die;
	if ($pid == 0) {
		open STDOUT, '>', $out or die;
		exec $many, '127.0.0.1', $port, $n, $path, 60 or POSIX::_exit(127);
	}
	return sub {
		waitpid($pid, 0);
		my $t = slurp($out);
		my %r = map { $_->[0] => $_->[1] } map { [/^status (\d+) (\d+)$/] } grep { /^status/ } split /\n/, $t;
		($r{failed}) = $t =~ /^failed (\d+)$/m;
		return \%r;
	};
}
sub field { my ($g, $f) = @_; return gw_status($g)->{upstreams}{digits}{$f} // 0 }

# 1. SIGHUP while 300 requests are held, then while 4 clients keep sending
{
	my $slow = 'sleep 2; exec ' . worker_cmd();
	my ($text, $port, $admin) = gw_conf(launch => $slow, upstream => 'hold 1000 timeout=60s; idle_timeout 60s; max_conns 32;');
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	my $held = many($port, 300, '/v2/health/ready');
	ok(wait_until(sub { field($g, 'held') >= 250 }, 20), 'hundreds of requests are held while the worker boots');
	my $nhup = 0;
	for my $t (qw(30s 40s 50s)) {
		(my $t2 = $text) =~ s/idle_timeout 60s;/idle_timeout $t;/ or die;
		spew($g->{conf}, $t2);
		kill 'HUP', $g->{pid};
		$nhup++;
		ok(wait_until(sub { my @d = gw_log($g) =~ /reload done/g; @d >= $nhup }, 10), "reload $nhup is done while requests are held");
	}
	my $r = $held->();
	is($r->{200} // 0, 300, 'all 300 held requests are answered 200 across three reloads');
	is($r->{failed}, 0, 'none is lost or left hanging');

	# steady load from 4 clients, 6 reloads in the middle of it
	my @kids;
	for my $k (1 .. 4) {
		my $pid = fork // die;
		if ($pid == 0) {
			my ($n, $bad) = (0, 0);
			my $end = time + 3;
			while (time < $end) {
				my $rr = WG::http_get("$g->{url}/v2/health/ready", timeout => 30);
				$n++;
				$bad++ if $rr->{status} != 200;
			}
			spew("$dir/load-$k", "$n $bad");
			POSIX::_exit(0);
		}
		push @kids, $pid;
	}
	for (1 .. 6) {
		sleep 0.4;
		kill 'HUP', $g->{pid};
	}
	waitpid($_, 0) for @kids;
	my ($sent, $bad) = (0, 0);
	for my $k (1 .. 4) { my ($n, $b) = split ' ', slurp("$dir/load-$k"); $sent += $n; $bad += $b }
	ok($sent > 20, "the clients sent $sent requests during the reloads");
	is($bad, 0, 'every one of them was answered 200');
	ok(wait_until(sub { my @d = gw_log($g) =~ /reload done/g; @d >= 9 }, 10), 'all nine reloads are done');
	is(field($g, 'cold_starts'), 1, 'the reloads kept the worker: one cold start');
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
}

# 2. SIGTERM with 10 slow requests in flight and 20 held at a cold upstream
{
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(), upstream => 'warmup off; idle_timeout 60s; stop_grace 5s; max_conns 32;');
	$text =~ s/(server \{)/upstream cold {\n\tlaunch exec "exec sleep 100";\n\tboot_timeout 60s;\n\thold 100 timeout=60s;\n\tstop_grace 1s;\n}\n$1/ or die;
	$text =~ s/(location \/ \{ proxy_pass digits; \})/$1\n\tlocation \/cold\/ { proxy_pass cold; }/ or die;
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	is(WG::http_get("$g->{url}/warm", timeout => 30)->{status}, 200, 'the warm upstream answers');
	my $inflight = many($port, 10, '/slow?ms=2000');
	my $held = many($port, 20, '/cold/x');
	ok(wait_until(sub { my $s = gw_status($g)->{upstreams};
		($s->{digits}{in_flight} // 0) == 10 && ($s->{cold}{held} // 0) == 20 }, 20),
		'10 requests are in flight and 20 are held');
	my @kids = gw_children($g->{pid});
	kill 'TERM', $g->{pid};
	my $h = $held->();
	is($h->{503} // 0, 20, 'the 20 held requests get a 503 on SIGTERM');
	my $f = $inflight->();
	is($f->{200} // 0, 10, 'the 10 in-flight requests complete with 200');
	is($f->{failed} + $h->{failed}, 0, 'no client is left hanging');
	is(fault_gw_stop($g, 0), 0, 'the gateway exits 0 once drained' . (fault_valgrind() ? ', with no leak under valgrind' : ''));
	ok(wait_until(sub { !grep { kill 0, $_ } @kids }, 10), 'every process it started is gone');
}

done_testing;
