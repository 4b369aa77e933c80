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
use IO::Socket::INET;
use POSIX qw(WNOHANG);

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

# 7. env NAME=VALUE per upstream, with the launch variables in its value
{
	my $w = worker_cmd();
	my ($text, $port, $admin) = gw_conf(launch => "echo env: \$\$WG_T_DEV \$\$WG_T_HOME; exec $w",
		extra => "gpu gpu0 memory=1g;\ngpu gpu1 memory=24g;",
		upstream => "gpu_memory 2g;\n\tenv WG_T_DEV=\$gpu_index;\n\tenv WG_T_HOME=\$prefix/r\$replica;");
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'an upstream with env lines serves');
	like(gw_log($g), qr{replica 0: env: 1 \Q@{[tmpdir()]}\E/r0$}m, 'the worker\'s environment has them, expanded');
	spew(tmpdir() . '/env-bad.conf', qq{upstream u { launch exec "x"; env 1X=y; }\nserver { listen 127.0.0.1:1; location / { proxy_pass u; } }\n});
	my $out = `@{[WG::bin('wakegate')]} -t -c @{[tmpdir()]}/env-bad.conf 2>&1`;
	like($out, qr/invalid variable name "1X" in "env" directive/, 'a bad name is refused');
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
	my $len = length($r->{content});
	$r = WG::http_get("$g->{admin_url}/nothing");
	is($r->{reason}, 'Not Found', 'a 404 says Not Found');
	ok(wait_until(sub { slurp($g->{access}) =~ m{"GET /v2/models/digits HTTP/1.1" 429 (\d+) } }, 5), 'the 429 is in the access log');
	my ($logged) = slurp($g->{access}) =~ m{"GET /v2/models/digits HTTP/1.1" 429 (\d+) };
	is($logged, $len, "with the body bytes the gateway wrote ($len), not 0");
}
{
	# a held request answered 503 by the gateway (hold timeout) counts its body too
	my ($text, $port, $admin) = gw_conf(launch => 'exec sleep 100', upstream => 'boot_timeout 60s; hold 10 timeout=1s; stop_grace 1s;');
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'a hold timeout answers 503');
	ok(wait_until(sub { slurp($g->{access}) =~ m{ 503 (\d+) } }, 5), 'logged');
	my ($logged) = slurp($g->{access}) =~ m{ 503 (\d+) };
	is($logged, length($r->{content}), 'with its body bytes');
}

# 5. -s reload and -s stop work on the default conf, as wakegate(8) says (its ports made free)
{
	my $dir = tmpdir() . '/default';
	mkdir $dir; mkdir "$dir/conf";
	symlink(WG::bin('wakegate-worker') =~ s{/wakegate-worker$}{}r, "$dir/gpu-worker") or die;
	symlink(src('models'), "$dir/models") or die;
	my ($port, $admin) = (free_port(), free_port());
	my $text = slurp(src('conf/wakegate.conf'));
	$text =~ s/127\.0\.0\.1:8080/127.0.0.1:$port/g;
	$text =~ s/127\.0\.0\.1:8081/127.0.0.1:$admin/g;
	spew("$dir/conf/wakegate.conf", $text);
	my @gw = (WG::bin('wakegate'), '-p', $dir, '-c', 'conf/wakegate.conf');
	is(system("@gw -t 2>/dev/null"), 0, 'the default conf passes -t');
	my $pid = start_proc(name => 'default-conf', cmd => \@gw, log => "$dir/out.log");
	ok(wait_http("http://127.0.0.1:$admin/status", 30), 'the default conf runs');
	ok(-s "$dir/wakegate.pid", 'and writes its pid file under the prefix');
	my $out = `@gw -s reload 2>&1`;
	is($?, 0, '-s reload works on the default conf') or diag($out);
	ok(wait_until(sub { slurp("$dir/out.log") =~ /reload/i }, 10), 'the daemon reloads');
	$out = `@gw -s stop 2>&1`;
	is($?, 0, '-s stop works too') or diag($out);
	ok(wait_until(sub { waitpid($pid, WNOHANG()) == $pid }, 30), 'and the daemon exits');
	ok(!-e "$dir/wakegate.pid", 'removing its pid file');
}

