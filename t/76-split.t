#!/usr/bin/perl
# "split KEY { P% UPSTREAM; ... }" in a location: nginx's split_clients over
# upstreams (issue 16). The same key lands in the same bucket as in nginx:
# 10,000 keys are put through a real nginx's split_clients (started here on
# loopback, answering the buckets in headers) and through gateway/split.c
# (the split-test driver), for three blocks (90/10; thirds with decimals
# and "*"; 75.5% with the rest left out). Then a real gateway in front of
# two real wakegate-workers: 300 keys sent as X-User-Id go to the upstream
# nginx picks for them (read from the access log), each target wakes on its
# own, and the metrics compare the two (requests, codes, latency). First
# what conf-dump shows and the errors (file:line).
use strict;
use warnings;
use Test::More;
use File::Path qw(make_path);
use HTTP::Tiny;
use WG;
use WGConf;
use WGGateway;
use Time::HiRes qw(time sleep);

my $build = $ENV{WG_BUILD} // src('.');
my $dump = "$build/gateway/conf-dump";
my $driver = "$build/gateway/split-test";
plan skip_all => "no $dump or $driver: build them first (make gateway/conf-dump gateway/split-test)"
	unless -x $dump && -x $driver;
my $nginx = (grep { -x } '/usr/sbin/nginx', '/usr/bin/nginx')[0];
plan skip_all => 'no nginx (apt-get install nginx-light)' unless $nginx;
my ($dir) = conf_setup('split');

# --- the directive ---------------------------------------------------------------


my $UPS = qq{upstream a { launch exec "w \$port"; }\nupstream b { launch exec "w \$port"; }\n};
my $r = conf($UPS . qq{server {\n listen 127.0.0.1:18080;\n location / {\n  split \$http_x_user_id {\n   90% a;\n   10% b;\n  }\n }\n}\n});
is($r->{code}, 0, 'a location with a split and no proxy_pass loads') or diag($r->{err});
is(val($r, 'server.0.location.0.split'), '$http_x_user_id', 'conf-dump shows the key');
is(val($r, 'server.0.location.0.split.0'), '90.00% a', 'the first bucket');
is(val($r, 'server.0.location.0.split.1'), '10.00% b', 'the second bucket');
$r = conf($UPS . qq{server { listen 127.0.0.1:18080; location / { split "\$remote_addr:\$http_x_tenant" { 33.33% a; * b; } } }\n});
is($r->{code}, 0, 'a template key, decimals and "*" load') or diag($r->{err});
is(val($r, 'server.0.location.0.split.1'), '* b', '"*" takes the rest');
$r = conf($UPS . qq{server { listen 127.0.0.1:18080; location / { proxy_pass a; split \$uri { 25% b; } } }\n});
is($r->{code}, 0, 'a split over part of the keys loads when proxy_pass takes the rest') or diag($r->{err});

