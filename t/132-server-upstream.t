# An upstream of always-on servers (wakegate.conf(5), server): nothing is
# launched, started or stopped; each server line is a replica, health
# polled until it answers, then checked every second while READY. A server
# that stops answering its health goes READY -> BOOTING (cause health) and
# requests for it are held, not 502'd, until it is healthy again or the
# hold timeout answers 503. Requests go to the least busy server; limits
# apply as to any upstream; the directives that make no sense for a server
# the gateway never stops are errors naming file and line.
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use WG;
use WGConf;
use WGGateway;

my ($cdir) = conf_setup('servers');
my $dir = tmpdir();
my @bport = (free_port(), free_port());
my @bpid;
sub backend_up {
	my ($i) = @_;
	$bpid[$i] = start_proc(name => "backend$i-" . time, cmd => ['perl', src('t/lib/test-backend.pl'), $bport[$i]]);
	wait_http("http://127.0.0.1:$bport[$i]/v2/health/ready", 10) or BAIL_OUT("backend $i did not start");
}
backend_up($_) for 0, 1;

my ($port, $admin) = (free_port(), free_port());
my $conf = <<"EOC";
daemon off;
pid $dir/wg.pid;
error_log $dir/error.log info;
admin_listen 127.0.0.1:$admin;
limit_req_zone \$binary_remote_addr zone=one:1m rate=1r/m;
upstream db {
	server 127.0.0.1:$bport[0];
	server http://127.0.0.1:$bport[1]/;
	max_conns 2;
	hold 100 timeout=8s;
}
server {
	listen 127.0.0.1:$port;
	location / { proxy_pass db; }
	location /limited { proxy_pass db; limit_req zone=one nodelay; limit_req_status 429; }
	location /deg { proxy_pass db; degrade return 429 when cold; }
}
EOC
my $g = gw_start(conf => $conf, port => $port, admin => $admin);
my $url = "http://127.0.0.1:$port";
sub log_text { return slurp("$dir/error.log") }
sub ready_count { return () = log_text() =~ /replica \d: WARMING -> READY/g }

ok(wait_until(sub { log_text() =~ /replica 0: WARMING -> READY/ && log_text() =~ /replica 1: WARMING -> READY/ }, 10),
	'both server lines become READY without a request') or diag(log_text());
like(log_text(), qr/replica 0: STOPPED -> BOOTING \(server line, health polled on http:\/\/127\.0\.0\.1:$bport[0]\) cause=server/,
	'a server line is "woken" with cause server, at its own address');
is(scalar(gw_children($g->{pid})), 0, 'the gateway launched no process');

