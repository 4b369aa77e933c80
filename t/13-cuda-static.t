# A CUDA build links the CUDA runtime statically: the binaries name no
# libcudart.so, so that one build starts on a host without the toolkit
# (--device cpu, or --device auto falling back to the CPU with the reason in
# the log) and uses the GPU where the driver is.
use strict;
use warnings;
use Test::More;
use JSON::PP;
use WG;
use WGWorker;

my $config = slurp(($ENV{WG_BUILD} // src('.')) . '/config.h');
plan skip_all => 'this build has no CUDA (./configure found no toolkit)' unless $config =~ /^#define HAVE_CUDA 1$/m;
plan skip_all => 'readelf is not installed (binutils)' unless `sh -c 'command -v readelf'`;

for my $prog ('wakegate-worker', 'model-check') {
	my $dyn = `readelf -d ${\ bin($prog)} 2>&1`;
	like($dyn, qr/\(NEEDED\)/, "$prog: readelf lists its shared libraries");
	unlike($dyn, qr/NEEDED.*libcudart/, "$prog: libcudart.so is not among them (the runtime is linked in)");
	unlike($dyn, qr/NEEDED.*lib(cublas|cuda)\b/, "$prog: nor cuBLAS or the driver (opened at run time)");
}

# The worker runs with no library path at all and answers on the CPU.
{
	local $ENV{LD_LIBRARY_PATH} = '';
	my ($pid, $port, $log) = worker_ready('--device', 'cpu');
	my $r = post_json("http://127.0.0.1:$port/predict", encode_json({ input => [[(0) x 64]] }));
	is($r->{status}, 200, 'with LD_LIBRARY_PATH empty, --device cpu serves');
	is(stop_proc($pid, 'TERM', 30), 0, 'and exits 0');
}

# --device auto: CUDA only when a device passes the self-test; here, where
# there may be no driver, the log says which and why.
{
	local $ENV{LD_LIBRARY_PATH} = '';
	my ($pid, $port, $log) = worker_ready('--device', 'auto');
	my $l = slurp($log);
	like($l, qr/device: (cpu \(--device auto: .+\)|cuda:\d+ \(.*\) \(self-test passed; dense products: \w+\))/,
		'--device auto logs the device it chose, and why when it is the CPU');
	is(stop_proc($pid, 'TERM', 30), 0, 'and exits 0');
}

done_testing();