for my $bad (
	[ "server {\n listen 18080;\n location / {\n  split \$http_x_user_id {\n   90% a;\n   20% b;\n  }\n }\n}\n",
		'percent total is greater than 100% in "split" block in test.conf:6', 'over 100% is refused' ],
	[ "server {\n listen 18080;\n location / {\n  split \$http_x_user_id {\n   90 a;\n  }\n }\n}\n",
		'invalid percent value "90" in "split" block in test.conf:7', 'a percentage needs its %' ],
	[ "server {\n listen 18080;\n location / {\n  split \$http_x_user_id {\n   0% a;\n   * b;\n  }\n }\n}\n",
		'invalid percent value "0%" in "split" block in test.conf:7', '0% is refused, as in nginx' ],
	[ "server {\n listen 18080;\n location / {\n  split \$http_x_user_id {\n   1.005% a;\n  }\n }\n}\n",
		'invalid percent value "1.005%" in "split" block in test.conf:7', 'at most two decimals' ],
	[ "server {\n listen 18080;\n location / {\n  split \$http_x_user_id {\n   50% a;\n   50% c;\n  }\n }\n}\n",
		'no upstream "c" for split in test.conf:6', 'every bucket names an upstream' ],
	[ "server {\n listen 18080;\n location / {\n  split \$http_x_user_id {\n   50% a;\n  }\n }\n}\n",
		'the "split" block covers 50.00% of keys: add a "*" line or a "proxy_pass" for the rest in test.conf:6',
		'keys no bucket takes need somewhere to go' ],
	[ "server {\n listen 18080;\n location / {\n  split \$nosuch {\n   * a;\n  }\n }\n}\n",
		'unknown "nosuch" variable in "split" directive in test.conf:6', 'the key\'s variables are checked' ],
	[ "server {\n listen 18080;\n location / {\n  split \$uri {\n  }\n }\n}\n",
		'empty "split" block in test.conf:6', 'an empty block is refused' ],
	[ "server {\n listen 18080;\n location / {\n  split \$uri {\n   50% a b;\n  }\n }\n}\n",
		'invalid number of arguments in "split" block (expecting "P% UPSTREAM;") in test.conf:7', 'one name a line' ],
	[ "server {\n listen 18080;\n split \$uri { * a; }\n location / { proxy_pass a; }\n}\n",
		'"split" directive is not allowed here in test.conf:5', 'split stands in a location only' ],
) {
	my $b = conf($UPS . $bad->[0]);
	isnt($b->{code}, 0, "$bad->[2] (conf-dump fails)");
	like($b->{err}, qr/\Q$bad->[1]\E$/, $bad->[2]);
}

# --- nginx's split_clients, 10,000 keys --------------------------------------------

my @BLOCKS = (
	[ '90%:digits-v1,10%:digits-v2', "90% digits-v1; 10% digits-v2;" ],
	[ '33.33%:a,33.33%:b,*:c', "33.33% a; 33.33% b; * c;" ],
	[ '50%:a,25.5%:b', "50% a; 25.5% b;" ],
);
my $nport = free_port();
make_path("$dir/nginx/logs");
my $maps = join '', map { "\tsplit_clients \"\${http_x_user_id}\" \$b$_ { $BLOCKS[$_][1] }\n" } 0 .. $#BLOCKS;
my $hdrs = join '', map { "\t\t\tadd_header X-B$_ \$b$_ always;\n" } 0 .. $#BLOCKS;
spew("$dir/nginx/nginx.conf", <<"EOC");
daemon off;
master_process off;
pid $dir/nginx/nginx.pid;
error_log $dir/nginx/error.log;
events { worker_connections 64; }
http {
	access_log off;
	client_body_temp_path $dir/nginx/body;
	proxy_temp_path $dir/nginx/proxy;
	fastcgi_temp_path $dir/nginx/fastcgi;
	uwsgi_temp_path $dir/nginx/uwsgi;
	scgi_temp_path $dir/nginx/scgi;
$maps
	server {
		listen 127.0.0.1:$nport;
		keepalive_requests 1000000;
		location / {
$hdrs			return 204;
		}
	}
}
EOC
my $npid = start_proc(name => 'nginx', cmd => [$nginx, '-p', "$dir/nginx", '-c', "$dir/nginx/nginx.conf"]);
ok(wait_until(sub { HTTP::Tiny->new(timeout => 2)->get("http://127.0.0.1:$nport/")->{status} == 204 }, 20),
	'nginx answers on loopback') or diag(slurp("$dir/nginx/error.log") . slurp(tmpdir() . '/nginx.log'));

# 10,000 keys: counters, then random printable keys of 1..40 bytes (every tail length of the hash)
srand(16);
my @chars = map { chr } 33 .. 126;
my @keys = map { "user-$_" } 1 .. 3000;
push @keys, join('', map { $chars[rand @chars] } 1 .. 1 + int(rand 40)) for 1 .. 6999;
push @keys, '';	# no header at all: nginx and the gateway hash the empty string
my %seen;
@keys = grep { !$seen{$_}++ } @keys;
push @keys, "k$_" for 1 .. 10000 - @keys;
is(scalar @keys, 10000, '10,000 distinct keys');