# 6. -t sees what would fail at start; a start failure reaches the terminal with its errno
{
	my $dir = tmpdir();
	my ($port, $admin) = (free_port(), free_port());
	my $base = "upstream u { launch exec \"exec sleep 1\"; }\nserver { listen 127.0.0.1:$port; location / { proxy_pass u; } }\n";
	my $t = sub {
		my ($main) = @_;
		spew("$dir/t6.conf", "$main\n$base");
		my $out = `@{[WG::bin('wakegate')]} -p $dir -c $dir/t6.conf -t 2>&1`;
		return ($? >> 8, $out);
	};
	my ($rc, $out) = $t->("error_log $dir/nolog/error.log;");
	is($rc, 1, '-t fails on an error_log in a missing directory');
	like($out, qr{error_log "\Q$dir\E/nolog/error.log": directory "\Q$dir\E/nolog" does not exist}, 'naming it');
	($rc, $out) = $t->("access_log $dir/nolog/access.log;");
	like($out, qr{access_log .*does not exist}, 'the access_log\'s directory too');
	($rc, $out) = $t->("pid $dir/norun/wg.pid;");
	like($out, qr{pid .*norun.* does not exist}, 'and the pid file\'s');
	my $busy = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 5, ReuseAddr => 1) or die;
	($rc, $out) = $t->("error_log $dir/t6-error.log;");
	is($rc, 1, '-t fails when a listen address is in use');
	like($out, qr{listen: bind\(\) to 127\.0\.0\.1:$port failed \(98: Address already in use\)}, 'with the errno');
	spew("$dir/t6.conf", "error_log $dir/t6-error.log;\nadmin_listen 127.0.0.1:$admin;\n$base");
	$out = `@{[WG::bin('wakegate')]} -p $dir -c $dir/t6.conf 2>&1`;
	isnt($? >> 8, 0, 'a start on a busy port fails');
	like($out, qr{\[emerg\].*bind\(\) to 127\.0\.0\.1:$port failed \(98: Address already in use\)},
		'and says so on the terminal, with strerror, though the error log is a file');
	like(slurp("$dir/t6-error.log"), qr{Address already in use}, 'and in the error log');
	close $busy;
}

