# Many connections held at a cold upstream: all are answered 200 once the
# worker is READY, and the gateway's peak RSS stays small. 2,000 connections
# by default (2 cores, a few seconds); WG_TEST_HEAVY=1 runs the 10,000 the
# design asks for. The client is t/lib/manyconn.c, compiled here with cc; the
# gateway and the client run under `ulimit -n 65536`.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use Time::HiRes qw(time sleep);

my $n = $ENV{WG_TEST_HEAVY} ? 10_000 : 2_000;
my $dir = tmpdir();
my $many = manyconn_bin();
plan skip_all => 'no C compiler for t/lib/manyconn.c' unless $many;
# 65536, or the hard limit where that is lower (a container without CAP_SYS_RESOURCE)
my $raise = q{h=$(ulimit -Hn); if [ "$h" = unlimited ] || [ "$h" -gt 65536 ]; then h=65536; fi; ulimit -n $h};
my $lim = `sh -c '$raise && ulimit -n'` // '';
chomp $lim;
plan skip_all => "cannot raise the fd limit above $n + 500 (got '$lim')" unless $lim =~ /^\d+$/ && $lim >= $n + 500;

my $slow = 'sleep 3; exec ' . worker_cmd();
my ($text, $port, $admin) = gw_conf(launch => $slow,
	upstream => 'warmup count=1; hold 20000 timeout=120s; max_conns 64; idle_timeout 60s; stop_grace 2s;');
my $conf = "$dir/gw-$port.conf";
spew($conf, $text);
my $gw = bin('wakegate');
my $pid = start_proc(name => 'wakegate-many', cmd => ['sh', '-c', "$raise && exec $gw -p $dir -c $conf"]);
my $g = { pid => $pid, port => $port, admin => $admin, url => "http://127.0.0.1:$port",
	admin_url => "http://127.0.0.1:$admin", log => "$dir/error-$port.log" };
wait_http("$g->{admin_url}/status", 30) or BAIL_OUT('wakegate did not start');
sub hwm_kb { (slurp("/proc/$pid/status") =~ /VmHWM:\s+(\d+)/)[0] // 0 }
my $hwm0 = hwm_kb();

my $t0 = time;
my $out = `sh -c '$raise && exec $many 127.0.0.1 $port $n /v2/health/ready 100'`;
my $took = time - $t0;
note($out);
my ($ok) = $out =~ /^status 200 (\d+)$/m;
my ($failed) = $out =~ /^failed (\d+)$/m;
my $st = gw_status($g)->{upstreams}{digits};
is($ok // 0, $n, "all $n held connections are answered 200 once the worker is READY");
is($failed // -1, 0, 'none failed or was left hanging');
is($st->{cold_starts}, 1, 'one cold start served them all');
is($st->{held} // 0, 0, 'the hold queue is empty after');
my $held = () = slurp("$dir/access-$port.log") =~ / 200 \d+ upstream=digits .*hold_ms=[1-9]/g;
ok($held >= $n * 0.9, "they were really held while the worker booted ($held of $n)");
my $hwm = hwm_kb();
diag(sprintf('%d held connections: answered in %.1fs; gateway peak RSS (VmHWM) %.1f MB (%.1f MB before)',
	$n, $took, $hwm / 1024, $hwm0 / 1024));
# goal: under 200 MB at 10,000; the bound scales with n and leaves a wide margin
my $limit_kb = 40 * 1024 + $n * 15;
ok($hwm < $limit_kb, sprintf('peak RSS %.1f MB stays under %.0f MB', $hwm / 1024, $limit_kb / 1024));
is(WG::http_get("$g->{url}/v2/health/ready", timeout => 30)->{status}, 200, 'the gateway serves the next request');
is(stop_proc($pid, 'TERM', 30), 0, 'the gateway exits 0');
done_testing;
