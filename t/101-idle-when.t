# idle_timeout bounds WHEN the idle stop comes, not only whether it comes
# (wakegate.conf(5): "A replica with no request in flight and no bytes
# flowing for this long is drained and stopped. Counted from the last
# activity"): never before idle_timeout has passed since the last request,
# and not long after it. t/42 checks that an idle worker stops
# eventually; an idle check that fires at half the time passes there.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);

my $idle = 3;	# seconds; long against the 100 ms tick and the client's own delays
my ($text, $port, $admin) = gw_conf(launch => backend_cmd(),
	upstream => "warmup off; idle_timeout ${idle}s; stop_grace 1s;");
my $g = gw_start(conf => $text, port => $port, admin => $admin);
sub state { return gw_status($g)->{upstreams}{digits}{state} // '' }

my $r = WG::http_get("$g->{url}/wake", timeout => 60);
is($r->{status}, 200, 'a request wakes the backend');
# a second request on a READY replica: the last activity is this one's end
$r = WG::http_get("$g->{url}/last", timeout => 30);
my $t_last = time;	# at or after the gateway's last activity
is($r->{status}, 200, 'a second request is answered warm');
is(state(), 'READY', 'the replica is READY after it');

# /status is on the admin listener: polling it is no activity
my $t_left;
ok(wait_until(sub { state() ne 'READY' ? ($t_left = time) : 0 }, $idle + 20), 'the idle replica leaves READY');
my $gap = ($t_left // 0) - $t_last;
diag(sprintf('idle_timeout %ds: left READY %.2fs after the last request', $idle, $gap));
# the client may note t_last late, never early: the bound below allows 0.5s of that
cmp_ok($gap, '>=', $idle - 0.5, 'not before idle_timeout has passed since the last request');
cmp_ok($gap, '<=', $idle + 4, 'and not long after it');
ok(wait_until(sub { state() eq 'STOPPED' }, 20), 'then it is STOPPED');

# the gateway's own measure, from its clock: the log names the idle time it saw
my ($seen) = gw_log($g) =~ /READY -> DRAINING \(idle for ([\d.]+)s\)/;
ok(defined $seen, 'the log says the replica was drained for idleness');
cmp_ok($seen // 0, '>=', $idle, 'the idle time it names is at least idle_timeout');
cmp_ok($seen // 99, '<', $idle + 4, 'and close to it');

stop_proc($g->{pid});
done_testing;
