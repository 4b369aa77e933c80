# The conf file: nginx's grammar, the directives of wakegate.conf(5), and
# errors that name the file and line. conf-dump loads a conf the way the
# gateway does and prints what it parsed, so these tests need no running
# gateway; every conf here is a real file in a temporary folder.
use strict;
use warnings;
use Test::More;
use WG;
use WGConf;

my ($dir, $dump) = conf_setup('conf', qw(conf.d locs empty));

# A minimal valid conf around what a test adds.
my $UPS = qq{upstream u { launch exec "worker --listen 127.0.0.1:\$port"; }\n};
my $SRV = qq{server { listen 127.0.0.1:18080; location / { proxy_pass u; } }\n};

# --- the shipped confs -------------------------------------------------------

my $r = run_dump(file => src('conf/wakegate.conf'), prefix => src('.'));
is($r->{code}, 0, 'the default conf/wakegate.conf loads') or diag($r->{err});
is(val($r, 'daemon'), 'off', 'the default conf stays in the foreground');
is(val($r, 'error_log'), 'stderr', 'the default conf logs errors to stderr');
is(val($r, 'error_log_level'), 'notice', 'at level notice');
is(val($r, 'access_log'), 'stdout', 'and requests to stdout');
is(val($r, 'admin_listen'), '127.0.0.1:8081', 'the admin listener is on loopback port 8081');
is(val($r, 'redis'), '127.0.0.1:6379', 'the default conf records its state in the Redis the quick start runs');
is_deeply($r->{kv}{'server.0.listen'}, ['127.0.0.1:8080'], 'the default server listens on 127.0.0.1:8080');
is(val($r, 'max_clients'), 0, 'max_clients is off unless set');
is(val($r, 'server.0.location.0.upstream'), 'digits', 'and sends / to the digits upstream');
like(val($r, 'upstream.digits.launch_cmd') // '', qr{^gpu-worker/wakegate-worker .*--listen 127\.0\.0\.1:\$port\b},
	'digits is launched as the worker, $port left for the gateway to fill in');
is(val($r, 'upstream.digits.health'), '/v2/health/ready', 'digits is healthy when /v2/health/ready says so');
is(val($r, 'upstream.digits.boot_timeout_ms'), 60000, 'digits gets 60s to boot');
is(val($r, 'upstream.digits.warmup.count'), 3, 'digits is warmed up with 3 requests');
is(val($r, 'upstream.digits.warmup.model'), 'digits', 'warmup asks for the model named like the upstream');
is(val($r, 'upstream.digits.idle_timeout_ms'), 60000, 'digits stops after a minute without traffic');
is(val($r, 'upstream.digits.hold_max'), 1000, 'up to 1000 requests are held while digits boots');
is(val($r, 'upstream.digits.hold_timeout_ms'), 60000, 'for at most 60s');
is(val($r, 'upstream.digits.stop_grace_ms'), 10000, 'a stopping digits gets 10s of grace');
is(val($r, 'upstream.digits.max_conns'), 16, 'a digits replica takes 16 requests at once');

for my $ex (glob(src('conf/examples') . '/*.conf')) {
	my $name = $ex =~ s{.*/}{}r;
	$r = run_dump(file => $ex, prefix => src('.'));
	is($r->{code}, 0, "the example $name loads") or diag($r->{err});
}

# --- errors name the file and the line ---------------------------------------

