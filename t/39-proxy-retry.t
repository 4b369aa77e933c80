# A worker that dies refuses the connections of the requests sent to it
# before the gateway has seen it go. Those requests never reached a backend,
# so (as nginx's proxy_next_upstream error) the gateway sends them again,
# held until the restarted worker is READY, instead of answering 502.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my $dir = tmpdir();

sub comm_of { my $c = slurp("/proc/$_[0]/comm") // ''; chomp $c; return $c }
sub worker_pids { my ($g) = @_; return grep { comm_of($_) eq 'wakegate-worker' } gw_children($g->{pid}) }
sub state_of { my ($g) = @_; return gw_status($g)->{upstreams}{digits}{state} // '' }

# Sends n POST /predict at once, each in a child; returns "STATUS BODY" lines.
sub burst {
	my ($g, $n, $tag) = @_;
	my ($body) = digits_input(3);
	my @kids;
	for my $i (1 .. $n) {
		my $pid = fork // die;
		if ($pid == 0) {
			my $r = gw_predict($g, $body, timeout => 60);
			my $c = $r->{content} // '';
			$c =~ s/\s+/ /g;
			spew("$dir/$tag-$i", "$r->{status} $c");
			POSIX::_exit(0);
		}
		push @kids, $pid;
	}
	waitpid($_, 0) for @kids;
	return map { slurp("$dir/$tag-$_") // '000 no answer' } 1 .. $n;
}

# 1. The worker runs under a shell that lingers 0.8s after it (wide enough for a loaded
# machine to fork the burst inside it, and under the 1s a refusing replica is left alone,
# so that a resent request finds the exit seen): for that long
# the replica still looks READY to the gateway, and every connect is refused.
{
	my $launch = worker_cmd() . '; sleep 0.8';
	my ($text, $port, $admin) = gw_conf(launch => $launch,
		upstream => 'warmup off; max_conns 8; hold 100 timeout=30s; idle_timeout 60s; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my ($body) = digits_input(3);
	is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'the worker is up and answers');
	my @w = worker_pids($g);
	is(scalar(@w), 1, 'one worker process runs, under its shell');
	kill 'KILL', @w;
	my @ans = burst($g, 6, 'lingering');
	note(join("\n", @ans));
	my @refused = grep { /^502 / } @ans;
	is(scalar(@refused), 0, 'no request sent to the dead worker gets a 502, though its connections are refused');
	is(scalar(grep { /^200 / } @ans), 6, 'all six are answered 200 by the restarted worker');
	like(gw_log($g), qr/refused request \S+ before it was sent; sending it again/,
		'the error log says the refused requests were sent again');
	my @w2 = worker_pids($g);
	ok(@w2 == 1 && $w2[0] != $w[0], 'a new worker process serves them');
	ok(kill(0, $g->{pid}), 'the gateway is still running');
	stop_proc($g->{pid});
}

# 2. A worker killed on its own (exec'd, no shell): requests sent right after
# the kill, before or after the gateway sees the exit, all get answers.
{
	my ($text, $port, $admin) = gw_conf(launch => 'exec ' . worker_cmd(),
		upstream => 'warmup off; max_conns 8; hold 100 timeout=30s; idle_timeout 60s; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my ($body) = digits_input(3);
	is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'the exec\'d worker is up and answers');
	my @w = worker_pids($g);
	kill 'KILL', @w;
	my @ans = burst($g, 6, 'exec');
	note(join("\n", @ans));
	is(scalar(grep { /^502 / } @ans), 0, 'no request sent right after the kill gets a 502');
	is(scalar(grep { /^200 / } @ans), 6, 'all six are answered 200');
	stop_proc($g->{pid});
}

# 3. A worker that keeps refusing (its replica never leaves READY): a request
# is sent again once, and then gets the 502 that says why, not a long hold.
{
	my $launch = worker_cmd() . '; sleep 30';
	my ($text, $port, $admin) = gw_conf(launch => $launch,
		upstream => 'warmup off; max_conns 8; hold 100 timeout=30s; idle_timeout 60s; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my ($body) = digits_input(3);
	is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'a third worker is up and answers');
	kill 'KILL', worker_pids($g);
	my $t0 = time;
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 502, 'a request that is refused twice gets a 502');
	like($r->{content}, qr/connect failed/, 'the 502 says the connect failed');
	ok(time - $t0 < 20, 'it comes well before the hold timeout');
	is(state_of($g), 'READY', 'the replica still looked READY all along');
	stop_proc($g->{pid});
}

done_testing;
