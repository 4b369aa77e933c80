# The admin API: an operator wakes an upstream ahead of traffic, or puts it
# to sleep now instead of after idle_timeout.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;

my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 60s; hold 100 timeout=30s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my $api = "$g->{admin_url}/upstreams";
my $state = sub { gw_status($g)->{upstreams}{digits}{state} // '' };

is($state->(), 'STOPPED', 'the upstream starts STOPPED');
my $r = WG::http_post("$api/digits/wake", '');
is($r->{status}, 202, 'POST /upstreams/digits/wake is accepted');
like($r->{content}, qr/"state":\s*"(BOOTING|WARMING|READY)"/, 'the answer names the upstream waking');
ok(wait_until(sub { $state->() eq 'READY' }, 30), 'the upstream becomes READY with no request');
ok(scalar(gw_children($g->{pid})) >= 1, 'a worker process runs');

my ($body) = digits_input(0);
$r = gw_predict($g, $body);
is($r->{status}, 200, 'a request after the wake is answered');
ok(!exists $r->{headers}{'x-wakegate-cold'}, 'it did not wait for a cold start');

$r = WG::http_post("$api/digits/sleep", '');
is($r->{status}, 202, 'POST /upstreams/digits/sleep is accepted');
ok(wait_until(sub { $state->() eq 'STOPPED' && !gw_children($g->{pid}) }, 30),
	'the worker is stopped long before idle_timeout');
like(gw_log($g), qr/upstream "digits": put to sleep by the admin API/, 'the error log says who stopped it');

$r = WG::http_post("$api/nope/wake", '');
is($r->{status}, 404, 'an unknown upstream is 404');
like($r->{content}, qr/no upstream \\?"nope\\?"/, 'the 404 names the upstream');
$r = WG::http_get("$api/digits/wake");
is($r->{status}, 405, 'GET on the admin action is 405');
$r = WG::http_post("$api/digits/explode", '');
is($r->{status}, 404, 'an unknown action is 404');

$r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'after a sleep the next request wakes the upstream again');
like($r->{headers}{'x-wakegate-cold'} // '', qr/s$/, 'and it waited for a cold start');

done_testing();