my @errors = (
	[ "# comment\n" x 11 . "foo bar;\n", 'unknown directive "foo" in test.conf:12',
		'an unknown directive is named with its line' ],
	[ "$UPS$SRV\nlisten 8080;\n", '"listen" directive is not allowed here in test.conf:4',
		'a server directive outside a server is refused' ],
	[ "upstream u {\n  launch exec x;\n  hold;\n}\n$SRV", 'invalid number of arguments in "hold" directive in test.conf:3',
		'a directive with too few arguments is refused' ],
	[ "upstream u {\n  launch exec x;\n  hold 1 2 3 4;\n}\n$SRV", 'invalid number of arguments in "hold" directive in test.conf:3',
		'a directive with too many arguments is refused' ],
	[ "upstream u {\n  launch exec x;\n  boot_timeout 5x;\n}\n$SRV", 'invalid time "5x" in "boot_timeout" directive in test.conf:3',
		'a malformed time is refused' ],
	[ "client_max_body_size 10q;\n$UPS$SRV", 'invalid size "10q" in "client_max_body_size" directive in test.conf:1', 'a malformed size is refused' ],
	[ "$UPS$SRV\nupstream u {\n launch exec y;\n}\n", 'duplicate upstream "u" in test.conf:4',
		'two upstreams with one name are refused' ],
	[ "$UPS\nserver {\n listen 18080;\n location / {\n  proxy_pass nope;\n }\n}\n",
		'no upstream "nope" for proxy_pass in test.conf:6', 'proxy_pass to an undefined upstream is refused' ],
	[ "$UPS$SRV}\n", 'unexpected "}" in test.conf:3', 'a stray "}" is refused' ],
	[ "$UPS\nserver {\n listen 18080\n}\n", 'unexpected "}" in test.conf:5', 'a "}" after a directive without ";" is refused' ],
	[ "$UPS${SRV}daemon off\n", 'unexpected end of file, expecting ";" or "}" in test.conf:3',
		'a file ending in the middle of a directive is refused' ],
	[ "$UPS\nserver {\n listen 18080;\n", 'unexpected end of file, expecting "}" in test.conf:4',
		'a file ending inside a block is refused' ],
	[ "upstream gpu {\n  health /ready;\n}\n$UPS$SRV", 'upstream "gpu" has no launch directive in test.conf:1',
		'an upstream that cannot be launched is refused, at its definition' ],
	[ "upstream u {\n launch exec \"w --port \$port --gpu \$gpus\";\n}\n$SRV",
		'unknown variable "$gpus" in "launch" directive (known: $port, $name, $prefix, $replica, $gpu, $gpu_index, $model_file, $model_version; write $$ for a $ the shell should see) in test.conf:2',
		'an unknown $variable in a launch command is refused' ],
	[ "upstream u {\n launch docker w;\n}\n$SRV", 'unknown launcher "docker" in "launch" directive (known: exec, command, http, kubernetes) in test.conf:2',
		'an unknown launcher is refused' ],
	[ "$UPS\nserver {\n listen 18080;\n listen 127.0.0.1:18080;\n location / { proxy_pass u; }\n}\n",
		'listen 127.0.0.1:18080 conflicts with listen 0.0.0.0:18080 at test.conf:4 in test.conf:5',
		'a listen that collides with a wildcard listen is refused' ],
	[ "$UPS\nserver {\n listen 127.0.0.1:18080;\n listen 127.0.0.1:18080;\n location / { proxy_pass u; }\n}\n",
		'a duplicate listen 127.0.0.1:18080 in test.conf:5', 'the same listen twice in one server is refused' ],
	[ "$UPS$SRV\nserver {\n listen 127.0.0.1:18080 ssl;\n server_name b;\n ssl_certificate /dev/null;\n ssl_certificate_key /dev/null;\n}\n",
		'listen 127.0.0.1:18080 ssl conflicts with listen 127.0.0.1:18080 at test.conf:2: a port speaks TLS for every server on it or for none in test.conf:5',
		'two servers on one port, one with ssl and one without, are refused' ],
	[ "admin_listen 18080;\n$UPS$SRV",
		'admin_listen 127.0.0.1:18080 conflicts with listen 127.0.0.1:18080 at test.conf:3 in test.conf:1',
		'an admin listener on a server port is refused' ],
	[ "$UPS\nserver {\n location / { proxy_pass u; }\n}\n", 'server has no "listen" directive in test.conf:3',
		'a server without listen is refused' ],
	[ "$UPS\nserver {\n listen 70000;\n}\n", 'invalid port in "70000" of the "listen" directive in test.conf:4',
		'a port past 65535 is refused' ],
	[ "$UPS", 'no "server" block in test.conf', 'a conf without a server is refused' ],
	[ "daemon yes;\n", 'invalid value "yes" in "daemon" directive, it must be "on" or "off" in test.conf:1',
		'a flag must be on or off' ],
	[ "max_clients 0;\n", 'invalid value "0" in "max_clients" directive, it must be a number of connections (1-10000000) or "off" in test.conf:1',
		'max_clients is at least 1 (or off)' ],
	[ "max_clients many;\n", 'invalid value "many" in "max_clients" directive, it must be a number of connections (1-10000000) or "off" in test.conf:1',
		'max_clients is a number' ],
	[ "daemon on;\ndaemon off;\n", '"daemon" directive is duplicate in test.conf:2', 'a directive set twice is refused' ],
	[ "server;\n", 'directive "server" has no opening "{" in test.conf:1', 'a block directive needs its braces' ],
	[ "daemon on {\n}\n", 'directive "daemon" is not terminated by ";" in test.conf:1', 'a plain directive takes no block' ],
	[ "error_log stderr loud;\n", 'invalid log level "loud" in "error_log" directive in test.conf:1', 'an unknown log level is refused' ],
	[ "pid \"a.pid\"x;\n", 'unexpected end of parameter, expecting ";" in test.conf:1',
		'text glued to a closing quote is refused' ],
	[ "pid \"a.pid;\n\n", 'unexpected end of file, expecting closing quote in test.conf:1', 'an unclosed quote is refused' ],
	[ "$UPS\nserver {\n listen 18080;\n location / { }\n}\n", 'location "/" has no "proxy_pass" directive in test.conf:5',
		'a location must say where requests go' ],
	[ "$UPS\nserver {\n listen 18080;\n location / { proxy_pass u; }\n location / { proxy_pass u; }\n}\n",
		'duplicate location "/" in test.conf:6', 'the same location twice in a server is refused' ],
	[ "upstream u {\n launch exec x;\n warmup count=0;\n}\n$SRV", 'warmup count must be at least 1 in test.conf:3',
		'warmup needs at least one request' ],
	[ "upstream u {\n launch exec x;\n warmup body=missing.json;\n}\n$SRV",
		qq{cannot read warmup body "$dir/missing.json" (No such file or directory) in test.conf:3},
		'a warmup body file that does not exist is refused' ],
	[ "redis 127.0.0.1:6379 tls_ca=ca.pem;\n", '"tls_ca=" in "redis" directive without "tls" in test.conf:1',
		'redis tls_ca= needs tls' ],
	[ "redis 127.0.0.1:6379 tls_name=redis.example;\n", '"tls_name=" in "redis" directive without "tls" in test.conf:1',
		'redis tls_name= needs tls' ],
	[ "redis 127.0.0.1:6379 tls tls_ca=missing.pem;\n",
		qq{cannot read redis tls_ca file "$dir/missing.pem" (No such file or directory) in test.conf:1},
		'a redis tls_ca file that does not exist is refused' ],
	[ "redis 127.0.0.1:6379 tls_cert=c.pem tls_key=k.pem;\n", '"tls_cert=" in "redis" directive without "tls" in test.conf:1',
		'redis tls_cert= needs tls' ],
	[ "redis 127.0.0.1:6379 tls tls_key=k.pem;\n", '"tls_key=" in "redis" directive without "tls_cert=" in test.conf:1',
		'redis tls_key= needs tls_cert=' ],
	[ "redis 127.0.0.1:6379 tls tls_cert=missing.pem tls_key=k.pem;\n",
		qr{^cannot load redis tls_cert file "\Q$dir\E/missing\.pem" \(.+\) in test\.conf:1$},
		'a redis tls_cert file that cannot be loaded is refused' ],
	[ "redis 127.0.0.1:6379 tls tls_ca=test.conf;\n", qq{redis tls_ca file "$dir/test.conf" holds no PEM certificate in test.conf:1},
		'a redis tls_ca file without a certificate is refused' ],
);
for my $e (@errors) {
	my ($text, $want, $name) = @$e;
	$r = conf($text);
	ok($r->{code} == 1 && $r->{signal} == 0 && $r->{out} eq '', "$name (exit 1, nothing parsed)");
	ref $want ? like($r->{err}, $want, "$name: the message says so") : is($r->{err}, $want, "$name: the message says so");
}

