# wakegate-worker when CUDA fails: a transient error fails its own request
# only (reported once, then cleared); a sticky one (the context is lost)
# marks the model dead: readiness answers 503, every queued request is
# answered, and the worker exits 3 so that its launcher starts a fresh one.
# WAKEGATE_WORKER_FAULT injects the failures on the CPU path, so this runs
# through a real worker without a GPU.
use strict;
use warnings;
use Test::More;
use IO::Select;
use IO::Socket::INET;
use JSON::PP;
use WG;
use WGWorker;

my $model = src('models/digits.safetensors');
my $body = encode_json({ input => [[(0) x 64]] });

# A worker with the fault plan in its environment, ready; (pid, port, log).
sub faulty_worker {
	my ($plan, @flags) = @_;
	my $port = free_port();
	my $log = tmpdir() . "/worker-$port.log";
	my $pid = start_proc(name => "worker-$port", log => $log, env => { WAKEGATE_WORKER_FAULT => $plan },
		cmd => [bin('wakegate-worker'), '--model', $model, '--listen', "127.0.0.1:$port",
			'--device', 'cpu', '--warmup', 1, @flags]);
	wait_http("http://127.0.0.1:$port/v2/health/ready", 30) or die "worker did not get ready:\n" . slurp($log);
	return ($pid, $port, $log);
}

# One request on a kept-alive socket: writes it, reads one reply by its length.
sub ka_request {
	my ($s, $line) = @_;
	print $s "$line HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	my ($head, $buf) = ('', '');
	while ($head !~ /\r\n\r\n/) { sysread($s, $head, 1, length $head) or return undef }
	my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
	while (length $buf < ($len // 0)) { sysread($s, $buf, $len - length $buf, length $buf) or last }
	my ($code) = $head =~ m{^HTTP/1\.\d (\d+)};
	return { status => $code, body => $buf };
}

# A connection the worker has surely accepted (a keep-alive GET answered on
# it), for requests that must reach the worker before it stops listening.
sub accepted_socket {
	my ($port) = @_;
	my $s = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp') or die "connect: $!";
	print $s "GET /v2/health/live HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	my ($head, $body) = ('', '');
	while ($head !~ /\r\n\r\n/) { sysread($s, $head, 1, length $head) or die "no answer to GET /v2/health/live" }
	my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
	while (length $body < ($len // 0)) { sysread($s, $body, $len - length $body, length $body) or last }
	return $s;
}

# Sends a POST on such a socket without waiting; read_reply() reads the answer.
sub post_on {
	my ($s, $path, $body) = @_;
	print $s "POST $path HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
		. "Content-Length: " . length($body) . "\r\nConnection: close\r\n\r\n$body";
	return $s;
}

# ---- transient: one request fails, the next works, readiness stays 200 ----
{
	# run 1 is the warmup; run 3 fails
	my ($pid, $port, $log) = faulty_worker('transient:3', '--max-batch', 1);
	my $url = "http://127.0.0.1:$port";
	is(post_json("$url/predict", $body)->{status}, 200, 'transient: the first request works');
	my $r = post_json("$url/predict", $body);
	is($r->{status}, 500, 'the one that meets a transient CUDA error gets 500');
	like(error_of($r), qr/cudaErrorLaunchOutOfResources \(injected\)/, 'with the CUDA error named');
	$r = post_json("$url/predict", $body);
	is($r->{status}, 200, 'the next request works: the error was cleared, not reported again');
	is(error_of($r), '', 'and carries no error');
	is(http_get("$url/v2/health/ready")->{status}, 200, 'readiness stays 200');
	is(stop_proc($pid, 'TERM', 30), 0, 'the worker still exits 0 on SIGTERM');
}

# ---- sticky: 503 readiness, every queued request answered, exit 3 ----
{
	# run 2 loses the context after 2s (the requests behind it are queued
	# meanwhile); run 3 takes 2s too, which keeps the worker up while
	# readiness is asked on a connection opened before
	my ($pid, $port, $log) = faulty_worker('sticky:2,slow:2,slow:3', '--max-batch', 1);
	my $ka = IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Proto => 'tcp') or die "connect: $!";
	is(ka_request($ka, 'GET /v2/health/ready')->{status}, 200, 'sticky: ready before the fault');
	# all three connections accepted first: the first reply makes the worker stop listening
	my @socks = map { accepted_socket($port) } 1 .. 3;
	post_on($_, '/predict', $body) for @socks;
	# the worker takes them in any order: the first answer (after run 2's 2s)
	# is the fault's; readiness is asked while run 3 takes its 2s
	IO::Select->new(@socks)->can_read(30) or die 'no answer in 30s';
	my $ready = ka_request($ka, 'GET /v2/health/ready');
	is($ready->{status}, 503, 'readiness answers 503 once the model is dead');
	my @r = map { read_reply($_) } @socks;
	is(scalar(grep { $_ && $_->{status} == 500 } @r), 3, 'the faulting request and the two queued behind it get 500');
	is(scalar(grep { $_ && $_->{body} =~ /cudaErrorIllegalAddress \(injected\)/ } @r), 3, 'each names the CUDA error');
	is(scalar(grep { $_ && $_->{body} =~ /the CUDA context is lost/ } @r), 2,
		'the two after the fault say the context is lost');
	my $status = stop_proc($pid, 0, 30);
	ok(defined $status, 'the worker exits on its own');
	is(($status // 0) >> 8, 3, 'with status 3');
	like(slurp($log), qr/\[error\].*the model is dead \(cuda: .*cudaErrorIllegalAddress.*\): answering what is queued/,
		'the log says the model is dead and why');
	like(slurp($log), qr/exiting 3: the model is dead/, 'and that it exits 3');
}

# ---- a sticky error during the warmup: never ready, exits non-zero ----
{
	my $port = free_port();
	my $log = tmpdir() . "/worker-warm-$port.log";
	my $pid = start_proc(name => "worker-warm", log => $log, env => { WAKEGATE_WORKER_FAULT => 'sticky:1' },
		cmd => [bin('wakegate-worker'), '--model', $model, '--listen', "127.0.0.1:$port", '--device', 'cpu']);
	my $status = stop_proc($pid, 0, 30);
	isnt(($status // 0) >> 8, 0, 'a worker whose warmup meets a sticky error exits non-zero');
	like(slurp($log), qr/warmup failed: cuda: .*cudaErrorIllegalAddress/, 'saying why');
}

# ---- a plan it cannot read is reported, not silently ignored ----
{
	my ($pid, $port, $log) = faulty_worker('sometimes');
	like(slurp($log), qr/WAKEGATE_WORKER_FAULT: "sometimes" is not transient:N, sticky:N or slow:N; ignored/,
		'an unreadable WAKEGATE_WORKER_FAULT is reported');
	is(stop_proc($pid, 'TERM', 30), 0, 'and the worker serves as usual');
}

done_testing();
