# redis ... tls (wakegate.conf(5)): against a redis-server that has a TLS
# port only, so any byte the gateway got through proves it spoke TLS, the
# gateway's keys (store and Redis limit zones) appear with the right CA and
# password; with a CA that did not sign the server's certificate, or a
# tls_name the certificate does not carry, or no tls at all, it writes
# nothing, says why once, and serves from memory. The relay's private
# directory exists (mode 0700) while the gateway runs and is gone after.
# Certificates are made here with the openssl CLI.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use Time::HiRes qw(time sleep);
use WG;
use WGGateway;
use WGCerts;

plan skip_all => 'no redis-server' unless system('sh', '-c', 'command -v redis-server >/dev/null') == 0;

my $dir = tmpdir();
cert_ca($dir, 'ca') && cert_ca($dir, 'otherca') && cert_signed($dir, 'redis', 4242, 'ca') &&
	cert_signed($dir, 'client', 4343, 'ca', client => 1)
	or plan skip_all => 'openssl cannot make test certificates';

# A redis-server with a TLS port only (--port 0) and a password.
my $pw = 'wg118-secret-' . $$;
my $rport = free_port();
my $rpid = start_proc(name => "redis-tls-$rport", cmd => ['redis-server', '--port', 0, '--tls-port', $rport,
	'--bind', '127.0.0.1', '--tls-cert-file', "$dir/redis.pem", '--tls-key-file', "$dir/redis.key",
	'--tls-ca-cert-file', "$dir/ca.pem", '--tls-auth-clients', 'no', '--requirepass', $pw,
	'--save', '', '--appendonly', 'no', '--dir', $dir]);
sub redis {
	my $out = `REDISCLI_AUTH='$pw' redis-cli --tls --cacert $dir/ca.pem -h 127.0.0.1 -p $rport @_ 2>&1`;
	chomp $out;
	return $out;
}
ok(wait_until(sub { redis('PING') eq 'PONG' }, 15), 'redis-server answers on its TLS port (redis-cli --tls)')
	or BAIL_OUT('no TLS redis-server');
my $plain = `REDISCLI_AUTH='$pw' redis-cli -h 127.0.0.1 -p $rport PING 2>&1`;
isnt($plain, "PONG\n", 'and not in plain text: a gateway that got an answer spoke TLS');

spew("$dir/redis.pw", "$pw\n");
my ($body) = digits_input(1);

# Each gateway gets its own TMPDIR, where its relays make their directories.
sub gw_with {
	my ($name, $extra) = @_;
	my $tmp = "$dir/tmp-$name";
	mkdir $tmp or die "$tmp: $!";
	my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 60s;', extra => $extra);
	local $ENV{TMPDIR} = $tmp;
	my $g = gw_start(conf => $text, port => $port, admin => $admin);
	$g->{tmp} = $tmp;
	return $g;
}
sub relay_dirs { my ($g) = @_; return grep { -d } glob("$g->{tmp}/wakegate-redis-*") }