# --- include -------------------------------------------------------------------

spew("$dir/conf.d/20-b.conf", qq{upstream b { launch exec "b \$port"; }\n});
spew("$dir/conf.d/10-a.conf", qq{upstream a { launch exec "a \$port"; }\n});
spew("$dir/conf.d/30-c.conf", qq{# c\n\nupstream c { launch exec "c \$port"; }\n});
spew("$dir/locs/api.conf", "location /api { proxy_pass b; }\n");
spew("$dir/locs/root.conf", "location / { proxy_pass a; }\n");
$r = conf("include conf.d/*.conf;\ninclude nothing/*.conf;\n"
	. "server {\n listen 18081;\n include locs/*.conf;\n}\n", name => 'inc.conf');
is($r->{code}, 0, 'a conf with includes loads') or diag($r->{err});
is_deeply($r->{kv}{upstream}, [qw(a b c)], 'included files are read in sorted order');
is(val($r, 'upstream.c.defined'), 'conf.d/30-c.conf:3', 'an included upstream knows its file and line');
is(val($r, 'server.0.location.0'), '/api', 'an include inside a server block adds locations');
is(val($r, 'server.0.location.1.upstream'), 'a', 'and they proxy where they say');

$r = conf("include missing.conf;\n$UPS$SRV");
is($r->{err}, qq{open() "$dir/missing.conf" failed (No such file or directory) in "include" directive in test.conf:1},
	'including a file that does not exist is an error naming the include');

spew("$dir/conf.d/40-bad.conf", "upstream d {\n launch exec d;\n hold many;\n}\n");
$r = conf("include conf.d/*.conf;\n$SRV");
is($r->{err}, 'invalid number "many" in "hold" directive in conf.d/40-bad.conf:3', 'an error in an included file names that file and line');
unlink("$dir/conf.d/40-bad.conf");

spew("$dir/locs/stray.conf", "}\n");
$r = conf("$UPS\nserver {\n listen 18081;\n include locs/stray.conf;\n}\n");
is($r->{err}, 'unexpected "}" in locs/stray.conf:1', 'an included file cannot close the block that includes it');
unlink("$dir/locs/stray.conf");

spew("$dir/loop.conf", "include loop.conf;\n");
$r = conf("include loop.conf;\n");
like($r->{err}, qr/^include nesting deeper than \d+ .* in loop\.conf:1$/, 'a file that includes itself is refused');

# --- values ----------------------------------------------------------------------

$r = conf(<<"EOF");
proxy_connect_timeout 250ms;
proxy_read_timeout 1m30s;
client_max_body_size 10k;
upstream u {
	launch exec "w \$port";
	boot_timeout 2h;
	idle_timeout 1d;
	stop_grace 30;
	hold 5 timeout=1h30m;
	warmup model=m path=/v2/models/m/infer count=7 until_stable timeout=1m;
	min_warm 2;
	max_conns 4;
}
server {
	listen 18082;
	client_max_body_size 10m;
	location / { proxy_pass http://u/; client_max_body_size 1g; }
	location = /big { proxy_pass http://u; client_max_body_size 512; }
}
EOF
is($r->{code}, 0, 'a conf with every unit loads') or diag($r->{err});
is(val($r, 'proxy_connect_timeout_ms'), 250, '250ms is 250 milliseconds');
is(val($r, 'proxy_read_timeout_ms'), 90000, '1m30s is 90 seconds');
is(val($r, 'upstream.u.boot_timeout_ms'), 7200000, '2h is two hours');
is(val($r, 'upstream.u.idle_timeout_ms'), 86400000, '1d is a day');
is(val($r, 'upstream.u.stop_grace_ms'), 30000, 'a bare number is seconds');
is(val($r, 'upstream.u.hold_timeout_ms'), 5400000, 'hold timeout=1h30m is 90 minutes');
is(val($r, 'upstream.u.hold_max'), 5, 'hold keeps its count');
is(val($r, 'client_max_body_size'), 10240, '10k is 10240 bytes');
is(val($r, 'server.0.client_max_body_size'), 10485760, '10m is 10 MiB');
is(val($r, 'server.0.location.0.client_max_body_size'), 1073741824, '1g is 1 GiB');
is(val($r, 'server.0.location.1.client_max_body_size'), 512, 'a bare size is bytes');
is(val($r, 'server.0.location.1'), '= /big', '"location = /big" is an exact match');
is(val($r, 'server.0.location.0.proxy_pass'), 'u', 'proxy_pass http://NAME/ names the upstream');
is(val($r, 'upstream.u.warmup.model'), 'm', 'warmup model= is kept');
is(val($r, 'upstream.u.warmup.path'), '/v2/models/m/infer', 'warmup path= is kept');
is(val($r, 'upstream.u.warmup.count'), 7, 'warmup count= is kept');
is(val($r, 'upstream.u.warmup.until_stable'), 1, 'warmup until_stable is a flag');
is(val($r, 'upstream.u.warmup.timeout_ms'), 60000, 'warmup timeout= is a time');
is(val($r, 'upstream.u.min_warm'), 2, 'min_warm is kept');
is(val($r, 'upstream.u.max_conns'), 4, 'max_conns is kept');

for my $bad (qw(1s1m 5 5ms5ms 1.5s -1s 1x 99999999999999999999s)) {
	my $v = $bad eq '5' ? '5ss' : $bad;
	$r = conf("proxy_read_timeout $v;\n$UPS$SRV");
	is($r->{err}, qq{invalid time "$v" in "proxy_read_timeout" directive in test.conf:1}, "the time \"$v\" is refused");
}
for my $bad (qw(1t 1kb -1 k 1.5m)) {
	$r = conf("client_max_body_size $bad;\n$UPS$SRV");
	is($r->{err}, qq{invalid size "$bad" in "client_max_body_size" directive in test.conf:1}, "the size \"$bad\" is refused");
}

# --- inheritance: main -> server -> location ------------------------------------

$r = conf(<<"EOF");
$UPS
client_max_body_size 2m;
proxy_read_timeout 10s;
server {
	listen 18083;
	proxy_read_timeout 30s;
	location /a { proxy_pass u; client_max_body_size 5k; }
	location /b { proxy_pass u; }
}
server {
	listen 18084;
	location / { proxy_pass u; proxy_connect_timeout 1s; }
}
EOF
is($r->{code}, 0, 'a conf with values at three levels loads') or diag($r->{err});
is(val($r, 'server.0.location.0.client_max_body_size'), 5120, 'a location keeps what it sets');
is(val($r, 'server.0.location.0.proxy_read_timeout_ms'), 30000, 'and inherits what its server sets');
is(val($r, 'server.0.location.1.client_max_body_size'), 2097152, 'and what the main block sets');
is(val($r, 'server.0.location.1.proxy_connect_timeout_ms'), 5000, 'and the default where nobody sets it');
is(val($r, 'server.1.proxy_read_timeout_ms'), 10000, 'a server inherits from the main block');
is(val($r, 'server.1.location.0.proxy_connect_timeout_ms'), 1000, 'a location overrides its server');

# --- quotes, escapes, comments, paths --------------------------------------------

$r = conf(<<'EOF');
# a comment line
pid "run/wake gate.pid";   # a comment after a directive
error_log '/var/log/wg #1.log' debug;
access_log logs/access.log;
redis 10.0.0.5:6380 prefix=team-a:;
admin_listen 9090;
upstream u {
	launch exec "sh -c \"exec w --port $port --tag 'a;b'\" \\ end";
	health '/it\'s/ready';
}
server {
	listen [::1]:18085;
	listen 127.0.0.1:18086;
	server_name api.example.com "other name";
	location /x#y { proxy_pass u; }
}
EOF
is($r->{code}, 0, 'a conf with quotes, escapes and comments loads') or diag($r->{err});
is(val($r, 'pid'), "$dir/run/wake gate.pid", 'a quoted path keeps its space and resolves against the prefix');
is(val($r, 'error_log'), '/var/log/wg #1.log', 'a "#" inside quotes is not a comment; an absolute path stays');
is(val($r, 'error_log_level'), 'debug', 'error_log takes a level');
is(val($r, 'access_log'), "$dir/logs/access.log", 'access_log resolves against the prefix');
is(val($r, 'redis'), '10.0.0.5:6380', 'redis takes host:port');
is(val($r, 'redis_prefix'), 'team-a:', 'and a key prefix');
is(val($r, 'admin_listen'), '127.0.0.1:9090', 'a bare admin_listen port is on loopback');
is(val($r, 'upstream.u.launch_cmd'), q{sh -c "exec w --port $port --tag 'a;b'" \\\\ end},
	'\" and \\\\ are unescaped inside double quotes; ";" inside quotes ends nothing');
is(val($r, 'upstream.u.health'), q{/it's/ready}, q{\' is unescaped inside single quotes});
is_deeply($r->{kv}{'server.0.listen'}, ['[::1]:18085', '127.0.0.1:18086'], 'a server listens on IPv6 and IPv4');
is(val($r, 'server.0.server_name'), 'api.example.com', 'the first server_name is the one reported');
is(val($r, 'server.0.location.0'), '/x#y', 'a "#" inside a word is not a comment');
is(val($r, 'server.0.location.0.defined'), 'test.conf:15', 'a location knows its line');

spew("$dir/test.conf", "$UPS$SRV");
$r = run_dump(file => "$dir/test.conf", prefix => "$dir/empty");
is(val($r, 'prefix'), "$dir/empty", 'conf-dump -p sets the prefix');
$r = run_dump(file => 'test.conf', cwd => $dir);
is(val($r, 'prefix'), $dir, 'without -p the prefix is the current directory');

# --- robustness: truncated and mangled confs never crash -------------------------

my $default = slurp(src('conf/wakegate.conf'));
my ($crashes, $bad_msgs, $runs) = (0, 0, 0);
srand(30);
for (my $cut = 0; $cut < length($default); $cut += 13) {
	my $text = substr($default, 0, $cut);
	substr($text, int(rand(length($text) || 1)), 1, substr('{};"\'#$ x', int(rand(9)), 1)) if $cut % 2;
	$r = conf($text, name => 'mangled.conf');
	$runs++;
	$crashes++ if $r->{signal} || ($r->{code} != 0 && $r->{code} != 1);
	$bad_msgs++ if $r->{code} == 1 && $r->{err} !~ /^.+ in mangled\.conf(:\d+)?$/;
}
is($crashes, 0, "$runs truncated or mangled confs exit 0 or 1, never crash");
is($bad_msgs, 0, 'and each refusal is one line naming mangled.conf');

# --- no leaks, on success and on every kind of error ----------------------------

SKIP: {
	my $vg = `command -v valgrind 2>/dev/null`;
	chomp $vg;
	skip 'valgrind is not installed', 5 unless $vg;
	# a sanitizer build checks leaks itself at every exit above, and cannot run under valgrind
	skip 'conf-dump is built with a sanitizer', 5 if sanitized($dump);
	my @wrap = ($vg, '-q', '--leak-check=full', '--show-leak-kinds=all', '--errors-for-leak-kinds=all',
		'--error-exitcode=99');
	$r = run_dump(file => src('conf/wakegate.conf'), prefix => src('.'), wrap => \@wrap);
	is($r->{code}, 0, 'valgrind finds no leak or bad access loading the default conf') or diag($r->{err});
	spew("$dir/conf.d/40-bad.conf", "upstream d {\n launch exec d;\n warmup count=x;\n}\n");
	my @bad = (
		[ "include conf.d/*.conf;\n$SRV", 'an error inside an included file' ],
		[ "$UPS\nserver {\n listen 18080;\n location / { proxy_pass u", 'a lexer error deep in blocks' ],
		[ "$UPS\nserver {\n listen 18080;\n location / { proxy_pass nope; }\n}\n", 'an error found after parsing' ],
		[ "upstream u { launch exec \"\$x\"; }\n", 'an error in a launch command' ],
		[ "redis 127.0.0.1:6379 tls tls_name=r.example prefix=p: tls_ca=vg.conf;\n", 'a redis tls_ca= that is no certificate' ],
	);
	for my $b (@bad) {
		spew("$dir/vg.conf", $b->[0]);
		$r = run_dump(file => 'vg.conf', prefix => $dir, wrap => \@wrap);
		ok($r->{code} == 1 && $r->{err} =~ /\A[^\n]+ in \S+:\d+\z/, "valgrind finds nothing on $b->[1]")
			or diag($r->{err});
	}
	unlink("$dir/conf.d/40-bad.conf");
}

done_testing();
