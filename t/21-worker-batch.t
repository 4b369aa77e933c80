#!/usr/bin/perl
# wakegate-worker's dynamic batching and its bounded queue.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use Time::HiRes qw(time sleep);
use WG;
use WGWorker;

my $json = JSON::PP->new->canonical;
my $test = $json->decode(slurp(src('models/digits-test.json')));

my $one = $json->encode({ input => [$test->{inputs}[0]] });

# ---- eight concurrent requests fill one batch of eight ----
{
	my ($pid, $port) = worker_ready('--max-batch', '8', '--batch-delay', '10s');
	my $t0 = time;
	my @socks = map { send_post($port, '/predict', $json->encode({ input => [$test->{inputs}[$_]] })) } 0 .. 7;
	my @replies = map { read_reply($_) } @socks;
	my $took = time - $t0;
	is(scalar(grep { $_ && $_->{status} == 200 } @replies), 8, 'eight concurrent requests all get 200');
	my $ok = 1;
	for my $i (0 .. 7) {
		my $res = eval { $json->decode($replies[$i]{body})->{result}[0] } // [];
		$ok = 0 unless @$res == 10;
	}
	ok($ok, 'each of them gets its own 10 probabilities');
	cmp_ok($took, '<', 9, 'a full batch does not wait for the batch delay');
	is(worker_metric($port, 'wakegate_worker_batches_total'), 1, 'the eight requests ran as one batch');
	is(worker_metric($port, 'wakegate_worker_batch_size_bucket\{le="8"\}'), 1, 'the batch size histogram has one batch of eight');
	is(worker_metric($port, 'wakegate_worker_batch_size_bucket\{le="4"\}'), 0, 'the batch size histogram has no smaller batch');
	is(worker_metric($port, 'wakegate_worker_samples_total'), 8, 'eight samples ran');
	is(stop_proc($pid), 0, 'the worker exits 0');
}

# ---- a lone request waits for the batch delay, then runs alone ----
{
	my ($pid, $port) = worker_ready('--max-batch', '8', '--batch-delay', '300ms');
	my $t0 = time;
	my $r = http_post("http://127.0.0.1:$port/predict", $one);
	my $took = time - $t0;
	is($r->{status}, 200, 'a lone request is answered');
	cmp_ok($took, '>=', 0.29, 'a lone request waits about the batch delay first');
	cmp_ok($took, '<', 10, 'a lone request does not wait much longer than the delay');
	is(worker_metric($port, 'wakegate_worker_batch_size_bucket\{le="1"\}'), 1, 'the lone request ran as a batch of one');
	my $wait = worker_metric($port, 'wakegate_worker_queue_wait_seconds_sum');
	cmp_ok($wait, '>=', 0.29, 'the queue wait histogram shows the delay');

	# A request of five samples and one of four do not share a batch of eight.
	my $five = $json->encode({ input => [@{ $test->{inputs} }[0 .. 4]] });
	my $four = $json->encode({ input => [@{ $test->{inputs} }[0 .. 3]] });
	my @socks = (send_post($port, '/predict', $five), send_post($port, '/predict', $four));
	my @rep = map { read_reply($_) } @socks;
	is(scalar(grep { $_ && $_->{status} == 200 } @rep), 2, 'requests that do not fit one batch are both answered');
	is(scalar(@{ $json->decode($rep[0]{body})->{result} }), 5, 'a request\'s samples stay together');
	is(worker_metric($port, 'wakegate_worker_batches_total'), 3, 'a request that does not fit runs in the next batch');
	is(stop_proc($pid), 0, 'the worker exits 0');
}

# ---- a full queue answers 503 ----
{
	my ($pid, $port, $log) = worker_ready('--max-batch', '8', '--batch-delay', '20s', '--queue', '2');
	my @socks = map { send_post($port, '/predict', $one) } 1 .. 2;
	ok(wait_until(sub { (worker_metric($port, 'wakegate_worker_queue_depth') // 0) == 2 }, 30), 'the queue depth metric shows two waiting requests');
	my $r = http_post("http://127.0.0.1:$port/predict", $one);
	is($r->{status}, 503, 'a request beyond --queue gets 503');
	is(eval { $json->decode($r->{content})->{error} }, 'queue full (2 requests)', 'the 503 says the queue is full');
	ok(defined $r->{headers}{'retry-after'}, 'the 503 says when to retry');
	like(http_get("http://127.0.0.1:$port/metrics")->{content}, qr/^wakegate_worker_requests_total\{endpoint="predict",code="503"\} 1$/m,
		'the metrics count the 503');
	is(stop_proc($pid, 'TERM', 30), 0, 'SIGTERM exits 0 with a full queue');
	my @rep = map { read_reply($_) } @socks;
	is(scalar(grep { $_ && $_->{status} == 200 } @rep), 2, 'the queued requests are answered at shutdown');
}

done_testing();
