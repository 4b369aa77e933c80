# "listen PORT ssl": the gateway speaks TLS to clients with the server's
# certificate, and a cold start through TLS works like one over plain HTTP.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;

my $dir = tmpdir();
system("openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost " .
	"-keyout $dir/key.pem -out $dir/cert.pem >/dev/null 2>&1") == 0
	or plan skip_all => 'openssl cannot make a test certificate';

my ($text, $port, $admin) = gw_conf(launch => backend_cmd(), upstream => 'warmup off;');
$text =~ s/listen 127.0.0.1:$port;/listen 127.0.0.1:$port ssl;\n\tssl_certificate $dir\/cert.pem;\n\tssl_certificate_key $dir\/key.pem;/ or die;
my $g = gw_start(conf => $text, port => $port, admin => $admin);

my $out = `curl -sk -D - https://127.0.0.1:$port/hello 2>&1`;
like($out, qr/^HTTP\/1.1 200/, 'an HTTPS request to an ssl listener is answered 200');
like($out, qr/^X-Wakegate-Cold: /mi, 'through a cold start');
like($out, qr/ok \/hello/, 'with the backend\'s body');
$out = `curl -s -o /dev/null -w '%{http_code}' http://127.0.0.1:$port/hello 2>&1`;
isnt($out, '200', 'plain HTTP to an ssl listener is not served');

# a missing certificate is an error at start, not a silent plain listener
(my $bad = $text) =~ s/\Q$dir\E\/key.pem/$dir\/nokey.pem/;
spew("$dir/bad-tls.conf", $bad);
my $msg = `${\ bin('wakegate')} -t -c $dir/bad-tls.conf 2>&1`;
if ($? == 0) {
	my $port2 = free_port();
	$bad =~ s/$port/$port2/g;
	spew("$dir/bad-tls.conf", $bad);
	$msg = `timeout 10 ${\ bin('wakegate')} -c $dir/bad-tls.conf 2>&1; echo rc=\$?`;
	like($msg, qr/nokey.pem/, 'a missing key file is reported by name');
	like($msg, qr/rc=1/, 'and wakegate does not start');
} else {
	like($msg, qr/nokey.pem/, 'wakegate -t reports a missing key file by name');
}

done_testing;
