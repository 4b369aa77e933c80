#!/usr/bin/perl
# wakegate-worker and signals: SIGTERM answers what is queued, then exits 0;
# clients that go away do not hurt anyone else.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use IO::Socket::INET;
use IO::Select;
use POSIX qw(WNOHANG);
use Time::HiRes qw(time sleep);
use WG;
use WGWorker;

my $json = JSON::PP->new->canonical;
my $test = $json->decode(slurp(src('models/digits-test.json')));

# ---- SIGTERM with queued requests: all are answered, exit 0 ----
{
	my ($pid, $port, $log) = worker_ready('--max-batch', '32', '--batch-delay', '60s');
	my @socks = map { send_post($port, '/predict', $json->encode({ input => [$test->{inputs}[$_]] })) } 0 .. 4;
	my $v2 = send_post($port, '/v2/models/digits/infer', $json->encode({ inputs => [{ name => 'input',
		shape => [2, 64], datatype => 'FP32', data => [@{ $test->{inputs} }[5, 6]] }] }));
	ok(wait_until(sub { (worker_metric($port, 'wakegate_worker_queue_depth') // 0) == 6 }, 30), 'six requests wait in the queue');
	my $t0 = time;
	kill 'TERM', $pid;
	my @rep = map { read_reply($_) } @socks;
	my $v2rep = read_reply($v2);
	is(scalar(grep { $_ && $_->{status} == 200 } @rep), 5, 'every queued /predict is answered after SIGTERM');
	my $ok = 1;
	for my $i (0 .. 4) {
		my $res = eval { $json->decode($rep[$i]{body})->{result}[0] } // [];
		$ok = 0 unless @$res == 10;
	}
	ok($ok, 'the answers are real predictions');
	is($v2rep && $v2rep->{status}, 200, 'a queued v2 infer is answered after SIGTERM');
	cmp_ok(time - $t0, '<', 30, 'the queue is run at once, without waiting for the batch delay');
	my $status = stop_proc($pid, 0, 30);    # signal 0: only wait for it
	ok(defined $status, 'the worker exits after answering');
	is($status, 0, 'the worker exits 0 after SIGTERM');
	my $l = slurp($log);
	like($l, qr/SIGTERM: not accepting; answering 6 queued requests/, 'the log says what SIGTERM is waiting for');
	like($l, qr/exiting/, 'the log says the worker exits');
	ok(!IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port"), 'nothing listens on the port afterwards');
}

# ---- SIGINT on an idle worker ----
{
	my ($pid, $port) = worker_ready();
	is(stop_proc($pid, 'INT', 30), 0, 'SIGINT exits 0');
}

# ---- a client that goes away while queued ----
{
	my ($pid, $port, $log) = worker_ready('--max-batch', '4', '--batch-delay', '300ms');
	my $one = $json->encode({ input => [$test->{inputs}[0]] });
	for (1 .. 3) {
		my $s = send_post($port, '/predict', $one);
		close $s;
	}
	my $half = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") or die;
	print $half "POST /predict HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{\"inp";
	close $half;
	my $r = http_post("http://127.0.0.1:$port/predict", $one);
	is($r->{status}, 200, 'a request after clients that went away is answered');
	sleep 0.5;
	ok(waitpid($pid, WNOHANG) == 0, 'the worker is still running');
	is(http_get("http://127.0.0.1:$port/v2/health/ready")->{status}, 200, 'the worker is still ready');
	is(stop_proc($pid, 'TERM', 30), 0, 'the worker exits 0 after clients went away');
}

done_testing();
