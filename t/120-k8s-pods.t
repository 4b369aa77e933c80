# launch kubernetes ... service=: the Service's pods are the upstream's
# replicas and the gateway scales the Deployment 0..N on its own load.
# The API server here is a STAND-IN (t/lib/fake-kube.pl: HTTPS, bearer token,
# the scale subresource, EndpointSlice list and watch with resourceVersions,
# 409), whose pods are real wakegate-worker processes on loopback ports,
# started 0.5s after a scale up and SIGTERMed (newest first) after being marked
# terminating on a scale down.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use FakeKube;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

if (my $why = kube_skip_reason()) { plan skip_all => $why }

my $k = kube_start(pods => 6, start_delay => 0.5);
my ($body, $label) = digits_input(5);
my $bodyf = tmpdir() . '/sample.json';
spew($bodyf, $body);

my ($text, $port, $admin) = gw_conf(upstream => 'replicas min=0 max=3; max_conns 2; idle_timeout 5s; '
	. 'scale_down_cooldown 2s; stop_grace 5s; hold 100 timeout=60s; warmup count=2;');
$text =~ s{launch exec "[^\n]*";}{launch kubernetes deployment=ml/digits service=digits api=$k->{api} token_file=$k->{token_file} ca=$k->{ca};} or die;
my $g = gw_start(conf => $text, port => $port, admin => $admin);

# n requests at once through curl --parallel, in the background; returns a sub that waits for their codes
sub burst {
	my ($n) = @_;
	my $out = tmpdir() . "/codes-" . int(rand(1e9));
	my @args;
	push @args, '-s', '--max-time', '90', '-w', '%{http_code} ', '-o', '/dev/null', '-H', 'Content-Type: application/json',
		'--data-binary', "\@$bodyf", "$g->{url}/predict", '--next' for 1 .. $n;
	pop @args;
	my $pid = fork // die;
	if (!$pid) {
		open STDOUT, '>', $out; open STDERR, '>', '/dev/null';
		{ exec 'curl', '-s', '--parallel', '--parallel-immediate', '--parallel-max', $n, @args }
		POSIX::_exit(127);
	}
	return sub { waitpid($pid, 0); return [ split ' ', slurp($out) ] };
}
sub patches { return kube_patches($k) }
sub ok_patches { return [ map { $_->[1] } grep { $_->[0] == 200 } @{ patches() } ] }

sleep 1;
is_deeply(patches(), [], 'an idle upstream at start sends no PATCH (nothing known, nothing changed)');