# 1. the conf
my $wg = bin('wakegate');
sub conf_test {
	my ($redis_line) = @_;
	my ($text) = gw_conf(extra => $redis_line);
	spew("$dir/t.conf", $text);
	my $out = `$wg -t -p $dir -c $dir/t.conf 2>&1`;
	return ($? >> 8, $out);
}
my ($rc, $out) = conf_test("redis 127.0.0.1:$rport prefix=x: password=$dir/redis.pw tls tls_ca=$dir/ca.pem tls_name=localhost;");
is($rc, 0, 'tls, tls_ca=, tls_name= and password= together pass -t') or diag $out;
my $dump = ($ENV{WG_BUILD} // src('')) . '/gateway/conf-dump';
SKIP: {
	skip "no $dump: build it with make check", 2 unless -x $dump;
	spew("$dir/d.conf", (gw_conf(extra => "redis 127.0.0.1:$rport tls tls_ca=ca.pem tls_name=localhost;"))[0]);
	like(`$dump -p $dir $dir/d.conf 2>&1`, qr/^redis_tls ca=\Q$dir\E\/ca\.pem name=localhost$/m,
		'conf-dump: tls_ca= resolves against the prefix, tls_name= is kept');
	spew("$dir/d.conf", (gw_conf(extra => "redis 127.0.0.1:$rport tls;"))[0]);
	like(`$dump $dir/d.conf 2>&1`, qr/^redis_tls ca=system name=host$/m, 'tls alone: the system store, the host\'s name');
}
($rc, $out) = conf_test("redis 127.0.0.1:$rport tls_ca=$dir/ca.pem;");
like($out, qr/"tls_ca=" in "redis" directive without "tls" in \Q$dir\E\/t\.conf:6/, 'tls_ca= without tls is refused, naming file:line');
($rc, $out) = conf_test("redis 127.0.0.1:$rport tls tls_ca=$dir/missing.pem;");
like($out, qr/cannot read redis tls_ca file "\Q$dir\E\/missing\.pem" \(No such file or directory\) in \Q$dir\E\/t\.conf:6/,
	'an unreadable tls_ca file is refused, naming it and file:line');
($rc, $out) = conf_test("redis 127.0.0.1:$rport tls tls_ca=$dir/redis.pw;");
like($out, qr/redis tls_ca file "\Q$dir\E\/redis\.pw" holds no PEM certificate/, 'a tls_ca file without a certificate is refused');

# 2. the right CA and password: store and limit zones reach Redis over TLS
my $limit = "limit_req_zone \$binary_remote_addr zone=rz:1m rate=100r/s redis;\nlimit_req zone=rz burst=100 nodelay;";
my $g = gw_with('good', "redis 127.0.0.1:$rport prefix=wg118t: password=$dir/redis.pw tls tls_ca=$dir/ca.pem;\n$limit");
ok(wait_until(sub { gw_log($g) =~ /redis 127\.0\.0\.1:$rport: connected/ }, 20), 'the store connects over TLS with the password')
	or diag gw_log($g);
ok(wait_until(sub { gw_log($g) =~ /limit_req: Redis at 127\.0\.0\.1:$rport connected/ }, 20), 'and so do the Redis limit zones');
my $r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'a request is answered');
like(redis('GET', 'wg118t:lock:digits'), qr/^\w+ READY http:\/\/127\.0\.0\.1:\d+ \d+$/, 'the fleet lock is in Redis');
ok(wait_until(sub { redis('ZSCORE', 'wg118t:activity', 'digits') =~ /^\d{13}$/ }, 10), 'the activity is in Redis');
like(redis('--scan', '--pattern', "'wg118t:limit:rz:*'"), qr/^wg118t:limit:rz:/m, 'the limit bucket is in Redis');
my @rd = relay_dirs($g);
is(scalar @rd, 2, 'two relays (store, limit zones), each in its own directory under TMPDIR');
is(join(' ', map { sprintf '%o', (stat $_)[2] & 07777 } @rd), '700 700', 'the directories are mode 0700');
ok((grep { -S "$_/redis.sock" } @rd) == 2, 'each holds the Unix socket hiredis connects to');
unlike(gw_log($g), qr/\Q$pw\E/, 'the password is never logged');

# 3. a CA that did not sign the server's certificate (redis-server sends its CA in the chain,
# so OpenSSL may name that self-signed certificate rather than a missing issuer)
my $b = gw_with('badca', "redis 127.0.0.1:$rport prefix=wg118b: password=$dir/redis.pw tls tls_ca=$dir/otherca.pem;");
ok(wait_until(sub { gw_log($b) =~ /redis 127\.0\.0\.1:$rport over TLS: handshake failed: certificate verify failed: (?:unable to get local issuer certificate|self-signed certificate in certificate chain)/ }, 20),
	'a CA that did not sign the certificate: the verification failure is logged with OpenSSL\'s reason') or diag gw_log($b);
ok(wait_until(sub { gw_log($b) =~ /redis 127\.0\.0\.1:$rport: cannot connect: TLS: certificate verify failed/ }, 20),
	'and the store says it cannot connect, and why');
$r = gw_predict($b, $body, timeout => 60);
is($r->{status}, 200, 'it serves from memory');

# 4. a tls_name the certificate does not carry
my $n = gw_with('badname', "redis 127.0.0.1:$rport prefix=wg118n: password=$dir/redis.pw tls tls_ca=$dir/ca.pem tls_name=redis.example;");
ok(wait_until(sub { gw_log($n) =~ /over TLS: handshake failed: certificate verify failed: hostname mismatch/ }, 20),
	'a tls_name not in the certificate: hostname mismatch') or diag gw_log($n);

# 5. no tls against the TLS port
my $p = gw_with('plain', "redis 127.0.0.1:$rport prefix=wg118p: password=$dir/redis.pw;");
ok(wait_until(sub { gw_log($p) =~ /redis 127\.0\.0\.1:$rport: cannot connect/ }, 20), 'without tls the store cannot connect')
	or diag gw_log($p);
$r = gw_predict($p, $body, timeout => 60);
is($r->{status}, 200, 'and serves from memory');
is(scalar(relay_dirs($p)), 0, 'without tls there is no relay directory');

