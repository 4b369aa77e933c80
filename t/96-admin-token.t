# The admin listener's trust edge (wakegate.conf(5): admin_token;
# wakegate(8): the admin listener): POST needs Authorization: Bearer TOKEN
# when admin_token is set, GETs do not; a Host or Origin that is a name other
# than localhost (DNS rebinding, a web page) is refused; a listener beyond
# loopback without a token is warned about at start.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use IO::Socket::INET;

my $dir = tmpdir();
my $token = 'wg-admin-' . join('', map { ('a' .. 'z')[rand 26] } 1 .. 24);
spew("$dir/admin.token", "$token\n");
my ($text, $port, $admin) = gw_conf(launch => backend_cmd(), upstream => 'warmup off;',
	extra => "admin_token $dir/admin.token;");
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my $wake = "$g->{admin_url}/upstreams/digits/wake";

# HTTP::Tiny will not send a Host of our choosing: the Host cases go over a raw socket
sub raw_status {
	my ($host) = @_;
	my $c = IO::Socket::INET->new(PeerAddr => '127.0.0.1', PeerPort => $admin, Timeout => 10) or die;
	print $c "GET /status HTTP/1.1\r\nHost: $host\r\nConnection: close\r\n\r\n";
	my $line = <$c> // '';
	close $c;
	return $line =~ m{^HTTP/1\.[01] (\d+)} ? $1 : 0;
}

my $r = http_post($wake, '');
is($r->{status}, 401, 'POST without a token: 401');
like($r->{headers}{'www-authenticate'} // '', qr/^Bearer/, 'with WWW-Authenticate: Bearer');
$r = http_post($wake, '', headers => { Authorization => 'Bearer wrong-token-000000000000' });
is($r->{status}, 401, 'a wrong token: 401');
$r = http_post($wake, '', headers => { Authorization => "Bearer $token" });
is($r->{status}, 202, 'the right token: 202');
is(http_get("$g->{admin_url}/status")->{status}, 200, 'GET /status needs no token');
unlike(slurp($g->{log}), qr/\Q$token\E/, 'the token is never logged');

is(raw_status('evil.example:80'), 403, 'a Host that is another name is refused (DNS rebinding)');
$r = http_post($wake, '', headers => { Authorization => "Bearer $token", Origin => 'http://evil.example' });
is($r->{status}, 403, 'an Origin of another site is refused, even with the token');
is(raw_status("localhost:$admin"), 200, 'Host localhost is answered');
is(raw_status("[::1]:$admin"), 200, 'an IPv6 literal Host is answered');
is(raw_status("127.0.0.1:$admin"), 200, 'an IPv4 literal Host is answered');

# a short token is a conf error; a listener beyond loopback without a token is warned about
spew("$dir/short.token", "abc\n");
my $bad = "$dir/bad.conf";
spew($bad, "admin_token $dir/short.token;\nupstream u { launch exec x; }\nserver { listen 127.0.0.1:1; location / { proxy_pass u; } }\n");
my $out = `@{[bin('wakegate')]} -t -p $dir -c $bad 2>&1`;
like($out, qr/admin_token file "[^"]*short.token": the first line must be a token of at least 16 characters .* in .*bad.conf:1/,
	'a token under 16 characters is an error naming the file and line');
my $port2 = free_port();
my $admin2 = free_port();
my ($text2) = gw_conf(launch => backend_cmd(), port => $port2, admin => $admin2);
$text2 =~ s/admin_listen 127\.0\.0\.1:/admin_listen 0.0.0.0:/;
my $g2 = gw_start(conf => $text2, port => $port2, admin => $admin2);
like(slurp($g2->{log}), qr/the admin listener 0\.0\.0\.0:\d+ is beyond loopback and has no admin_token/,
	'an admin listener beyond loopback without a token is warned about at start');

done_testing;