# least busy: two slow requests at once go to two servers
my @kids;
for my $n (1 .. 2) {
	my $pid = fork // die;
	if (!$pid) {
		my $r = WG::http(20)->get("$url/slow?ms=1500&id=$n");
		POSIX::_exit($r->{status} == 200 ? 0 : 1);	# no END blocks: they would stop the test's processes
	}
	push @kids, $pid;
}
sleep 0.5;
my $st = gw_status($g);
my @inflight = map { $_->{in_flight} // 0 } @{ $st->{upstreams}{db}{replicas} // [] };
waitpid($_, 0), is($? >> 8, 0, 'a slow request is answered 200') for @kids;
is_deeply(\@inflight, [ 1, 1 ], 'two requests at once went one to each server (least busy)');

my $adm = WG::http(10)->post("http://127.0.0.1:$admin/upstreams/db/sleep");
is($adm->{status}, 409, 'the admin API does not put a server upstream to sleep');
like($adm->{content}, qr/never put to sleep, stopped or rolled out/, '... and says why');

# limits apply as to any upstream
is(http_get("$url/limited")->{status}, 200, 'a limited location passes its first request');
is(http_get("$url/limited")->{status}, 429, 'and limit_req answers the second, as for any upstream');
is(http_get("$url/deg")->{status}, 200, 'a degrade rule "when cold" lets requests through while a server is READY');

# server 1 goes away: out of READY with cause health; server 0 takes the traffic
stop_proc($bpid[1], 'KILL');
ok(wait_until(sub { log_text() =~ /replica 1: READY -> BOOTING \(health check failed: no 200 in 2s \(GET \/v2\/health\/ready: [^\n]*\) cause=health/ }, 8),
	'a server that stops answering its health check leaves READY with cause health') or diag(log_text());
my %seen;
for (1 .. 4) { my $r = http_get("$url/pid"); $seen{ $r->{status} }++ }
is_deeply(\%seen, { 200 => 4 }, 'requests meanwhile go to the healthy server');

# both gone: a request is held, not 502'd, and answered when a server is back
stop_proc($bpid[0], 'KILL');
ok(wait_until(sub { log_text() =~ /replica 0: READY -> BOOTING \(health check failed[^\n]*cause=health/ }, 8),
	'the other one leaves READY too');
is(http_get("$url/deg", timeout => 10)->{status}, 429, 'and answers at once when no server is healthy (cold)');
my $t0 = time;
my $pid = fork // die;
if (!$pid) {
	my $r = WG::http(30)->get("$url/pid");
	POSIX::_exit($r->{status} == 200 ? 0 : $r->{status} == 503 ? 3 : 1);
}
sleep 1.5;
is(waitpid($pid, POSIX::WNOHANG()), 0, 'a request with no healthy server is held (neither answered nor failed)');
backend_up(0);
waitpid($pid, 0);
is($? >> 8, 0, '... and answered 200 once the server is healthy again');
cmp_ok(time - $t0, '<', 8, '... before its hold timeout');
like(log_text(), qr/replica 0: BOOTING -> WARMING \(health ok[^\n]*\n[^\n]*replica 0: WARMING -> READY/,
	'the server is READY again through its health poll');
unlike(log_text(), qr/boot timed out/, 'a server line has no boot timeout');

# hold timeout: server 1 still away; with server 0 gone again a request gets 503 after 8s, not 502
stop_proc($bpid[0], 'KILL');
ok(wait_until(sub { my @l = log_text() =~ /replica 0: READY -> BOOTING/g; @l == 2 }, 8), 'server 0 gone again');
$t0 = time;
my $r = WG::http(30)->get("$url/pid");
is($r->{status}, 503, 'a request held past the hold timeout gets 503, not 502');
cmp_ok(time - $t0, '>=', 7.5, '... after the hold timeout (8s)');

unlike(log_text(), qr/DRAINING|cold start/, 'nothing was drained or cold-started while the gateway ran');
unlike(log_text(), qr/refused move/, 'every move was in the move table');
backend_up(0);

# a reload that moves server line 1 to another address lets go of the old one and polls the new one
$bport[2] = free_port();
backend_up(2);
(my $moved = $conf) =~ s{server http://127\.0\.0\.1:$bport[1]/;}{server 127.0.0.1:$bport[2];} or die 'no server 1 line';
spew($g->{conf}, $moved);
kill 'HUP', $g->{pid};
ok(wait_until(sub { log_text() =~ /replica 1: BOOTING -> DRAINING \(server lines changed by a reload\) cause=reload/ }, 10),
	'a reload that changes a server line lets the old address go') or diag(log_text());
ok(wait_until(sub { log_text() =~ /replica 1: STOPPED -> BOOTING \(server line, health polled on http:\/\/127\.0\.0\.1:$bport[2]\)/ }, 10),
	'... and polls the new address');
ok(wait_until(sub { my @l = log_text() =~ /replica 1: WARMING -> READY/g; @l == 2 }, 10), '... which is READY');
unlike(log_text(), qr/replica 0: [A-Z]+ -> DRAINING/, 'the unchanged line is kept');
stop_proc($g->{pid});
ok(kill(0, $bpid[0]), 'stopping the gateway leaves the server running');
like(log_text(), qr/replica 0: DRAINING -> STOPPED \(let go \(a server line: it keeps running\)/,
	'the shutdown lets the server go without stopping it');

# a reload that turns a launched upstream into a server line: the launched
# replica is stopped, the server polled; no version rollout starts anything
my ($p2, $a2) = (free_port(), free_port());
my $backend = WGGateway::backend_cmd();
my $launched = <<"EOC";
daemon off;
pid $dir/wg2.pid;
error_log $dir/error2.log info;
admin_listen 127.0.0.1:$a2;
upstream x {
	launch exec "$backend";
	warmup off;
	min_warm 1;
}
server { listen 127.0.0.1:$p2; location / { proxy_pass x; } }
EOC
my $g2 = gw_start(conf => $launched, port => $p2, admin => $a2);
sub log2 { return slurp("$dir/error2.log") }
ok(wait_until(sub { log2() =~ /replica 0: WARMING -> READY/ && gw_children($g2->{pid}) }, 20), 'a launched replica runs');
my @launched = gw_children($g2->{pid});
(my $to_server = $launched) =~ s{\tlaunch exec "[^\n]*\n\twarmup off;\n\tmin_warm 1;\n}{\tserver 127.0.0.1:$bport[0];\n} or die 'no launch lines';
spew($g2->{conf}, $to_server);
kill 'HUP', $g2->{pid};
ok(wait_until(sub { log2() =~ /replica 0: STOPPED -> BOOTING \(server line, health polled on http:\/\/127\.0\.0\.1:$bport[0]\)/ }, 20),
	'after a reload to a server line, the replica polls the server') or diag(log2());
ok(wait_until(sub { my @r = log2() =~ /replica 0: WARMING -> READY/g; @r == 2 }, 10), '... and is READY');
like(log2(), qr/replica 0: READY -> DRAINING \(server lines changed by a reload\) cause=reload/, 'the launched replica was drained');
ok(wait_until(sub { !gw_children($g2->{pid}) }, 10), '... and its process is gone');
is(http_get("http://127.0.0.1:$p2/pid")->{content}, "$bpid[0]\n", 'requests reach the server');
unlike(log2(), qr/refused move|replica 1|version .* -> .*switching/, 'no rollout, no second replica, no refused move');
stop_proc($g2->{pid});
stop_proc($bpid[$_]) for 0, 2;

# --- conf: what makes no sense with server lines is refused at its line
my $SRV = "server { listen 127.0.0.1:18080; location / { proxy_pass db; } }\n";
my %bad = (
	"upstream db {\n\tserver 127.0.0.1:9001;\n\tidle_timeout 5m;\n}\n" =>
		qr/"idle_timeout" does not apply to upstream "db" of "server" lines \(a server is never stopped\) in test\.conf:3/,
	"upstream db {\n\tlaunch exec \"w \$port\";\n\tserver 127.0.0.1:9001;\n}\n" =>
		qr/"launch" does not apply to upstream "db" of "server" lines .* in test\.conf:2/,
	"upstream db {\n\tserver 127.0.0.1:9001;\n\n\tlaunch exec \"w \$port\";\n}\n" =>
		qr/"launch" does not apply .* in test\.conf:4/,
	"upstream db {\n\tserver 127.0.0.1:9001;\n\tsleep level=1 after=1m;\n}\n" =>
		qr/"sleep" does not apply .*never put to sleep.* in test\.conf:3/,
	"upstream db {\n\tgpu_memory 8g;\n\tserver 127.0.0.1:9001;\n}\n" => qr/"gpu_memory" does not apply .* in test\.conf:2/,
	"upstream db {\n\tserver 127.0.0.1:9001;\n\tmin_warm 1;\n}\n" => qr/"min_warm" does not apply .* in test\.conf:3/,
	"upstream db {\n\tserver 127.0.0.1:9001;\n\treplicas max=3;\n}\n" => qr/"replicas" does not apply .* in test\.conf:3/,
	"upstream db {\n\tserver 127.0.0.1;\n}\n" => qr/invalid server "127\.0\.0\.1" \(HOST:PORT.* in test\.conf:2/,
	"upstream db {\n\tserver ftp://h:1;\n}\n" => qr/invalid server "ftp:\/\/h:1" .* in test\.conf:2/,
	"upstream db {\n\tserver h:1;\n\tserver http://h:1;\n}\n" => qr/duplicate server "http:\/\/h:1" in test\.conf:3/,
	"upstream db {\n" . join('', map { "\tserver h:$_;\n" } 1 .. 9) . "}\n" => qr/more than 8 "server" lines .* in test\.conf:10/,
);
for my $text (sort keys %bad) {
	my $c = conf($text . $SRV);
	isnt($c->{code}, 0, 'refused: ' . ($text =~ s/\s+/ /gr));
	like($c->{err}, $bad{$text}, '... naming the line');
}
my $c = conf("upstream db {\n\tserver https://10.0.0.7:8443;\n\tserver 10.0.0.8:8000;\n\twarmup count=2;\n\thealth /ready;\n\tmax_conns 4;\n}\n$SRV");
is($c->{code}, 0, 'https:// and HOST:PORT servers with health, warmup and max_conns load') or diag($c->{err});
is_deeply(all($c, 'upstream.db.server'), [ 'https://10.0.0.7:8443', 'http://10.0.0.8:8000' ], 'one replica a line, in order');
is(val($c, 'upstream.db.replicas_max'), 2, '... two replicas');
is(val($c, 'upstream.db.warmup.off'), 0, 'warmup runs when written');
$c = conf("upstream db { server 10.0.0.8:8000; }\n$SRV");
is(val($c, 'upstream.db.warmup.off'), 1, 'and is off when not: the default asks for a model a server may not have');
$c = conf("upstream db { server { } }\n$SRV");
like($c->{err}, qr/directive "server" is not terminated by ";" in test\.conf:1/, 'a server block inside an upstream is an error');

done_testing();
