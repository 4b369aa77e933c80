# launch kubernetes ... service=: endpoints that appear and disappear under
# load lose no request; a broken watch resumes from its resourceVersion, a
# 410 Gone lists again, an API server that is away leaves the known pods
# serving. The API server is a STAND-IN (t/lib/fake-kube.pl), its pods real
# wakegate-worker processes.
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
my ($body, $label) = digits_input(7);
my $bodyf = tmpdir() . '/sample.json';
spew($bodyf, $body);
my ($text, $port, $admin) = gw_conf(upstream => 'replicas min=2 max=2; max_conns 2; idle_timeout 60s; '
	. 'stop_grace 5s; hold 200 timeout=60s; warmup count=2;');
$text =~ s{launch exec "[^\n]*";}{launch kubernetes deployment=ml/digits service=digits api=$k->{api} token_file=$k->{token_file} ca=$k->{ca};} or die;
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub ready_urls { return sort map { $_->{url} } grep { $_->{state} eq 'READY' } @{ gw_status($g)->{upstreams}{digits}{replicas} } }

ok(wait_until(sub { my @u = ready_urls(); @u == 2 }, 20), 'replicas min=2: the gateway scales to 2 at start and both pods become READY');
is_deeply([ map { "$_->[0]:$_->[1]" } @{ kube_patches($k) } ], ['200:2'], 'with one PATCH');
my @before = ready_urls();

