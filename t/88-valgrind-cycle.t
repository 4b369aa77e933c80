# The gateway under valgrind through a whole cycle: cold start, serve,
# idle stop, a second cold start, SIGTERM. No leak, no invalid access.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;

plan skip_all => 'valgrind is not installed' unless -x '/usr/bin/valgrind';
plan skip_all => 'wakegate is built with a sanitizer: it checks itself' if sanitized(bin('wakegate'));
$ENV{WG_VALGRIND} = 1;

my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 2s; hold 100 timeout=60s; warmup count=2;');
my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
my $state = sub { gw_status($g)->{upstreams}{digits}{state} // '' };

my ($body, $label) = digits_input(1);
my $r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'under valgrind, a cold request is held and answered');
is(argmax_of($r->{content}), $label, 'with the right digit');
is(gw_predict($g, $body)->{status}, 200, 'a warm request is answered');
ok(wait_until(sub { $state->() eq 'STOPPED' }, 60), 'the worker is stopped once idle');
$r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'the next request wakes it again');
is(fault_gw_stop($g), 0, 'the gateway exits 0 on SIGTERM and valgrind finds no leak or invalid access');

done_testing();
