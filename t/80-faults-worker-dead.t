# A worker whose CUDA context is lost (a sticky error: wakegate-worker(8),
# EXIT STATUS 3) behind the gateway: the request that met the fault gets the
# worker's 500, the worker exits 3, and the next request is held while the
# gateway's crash path starts a fresh worker, then answered by it.
# WAKEGATE_WORKER_FAULT injects the fault on the CPU path, so no GPU is needed.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;

my ($body, $label) = digits_input(3);

# runs: 1 is the worker's own warmup, 2 the first request, 3 the second
my $launch = 'WAKEGATE_WORKER_FAULT=sticky:3 exec ' . worker_cmd() . ' --max-batch 1';
my ($text, $port, $admin) = gw_conf(launch => $launch, upstream => 'warmup off; hold 10 timeout=60s; stop_grace 1s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub state_of { return gw_status($g)->{upstreams}{digits}{state} // '' }

my $r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'the first request is answered (a cold start)');
is(argmax_of($r->{content}), $label, 'with the right digit');
my @first = gw_children($g->{pid});
ok(@first >= 1, 'one worker runs');

$r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 500, 'the request that meets the sticky CUDA error gets the worker\'s 500');
like($r->{content}, qr/cudaErrorIllegalAddress/, 'naming the CUDA error');
ok(wait_until(sub { gw_log($g) =~ /exited with status 3/ }, 30), 'the gateway sees the worker exit with status 3')
	or diag(gw_log($g));

$r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'the next request is held and answered by a fresh worker');
is(argmax_of($r->{content}), $label, 'with the right digit');
my @now = gw_children($g->{pid});
ok(@now >= 1 && !grep({ my $p = $_; grep { $_ == $p } @first } @now), 'by a new process');
is(state_of(), 'READY', 'the upstream is READY again');

done_testing();