sleep 1.5;	# past the once-a-second activity write of the gateways that could not write
is(redis('--scan', '--pattern', "'wg118[bnp]:*'"), '', 'no gateway that failed wrote a key');
is(scalar(() = gw_log($b) =~ /over TLS: handshake failed/g), 1, 'the verification failure is logged once for the streak, not at every retry');
ok(scalar(() = gw_log($b) =~ /redis 127\.0\.0\.1:$rport: (?:cannot connect|reconnect failed)/g) >= 1, 'though it keeps retrying');

# 6. the relay directories are removed when the gateway stops
stop_proc($_->{pid}) for $g, $b, $n, $p;
is(scalar(relay_dirs($g)) + scalar(relay_dirs($b)) + scalar(relay_dirs($n)), 0, 'no relay directory is left after the gateways stop');

# 6b. a Redis that wants client certificates (tls-auth-clients yes)
my $cport = free_port();
start_proc(name => "redis-tlsauth-$cport", cmd => ['redis-server', '--port', 0, '--tls-port', $cport,
	'--bind', '127.0.0.1', '--tls-cert-file', "$dir/redis.pem", '--tls-key-file', "$dir/redis.key",
	'--tls-ca-cert-file', "$dir/ca.pem", '--tls-auth-clients', 'yes', '--save', '', '--appendonly', 'no', '--dir', $dir]);
sub credis { my $o = `redis-cli --tls --cacert $dir/ca.pem --cert $dir/client.pem --key $dir/client.key -h 127.0.0.1 -p $cport @_ 2>&1`; chomp $o; return $o }
ok(wait_until(sub { credis('PING') eq 'PONG' }, 15), 'a redis-server with tls-auth-clients yes answers redis-cli with a client certificate');
my $cc = gw_with('client', "redis 127.0.0.1:$cport prefix=wg118c: tls tls_ca=$dir/ca.pem tls_cert=$dir/client.pem tls_key=$dir/client.key;");
my $nc = gw_with('noclient', "redis 127.0.0.1:$cport prefix=wg118d: tls tls_ca=$dir/ca.pem;");
ok(wait_until(sub { gw_log($cc) =~ /redis 127\.0\.0\.1:$cport: connected/ }, 20), 'with tls_cert= and tls_key= the gateway connects')
	or diag gw_log($cc);
is(gw_predict($cc, $body, timeout => 60)->{status}, 200, 'and answers');
like(credis('GET', 'wg118c:lock:digits'), qr/^\w+ READY /, 'its lock is in Redis');
# TLS 1.3 refuses a missing client certificate after the handshake: hiredis may
# see the close before the relay has OpenSSL's reason, so the reason is in the
# cannot-connect line or in the relay's own line, whichever came first
ok(wait_until(sub { gw_log($nc) =~ /redis 127\.0\.0\.1:$cport(?:: cannot connect: TLS:| over TLS: connection failed:) .*alert certificate required/ }, 20),
	'without a client certificate it cannot, and says Redis asked for one') or diag gw_log($nc);
is(gw_predict($nc, $body, timeout => 60)->{status}, 200, 'and serves from memory');
sleep 1;	# retries
is(scalar(() = gw_log($nc) =~ /over TLS: /g), 1, 'the refusal is logged once, not at every retry') or diag gw_log($nc);
is(credis('--scan', '--pattern', "'wg118d:*'"), '', 'writing nothing');
stop_proc($_->{pid}) for $cc, $nc;
($rc, $out) = conf_test("redis 127.0.0.1:$cport tls tls_cert=$dir/client.pem tls_key=$dir/redis.key;");
like($out, qr/redis tls_key file "\Q$dir\E\/redis\.key" is not the key of tls_cert file "\Q$dir\E\/client\.pem" in \Q$dir\E\/t\.conf:6/,
	'a tls_key= that is not the certificate\'s key is refused at -t');
($rc, $out) = conf_test("redis 127.0.0.1:$cport tls tls_cert=$dir/client.pem;");
like($out, qr/"tls_cert=" in "redis" directive without "tls_key="/, 'tls_cert= needs tls_key=');

