# The fleet's trust edge in Redis (wakegate.conf(5): redis password=FILE,
# fleet_peers): against a redis-server with requirepass, a gateway with the
# password shares its lock, activity and limit buckets there; one without it
# writes nothing, says why and serves from memory. A replica URL planted in
# Redis outside fleet_peers never receives a request.
use strict;
use warnings;
use Test::More;
use IO::Socket::INET;
use POSIX qw(:sys_wait_h);
use Time::HiRes qw(time sleep);
use WG;
use WGGateway;

plan skip_all => 'no redis-server' unless system('sh', '-c', 'command -v redis-server >/dev/null') == 0;

my $dir = tmpdir();
my ($body) = digits_input(1);
my $pw = 'wg58-secret-' . $$;

# A redis-server that wants a password.
my $rport = free_port();
start_proc(name => "redis-auth-$rport", cmd => ['redis-server', '--port', $rport, '--bind', '127.0.0.1',
	'--save', '', '--appendonly', 'no', '--dir', $dir, '--requirepass', $pw]);
wait_until(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$rport") }, 10) or die 'redis did not start';

sub redis {
	my $out = `REDISCLI_AUTH='$pw' redis-cli -p $rport @_ 2>&1`;
	chomp $out;
	return $out;
}
ok(wait_until(sub { redis('PING') eq 'PONG' }, 10), 'redis-server with requirepass answers the right password');

spew("$dir/redis.pw", "$pw\n");
spew("$dir/wrong.pw", "not-the-password\n");
spew("$dir/user.pw", "wgu userpw\n");
is(redis('ACL', 'SETUSER', 'wgu', 'on', "'>userpw'", "'~wg58u:*'", q('+@all')), 'OK', 'an ACL user limited to one prefix');

sub gw_with {
	my (%o) = @_;
	my ($text, $port, $admin) = gw_conf(upstream => $o{upstream} // 'idle_timeout 60s;', extra => $o{extra});
	return gw_start(conf => $text, port => $port, admin => $admin);
}
sub launches { my @l = (gw_log($_[0]) =~ /launch exec: pid/g); return scalar @l }

# 1. the conf: the password file is read when the conf is, and errors name file and line
my $wg = bin('wakegate');
sub conf_test {
	my ($redis_line) = @_;
	my ($text) = gw_conf(extra => $redis_line);
	spew("$dir/t.conf", $text);
	my $out = `$wg -t -p $dir -c $dir/t.conf 2>&1`;
	return ($? >> 8, $out);
}
my ($rc, $out) = conf_test("redis 127.0.0.1:$rport password=$dir/redis.pw;\nfleet_peers 127.0.0.1 10.0.0.0/8 ::1 fd00::/8;");
is($rc, 0, 'a readable password file and address/network fleet_peers pass -t') or diag $out;
my $dump = ($ENV{WG_BUILD} // src('')) . '/gateway/conf-dump';
SKIP: {
	skip "no $dump: build it with make check", 3 unless -x $dump;
	spew("$dir/d.conf", (gw_conf(extra => "redis 127.0.0.1:$rport password=$dir/user.pw;\nfleet_peers 127.0.0.1 ::1;\nfleet_peers fd00::/8;"))[0]);
	my $d = `$dump $dir/d.conf 2>&1`;
	like($d, qr/^redis_auth wgu$/m, 'a file with "USER PASSWORD" authenticates as that ACL user');
	is(join(' ', $d =~ /^fleet_peer (\S+)$/mg), '127.0.0.1/32 ::1/128 fd00::/8', 'fleet_peers lines add up, a bare address is a /32 or /128');
	unlike($d, qr/userpw/, 'conf-dump never shows the password');
}
($rc, $out) = conf_test("redis 127.0.0.1:$rport password=$dir/missing.pw;");
isnt($rc, 0, 'an unreadable password file fails -t');
like($out, qr/cannot read redis password file "\Q$dir\E\/missing\.pw" \(No such file or directory\) in \Q$dir\E\/t\.conf:6/,
	'the error names the password file, the conf file and the line');
spew("$dir/empty.pw", "\n");
($rc, $out) = conf_test("redis 127.0.0.1:$rport password=$dir/empty.pw;");
like($out, qr/redis password file "\Q$dir\E\/empty\.pw": the first line must be/, 'an empty password file is refused');
unlike($out, qr/\Q$pw\E/, 'no password in any -t output');
($rc, $out) = conf_test("redis 127.0.0.1:$rport tls_name=localhost;");
like($out, qr/"tls_name=" in "redis" directive without "tls"/,
	'tls_name= without tls is refused (redis over TLS itself: t/118-redis-tls.t)');
($rc, $out) = conf_test("redis 127.0.0.1:$rport;\nfleet_peers 127.0.0.1/33;");
like($out, qr/invalid network "127\.0\.0\.1\/33" in "fleet_peers" directive/, 'fleet_peers refuses a bad prefix length');
($rc, $out) = conf_test("redis 127.0.0.1:$rport;\nfleet_peers 10.1.2.3/8;");
like($out, qr/"10\.1\.2\.3\/8" in "fleet_peers" directive has host bits set/, 'fleet_peers refuses a network with host bits');
($rc, $out) = conf_test("redis 127.0.0.1:$rport;\nfleet_peers gw2.example;");
like($out, qr/invalid address "gw2\.example" in "fleet_peers" directive/, 'fleet_peers takes addresses, not names');

# the store's connection through AUTH failure and success, under valgrind where it is installed
my $st = ($ENV{WG_BUILD} // src('')) . '/gateway/store-test';
SKIP: {
	skip "no $st: build it with make check", 4 unless -x $st;
	my @vg = system('sh', '-c', 'command -v valgrind >/dev/null') == 0 && !sanitized($st) ?
		('valgrind', '-q', '--leak-check=full', '--show-leak-kinds=definite,indirect',
		 '--errors-for-leak-kinds=definite,indirect', '--error-exitcode=99') : ();
	local $ENV{STORE_TEST_PASSWORD} = 'not-the-password';
	my $o = `@vg $st 127.0.0.1 $rport wg58v: 'sleep 1500' connected 'newest-nowait up' quit 2>&1`;
	is($? >> 8, 0, 'store-test with a wrong password exits cleanly' . (@vg ? ' under valgrind (no leak, no error)' : ''))
		or diag $o;
	like($o, qr/connected 0.*cannot connect: AUTH failed: WRONGPASS|cannot connect: AUTH failed: WRONGPASS.*connected 0/s,
		'it stays disconnected and says AUTH failed');
	$ENV{STORE_TEST_PASSWORD} = $pw;
	$o = `@vg $st 127.0.0.1 $rport wg58v: 'wait-connected 20000' 'activity up 1700000000000' 'newest up' quit 2>&1`;
	is($? >> 8, 0, 'store-test with the password exits cleanly' . (@vg ? ' under valgrind' : '')) or diag $o;
	like($o, qr/connected 1.*newest up 1700000000000 /s, 'it connects and reads back what it wrote');
}

# 2. the right password: lock, activity and the Redis limit bucket are in Redis
my $limit = "limit_req_zone \$binary_remote_addr zone=rz:1m rate=100r/s redis;\nlimit_req zone=rz burst=100 nodelay;";
my $g = gw_with(extra => "redis 127.0.0.1:$rport prefix=wg58t: password=$dir/redis.pw;\n$limit");
ok(wait_until(sub { gw_log($g) =~ /redis 127\.0\.0\.1:$rport: connected/ }, 20), 'with the password the store connects');
ok(wait_until(sub { gw_log($g) =~ /limit_req: Redis at 127\.0\.0\.1:$rport connected/ }, 20),
	'and so do the Redis limit zones');
my $r = gw_predict($g, $body, timeout => 60);
is($r->{status}, 200, 'a request is answered');
like(redis('GET', 'wg58t:lock:digits'), qr/^\w+ READY http:\/\/127\.0\.0\.1:\d+ \d+$/, 'the fleet lock is in Redis, naming the READY worker');
ok(wait_until(sub { redis('ZSCORE', 'wg58t:activity', 'digits') =~ /^\d{13}$/ }, 10), 'the activity is in Redis');
like(redis('--scan', '--pattern', "'wg58t:limit:rz:*'"), qr/^wg58t:limit:rz:/m, 'the limit bucket is in Redis');
unlike(gw_log($g), qr/\Q$pw\E/, 'the password is never logged');

# 3. no password: nothing written, a clear auth error, served from memory
my $n = gw_with(extra => "redis 127.0.0.1:$rport prefix=wg58n:;\n$limit");
ok(wait_until(sub { gw_log($n) =~ /redis 127\.0\.0\.1:$rport: cannot connect: the server asks for a password \(NOAUTH/ }, 20),
	'without the password the store logs that the server asks for one')
	or diag gw_log($n);
ok(wait_until(sub { gw_log($n) =~ /limit_req: Redis at 127\.0\.0\.1:$rport is not reachable \(the server asks for a password/ }, 20),
	'and the Redis limit zones say the same');
$r = gw_predict($n, $body, timeout => 60);
is($r->{status}, 200, 'the gateway without the password serves from memory');
like(gw_log($n), qr/redis is away, starting it without the lock/, 'it starts its worker without the lock, and says so');
gw_predict($n, $body) for 1 .. 3;
sleep 1.5;	# past the once-a-second activity write
is(redis('--scan', '--pattern', "'wg58n:*'"), '', 'it wrote no key of the fleet into Redis');
is(scalar(() = gw_log($n) =~ /cannot connect: the server asks/g), 1, 'the auth error is logged once, not at every retry');

# a wrong password: WRONGPASS named
my $w = gw_with(extra => "redis 127.0.0.1:$rport prefix=wg58w: password=$dir/wrong.pw;");
ok(wait_until(sub { gw_log($w) =~ /redis 127\.0\.0\.1:$rport: cannot connect: AUTH failed: WRONGPASS/ }, 20),
	'a wrong password is logged as AUTH failed: WRONGPASS') or diag gw_log($w);

# SIGHUP after the password file is fixed: the new password is used without a restart
spew("$dir/wrong.pw", "$pw\n");
kill 'HUP', $w->{pid};
ok(wait_until(sub { gw_log($w) =~ /redis 127\.0\.0\.1:$rport: connection back|redis 127\.0\.0\.1:$rport: connected/ }, 20),
	'a reload reads the password file again and connects with it') or diag gw_log($w);
stop_proc($_->{pid}) for $n, $w;

# 4. a Redis 6 ACL user: "USER PASSWORD" in the file
my $u = gw_with(extra => "redis 127.0.0.1:$rport prefix=wg58u: password=$dir/user.pw;");
$r = gw_predict($u, $body, timeout => 60);
is($r->{status}, 200, 'a gateway with an ACL user answers');
like(redis('GET', 'wg58u:lock:digits'), qr/^\w+ READY /, 'and holds its lock in Redis as that user');
stop_proc($_->{pid}) for $g, $u;

# 5. a URL planted in Redis outside fleet_peers gets no request
# A rogue HTTP listener on 127.0.0.2 that records every connection.
my $rogue_log = "$dir/rogue.log";
my $rogue = IO::Socket::INET->new(LocalAddr => '127.0.0.2', LocalPort => 0, Listen => 16, ReuseAddr => 1)
	or die "127.0.0.2: $!";
my $rogue_port = $rogue->sockport;
my $rpid = fork // die;
if ($rpid == 0) {
	while (my $c = $rogue->accept) {
		open my $fh, '>>', $rogue_log;
		my $req = '';
		while (my $l = <$c>) { $req .= $l; last if $l eq "\r\n" }
		my ($len) = $req =~ /content-length:\s*(\d+)/i;
		read($c, my $b, $len) if $len;
		print $fh (split /\r\n/, $req)[0], "\n";
		close $fh;
		print $c "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nConnection: close\r\n\r\nrogue";
		close $c;
	}
	POSIX::_exit(0);
}
close $rogue;
END { kill 'KILL', $rpid if $rpid }
sub rogue_seen { my @l = split /\n/, slurp($rogue_log); return scalar @l }
my $planted = "http://127.0.0.2:$rogue_port";
is(redis('SET', 'wg58r:lock:digits', "'cafe0001 READY $planted 600000'", 'PX', 600000), 'OK', 'a READY replica on the rogue listener is planted in Redis');

my $p = gw_with(extra => "redis 127.0.0.1:$rport prefix=wg58r: password=$dir/redis.pw;\nfleet_peers 127.0.0.1 ::1;",
	upstream => 'idle_timeout 60s; hold 8 timeout=2s;');
my @st = map { gw_predict($p, $body, timeout => 30)->{status} } 1 .. 2;
is_deeply(\@st, [503, 503], 'requests are held and then refused, not sent to the planted URL');
is(rogue_seen(), 0, 'the rogue listener saw no request');
is(launches($p), 0, 'the gateway did not start a worker under a lock it does not hold');
my @logged = gw_log($p) =~ /ignoring the URL "\Q$planted\E" read from Redis: 127\.0\.0\.2 is not in fleet_peers/g;
is(scalar @logged, 1, 'the refused URL is logged once, though read again at every try');
stop_proc($p->{pid});

# the same plant inside fleet_peers reaches the rogue: the check above is what stopped it
is(redis('SET', 'wg58s:lock:digits', "'cafe0002 READY $planted 600000'", 'PX', 600000), 'OK', 'the same plant under another prefix');
my $q = gw_with(extra => "redis 127.0.0.1:$rport prefix=wg58s: password=$dir/redis.pw;\nfleet_peers 127.0.0.0/8;",
	upstream => 'idle_timeout 60s; hold 8 timeout=5s;');
$r = gw_predict($q, $body, timeout => 30);
is($r->{status} . ' ' . ($r->{content} // ''), '200 rogue', 'with 127.0.0.0/8 in fleet_peers the planted URL is used');
ok(rogue_seen() >= 1, 'and the rogue listener saw the request');
stop_proc($q->{pid});

done_testing();
