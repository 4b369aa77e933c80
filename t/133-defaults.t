# The defaults a user of nginx and of vLLM/llama.cpp expects, each stated
# in wakegate.conf(5) and held only in its directive row: a pid file under
# the prefix (so -s reload|stop work on a bare conf), an access log on
# stdout, the admin listener on 127.0.0.1:8081, hold timeout 60s (nginx's
# proxy_read_timeout) and max_conns 4 (what llama.cpp's server and Ollama
# run at once).
use strict;
use warnings;
use Test::More;
use Time::HiRes qw(time sleep);
use POSIX ();
use WG;
use WGConf;
use WGGateway;

my ($cdir) = conf_setup('defaults');

# --- what a bare conf gets
my $r = conf(qq{upstream u { launch exec "w \$port"; }\nserver { listen 127.0.0.1:18080; location / { proxy_pass u; } }\n});
is($r->{code}, 0, 'a bare conf loads') or diag($r->{err});
is(val($r, 'pid'), "$cdir/wakegate.pid", 'pid: wakegate.pid under the prefix');
is(val($r, 'access_log'), 'stdout', 'access_log: stdout, beside the error log\'s stderr');
is(val($r, 'admin_listen'), '127.0.0.1:8081', 'admin_listen: 127.0.0.1:8081');
is(val($r, 'upstream.u.hold_timeout_ms'), 60000, 'hold timeout: 60s');
is(val($r, 'upstream.u.max_conns'), 4, 'max_conns: 4');
is(val($r, 'upstream.u.target_concurrency'), 4, 'target_concurrency follows max_conns');
$r = conf(qq{upstream u { launch exec "w \$port"; }\nserver {\n\tlisten 127.0.0.1:8081;\n\tlocation / { proxy_pass u; }\n}\n});
like($r->{err}, qr/listen 127\.0\.0\.1:8081 conflicts with the default admin_listen 127\.0\.0\.1:8081: set "admin_listen" to another port, or off in test\.conf:3/,
	'a listen on the default admin address names the listen line and says what to set');
$r = conf(qq{admin_listen off;\npid off;\naccess_log off;\nupstream u { launch exec "w \$port"; }\nserver { listen 127.0.0.1:8081; location / { proxy_pass u; } }\n});
is($r->{code}, 0, 'each default can be turned off') or diag($r->{err});

# --- a real gateway on a conf that states only its ports (admin_listen: the
# default 8081 may be taken on a shared host): its pid file, -s reload and
# -s stop, the access log on stdout, and max_conns 4 with hold
my $dir = tmpdir() . '/real';
mkdir $dir;
my ($port, $admin) = (free_port(), free_port());
my $backend = backend_cmd();
my $conf = <<"EOC";
admin_listen 127.0.0.1:$admin;
upstream b {
	launch exec "$backend";
	warmup off;
}
server {
	listen 127.0.0.1:$port;
	location / { proxy_pass b; }
}
EOC
spew("$dir/bare.conf", $conf);
my $out = "$dir/wakegate.out";
my $gpid = start_proc(name => 'wakegate-bare', cmd => [bin('wakegate'), '-p', $dir, '-c', "$dir/bare.conf"], log => $out);
ok(wait_http("http://127.0.0.1:$admin/status", 30), 'the gateway starts on the bare conf') or diag(slurp($out));
ok(wait_until(sub { -s "$dir/wakegate.pid" }, 10), 'it writes wakegate.pid under the prefix');
is(0 + slurp("$dir/wakegate.pid"), $gpid, '... holding its pid');
my $rc = system(bin('wakegate'), '-p', $dir, '-c', "$dir/bare.conf", '-s', 'reload');
is($rc, 0, '-s reload finds it through the default pid file');
ok(wait_until(sub { slurp($out) =~ /reload done/ }, 10), '... and it reloads');

# six slow requests at once to one replica: four in flight (max_conns 4), two held
my @kids;
for my $n (1 .. 6) {
	my $pid = fork // die;
	if (!$pid) {
		my $res = WG::http(60)->get("http://127.0.0.1:$port/slow?ms=2500&id=$n");
		POSIX::_exit($res->{status} == 200 ? 0 : 1);	# no END blocks: they would stop the test's processes
	}
	push @kids, $pid;
}
my ($inflight, $held) = (0, 0);
ok(wait_until(sub {
	my $u = (decode_status() // {})->{upstreams}{b} // {};
	($inflight, $held) = ($u->{in_flight} // 0, $u->{held} // 0);
	$inflight + $held == 6 && $inflight > 0;
}, 20), 'the six requests are in flight or held');
is($inflight, 4, 'four in flight: max_conns 4');
is($held, 2, 'two held until a slot frees');
waitpid($_, 0), is($? >> 8, 0, 'each is answered 200') for @kids;
like(slurp($out), qr{"GET /slow\?ms=2500&id=1 HTTP/1\.1" 200 .*upstream=b}, 'the access log goes to stdout');

$rc = system(bin('wakegate'), '-p', $dir, '-c', "$dir/bare.conf", '-s', 'stop');
is($rc, 0, '-s stop finds it too');
my $st = stop_proc($gpid, 0, 30);	# signal 0: only waits for the exit -s stop asked for
ok(defined $st && $st == 0, '... and it stops, status 0');
ok(!-e "$dir/wakegate.pid", 'the pid file is removed at exit');

sub decode_status {
	my $res = WG::http(5)->get("http://127.0.0.1:$admin/status");
	return $res->{status} == 200 ? JSON::PP::decode_json($res->{content}) : undef;
}

done_testing();
