# The CUDA kernels, run on the host by gpu-worker/kernel-emu: every thread of
# every block, real barriers, each global and shared access checked against
# its allocation, races between barriers, outputs written exactly as often as
# promised, and the results compared with the CPU path. No GPU or nvcc is
# needed. Builds of the same harness over kernels with a planted bug show that
# each kind of check catches what it is there for.
use strict;
use warnings;
use Test::More;
use WG;

# Runs one build of the harness; returns (exit code, stdout, stderr).
sub emu {
	my ($name) = @_;
	my $dir = tmpdir();
	my $pid = fork // die "fork: $!";
	if (!$pid) {
		open STDOUT, '>', "$dir/$name.out" or die;
		open STDERR, '>', "$dir/$name.err" or die;
		exec bin("gpu-worker/$name") or exit 127;
	}
	waitpid($pid, 0);
	return ($? >> 8, scalar slurp("$dir/$name.out"), scalar slurp("$dir/$name.err"));
}

my ($code, $out, $err) = emu('kernel-emu');
is($code, 0, 'the kernels pass the emulation') or diag($out . $err);
like($out, qr/^kernel-emu: (\d+) cases, 0 failed$/m, 'and it says every case passed');
is($err, '', 'with no finding on stderr');
for my $b (1, 7, 16, 17, 33, 64, 100) {
	like($out, qr/^ok   digits \S+, batch $b: /m, "the digits shape at batch $b agrees with the CPU path");
}
like($out, qr/^ok   odd 37-53-relu-19-softmax, batch 100: /m, 'odd layer sizes (37, 53, 19) at batch 100');
like($out, qr/^ok   odd via the gemm path \(bias\+relu kernel\), batch 17: /m,
	'the bias+activation kernel after a (host) cuBLAS product');
like($out, qr/^ok   wider softmax rows of 4099, batch 3: /m, 'softmax rows wider than a block (4099)');
like($out, qr/^ok   softmax then a lone relu, 5-300-3, batch 33: /m, 'the relu kernel on its own');

($code, $out, $err) = emu('kernel-emu-bug1');
is($code, 1, 'a removed barrier in the dense kernel fails the emulation');
like($err, qr/ops_dense_kernel .*race: writes xs\[\d+\], read by thread \d+ of block \d+ with no barrier between/,
	'as a race on the shared tile');

($code, $out, $err) = emu('kernel-emu-bug2');
is($code, 1, 'a transposed shared-memory index fails it');
like($err, qr/^kernel-emu: digits \S+ batch 1: differs from the CPU path by /m, 'as results that differ from the CPU');

($code, $out, $err) = emu('kernel-emu-bug3');
is($code, 1, 'a removed barrier in softmax (reusing the reduction buffer) fails it');
like($err, qr/ops_softmax_kernel .*race: \w+ dynamic shared\[0\]/, 'as a race on the shared reduction buffer');

($code, $out, $err) = emu('kernel-emu-bug4');
is($code, 1, 'a missing bounds guard fails it');
like($err, qr/ops_dense_kernel .*read of b\[\d+\], outside its \d+ elements/, 'as a read outside the bias');
like($err, qr/ops_dense_kernel .*act\d\[\d+\] written 2 times \(the kernel promises 1 to 1\)/,
	'and outputs written twice');

done_testing();
