# A long stream counts as activity: the worker is not stopped under a
# stream that outlasts idle_timeout, and the stream arrives whole.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my ($text, $port, $admin) = gw_conf(launch => backend_cmd(),
	upstream => 'warmup off; idle_timeout 1s; stop_grace 1s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);

my $t0 = time;
my $r = WG::http_get("$g->{url}/sse?n=12&ms=250", timeout => 60);
is($r->{status}, 200, 'a 3s event stream through the gateway is answered 200');
my @events = $r->{content} =~ /^data: event (\d+)$/mg;
is(scalar(@events), 12, 'all 12 events arrive, though the stream outlasts idle_timeout');
is_deeply(\@events, [1 .. 12], 'in order');
ok(time - $t0 >= 2.5, 'the stream really took its time');
is(gw_status($g)->{upstreams}{digits}{cold_starts}, 1, 'the worker was not stopped and started again under it');
ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 30), 'after the stream ends it goes idle and stops');

done_testing;
