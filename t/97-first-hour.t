# The first hour of a new user (issue 19): a worker launched without `exec`
# does not outlive a gateway killed with SIGKILL and reports its own exit
# status; a worker's own output reaches the error log with its upstream and
# replica as prefix, and a failed boot says its last lines; GET /healthz on
# the admin listener answers without waking anything.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use Time::HiRes qw(time sleep);
use JSON::PP;

# the message of a JSON error answer
sub errmsg { my $j = eval { decode_json($_[0]{content}) } // {}; return $j->{error} // $_[0]{content} }

my ($body) = digits_input(2);

sub comm { my $c = slurp("/proc/$_[0]/comm"); chomp $c; return $c }
sub alive { my $s = slurp("/proc/$_[0]/stat"); return $s && $s !~ /^\d+ \(.*\) Z/ }

# 1. a launch command without exec (as the shipped confs write it), then kill -9
{
	my ($text, $port, $admin) = gw_conf(launch => worker_cmd(), upstream => 'stop_grace 5s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 200, 'a worker launched without exec serves');
	my @kids = gw_children($g->{pid});
	is(scalar @kids, 1, 'the gateway has one child process, no shell between it and the worker');
	is(comm($kids[0] // 0), 'wakegate-worker', 'the child is the worker itself');
	# a normal stop reports the worker's status, not the shell's signal 15
	my $s = WG::http()->post("$g->{admin_url}/upstreams/digits/sleep");
	ok(wait_until(sub { (gw_status($g)->{upstreams}{digits}{state} // '') eq 'STOPPED' }, 20), 'an admin sleep stops it');
	my $log = gw_log($g);
	like($log, qr/DRAINING -> STOPPED \(exited with status 0/, 'the stop logs the worker\'s own exit status 0')
		or diag(join "\n", grep { /STOPPED|exec|signal/ } split /\n/, $log);
	unlike($log, qr/killed by signal 15/, 'not the shell\'s "killed by signal 15"');
	$r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 200, 'woken again');
	@kids = gw_children($g->{pid});
	ok(@kids, 'the worker runs');
	kill 'KILL', $g->{pid};
	waitpid($g->{pid}, 0);
	ok(wait_until(sub { !grep { alive($_) } @kids }, 10), 'a kill -9 of the gateway leaves no worker behind');
	kill 'KILL', $_ for grep { alive($_) } @kids;
}

# 2. the worker's own output, and a boot that fails
{
	my ($text, $port, $admin) = gw_conf(launch => 'echo hello from the worker; echo to stderr >&2; pyhton3 app.py',
		upstream => 'hold 10 timeout=60s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'a worker that is not found gets the held request a 503');
	like($r->{content}, qr/exited with status 127 during boot; last output: .*pyhton3: not found/,
		'the 503 says the exit status and the worker\'s last output');
	my $log = gw_log($g);
	like($log, qr/\[notice\] .*upstream "digits" replica 0: hello from the worker$/m, 'stdout reaches the error log with its prefix');
	like($log, qr/upstream "digits" replica 0: to stderr$/m, 'stderr too');
	like($log, qr/upstream "digits" replica 0: .*pyhton3: not found$/m, 'the shell\'s own error too');
	like($log, qr/BOOTING -> FAILED \(exited with status 127 during boot; last output: hello from the worker \| to stderr \| .*not found/,
		'the failure\'s log line carries the last lines, oldest first');
	my $rep = gw_status($g)->{upstreams}{digits}{replicas}[0] // {};
	like($rep->{reason} // '', qr/last output: .*pyhton3: not found/, '/status shows the last output in the reason');
}

# 3. a chatty worker: long lines cut, the log bounded, the gateway answers meanwhile
{
	my $chatty = q{perl -e 'print "x" x 5000, "\n"; print "line $$_\n" for 1..5000; sleep 30'};
	my ($text, $port, $admin) = gw_conf(launch => $chatty, upstream => 'boot_timeout 60s; hold 10 timeout=2s; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'held until the hold timeout');
	ok(wait_until(sub { gw_log($g) =~ /lines of output not logged/ }, 10), 'past the rate, lines are counted, not logged');
	my $log = gw_log($g);
	my ($cut) = $log =~ /replica 0: (x+) \[\.\.\.\]$/m;
	is(length($cut // ''), 512, 'a long line is cut at 512 bytes and marked');
	my $n = () = $log =~ /replica 0: line \d+$/mg;
	cmp_ok($n, '<', 5000, "not every line of a flood is logged ($n)");
	is(WG::http_get("$g->{admin_url}/status")->{status}, 200, 'the gateway answers during the flood');
}

# 3b. "$$" is a "$" for the shell; $replica, $gpu and $gpu_index name the replica and its device
{
	my $w = worker_cmd();
	my ($text, $port, $admin) = gw_conf(launch => "echo home=\$\$HOME rep=\$replica gpu=\$gpu idx=\${gpu_index}; exec $w",
		extra => "gpu gpu0 memory=1g;\ngpu gpu1 memory=24g;", upstream => 'gpu_memory 2g;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'a command with $$HOME and the replica variables serves');
	like(gw_log($g), qr/replica 0: home=\Q$ENV{HOME}\E rep=0 gpu=gpu1 idx=1$/m,
		'$$HOME reached the shell as $HOME; $replica, $gpu and ${gpu_index} were the replica\'s');
}

# 3c. a health path the app does not have, a slow app, a warmup model it does not serve: the directive to set
{
	my ($text, $port, $admin) = gw_conf(upstream => 'health /nope; boot_timeout 2s; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = gw_predict($g, $body, timeout => 60);
	like(errmsg($r), qr{boot timed out after 2s \(health GET /nope: 404 x\d+\); set "health PATH;" to a path that answers 200},
		'a health path that answers 404: what it got and which directive to set');
	($text, $port, $admin) = gw_conf(launch => 'exec sleep 100', upstream => 'boot_timeout 1s; stop_grace 1s;');
	$g = gw_start(conf => $text, port => $port, admin => $admin);
	$r = gw_predict($g, $body, timeout => 60);
	like(errmsg($r), qr{boot timed out after 1s \(health GET /v2/health/ready: no answer .*\); raise "boot_timeout"},
		'an app that never answers: raise boot_timeout');
	($text, $port, $admin) = gw_conf(upstream => 'warmup model=nowarm; stop_grace 1s;');
	$g = gw_start(conf => $text, port => $port, admin => $admin);
	$r = gw_predict($g, $body, timeout => 60);
	like(errmsg($r), qr{warmup failed: .*nowarm.*HTTP 404.*; set "warmup model=NAME;" or "warmup path=PATH body=FILE;" to a request the backend serves, or "warmup off;"},
		'a warmup the backend answers 404: which directive to set');
}

# 3d. the gateway's own answers carry the standard reason phrase
{
	my ($text, $port, $admin) = gw_conf(launch => worker_cmd());
	$text =~ s/proxy_pass digits;/proxy_pass digits; degrade return 429 when cold;/ or die;
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = WG::http_get("$g->{url}/v2/models/digits");
	is($r->{status}, 429, 'a degrade rule answers 429');
	is($r->{reason}, 'Too Many Requests', 'as "429 Too Many Requests", not libevent\'s "Client Error"');
	$r = WG::http_get("$g->{admin_url}/nothing");
	is($r->{reason}, 'Not Found', 'a 404 says Not Found');
}

# 4. /healthz on the admin listener wakes nothing
{
	my ($text, $port, $admin) = gw_conf(launch => worker_cmd());
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = WG::http_get("$g->{admin_url}/healthz");
	is($r->{status}, 200, 'GET /healthz answers 200');
	is($r->{content}, "ok\n", 'with ok');
	is(WG::http()->request('HEAD', "$g->{admin_url}/healthz")->{status}, 200, 'HEAD /healthz too');
	sleep 0.5;
	is(scalar(gw_children($g->{pid})), 0, 'no worker was started');
	is(gw_status($g)->{upstreams}{digits}{state}, 'STOPPED', 'the upstream stays STOPPED');
	is(WG::http()->post("$g->{admin_url}/healthz")->{status}, 405, 'POST /healthz is refused');
}

done_testing();
