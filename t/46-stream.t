# A long stream counts as activity: the worker is not stopped under a
# stream that outlasts idle_timeout, and the stream arrives whole, each event
# as it comes (not buffered until the stream ends).
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my ($text, $port, $admin) = gw_conf(launch => backend_cmd(),
	upstream => 'warmup off; idle_timeout 1s; stop_grace 1s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);

# each event's arrival time, as the client reads it
my $t0 = time;
my ($buf, @events, @at) = ('');
my $r = WG::http(60)->get("$g->{url}/sse?n=12&ms=250", { data_callback => sub {
	$buf .= $_[0];
	while ($buf =~ s/^data: event (\d+)\n\n//) { push @events, $1; push @at, time }
} });
my $t_end = time;
is($r->{status}, 200, 'a 3s event stream through the gateway is answered 200');
is(scalar(@events), 12, 'all 12 events arrive, though the stream outlasts idle_timeout');
is_deeply(\@events, [1 .. 12], 'in order');
ok($t_end - $t0 >= 2.5, 'the stream really took its time');

# streamed, not buffered: the backend sends an event every 250ms, so the
# first reaches the client about 2.75s before the last, and the client sees
# them spread over the stream, not all at its end
diag(sprintf('events at %s s; stream ended at %.2fs', join(' ', map { sprintf '%.2f', $_ - $t0 } @at), $t_end - $t0));
cmp_ok(($at[-1] // 0) - ($at[0] // 0), '>=', 1.5, 'the first event arrives well before the last (events are passed on as they come)');
cmp_ok(scalar(grep { $_ < $t_end - 1 } @at), '>=', 6, 'at least half of the events arrive more than 1s before the stream ends');
is(gw_status($g)->{upstreams}{digits}{cold_starts}, 1, 'the worker was not stopped and started again under it');
ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 30), 'after the stream ends it goes idle and stops');

done_testing;
