# A cold start: no worker runs until the first request; that request is
# held, then answered by a freshly booted and warmed worker.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;

my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 60s; max_conns 2; hold 100 timeout=30s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);

is(scalar(gw_children($g->{pid})), 0, 'no worker process runs before the first request');
is(gw_status($g)->{upstreams}{digits}{state}, 'STOPPED', '/status shows the upstream STOPPED');

my ($body, $label) = digits_input(0);
my $r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'the first request is held through the cold start and answered 200');
is(argmax_of($r->{content}), $label, 'the answer is the right digit');
like($r->{headers}{'x-wakegate-cold'} // '', qr/^\d+\.\d\ds$/, 'it carries X-Wakegate-Cold with its hold time');
like($r->{headers}{'x-request-id'} // '', qr/\S/, 'it carries an X-Request-Id');
ok(scalar(gw_children($g->{pid})) >= 1, 'a worker process now runs');

my $s = gw_status($g)->{upstreams}{digits};
is($s->{state}, 'READY', '/status shows READY');
is($s->{cold_starts}, 1, '/status counts one cold start');
like($s->{url}, qr{^http://127\.0\.0\.1:\d+$}, '/status shows the replica URL');
ok(defined $s->{boot_seconds}, '/status shows the measured boot time');

$r = gw_predict($g, $body);
is($r->{status}, 200, 'a request to the warm worker is answered');
ok(!exists $r->{headers}{'x-wakegate-cold'}, 'a warm request has no X-Wakegate-Cold header');

my $m = WG::http_get("$g->{admin_url}/metrics");
like($m->{content}, qr/^wakegate_requests_total\{upstream="digits",code="200"\} 2$/m, '/metrics counts the requests by code');
like($m->{content}, qr/^wakegate_cold_starts_total\{upstream="digits"\} 1$/m, '/metrics counts the cold start');
like($m->{content}, qr/^wakegate_replica_state\{upstream="digits",replica="0",state="READY"\} 1$/m, '/metrics shows the replica READY');

my $acc = slurp($g->{access});
like($acc, qr/"POST \/predict HTTP\/1.1" 200 \d+ upstream=digits replica=http:\/\/127.0.0.1:\d+ hold_ms=\d+ upstream_ms=[\d.]+ rid=\S+/,
	'the access log has a line per request with upstream, replica, hold and upstream time');
like(gw_log($g), qr/upstream "digits" replica 0: BOOTING -> WARMING \(health ok after [\d.]+s\)/, 'the error log shows each state move');

# a second gateway, cold, gets a burst of concurrent requests during boot
my ($text2, $port2, $admin2) = gw_conf(upstream => 'idle_timeout 60s; max_conns 2; hold 100 timeout=30s;');
my $g2 = gw_start(conf => $text2, port => $port2, admin => $admin2);
my @kids;
for my $i (0 .. 7) {
	my $pid = fork // die;
	if ($pid == 0) {
		my ($b, $l) = digits_input($i);
		my $rr = gw_predict($g2, $b, timeout => 60);
		my $ok = $rr->{status} == 200 && argmax_of($rr->{content}) == $l;
		POSIX::_exit($ok ? 0 : 1);
	}
	push @kids, $pid;
}
my $good = 0;
for (@kids) { waitpid($_, 0); $good++ if $? == 0 }
is($good, 8, 'eight concurrent requests during a cold start are all answered correctly');
is(gw_status($g2)->{upstreams}{digits}{cold_starts}, 1, 'they share a single cold start');

done_testing;