my $h = HTTP::Tiny->new(timeout => 10, keep_alive => 1);
my (@nginx, $failed);
for my $k (@keys) {
	my $res = $h->get("http://127.0.0.1:$nport/", { headers => length $k ? { 'X-User-Id' => $k } : {} });
	$failed++ unless $res->{status} == 204;
	push @nginx, join "\t", map { $res->{headers}{"x-b$_"} // '-' } 0 .. $#BLOCKS;
}
ok(!$failed, 'nginx answered every key') or diag("$failed failed");

spew("$dir/keys", join('', map { "$_\n" } @keys));
my @ours = split /\n/, `'$driver' @{[ map { "'$_->[0]'" } @BLOCKS ]} < '$dir/keys'`;
is(scalar @ours, 10000, 'split-test answers every key');
my @diff = grep { $nginx[$_] ne ($ours[$_] // '') } 0 .. $#keys;
is(scalar @diff, 0, 'every key of the 10,000 lands in the same bucket as in nginx, for all three blocks')
	or diag(join "\n", map { "key '$keys[$_]': nginx $nginx[$_], wakegate $ours[$_]" } @diff[0 .. ($#diff < 9 ? $#diff : 9)]);
my %share;
$share{(split /\t/, $_)[0]}++ for @ours;
cmp_ok(abs(($share{'digits-v2'} // 0) - 1000), '<', 150, "the 10% bucket gets about 1,000 of them ($share{'digits-v2'})");
my %rest;
$rest{(split /\t/, $_)[2]}++ for @ours;
cmp_ok(abs(($rest{'-'} // 0) - 2450), '<', 200, "the 24.5% no bucket takes are left out ($rest{'-'})");

# --- a real gateway ------------------------------------------------------------------

unless (-x bin('wakegate')) {
	diag('no wakegate built: the gateway part is skipped');
	done_testing;
	exit 0;
}

my ($port, $admin) = (free_port(), free_port());
my ($w1, $w2) = map { worker_cmd() =~ s/--name digits/--name $_/r } 'digits-v1', 'digits-v2';
my $td = tmpdir();
my $gconf = <<"EOC";
daemon off;
pid $td/wakegate-$port.pid;
error_log $td/error-$port.log info;
access_log $td/access-$port.log;
admin_listen 127.0.0.1:$admin;
upstream digits-v1 { launch exec "$w1"; idle_timeout 60s; }
upstream digits-v2 { launch exec "$w2"; idle_timeout 60s; }
server {
	listen 127.0.0.1:$port;
	location /predict {
		split \$http_x_user_id {
			90% digits-v1;
			10% digits-v2;
		}
	}
	location /half {
		proxy_pass digits-v1;
		split \$http_x_user_id { 50% digits-v2; }
	}
}
EOC
my $g = gw_start(conf => $gconf, port => $port, admin => $admin);
my ($body) = digits_input(0);
my @sample = (grep({ length } @keys[0 .. 2999]))[0 .. 149];
push @sample, (grep { length && !/[?&#%+ ]/ } @keys[3000 .. $#keys])[0 .. 149];
my %idx;
@idx{@keys} = 0 .. $#keys;
my $ok = 0;
my $hg = HTTP::Tiny->new(timeout => 60, keep_alive => 1);
for my $k (@sample) {
	my $res = $hg->post("$g->{url}/predict?u=" . uri($k), { content => $body,
		headers => { 'Content-Type' => 'application/json', 'X-User-Id' => $k } });
	$ok++ if $res->{status} == 200;
}
is($ok, scalar @sample, scalar(@sample) . ' predictions through the split are answered 200 (each target woke on its own)') or diag(substr(gw_log($g), 0, 3000));
# the access log line is written after the answer went out: wait for them all
wait_until(sub { my $n = () = slurp($g->{access}) =~ m{"POST /predict\?}g; $n >= @sample }, 10);
my %got;
for (split /\n/, slurp($g->{access})) {
	my ($u, $up) = m{"POST /predict\?u=(\S*) HTTP/1\.1" \d+ \d+ upstream=(\S+)} or next;
	$got{unuri($u)} = $up;
}
ok(scalar(keys %got), 'the access log names the upstream of each request') or diag(substr(slurp($g->{access}), 0, 600));
my @wrong = grep { ($got{$_} // 'none') ne (split /\t/, $nginx[$idx{$_}])[0] } @sample;
is(scalar @wrong, 0, 'each request went to the upstream nginx\'s split_clients picks for its X-User-Id')
	or diag(join "\n", map { "key '$_': gateway " . ($got{$_} // 'none') . ', nginx ' . (split /\t/, $nginx[$idx{$_}])[0] } @wrong[0 .. ($#wrong < 9 ? $#wrong : 9)]);
my $n2 = grep { (split /\t/, $nginx[$idx{$_}])[0] eq 'digits-v2' } @sample;
ok($n2 > 0, "some of them ($n2) are digits-v2's");

# the half location: buckets nobody takes go to proxy_pass
my %half = (v2 => 0, v1 => 0);
for my $k (@sample[0 .. 39]) {
	$hg->post("$g->{url}/half?u=" . uri($k), { content => $body,
		headers => { 'Content-Type' => 'application/json', 'X-User-Id' => $k } });
}
wait_until(sub { my $n = () = slurp($g->{access}) =~ m{"POST /half\?}g; $n >= 40 }, 10);
my $half_ok = 1;
for (split /\n/, slurp($g->{access})) {
	my ($u, $up) = m{"POST /half\?u=(\S*) HTTP/1\.1" \d+ \d+ upstream=(\S+)} or next;
	my $k = unuri($u);
	my $want = (split /\t/, `printf '%s\\n' '$k' | '$driver' '50%:digits-v2'`)[0];
	chomp $want;
	$want = 'digits-v1' if $want eq '-';
	$half_ok = 0, diag("half: key '$k' went to $up, not $want") if $up ne $want;
	$half{$up eq 'digits-v2' ? 'v2' : 'v1'}++;
}
ok($half_ok && $half{v1} + $half{v2} == 40, "with \"50% digits-v2\" and proxy_pass digits-v1, keys no bucket takes go to proxy_pass ($half{v1} v1, $half{v2} v2)");

# the metrics that compare the two versions
my $m = HTTP::Tiny->new->get("$g->{admin_url}/metrics")->{content};
my $n1 = @sample - $n2;
like($m, qr/^wakegate_split_requests_total\{upstream="digits-v2"\} (\d+)$/m, 'wakegate_split_requests_total counts per upstream');
my ($s2) = $m =~ /^wakegate_split_requests_total\{upstream="digits-v2"\} (\d+)$/m;
is($s2, $n2 + $half{v2}, 'and its count for digits-v2 is the requests the splits sent there');
for my $u ('digits-v1', 'digits-v2') {
	like($m, qr/^wakegate_requests_total\{upstream="\Q$u\E",code="200"\} \d+$/m, "requests and codes of $u, to compare error rates");
	like($m, qr/^wakegate_upstream_seconds_bucket\{upstream="\Q$u\E",le="[^"]+"\} \d+$/m, "a latency histogram of $u (p50/p99 by histogram_quantile)");
}
my $log = gw_log($g);
like($log, qr/upstream "digits-v2".*STOPPED -> BOOTING/, 'digits-v2 was woken by the split');

stop_proc($g->{pid});
stop_proc($npid);
done_testing;

sub uri { my ($s) = @_; $s =~ s/([^A-Za-z0-9\-._~])/sprintf('%%%02X', ord $1)/ge; return $s }
sub unuri { my ($s) = @_; $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; return $s }