# 8a. proxy_pass with a URI part replaces the location's prefix, as nginx's does
{
	my ($text, $port, $admin) = gw_conf(launch => worker_cmd());
	$text =~ s{location / \{ proxy_pass digits; \}}{location / { proxy_pass digits; }
	location /small/ { proxy_pass http://digits/; }
	location /v1/ { proxy_pass http://digits/v2/models/; }
	location = /ready { proxy_pass http://digits/v2/health/ready; }} or die;
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $r = http_post("$g->{url}/small/predict", $body);
	is($r->{status}, 200, 'proxy_pass http://NAME/; sends /small/predict as /predict') or diag($r->{content});
	$r = WG::http_get("$g->{url}/v1/digits?x=1");
	is($r->{status}, 200, 'a longer URI part replaces the prefix (/v1/digits -> /v2/models/digits), the query kept');
	like($r->{content}, qr/"name":\s*"digits"/, 'the worker answered its model metadata');
	is(WG::http_get("$g->{url}/ready")->{status}, 200, 'an exact location\'s whole path is replaced');
	is(http_post("$g->{url}/predict", $body)->{status}, 200, 'a plain proxy_pass NAME still sends the path as it came');
	like(slurp($g->{access}), qr{"POST /small/predict HTTP/1.1" 200}, 'the access log keeps the client\'s path');
}

# 10. a bare number of time is seconds everywhere: the worker's --batch-delay too
{
	my $port = free_port();
	my $pid = start_proc(name => 'bd', cmd => [WG::bin('wakegate-worker'), '--model', src('models/digits.safetensors'),
		'--listen', "127.0.0.1:$port", '--batch-delay', '2'], log => tmpdir() . '/bd.log');
	ok(wait_http("http://127.0.0.1:$port/v2/health/ready", 30), 'a worker with --batch-delay 2 starts');
	like(slurp(tmpdir() . '/bd.log'), qr/batch delay 2000ms/, '--batch-delay 2 is two seconds, as 2 is in the conf');
	WG::stop_proc($pid);
}

# 12. the documents agree with the programs
{
	my $readme = slurp(src('README.md'));
	like($readme, qr/\| `wakegate-replay` \|/, 'the README\'s program table has wakegate-replay');
	unlike($readme . slurp(src('man/wakegate.8')), qr/never\s+dropped/, 'nothing says held requests are "never dropped"');
	like(slurp(src('man/wakegate.8')), qr/^\.BR wakegate-replay \(1\)/m, 'wakegate(8) SEE ALSO names wakegate-replay(1)');
	unlike(slurp(src('man/wakegate.8')), qr/plain HTTP only/, 'BUGS no longer says https replicas do not work');
}

# 8b. proxy_set_header: Host and X-Forwarded-Host as nginx users set them, inherited as nginx's
{
	my $echo = tmpdir() . '/echo.pl';
	spew($echo, <<'EOP');
use IO::Socket::INET;
my $s = IO::Socket::INET->new(LocalAddr => '127.0.0.1', LocalPort => $ARGV[0], Listen => 64, ReuseAddr => 1) or die;
while (my $c = $s->accept) {
	my $head = '';
	while (my $l = <$c>) { last if $l =~ /^\r?\n$/; $head .= $l }
	my $b = $head =~ m{^GET /v2/health} ? "ok\n" : $head;
	print $c "HTTP/1.1 200 OK\r\nContent-Length: " . length($b) . "\r\nConnection: close\r\n\r\n$b";
	close $c;
}
EOP
	my ($text, $port, $admin) = gw_conf(launch => "exec perl $echo \$port", upstream => 'warmup off;',
		extra => 'proxy_set_header X-Main "main";');
	$text =~ s{location / \{ proxy_pass digits; \}}{location / { proxy_pass digits; }
	location /h/ {
		proxy_pass digits;
		proxy_set_header Host \$host;
		proxy_set_header X-Forwarded-Host \$http_host;
		proxy_set_header X-Key "k=\$http_x_api_key via \$scheme from \$remote_addr to \$proxy_host for \$request_uri";
		proxy_set_header User-Agent "";
	}} or die;
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	my $h = `curl -s -H 'Host: Example.COM:8443' -H 'X-Api-Key: abc' '$g->{url}/h/x?y=1'`;
	is($?, 0, 'a location with proxy_set_header serves');
	like($h, qr/^Host: example\.com\r?$/mi, 'Host $host: the client\'s host, no port, lower case');
	unlike($h, qr/^Host: 127\.0\.0\.1/mi, 'instead of the replica\'s address');
	like($h, qr/^X-Forwarded-Host: Example\.COM:8443\r?$/mi, 'X-Forwarded-Host $http_host: the Host as sent');
	like($h, qr{^X-Key: k=abc via http from 127\.0\.0\.1 to 127\.0\.0\.1:\d+ for /h/x\?y=1\r?$}mi, 'the other variables');
	unlike($h, qr/^User-Agent:/mi, 'an empty value removes the header');
	unlike($h, qr/^X-Main:/mi, 'a location with lines of its own does not inherit main\'s');
	$h = WG::http_get("$g->{url}/other")->{content};
	like($h, qr/^X-Main: main\r?$/mi, 'a location with none inherits main\'s');
	like($h, qr/^Host: 127\.0\.0\.1:\d+\r?$/mi, 'and sends the replica\'s Host as before');
	spew(tmpdir() . '/hdr-bad.conf', qq{upstream u { launch exec "x"; }\nserver { listen 127.0.0.1:1; location / { proxy_pass u; proxy_set_header Host \$hots; } }\n});
	like(`@{[WG::bin('wakegate')]} -t -c @{[tmpdir()]}/hdr-bad.conf 2>&1`, qr/unknown variable "\$hots" in "proxy_set_header" directive/,
		'an unknown variable is refused');
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
