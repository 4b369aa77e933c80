# 200 concurrent requests at a cold upstream: all answered, one worker
# started, and the worker saw its warmup before any client request.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;

my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 60s; max_conns 8; hold 1000 timeout=60s; warmup count=3;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my $body = tmpdir() . '/sample.json';
my ($json) = digits_input(3);
spew($body, $json);

my @args;
push @args, '-s', '--max-time', '120', '-w', '%{http_code}\n', '-o', '/dev/null', '-H', 'Content-Type: application/json', '--data-binary', "\@$body",
	"$g->{url}/predict", '--next' for 1 .. 200;
pop @args;
# curl prints a progress meter for --parallel even with -s: keep it out of the TAP
my $cpid = open(my $c, '-|') // die "fork: $!";
if (!$cpid) {
	open STDERR, '>', '/dev/null';
	exec 'curl', '-s', '--parallel', '--parallel-immediate', '--parallel-max', '200', @args;
	die "curl: $!";
}
my @codes = <$c>;
close $c;
chomp @codes;
is(scalar(@codes), 200, 'curl sent 200 requests at once');
is(scalar(grep { $_ eq '200' } @codes), 200, 'all 200 concurrent requests at a cold upstream are answered 200');

my $s = gw_status($g)->{upstreams}{digits};
is($s->{cold_starts}, 1, 'the worker was started once');
my @workers = grep { (split /\0/, slurp("/proc/$_/cmdline"))[0] =~ /wakegate-worker$/ } gw_children($g->{pid});
is(scalar(@workers), 1, 'exactly one worker process runs');

my ($wurl) = $s->{url} =~ m{^(http://[\d.:]+)$};
my $m = WG::http_get("$wurl/metrics")->{content} // '';
my %n;
while ($m =~ /^wakegate_worker_requests_total\{endpoint="([^"]+)",code="200"\} (\d+)$/mg) { $n{$1} += $2 }
is($n{infer} // 0, 3, 'the worker saw exactly the 3 warmup requests on its v2 infer endpoint');
is($n{predict} // 0, 200, 'and the 200 client requests on /predict');
my $log = gw_log($g);
ok(index($log, 'WARMING -> READY') >= 0, 'the replica went READY only after WARMING');

done_testing();
