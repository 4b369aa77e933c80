# launch kubernetes ... service= with two gateways on one Redis: one of them
# (the Redis lock) writes the Deployment's count, from the sum of both
# gateways' held and in-flight requests; the series of PATCHes the API server
# sees is one, as if there were one gateway; when the writer goes, the other
# one takes over from the count last accepted, and its idle timer starts at
# the takeover. The API server is a STAND-IN
# (t/lib/fake-kube.pl), its pods real wakegate-worker processes.
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
system('redis-server --version >/dev/null 2>&1') == 0 or plan skip_all => 'no redis-server';

my ($rport) = start_redis();
my $k = kube_start(pods => 6, start_delay => 1.5);
my ($body, $label) = digits_input(3);
my $bodyf = tmpdir() . '/sample.json';
spew($bodyf, $body);

sub gateway {
	my ($text, $port, $admin) = gw_conf(upstream => 'replicas min=0 max=2; max_conns 4; target_concurrency 4; '
		. 'idle_timeout 5s; scale_down_cooldown 2s; lock_ttl 2s; stop_grace 5s; hold 100 timeout=60s; warmup count=2;',
		extra => "redis 127.0.0.1:$rport prefix=wg122:;");
	$text =~ s{launch exec "[^\n]*";}{launch kubernetes deployment=ml/digits service=digits api=$k->{api} token_file=$k->{token_file} ca=$k->{ca};} or die;
	return gw_start(conf => $text, port => $port, admin => $admin);
}
sub writer { return gw_status($_[0])->{upstreams}{digits}{kubernetes}{count_writer} // '' }
sub patches { return [ map { "$_->[0]:$_->[1]" } @{ kube_patches($k) } ] }
sub scaled { my () = (); my $n = () = gw_log($_[0]) =~ /kubernetes: deployment ml\/digits scaled to/g; return $n }
# requests at once, to the URLs given (one request each), in the background; returns a sub that waits for their codes
sub burst {
	my (@urls) = @_;
	my $out = tmpdir() . "/codes-" . int(rand(1e9));
	my @args;
	push @args, '-s', '--max-time', '90', '-w', '%{http_code} ', '-o', '/dev/null', '-H', 'Content-Type: application/json',
		'--data-binary', "\@$bodyf", "$_/predict", '--next' for @urls;
	pop @args;
	my $pid = fork // die;
	if (!$pid) {
		open STDOUT, '>', $out; open STDERR, '>', '/dev/null';
		{ exec 'curl', '-s', '--parallel', '--parallel-immediate', '--parallel-max', scalar(@urls), @args }
		POSIX::_exit(127);
	}
	return sub { waitpid($pid, 0); return [ split ' ', slurp($out) ] };
}

my $a = gateway();
ok(wait_until(sub { writer($a) eq 'this gateway (lock)' }, 10), 'the first gateway takes the lock of the count');
my $b = gateway();
ok(wait_until(sub { writer($b) eq 'another gateway' }, 10), 'the second one sees that another gateway writes it');

# one request at B, the gateway that does not write: A scales on B's load
my $first = burst($b->{url});
ok(wait_until(sub { @{ patches() } >= 1 }, 10), 'a request held at the other gateway makes the writer PATCH');
is_deeply(patches(), ['200:1'], 'to 1');
is(scaled($a), 1, 'the writer sent it') ;
is(scaled($b), 0, 'the other one sent nothing');

# 8 more at once, 4 at each, while the pod starts: 9 held over target_concurrency 4 -> 3, capped at max=2
my $rest = burst(($a->{url}) x 4, ($b->{url}) x 4);
my @codes = (@{ $first->() }, @{ $rest->() });
is(scalar(grep { $_ eq '200' } @codes), 9, 'every request at either gateway is answered 200') or diag "@codes";
is_deeply([ @{ patches() }[0, 1] ], ['200:1', '200:2'], 'the sum of both gateways\' held requests scaled it to 2');

# idle: down to 1 after the cooldown, to 0 after idle_timeout, by the writer alone
ok(wait_until(sub { (patches()->[-1] // '') eq '200:0' }, 25), 'once both are idle the count goes to 0');
is_deeply(patches(), ['200:1', '200:2', '200:1', '200:0'], 'one series of PATCHes for two gateways: 1 2 1 0');
is(scaled($a), 4, 'all sent by the writer');
is(scaled($b), 0, 'none by the other gateway');

# the writer goes: the other takes the lock and goes on from the count last accepted
stop_proc($a->{pid}, 'TERM', 30);
ok(wait_until(sub { writer($b) eq 'this gateway (lock)' }, 10), 'when the writer stops, the other gateway takes the lock');
like(gw_log($b), qr/this gateway writes the Deployment's count now \(last accepted: 0\)/, 'knowing the count last accepted');
sleep 0.5;
is_deeply(patches(), ['200:1', '200:2', '200:1', '200:0'], 'so it sends nothing while that count still holds');
my $r = gw_predict($b, $body, timeout => 60);
is($r->{status}, 200, 'a request at it is answered');
is(patches()->[-1], '200:1', 'after it scaled the Deployment to 1');
is(scaled($b), 1, 'itself');

# a third gateway, with no traffic of its own, takes over a count of 1: it keeps it until idle_timeout
my $c = gateway();
ok(wait_until(sub { writer($c) eq 'another gateway' }, 10), 'a third gateway sees the second one writing');
stop_proc($b->{pid}, 'TERM', 30);
ok(wait_until(sub { writer($c) eq 'this gateway (lock)' }, 10), 'it takes the lock when that one stops');
my $t_take = time;
like(gw_log($c), qr/last accepted: 1\)/, 'knowing the count is 1');
sleep 1.5;
is(patches()->[-1], '200:1', 'its own quiet past is not read as idle: no 0 at once');
ok(wait_until(sub { patches()->[-1] eq '200:0' }, 15), 'the count goes to 0 once idle_timeout passed');
cmp_ok(time - $t_take, '>=', 4.5, 'idle_timeout (5s) counted from the takeover');
diag('patch sequence: ' . join(' ', @{ patches() }));

stop_proc($c->{pid}, 'TERM', 30);
stop_proc($k->{pid}, 'TERM', 10);
done_testing;