# 1. a burst at a cold upstream: 0 -> 1 -> N as held requests pile up
my $first = burst(1);
ok(wait_until(sub { @{ ok_patches() } >= 1 }, 10), 'the first request makes the gateway PATCH the scale');
is(ok_patches()->[0], 1, 'to 1 replica');
my $rest = burst(9);
my @codes = (@{ $first->() }, @{ $rest->() });
is(scalar(grep { $_ eq '200' } @codes), 10, 'every request of the burst is answered 200') or diag "@codes";
my @up = @{ ok_patches() };
is($up[-1], 3, 'held requests piling up scaled the Deployment to replicas max=3') or diag "@up";
ok(!grep({ $up[$_] <= $up[$_ - 1] } 1 .. $#up), 'going up only, one PATCH per change: ' . join(' -> ', 0, @up));
ok(wait_until(sub { 3 == grep { $_->{state} eq 'READY' } @{ gw_status($g)->{upstreams}{digits}{replicas} } }, 15),
	'the 3 pods become 3 READY replicas');
my $log = gw_log($g);
my %bound = map { $_ => 1 } $log =~ /BOOTING \(pod (digits-\S+) ready at /g;
is(scalar(keys %bound), 3, 'each of the 3 pods was bound to a replica slot when its endpoint got ready');
my $warmed = () = $log =~ /WARMING -> READY/g;
is($warmed, 3, 'and each went through the gateway\'s own warmup before READY');
like($log, qr/STOPPED -> BOOTING \(pod \S+ ready at http:\/\/127\.0\.0\.1:\d+\) cause=endpoint/, 'with the cause endpoint');
my $st = gw_status($g)->{upstreams}{digits};
is($st->{kubernetes}{replicas_patched}, 3, '/status shows the count the API server accepted');
is(scalar(keys %{ { map { $_->{url} => 1 } grep { $_->{state} eq 'READY' } @{ $st->{replicas} } } }), 3,
	'each at its own pod\'s address');

# 2. scale-down waits for the window; a 409 is retried after its Retry-After
kube_control($k, 'conflict', 1);
my ($p3) = grep { $_->[0] == 200 && $_->[1] == 3 } @{ patches() };
ok(wait_until(sub { grep { $_->[1] == 1 && $_->[2] > $p3->[2] } @{ patches() } }, 20), 'once the burst is over, the gateway scales down to 1');
my @p1 = grep { $_->[1] == 1 && $_->[2] > $p3->[2] } @{ patches() };
cmp_ok($p1[0][2] - $p3->[2], '>=', 1.9, 'not before scale_down_cooldown 2s after the count went up');
is($p1[0][0], 409, 'the API server answered that PATCH 409 Conflict');
ok(wait_until(sub { grep { $_->[0] == 200 && $_->[1] == 1 && $_->[2] > $p3->[2] } @{ patches() } }, 10), 'and the gateway sent it again');
my ($ok1) = grep { $_->[0] == 200 && $_->[1] == 1 && $_->[2] > $p3->[2] } @{ patches() };
cmp_ok($ok1->[2] - $p1[0][2], '>=', 0.9, 'after the 1s of Retry-After');
ok(wait_until(sub { 1 == grep { $_->{state} ne 'STOPPED' } @{ gw_status($g)->{upstreams}{digits}{replicas} } }, 15),
	'the 2 pods Kubernetes terminated are drained and their slots STOPPED');
like(gw_log($g), qr/READY -> DRAINING \(pod digits-\S+ terminating\) cause=endpoint/, 'drained because the endpoint said terminating');
my @ev = @{ kube_events($k) };
my @term = map { $_->{pod} } grep { $_->{what} =~ /^terminating/ } @ev;
my @made = map { $_->{pod} } grep { $_->{what} eq 'created' } @ev;
is_deeply([ sort @term ], [ sort @made[1, 2] ], 'the stand-in, as a ReplicaSet, took the 2 newest pods');

# 3. idle: to 0 after idle_timeout
ok(wait_until(sub { ok_patches()->[-1] == 0 }, 20), 'after idle_timeout the Deployment is scaled to 0');
ok(wait_until(sub { !grep { $_->{state} ne 'STOPPED' } @{ gw_status($g)->{upstreams}{digits}{replicas} } }, 15),
	'and every slot is STOPPED');
my $cost = gw_status($g)->{upstreams}{digits}{cost};
is($cost->{runs}, 3, 'the cost account has one run per pod, from its endpoint bound to its slot drained');
cmp_ok($cost->{gpu_seconds}, '>', 0, "billed for the time they served ($cost->{gpu_seconds}s)");
my @all = map { "$_->[0]:$_->[1]" } @{ patches() };
is_deeply(\@all, [ map({ "200:$_" } @up), '409:1', '200:1', '200:0' ], 'the whole series of PATCHes: ' . join(' ', @all));
ok(wait_until(sub { my %last; $last{ $_->{pod} } = $_->{what} for grep { $_->{pod} } @{ kube_events($k) };
	!grep { $_ ne 'deleted' } values %last }, 15), 'every pod is gone (SIGTERMed, exited, its endpoint deleted)');
sleep 1;
is(scalar(@{ patches() }), scalar(@all), 'and nothing more is sent while idle');
my $t0 = patches()->[0][2];
diag('patch sequence (HTTP code:replicas @ seconds after the first): '
	. join(' ', map { sprintf('%d:%d@%.1fs', $_->[0], $_->[1], $_->[2] - $t0) } @{ patches() }));

stop_proc($g->{pid}, 'TERM', 30);
stop_proc($k->{pid}, 'TERM', 10);
done_testing;