# 7. the store's connection through the relay, under valgrind where it is installed: no leak,
# no bad access, whether the handshake succeeds or fails
my $st = ($ENV{WG_BUILD} // src('')) . '/gateway/store-test';
SKIP: {
	skip "no $st: build it with make check", 6 unless -x $st;
	my @vg = system('sh', '-c', 'command -v valgrind >/dev/null') == 0 && !sanitized($st) ?
		('valgrind', '-q', '--leak-check=full', '--show-leak-kinds=definite,indirect',
		 '--errors-for-leak-kinds=definite,indirect', '--error-exitcode=99') : ();
	my $vgs = @vg ? ' under valgrind (no leak, no error)' : '';
	mkdir "$dir/tmp-st";
	local $ENV{TMPDIR} = "$dir/tmp-st";
	local $ENV{STORE_TEST_PASSWORD} = $pw;
	local $ENV{STORE_TEST_TLS_CA} = "$dir/ca.pem";
	my $o = `@vg $st 127.0.0.1 $rport wg118v: 'wait-connected 20000' 'activity up 1700000000000' 'newest up' quit 2>&1`;
	is($? >> 8, 0, "store-test over TLS exits cleanly$vgs") or diag $o;
	like($o, qr/connected 1.*newest up 1700000000000 /s, 'it connects through the relay and reads back what it wrote');
	$ENV{STORE_TEST_TLS_CA} = "$dir/otherca.pem";
	# long enough for a failed handshake under valgrind on a loaded machine
	$o = `@vg $st 127.0.0.1 $rport wg118w: 'sleep 5000' connected quit 2>&1`;
	is($? >> 8, 0, "store-test with the wrong CA exits cleanly$vgs") or diag $o;
	like($o, qr/handshake failed: certificate verify failed/, 'it says why');
	like($o, qr/connected 0/, 'and stays disconnected');
	is(scalar(grep { -d } glob("$dir/tmp-st/wakegate-redis-*")), 0, 'store_free removed the relay directories');
}

# 8. Redis going away and coming back: the relay's close is a disconnect, and the reconnect path takes over
my $h = gw_with('back', "redis 127.0.0.1:$rport prefix=wg118h: password=$dir/redis.pw tls tls_ca=$dir/ca.pem;");
ok(wait_until(sub { gw_log($h) =~ /redis 127\.0\.0\.1:$rport: connected/ }, 20), 'another gateway connects');
redis('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
ok(wait_until(sub { gw_log($h) =~ /redis 127\.0\.0\.1:$rport: connection lost/ }, 20), 'Redis closing the TLS connection is seen as a lost connection')
	or diag gw_log($h);
ok(wait_until(sub { gw_log($h) =~ /redis 127\.0\.0\.1:$rport: connection back|connected.*\n.*connected/s }, 20), 'and it reconnects')
	or diag gw_log($h);
# a reload with another tls_ca: the redis line takes effect at the next start, as its other parameters
my $conf = slurp($h->{conf});
$conf =~ s/tls_ca=\S+ca\.pem;/tls_ca=$dir\/otherca.pem;/ or die 'no tls_ca in the conf';
spew($h->{conf}, $conf);
kill 'HUP', $h->{pid};
ok(wait_until(sub { gw_log($h) =~ /the "redis" line changed in [^;]*; it takes effect at the next start, this gateway stays on "redis [^"]*tls_ca=\Q$dir\E\/ca\.pem/ }, 20),
	'a reload with another tls_ca keeps the running redis line, and says so') or diag gw_log($h);
redis('CLIENT', 'KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
ok(wait_until(sub { my @c = gw_log($h) =~ /: connection back/g; @c >= 2 }, 20), 'and reconnects with the CA it runs with')
	or diag gw_log($h);

# Redis stopped: the TCP side's own error, logged once; Redis back: connected again
stop_proc($rpid);
ok(wait_until(sub { gw_log($h) =~ /redis 127\.0\.0\.1:$rport over TLS: (?:connection failed|cannot connect): Connection refused/ }, 20),
	'Redis stopped: the relay says the connection is refused') or diag gw_log($h);
sleep 1;	# a few retries
is(scalar(() = gw_log($h) =~ /over TLS: cannot connect: Connection refused/g), 1, 'once, not at every retry');
my $before = () = gw_log($h) =~ /: connected|: connection back/g;
$rpid = start_proc(name => "redis-tls-again-$rport", cmd => ['redis-server', '--port', 0, '--tls-port', $rport,
	'--bind', '127.0.0.1', '--tls-cert-file', "$dir/redis.pem", '--tls-key-file', "$dir/redis.key",
	'--tls-ca-cert-file', "$dir/ca.pem", '--tls-auth-clients', 'no', '--requirepass', $pw,
	'--save', '', '--appendonly', 'no', '--dir', $dir]);
ok(wait_until(sub { my $n = () = gw_log($h) =~ /: connected|: connection back/g; $n > $before }, 20),
	'Redis back: the gateway reconnects through the relay') or diag gw_log($h);
stop_proc($h->{pid});
is(scalar(relay_dirs($h)), 0, 'and leaves no directory either');

done_testing();