# steady load: 4 clients, each sending requests one after another until told to stop
my $stop = tmpdir() . '/stop-load';
my @clients;
for my $c (1 .. 4) {
	my $out = tmpdir() . "/load-$c";
	my $pid = fork // die;
	if (!$pid) {
		my $h = HTTP::Tiny->new(timeout => 60, keep_alive => 0);
		open my $f, '>', $out or die;
		$f->autoflush(1);
		until (-e $stop) {
			my $r = $h->post("$g->{url}/predict", { content => $body, headers => { 'Content-Type' => 'application/json' } });
			my $d = eval { decode_json($r->{content}) };
			my $p = $d && $d->{result} && $d->{result}[0];
			my $best = 0;
			if ($p) { $p->[$_] > $p->[$best] and $best = $_ for 0 .. $#$p }
			print $f "$r->{status} ", ($p ? $best : -1), "\n";
			sleep 0.02;	# a steady load, not a flood: the machine is shared
		}
		POSIX::_exit(0);	# not exit: the harness's END would stop the gateway and the stand-in
	}
	push @clients, [ $pid, $out ];
}
sub answered { my $n = 0; $n += () = slurp($_->[1]) =~ /\n/g for @clients; return $n }
ok(wait_until(sub { answered() >= 20 }, 20), 'the load runs');

# a pod deleted mid-load: its endpoint goes terminating, then away; the ReplicaSet makes another
kube_control($k, 'delete-pod');
ok(wait_until(sub { gw_log($g) =~ /READY -> DRAINING \(pod digits-\S+ terminating\) cause=endpoint/ }, 10),
	'the deleted pod\'s slot drains as its endpoint says terminating');
ok(wait_until(sub { my @u = ready_urls(); @u == 2 && grep({ my $x = $_; !grep { $_ eq $x } @before } @u) }, 20),
	'its replacement pod becomes READY in a slot');

# the watch breaks: resumed from the last resourceVersion, not listed again
my $lists = sub { scalar grep { $_->{method} eq 'GET' && ($_->{query} // '') !~ /watch=/ } @{ kube_requests($k) } };
my $n0 = $lists->();
kube_control($k, 'break');
my $w0 = scalar grep { ($_->{query} // '') =~ /watch=1/ } @{ kube_requests($k) };
ok(wait_until(sub { (grep { ($_->{query} // '') =~ /watch=1/ } @{ kube_requests($k) }) > $w0 }, 10), 'a broken watch is started again');
my ($last) = grep { ($_->{query} // '') =~ /watch=1/ } reverse @{ kube_requests($k) };
ok(defined $last->{watch} && $last->{watch} ne '', "from the last resourceVersion ($last->{watch})");
is($lists->(), $n0, 'without listing again');

# the history is compacted and the watch breaks: 410 Expired, so the gateway lists again
kube_control($k, 'compact');
sleep 0.2;
kube_control($k, 'break');
ok(wait_until(sub { $lists->() > $n0 }, 10), 'a watch from a compacted resourceVersion (410 Gone) makes the gateway list again');
like(gw_log($g), qr/410 Gone\): listing again/, 'the log says why');

# the same with an API server that answers the stale watch with HTTP 410 itself (a Status body)
my $n1 = $lists->();
kube_control($k, 'gone-status');
kube_control($k, 'compact');
sleep 0.2;
kube_control($k, 'break');
ok(wait_until(sub { $lists->() > $n1 }, 10), 'an HTTP 410 on the watch makes the gateway list again too');
ok((grep { ($_->{code} // 0) == 410 } @{ kube_requests($k) }), 'after the stand-in answered 410');
unlink "$k->{dir}/gone-status";

# the API server goes away for 3s: the known pods keep serving
my $a0 = answered();
kube_control($k, 'down');
sleep 3;
ok(answered() > $a0 + 5, 'while the API server is away, requests are still answered (' . (answered() - $a0) . ')');
my @known = ready_urls();
is(scalar(@known), 2, 'by the 2 known pods');
unlink "$k->{dir}/down";
like(gw_log($g), qr/kubernetes: watch of the endpointslices of service ml\/digits: .*keep serving/, 'the log says the known pods keep serving');
my $l0 = scalar @{ kube_requests($k) };
ok(wait_until(sub { my ($w) = grep { ($_->{query} // '') =~ /watch=1/ } @{ kube_requests($k) }[ $l0 .. $#{ kube_requests($k) } ]; $w }, 15),
	'once it is back, the watch resumes');

spew($stop, '');
waitpid($_->[0], 0) for @clients;
my @lines = map { split /\n/, slurp($_->[1]) } @clients;
cmp_ok(scalar(@lines), '>=', 40, 'the load sent ' . scalar(@lines) . ' requests');
is(scalar(grep { $_ ne "200 $label" } @lines), 0, 'and every one was answered 200 with the right digit: none lost')
	or diag join(', ', grep { $_ ne "200 $label" } @lines), "\n", grep { /error|warn|503|502/ } split /^/, gw_log($g);
is_deeply([ map { "$_->[0]:$_->[1]" } @{ kube_patches($k) } ], ['200:2'], 'the count never changed: no other PATCH');

# a reload that keeps the API server, namespace, Service and Deployment keeps the watch and the count;
# one that names another Service starts afresh (a new list)
my $lists0 = $lists->();
my $conf = slurp($g->{conf});
spew($g->{conf}, $conf =~ s/hold 200 timeout=60s;/hold 300 timeout=60s;/r);
kill 'HUP', $g->{pid};
ok(wait_until(sub { gw_log($g) =~ /reload done/ }, 10), 'SIGHUP reloads the conf');
sleep 0.5;
is($lists->(), $lists0, 'a reload that keeps the kubernetes parameters keeps the watch (no new list)');
is(scalar(my @u = ready_urls()), 2, 'and the 2 pods stay READY');
is(scalar(@{ kube_patches($k) }), 1, 'and sends no PATCH');
spew($g->{conf}, $conf =~ s/service=digits/service=other/r);
kill 'HUP', $g->{pid};
ok(wait_until(sub { (() = gw_log($g) =~ /reload done/g) >= 2 }, 10), 'a second reload names another Service');
ok(wait_until(sub { gw_log($g) =~ /kubernetes: now \S+ ml other digits \(was \S+ ml digits digits\)/ }, 5),
	'the log says the watch starts afresh');
ok(wait_until(sub { (grep { ($_->{query} // '') =~ /service-name%3Dother/ } @{ kube_requests($k) }) }, 10),
	'with a list for the new Service\'s label');

stop_proc($g->{pid}, 'TERM', 30);
stop_proc($k->{pid}, 'TERM', 10);
done_testing;
