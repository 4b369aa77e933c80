# Rate limiting as nginx does it: limit_req's leaky bucket (burst, nodelay,
# delay=N, dry run, several zones on one request), Retry-After, per-key
# states in a bounded zone, limit_conn, and key templates. The expected
# numbers are computed here from nginx's documented rule, never copied from
# a run; where nginx is installed, a real nginx answers the same requests.
use strict;
use warnings;
use Test::More;
use POSIX qw(ceil);
use IO::Socket::INET;
use Time::HiRes qw(time);
use WG;

my $build = $ENV{WG_BUILD} // src('');
my $bin = "$build/gateway/limit-test";
plan skip_all => "no $bin: build it with make check" unless -x $bin;

my @all_scripts;    # everything replayed, for the valgrind run at the end

# Replays script lines through limit-test; returns the lines it printed.
sub replay {
	my (@lines) = @_;
	push @all_scripts, @lines, 'reset';
	my $f = tmpdir() . "/limit-script.txt";
	spew($f, join('', map { "$_\n" } @lines));
	my @out = `"$bin" < "$f"`;
	die "limit-test failed: $?" if $?;
	chomp @out;
	return @out;
}

# "10r/s" -> milli-requests per second, as nginx stores a zone's rate.
sub rate_milli {
	my ($r) = @_;
	my ($n, $unit) = $r =~ /^(\d+)(?:r\/([sm]))?$/ or die "bad rate $r";
	return int($n * 1000 / (($unit // 's') eq 'm' ? 60 : 1));
}

# The leaky bucket, from nginx's documentation and module: excess is kept in
# milli-requests; a key's first request leaves it at 0; each later one adds
# 1000 after the bucket drained rate * elapsed / 1000; over burst * 1000 is
# rejected without touching the state; above delay * 1000 waits
# (excess - delay * 1000) * 1000 / rate ms.
sub model {
	my (%o) = @_;
	my ($rate, $burst, $delay) = (rate_milli($o{rate}), $o{burst} // 0, $o{delay} // 0);
	my %st;
	my @res;
	for my $ev (@{ $o{events} }) {
		my ($t, $key) = @$ev;
		my $s = $st{$key};
		my $excess = 0;
		my $ms = 0;
		if ($s) {
			$ms = $t - $s->{last};
			$ms = $ms < -60000 ? 1 : $ms < 0 ? 0 : $ms;    # a clock that stepped back
			$excess = $s->{excess} - int($rate * $ms / 1000) + 1000;
			$excess = 0 if $excess < 0;
		}
		if ($excess > $burst * 1000) {
			my $need = $s->{excess} + 1000 - $burst * 1000;
			my $wait = ceil($need * 1000 / $rate) - $ms;
			my $retry = ceil($wait / 1000);
			push @res, ['REJECTED', 0, $retry < 1 ? 1 : $retry];
			next;
		}
		$st{$key} = { excess => $excess, last => (!$s || $ms) ? $t : $s->{last} };
		if ($delay ne 'nodelay' && $excess > $delay * 1000) {
			push @res, ['DELAYED', int(($excess - $delay * 1000) * 1000 / $rate), 0];
		} else {
			push @res, ['PASSED', 0, 0];
		}
	}
	return @res;
}

sub parse { my @f = split ' ', $_[0]; return { status => $f[0], delay => $f[1], zone => $f[2], retry => $f[3], excess => $f[4] } }

sub stats {
	my ($line) = @_;
	my %s = $line =~ /(\w+)=(\d+)/g;
	return \%s;
}

sub tally { my %n; $n{ $_->{status} }++ for @_; return \%n }

# --- N requests at the same instant -----------------------------------
for my $case (
	{ rate => '10r/s', burst => 5, delay => 0, n => 10 },
	{ rate => '10r/s', burst => 5, delay => 'nodelay', n => 10 },
	{ rate => '30r/m', burst => 10, delay => 4, n => 20 },
	{ rate => '1r/s', burst => 0, delay => 0, n => 3 },
	{ rate => '7r/s', burst => 3, delay => 3, n => 4 },
) {
	my ($rate, $burst, $delay, $n) = @$case{qw(rate burst delay n)};
	my $opt = $delay eq 'nodelay' ? 'nodelay' : "delay=$delay";
	my @lines = replay("zone z $rate 1m", (map { "req z client 5000 burst=$burst $opt" } 1 .. $n), 'stats z');
	my $st = stats(pop @lines);
	my @out = map { parse($_) } grep { !/^OK/ } @lines;

	# The rule in closed form: request k (from 0) has excess 1000 * k.
	my $d = $delay eq 'nodelay' ? 1e18 : $delay;
	my $fits = $n < $burst + 1 ? $n : $burst + 1;
	my $now = $n < $d + 1 ? $n : $d + 1;
	$now = $fits if $now > $fits;
	my $name = "$rate burst=$burst $opt, $n requests at once";
	my $t = tally(@out);
	is($t->{PASSED} // 0, $now, "$name: $now go through at once");
	is($t->{DELAYED} // 0, $fits - $now, "$name: " . ($fits - $now) . " wait");
	is($t->{REJECTED} // 0, $n - $fits, "$name: " . ($n - $fits) . " are rejected");
	my @want = map { int(($_ - $d) * 1000 * 1000 / rate_milli($rate)) } $now .. $fits - 1;
	is_deeply([map { $_->{delay} } grep { $_->{status} eq 'DELAYED' } @out], \@want,
		"$name: the k-th waits (k - delay) / rate seconds");
	is_deeply([map { $_->{status} } @out[0 .. $fits - 1]], [('PASSED') x $now, ('DELAYED') x ($fits - $now)],
		"$name: the first ones pass, the later ones wait");
	is("$st->{passed} $st->{delayed} $st->{rejected}", "$now " . ($fits - $now) . " " . ($n - $fits),
		"$name: the zone counts passed, delayed and rejected");
	my @m = model(rate => $rate, burst => $burst, delay => $delay, events => [map { [5000, 'client'] } 1 .. $n]);
	is_deeply([map { [$_->{status}, $_->{delay}, $_->{retry}] } @out], \@m,
		"$name: every answer matches the leaky bucket");
}

# --- Retry-After ---------------------------------------------------------
{
	my @out = map { parse($_) } grep { !/^OK/ } replay('zone z 1r/m 1m',
		(map { 'req z k 1000 burst=2 nodelay' } 1 .. 4), 'req z k 31000 burst=2 nodelay',
		'req z k 63499 burst=2 nodelay', 'req z k 63500 burst=2 nodelay');
	# 1r/m is 16 milli-requests a second: 1000 drain takes ceil(1e6 / 16) ms.
	my $full = ceil(1000 * 1000 / 16);
	is($out[3]{status}, 'REJECTED', '1r/m burst=2: the fourth request at once is rejected');
	is($out[3]{retry}, ceil($full / 1000), 'its Retry-After is the time one request takes to drain');
	is($out[4]{retry}, ceil(($full - 30000) / 1000), 'thirty seconds later Retry-After is thirty seconds shorter');
	is($out[5]{status}, 'REJECTED', 'a request just before the bucket drained is still rejected');
	is($out[5]{retry}, 1, 'and is told to retry in one second');
	is($out[6]{status}, 'PASSED', 'a request once one request has drained goes through');
}

# --- Requests spread over time -----------------------------------------
{
	my @ev = map { [1000 + 100 * $_, 'k'] } 0 .. 19;
	my @out = map { parse($_) } grep { !/^OK/ } replay('zone z 10r/s 1m', map { "req z k $_->[0]" } @ev);
	is(scalar(grep { $_->{status} eq 'PASSED' } @out), 20, '10r/s burst=0: one request every 100ms always passes');

	@ev = map { [1000 + 50 * $_, 'k'] } 0 .. 19;
	@out = map { parse($_) } grep { !/^OK/ } replay('zone z 10r/s 1m', map { "req z k $_->[0]" } @ev);
	is_deeply([map { $_->{status} } @out], [('PASSED', 'REJECTED') x 10],
		'10r/s burst=0: one request every 50ms, every other one is rejected');

	# The bucket refills: after 6 of 10 pass, 300ms later exactly 3 more fit.
	@out = map { parse($_) } grep { !/^OK/ } replay('zone z 10r/s 1m',
		(map { 'req z k 1000 burst=5 nodelay' } 1 .. 10), (map { 'req z k 1300 burst=5 nodelay' } 1 .. 10));
	is(scalar(grep { $_->{status} eq 'PASSED' } @out[10 .. 19]), 3,
		'burst=5 nodelay at 10r/s: 300ms after the bucket filled, three more requests fit');

	# A clock that steps back a little counts as no time passing, and the
	# state keeps its later time.
	@ev = ([2000, 'k'], [1990, 'k'], [2100, 'k'], [1000, 'k'], [100000, 'k'], [30000, 'k']);
	@out = map { parse($_) } grep { !/^OK/ } replay('zone z 10r/s 1m', map { "req z k $_->[0] burst=5" } @ev);
	my @m = model(rate => '10r/s', burst => 5, delay => 0, events => \@ev);
	is_deeply([map { [$_->{status}, $_->{delay}, $_->{retry}] } @out], \@m,
		'a clock that steps back counts as no time passing, as in nginx');
	is($out[2]{delay}, 100, 'so 100ms after the latest request one request has drained');

	# An irregular sequence, replayed request by request against the rule.
	srand(4);
	my $t = 1000;
	@ev = map { $t += int(rand(rand() < 0.7 ? 40 : 600)); [$t, 'k' . int(rand(3))] } 1 .. 400;
	for my $c (['5r/s', 3, 1], ['20r/m', 4, 'nodelay'], ['50r/s', 10, 0]) {
		my ($rate, $burst, $delay) = @$c;
		my $opt = $delay eq 'nodelay' ? 'nodelay' : "delay=$delay";
		@out = map { parse($_) } grep { !/^OK/ } replay("zone z $rate 1m",
			map { "req z $_->[1] $_->[0] burst=$burst $opt" } @ev);
		my @m = model(rate => $rate, burst => $burst, delay => $delay, events => \@ev);
		is_deeply([map { [$_->{status}, $_->{delay}, $_->{retry}] } @out], \@m,
			"$rate burst=$burst $opt: 400 irregular requests from 3 clients match the leaky bucket");
	}
}

# --- Keys ---------------------------------------------------------------
{
	my @out = map { parse($_) } grep { !/^OK/ } replay('zone z 1r/s 1m',
		(map { 'req z alice 1000 burst=2 nodelay' } 1 .. 5), (map { 'req z bob 1000 burst=2 nodelay' } 1 .. 5),
		(map { 'req z - 1000 burst=2 nodelay' } 1 .. 5));
	is(scalar(grep { $_->{status} eq 'PASSED' } @out[0 .. 4]), 3, 'alice gets her burst of three');
	is(scalar(grep { $_->{status} eq 'PASSED' } @out[5 .. 9]), 3, 'bob still gets his own burst after alice used hers');
	is_deeply([map { $_->{status} } @out[10 .. 14]], [('UNCOUNTED') x 5], 'a request with an empty key is not limited');
}
{
	my @out = replay('zone z 1r/s 1m', (map { 'req z alice 1000 burst=2 nodelay' } 1 .. 5),
		(map { 'req z - 1000' } 1 .. 5), 'stats z');
	my $st = stats($out[-1]);
	is("$st->{passed} $st->{rejected} $st->{states}", '3 2 1', 'requests with an empty key are not counted in the zone');
}

# --- Dry run ------------------------------------------------------------
{
	my @lines = replay('zone z 1r/s 1m', (map { 'req z k 1000 burst=5 delay=2 dry_run' } 1 .. 10), 'stats z',
		'req z k 1000 burst=5 delay=2');
	my $st = stats($lines[11]);
	my @out = map { parse($_) } @lines[1 .. 10, 12];
	is_deeply([map { $_->{status} } @out[0 .. 9]],
		[('PASSED') x 3, ('DELAYED_DRY_RUN') x 3, ('REJECTED_DRY_RUN') x 4],
		'dry run: the status says what would have happened, as $limit_req_status does');
	is_deeply([map { $_->{delay} } @out[0 .. 9]], [(0) x 10], 'dry run: no request is delayed');
	is("$st->{passed} $st->{delayed} $st->{rejected}", '3 3 4', 'dry run: the zone counts what it would have done');
	is($out[10]{status}, 'REJECTED', 'dry run fills the bucket as real traffic would');
}

# --- A bounded zone -------------------------------------------------------
{
	my @out = replay('zone z 1r/s 512', (map { "req z k$_ 0 burst=1" } 1 .. 4), 'stats z',
		'req z k1 1 burst=1', 'req z k5 2 burst=1', 'stats z', 'has z k1', 'has z k2', 'has z k3',
		'req z k6 100000 burst=1', 'stats z', 'has z k3', 'has z k4', 'has z k5',
		'req z k2 100001 burst=1');
	my $s1 = stats($out[5]);
	is("$s1->{states} $s1->{bytes}", '4 512', 'a 512-byte zone holds four short keys of 128 bytes');
	my $s2 = stats($out[8]);
	is("$s2->{states} $s2->{evicted}", '4 1', 'a fifth key evicts one state by force');
	is("$out[9] $out[10] $out[11]", 'yes no yes', 'the least recently used key is the one evicted');
	my $s3 = stats($out[13]);
	is("$s3->{states} $s3->{evicted}", '3 1', 'a new key first frees two states idle for a minute, without forcing');
	is("$out[14] $out[15] $out[16]", 'no no yes', 'the idle states freed are the oldest ones');
	is(parse($out[17])->{status}, 'PASSED', 'an evicted key starts again with an empty bucket');

	my $long = 'x' x 60;
	@out = replay('zone z 1r/s 512', "req z ${long}1 0", "req z ${long}2 0", 'stats z');
	my $s4 = stats($out[3]);
	is("$s4->{states} $s4->{bytes}", '2 512', 'a key longer than 48 bytes costs 256 bytes');

	my @lines = ('zone z 1r/s 1m', map { "req z key$_ 0" } 1 .. 8193);
	@out = replay(@lines, 'stats z');
	my $s5 = stats($out[-1]);
	is("$s5->{states} $s5->{evicted}", '8192 1', 'a 1m zone keeps 8192 short keys, as nginx on 64-bit');
	like((replay('zone z 1r/s 100'))[0], qr/^ERROR/, 'a zone too small for one state is refused');
}

# --- Several limit_req on one request -------------------------------------
{
	my @lines = replay('zone a 1r/m 1m', 'zone b 1r/m 1m',
		'multi 1000 a:u:2:nodelay b:v:0:nodelay',
		('multi 1000 a:u:2:nodelay b:v:0:nodelay') x 3,
		'multi 1000 a:u:2:nodelay b:w1:0:nodelay', 'multi 1000 a:u:2:nodelay b:w2:0:nodelay',
		'multi 1000 a:u:2:nodelay b:w3:0:nodelay', 'stats a', 'stats b');
	my ($sa, $sb) = map { stats($_) } @lines[-2, -1];
	my @out = map { parse($_) } @lines[2 .. 8];
	is_deeply([map { $_->{status} } @out[0 .. 6]], [qw(PASSED REJECTED REJECTED REJECTED PASSED PASSED REJECTED)],
		'a request rejected by the second zone does not use up the first zone\'s burst');
	is_deeply([map { $_->{zone} } @out[1, 6]], ['b', 'a'], 'the rejection names the zone that rejected');
	is("$sa->{passed} $sa->{rejected} $sb->{passed} $sb->{rejected}", '3 1 3 3',
		'each zone counts the requests it let through and the ones it rejected');

	@out = map { parse($_) } grep { !/^OK/ } replay('zone a 10r/s 1m', 'zone b 1r/s 1m',
		('multi 1000 a:k:5 b:k:5') x 3, ('multi 1000 a:k:5 b:-:5') x 1, 'multi 1000 a:-:5 b:-:5');
	is_deeply([map { [$_->{status}, $_->{delay}, $_->{zone}] } @out[0 .. 2]],
		[['PASSED', 0, '-'], ['DELAYED', 1000, 'b'], ['DELAYED', 2000, 'b']],
		'with two zones the longest delay wins');
	is_deeply([$out[3]{status}, $out[3]{delay}], ['DELAYED', 300], 'a zone whose key is empty does not count');
	is($out[4]{status}, 'UNCOUNTED', 'a request no zone counts is not limited');

	@out = map { parse($_) } grep { !/^OK/ } replay('zone a 10r/s 1m', 'zone b 1r/s 1m',
		('multi 1000 b:k:5 a:k:5') x 2);
	is_deeply([$out[1]{status}, $out[1]{delay}, $out[1]{zone}], ['DELAYED', 1000, 'b'],
		'the longest delay wins also when it comes from the first zone');

	# A new key in the first zone, rejected by the second: nginx leaves a
	# state that was never written, so the key's next request starts empty.
	@out = map { parse($_) } grep { !/^OK/ } replay('zone a 1r/m 1m', 'zone b 1r/m 1m',
		'multi 1000 a:x:0:nodelay b:v:0:nodelay', 'multi 1000 a:y:0:nodelay b:v:0:nodelay',
		'multi 1000 a:y:0:nodelay b:w:0:nodelay', 'multi 1000 a:y:0:nodelay b:w2:0:nodelay');
	is_deeply([map { $_->{status} } @out], [qw(PASSED REJECTED PASSED REJECTED)],
		'a new key whose first request another zone rejected starts with an empty bucket');

	@out = map { parse($_) } grep { !/^OK/ } replay('zone a 1r/m 1m', 'zone b 1r/m 1m',
		('multi 1000 dry_run a:k:3:nodelay b:k:1:nodelay') x 4,
		map { "multi 1000 a:k:3:nodelay b:j$_:1:nodelay" } 1 .. 3);
	is_deeply([map { $_->{status} } @out], [qw(PASSED PASSED REJECTED_DRY_RUN REJECTED_DRY_RUN PASSED PASSED REJECTED)],
		'a dry run over several zones rejects nothing and rolls back like a real one');
}

# --- limit_conn -----------------------------------------------------------
{
	my @out = replay('conn_zone c 1m', 'conn c k 2', 'conn c k 2', 'conn c k 2', 'conn c j 2',
		'release c k', 'conn c k 2', 'release c k', 'release c k', 'release c j', 'stats c',
		'conn c - 1', 'conn c - 1', 'release c -', 'release c nobody');
	is_deeply([@out[1 .. 4]], ['OK 1', 'OK 2', 'OVER 2', 'OK 1'], 'limit_conn: a third connection over max=2 is refused; other keys count apart');
	is_deeply([@out[5 .. 6]], ['OK 1', 'OK 2'], 'limit_conn: a released connection makes room for one more');
	my $st = stats($out[10]);
	is("$st->{states} $st->{bytes} $st->{passed} $st->{rejected}", '0 0 4 1', 'limit_conn: a key whose count falls to 0 is freed');
	is_deeply([@out[11 .. 14]], ['OK 0', 'OK 0', 'OK 0', 'OK 0'], 'limit_conn: an empty key is not counted');

	@out = replay('conn_zone c 64', 'conn c k 5', 'conn c j 5', 'release c k', 'conn c j 5', 'stats c');
	is_deeply([@out[1 .. 4]], ['OK 1', 'OVER 0', 'OK 0', 'OK 1'], 'limit_conn: a full zone refuses new keys and never evicts a live one');
}

# --- Key templates and rates ----------------------------------------------
{
	my @out = replay(
		'key $binary_remote_addr | addr=10.1.2.3',
		'key $binary_remote_addr | addr=2001:db8::1',
		'key $remote_addr:$http_x_api_key | addr=10.1.2.3 X-API-Key:s3cret',
		'key $binary_remote_addr$http_x_api_key literal | addr=1.2.3.4 x-api-key:abc',
		'key ${URI}x$request_uri | uri=/a request_uri=/a?b=1',
		'key $http_x_api_key | X-Other:1',
		'key fixed',
		'key $foo',
		'key ${uri',
		'key x$',
		'key $host$server_name | host=h server_name=s');
	my $hex = sub { unpack('H*', $_[0]) };
	is($out[0], 'KEY 0a010203', '$binary_remote_addr is the four address bytes for IPv4');
	is($out[1], 'KEY 20010db8000000000000000000000001', 'and sixteen for IPv6');
	is($out[2], 'KEY ' . $hex->('10.1.2.3:s3cret'), '$http_x_api_key reads the X-API-Key header; $remote_addr is text');
	is($out[3], 'KEY 01020304' . $hex->('abc literal'), 'variables and literal text join into one key');
	is($out[4], 'KEY ' . $hex->('/ax/a?b=1'), '${name} and upper-case names work as in nginx');
	is($out[5], 'KEY ', 'a missing header gives an empty key');
	is($out[6], 'KEY ' . $hex->('fixed') . ' constant', 'a key without variables is one state for all');
	is($out[7], 'ERROR unknown "foo" variable', 'an unknown variable is an error naming it');
	like($out[8], qr/^ERROR the closing bracket in "uri" variable is missing/, 'an unclosed ${ is an error');
	like($out[9], qr/^ERROR invalid variable name/, 'a lone $ is an error');
	is($out[10], 'KEY ' . $hex->('hs'), '$host and $server_name come from the request');

	@out = replay('rate 10r/s', 'rate 30r/m', 'rate 1r/m', 'rate 5', 'rate 0r/s', 'rate fast', 'rate 10r/h');
	is_deeply(\@out, ['RATE 10000', 'RATE 500', 'RATE 16', 'RATE 5000', 'ERROR', 'ERROR', 'ERROR'],
		'rates are kept in milli-requests per second as nginx does; bad ones are refused');
}

# --- A real nginx with the same rules -------------------------------------
SKIP: {
	my $nginx = -x '/usr/sbin/nginx' ? '/usr/sbin/nginx' : undef;
	skip 'no nginx', 4 unless $nginx;
	my $v = `$nginx -V 2>&1`;
	skip 'nginx without limit_req', 4 if $v =~ /without-http_limit_req_module/;
	my ($maj, $min) = $v =~ m{nginx/(\d+)\.(\d+)};
	skip 'nginx older than 1.18 (no delay= or $limit_req_status)', 4 unless $maj && ($maj > 1 || $min >= 18);

	my $dir = tmpdir() . '/nginx';
	mkdir $dir;
	mkdir "$dir/www";
	spew("$dir/www/$_", "ok\n") for qw(nodelay burst0 dry multi delay);
	my $port = free_port();
	spew("$dir/nginx.conf", <<"EOF");
daemon off;
master_process off;
worker_processes 1;
error_log $dir/error.log info;
pid $dir/nginx.pid;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $dir/body;
	proxy_temp_path $dir/proxy;
	fastcgi_temp_path $dir/fastcgi;
	uwsgi_temp_path $dir/uwsgi;
	scgi_temp_path $dir/scgi;
	keepalive_requests 10000;
	limit_req_zone \$http_x_key zone=one:1m rate=1r/m;
	limit_req_zone \$http_x_key zone=zero:1m rate=1r/m;
	limit_req_zone \$http_x_key zone=dry:1m rate=1r/m;
	limit_req_zone \$http_x_a zone=a:1m rate=1r/m;
	limit_req_zone \$http_x_b zone=b:1m rate=1r/m;
	limit_req_zone \$http_x_key zone=slow:1m rate=1r/s;
	server {
		listen 127.0.0.1:$port;
		root $dir/www;
		add_header X-Limit \$limit_req_status always;
		location = /nodelay { limit_req zone=one burst=5 nodelay; }
		location = /burst0 { limit_req zone=zero; }
		location = /dry { limit_req zone=dry burst=5 delay=2; limit_req_dry_run on; }
		location = /multi { limit_req zone=a burst=2 nodelay; limit_req zone=b nodelay; }
		location = /delay { limit_req zone=slow burst=3; }
	}
}
EOF
	my $pid = start_proc(name => 'nginx', cmd => [$nginx, '-p', $dir, '-c', "$dir/nginx.conf"]);
	my $up = wait_until(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") }, 30);
	skip 'nginx did not start: ' . slurp("$dir/error.log"), 4 unless $up;

	# The requests go one after another over one keep-alive connection.
	my $sock;
	my $t0 = time;
	my $ask = sub {
		my ($path, %h) = @_;
		my $sent = int((time - $t0) * 1000);
		for my $try (1 .. 2) {
			$sock //= IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port", Timeout => 30) or die "connect: $!";
			my $req = "GET $path HTTP/1.1\r\nHost: localhost\r\n" . join('', map { "$_: $h{$_}\r\n" } sort keys %h) . "\r\n";
			print $sock $req;
			my $head = '';
			while ($head !~ /\r\n\r\n/) {
				my $n = sysread($sock, my $c, 1);
				last unless $n;
				$head .= $c;
			}
			if ($head !~ /\r\n\r\n/) { undef $sock; next }
			my ($code) = $head =~ m{^HTTP/1\.\d (\d+)};
			my ($len) = $head =~ /^Content-Length:\s*(\d+)/mi;
			my ($lim) = $head =~ /^X-Limit:\s*(\S+)/mi;
			my $body = '';
			while (length($body) < ($len // 0)) { sysread($sock, $body, $len - length($body), length($body)) or last }
			undef $sock if $head =~ /^Connection:\s*close/mi;
			return [$code, $lim // '', $sent];
		}
		die "no answer from nginx";
	};

	my (@got, @script);
	my $run = sub {
		my ($path, $rules, %h) = @_;
		my $r = $ask->($path, %h);
		push @got, $r;
		push @script, "multi " . (100000 + $r->[2]) . " " . ($path eq '/dry' ? 'dry_run ' : '') . $rules;
	};
	for my $who (qw(alice bob alice)) { $run->('/nodelay', "one:$who:5:nodelay", 'X-Key' => $who) for 1 .. 5 }
	$run->('/nodelay', 'one:-:5:nodelay') for 1 .. 3;
	$run->('/burst0', 'zero:carol:0:0', 'X-Key' => 'carol') for 1 .. 3;
	$run->('/dry', 'dry:dave:5:2', 'X-Key' => 'dave') for 1 .. 9;
	for my $b (qw(v v v v w1 w2 w3)) { $run->('/multi', "a:u:2:nodelay b:$b:0:nodelay", 'X-A' => 'u', 'X-B' => $b) }
	$run->('/delay', 'slow:erin:3:0', 'X-Key' => 'erin') for 1 .. 2;
	for my $b (qw(v n1 n2 n3 n4)) { $run->('/multi', "a:x:2:nodelay b:$b:0:nodelay", 'X-A' => 'x', 'X-B' => $b) }

	my @ours = map { parse($_) } grep { !/^OK/ } replay('zone one 1r/m 1m', 'zone zero 1r/m 1m',
		'zone dry 1r/m 1m', 'zone a 1r/m 1m', 'zone b 1r/m 1m', 'zone slow 1r/s 1m', @script);
	note('nginx: ' . join(' ', map { "$_->[0]:" . ($_->[1] || '-') } @got));
	note('ours:  ' . join(' ', map { $_->{status} } @ours));
	my %code = (PASSED => 200, DELAYED => 200, DELAYED_DRY_RUN => 200, REJECTED_DRY_RUN => 200,
		REJECTED => 503, UNCOUNTED => 200);
	my $n200 = grep { $_->[0] == 200 } @got;
	my $ours200 = grep { $code{ $_->{status} } == 200 } @ours;
	is(scalar(@got), scalar(@ours), 'nginx answered every request');
	is("$n200/" . (@got - $n200), "$ours200/" . (@ours - $ours200),
		"nginx and wakegate's limiter let the same number through and reject the same number ($n200/" . (@got - $n200) . ')');
	is_deeply([map { $_->[0] } @got], [map { $code{ $_->{status} } } @ours],
		'nginx answers 200 or 503 to each request exactly as predicted');
	is_deeply([map { $_->[1] } @got], [map { $_->{status} eq 'UNCOUNTED' ? '' : $_->{status} } @ours],
		'nginx\'s $limit_req_status matches for each request (burst, nodelay, delay, dry run, two zones)');
	close $sock if $sock;
	stop_proc($pid);
}

# --- No leaks -------------------------------------------------------------
SKIP: {
	skip 'no valgrind', 1 unless system('sh', '-c', 'command -v valgrind >/dev/null') == 0;
	skip 'limit-test is built with a sanitizer', 1 if slurp($bin) =~ /__asan_init|__tsan_init/;
	my $f = tmpdir() . '/limit-all.txt';
	spew($f, join('', map { "$_\n" } @all_scripts));
	my $rc = system("valgrind -q --leak-check=full --show-leak-kinds=all --errors-for-leak-kinds=all --error-exitcode=99 \"$bin\" < \"$f\" > /dev/null 2> \"$f.vg\"");
	is($rc, 0, 'limit-test replays the scripts under valgrind without errors or leaks') or diag(slurp("$f.vg"));
}

done_testing;
