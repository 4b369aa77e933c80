# ops_cuda.cu's host code without a GPU: the worker and cuda-bench built over
# a fake CUDA runtime (gpu-worker/cuda-fake.cc: device memory in host memory,
# the kernels run by the emulation with all its checks, the runtime's
# last-error and sticky-error rules, faults from WAKEGATE_FAKE_CUDA). This is
# the real selection, self-test, staging, sleep/wake and error handling code;
# only the runtime under it is fake.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use JSON::PP;
use WG;
use WGWorker;

my $model = src('models/digits.safetensors');
my $example = slurp(src('models/example.json'));
my $body = encode_json({ input => [[(0.5) x 64]] });

# Runs a program to completion with WAKEGATE_FAKE_CUDA; returns (exit code, stdout+stderr).
sub run_fake {
	my ($fake, @cmd) = @_;
	local $ENV{WAKEGATE_FAKE_CUDA} = $fake;
	my $o = `@cmd 2>&1`;
	return ($? >> 8, $o);
}

# Starts the fake-CUDA worker; returns (pid, port, log) once it is ready, or
# (pid, port, log) without waiting when $wait is 0.
sub fake_worker {
	my ($fake, $wait, @flags) = @_;
	my $port = free_port();
	my $log = tmpdir() . "/fake-$port.log";
	my $pid = start_proc(name => "fake-$port", log => $log, env => { WAKEGATE_FAKE_CUDA => $fake },
		cmd => [bin('gpu-worker/wakegate-worker-fakecuda'), '--model', $model,
			'--listen', "127.0.0.1:$port", @flags]);
	if ($wait) {
		wait_http("http://127.0.0.1:$port/v2/health/ready", 60) or die "not ready:\n" . slurp($log);
	}
	return ($pid, $port, $log);
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

sub result_of { my ($r) = @_; return (eval { decode_json($r->{content}) } // {})->{result} }

my $bench = bin('bench/cuda-bench-fakecuda');

# ---- cuda-bench over the fake runtime ----
my ($code, $out) = run_fake('', $bench, 'probe');
is($code, 0, 'probe: a (fake) device that passes the self-test');
like($out, qr/^gpu: cuda:0 \(wakegate fake CUDA device, sm_86\)$/m, 'named with its compute capability');
($code, $out) = run_fake('nodevice', $bench, 'probe');
is($code, 77, 'no device: exit 77');
like($out, qr/^no GPU: no CUDA device: cudaErrorNoDevice/m, 'saying so');
($code, $out) = run_fake('nokernel', $bench, 'probe');
is($code, 77, 'a device the build has no code for fails the self-test');
like($out, qr/self-test on cuda:0 \(wakegate fake CUDA device, sm_86\) failed: cuda: dense kernel: cudaErrorNoKernelImageForDevice/,
	'naming the launch and the error');

($code, $out) = run_fake('', $bench, 'sleep', 64);
is($code, 0, 'sleep/wake cycle passes') or diag($out);
like($out, qr/^sleep: level 1 took \S+ ms; the net holds 0 bytes on the device$/m, 'asleep, the net holds no device memory');
like($out, qr/^ok   sleep: a run while asleep fails: cuda: the model is asleep/m, 'a run while asleep fails');
like($out, qr/^ok   sleep: outputs after the wake are bit-identical$/m, 'outputs after the wake are the same bits');
like($out, qr/^ok   sleep: freed \S+ MiB of device memory/m, 'cudaMemGetInfo shows the memory freed');
unlike($out, qr/kernel-emu:/, 'the emulation found nothing in the kernels');

($code, $out) = run_fake('', $bench, 'compare', 'quick');
is($code, 0, 'CUDA (fake) agrees with the CPU on the synthetic networks') or diag($out);
unlike($out, qr/^FAIL/m, 'in every case');

# ---- the worker: selection and the self-test ----
{
	my ($pid, $port, $log) = fake_worker('', 1, '--device', 'auto');
	like(slurp($log), qr/device: cuda:0 \(wakegate fake CUDA device, sm_86\) \(self-test passed; dense products: kernels\)/,
		'--device auto picks the device once the self-test passed');
	my $gpu = result_of(http_post("http://127.0.0.1:$port/predict", $example));
	my ($cpid, $cport) = fake_worker('', 1, '--device', 'cpu');
	my $cpu = result_of(http_post("http://127.0.0.1:$cport/predict", $example));
	ok($gpu && $cpu && @{ $gpu->[0] } == 10, 'both devices answer /predict');
	my $worst = 0;
	for my $i (0 .. 9) { my $d = abs($gpu->[0][$i] - $cpu->[0][$i]); $worst = $d if $d > $worst }
	cmp_ok($worst, '<=', 1e-5, 'and agree within 1e-5');
	stop_proc($_, 'TERM', 30) for $pid, $cpid;
	unlike(slurp($log), qr/kernel-emu:/, 'the emulation found nothing while serving');
}
{
	my ($pid, $port, $log) = fake_worker('nokernel', 1, '--device', 'auto');
	like(slurp($log), qr/\[warn\].*device: cpu \(--device auto: CUDA failed: self-test on cuda:0 .* cudaErrorNoKernelImageForDevice/,
		'--device auto falls back to the CPU when the self-test fails, with the reason');
	is(post_json("http://127.0.0.1:$port/predict", $body)->{status}, 200, 'and serves on the CPU');
	stop_proc($pid, 'TERM', 30);
	($code, $out) = run_fake('nokernel', bin('gpu-worker/wakegate-worker-fakecuda'), '--model', $model,
		'--listen', '127.0.0.1:0', '--device', 'cuda');
	is($code, 1, '--device cuda exits 1 when the self-test fails');
	like($out, qr/--device cuda: self-test on cuda:0 .* failed: cuda: dense kernel: cudaErrorNoKernelImageForDevice/,
		'saying why');
	($code, $out) = run_fake('', bin('gpu-worker/wakegate-worker-fakecuda'), '--model', $model,
		'--listen', '127.0.0.1:0', '--device', 'cuda:1');
	is($code, 1, '--device cuda:1 with one device exits 1');
	like($out, qr/--device cuda:1: cuda: no device cuda:1 \(1 visible; CUDA_VISIBLE_DEVICES=/, 'naming what is visible');
}

# ---- the worker: errors through the real error handling ----
# digits is 3 launches a run (dense+relu fused, dense, softmax): the self-test
# is launches 1-3, the warmup 4-6, the first request 7-9, the second 10-12.
{
	my ($pid, $port, $log) = fake_worker('transient:10', 1, '--device', 'cuda', '--max-batch', 1);
	my $url = "http://127.0.0.1:$port/predict";
	is(post_json($url, $body)->{status}, 200, 'transient: the first request works');
	my $r = post_json($url, $body);
	is($r->{status}, 500, 'a failed launch fails its request');
	like(error_of($r), qr/^inference failed: cuda: dense kernel: cudaErrorLaunchOutOfResources/, 'naming it');
	$r = post_json($url, $body);
	is($r->{status}, 200, 'the next request works: ops_cuda read the error back, so it is not reported again');
	is(http_get("http://127.0.0.1:$port/v2/health/ready")->{status}, 200, 'and readiness stays 200');
	is(stop_proc($pid, 'TERM', 30), 0, 'the worker exits 0 on SIGTERM');
}
{
	# the faulting run (run 3) also takes 2s longer, so that the requests sent
	# behind it are queued before the worker stops reading
	local $ENV{WAKEGATE_WORKER_FAULT} = 'slow:3';
	my ($pid, $port, $log) = fake_worker('sticky:10', 1, '--device', 'cuda', '--max-batch', 1);
	my $url = "http://127.0.0.1:$port/predict";
	is(post_json($url, $body)->{status}, 200, 'sticky: the first request works');
	# all three connections accepted first: the first reply makes the worker stop listening
	my @socks = map { accepted_socket($port) } 1 .. 3;
	post_on($_, '/predict', $body) for @socks;
	my @r = map { read_reply($_) } @socks;
	is(scalar(grep { $_ && $_->{status} == 500 } @r), 3, 'the faulting request and those queued behind it get 500');
	# the worker takes them in any order: one meets the fault, two the dead context
	is(scalar(grep { $_ && $_->{body} =~ /cudaErrorIllegalAddress/ } @r), 3, 'each names the sticky error');
	is(scalar(grep { $_ && $_->{body} =~ /the CUDA context is lost/ } @r), 2, 'the two after it say the context is lost');
	my $status = stop_proc($pid, 0, 30);
	is(($status // 0) >> 8, 3, 'the worker exits 3 on its own');
	like(slurp($log), qr/the model is dead \(cuda: .*cudaErrorIllegalAddress/, 'saying the model is dead and why');
}

done_testing();
