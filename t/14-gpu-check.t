# bench/gpu-check off a GPU: it builds what it would measure (model core,
# model-check, cuda-bench, the worker) with gcc and nvcc alone, then says
# clearly that there is no GPU and exits 77 without measuring anything; with
# no nvcc it says so and exits 77 too. On a machine with a GPU the first part
# runs the whole check instead and must pass.
use strict;
use warnings;
use Test::More;
use WG;

my $script = src('bench/gpu-check');

# Runs gpu-check with extra environment; returns (exit code, output).
sub gpu_check {
	my (%env) = @_;
	my $dir = tmpdir() . '/gc-' . int(rand(1e9));
	local @ENV{ keys %env } = values %env;
	my $o = `$script --out $dir 2>&1`;
	return ($? >> 8, $o, $dir);
}

my ($code, $out, $dir) = gpu_check(NVCC => '/nonexistent/nvcc');
is($code, 77, 'without nvcc gpu-check exits 77');
like($out, qr/^gpu-check: no GPU toolkit: no nvcc \(set NVCC or CUDA_HOME\): nothing built or measured$/m,
	'and says so');

SKIP: {
	my $nvcc = $ENV{NVCC} // '/usr/local/cuda/bin/nvcc';
	skip 'no nvcc here to build with', 7 unless -x $nvcc;
	# one architecture keeps the build short; the arch list is configure's business (t/13)
	($code, $out, $dir) = gpu_check(CUDA_ARCHS => '75', NVCC => $nvcc);
	like($out, qr/^gpu-check: architectures: sm_75; PTX compute_75$/m, 'CUDA_ARCHS picks the architectures');
	like($out, qr/^gpu-check: ok   build the model core, model-check and cuda-bench$/m,
		'it builds the model core and its programs with gcc and nvcc alone');
	ok(-x "$dir/build/model-check" && -x "$dir/build/cuda-bench", 'model-check and cuda-bench are there');
	like($out, qr/^gpu-check: (ok   build wakegate-worker|skip the worker: no libevent .*)$/m,
		'the worker is built, or skipped saying why');
	if ($code == 77) {
		like($out, qr/^gpu-check: no GPU: .+: nothing measured$/m, 'off a GPU it says "no GPU" and why');
		unlike($out, qr/^gpu-check: (ok   |FAIL )(digits|synthetic|cuBLAS|level-1)/m, 'and measures nothing');
		like(slurp("$dir/summary.txt"), qr/no GPU/, 'the summary file says so too');
	} else {
		is($code, 0, 'on a GPU every check passes') or diag($out);
		like($out, qr/^gpu-check: ok   level-1 sleep\/wake with cudaMemGetInfo$/m, 'the sleep/wake cycle ran');
		like($out, qr/^gpu-check: ok   cuBLAS vs the hand kernels$/m, 'cuBLAS and the kernels were measured');
		like($out, qr/^gpu-check: all checks passed$/m, 'and it says so');
	}
}

($code, $out) = (system("$script --bogus >/dev/null 2>&1") >> 8, '');
is($code, 2, 'an unknown argument exits 2');

done_testing();
