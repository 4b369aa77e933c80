# TLS both ways: ssl_protocols and ssl_ciphers on listeners, conf errors at
# -t that name FILE:LINE, certificates swapped by a reload without dropping
# open connections, and upstreams reached over https:// with the gateway
# checking their certificate against tls_ca. Every certificate is made here
# with the openssl CLI: a test CA, two server certificates it signs
# (subjectAltName IP:127.0.0.1 and DNS:localhost), and a second, unrelated CA.
use strict;
use warnings;
use Test::More;
use IO::Socket::SSL;
use WG;
use WGGateway;
use WGCerts;

my $dir = tmpdir();
sub sh { my ($cmd) = @_; return system("$cmd >/dev/null 2>&1") == 0 }
cert_ca($dir, 'ca') && cert_ca($dir, 'otherca') && cert_signed($dir, 'wakegate-one', 4097, 'ca') &&
	cert_signed($dir, 'wakegate-two', 8193, 'ca') && cert_signed($dir, 'wakegate-other', 12289, 'otherca')
	or plan skip_all => 'openssl cannot make test certificates';
sh("cp $dir/wakegate-one.pem $dir/cert.pem && cp $dir/wakegate-one.key $dir/key.pem") or die;

# A conf whose server listens with TLS; %o: protocols => "ssl_protocols ...;" line, upstream => directives.
sub tls_conf {
	my (%o) = @_;
	my ($text, $port, $admin) = gw_conf(launch => backend_cmd(), upstream => $o{upstream} // 'warmup off;',
		port => $o{port});
	my ($cert, $key) = $o{cert} ? ("$o{cert}.pem", "$o{cert}.key") : ('cert.pem', 'key.pem');
	my $lines = "listen 127.0.0.1:$port ssl;\n\tssl_certificate $dir/$cert;\n\tssl_certificate_key $dir/$key;\n";
	$lines .= "\t$o{server}\n" if $o{server};
	$text =~ s/listen 127.0.0.1:$port;\n/$lines/ or die;
	return ($text, $port, $admin);
}
sub curl { my ($args) = @_; my $out = `curl -s --max-time 30 $args 2>&1`; return ($out, $? >> 8) }
sub serial_of {
	my ($port) = @_;
	return `openssl s_client -connect 127.0.0.1:$port -CAfile $dir/ca.pem </dev/null 2>/dev/null | openssl x509 -noout -serial -subject 2>/dev/null`;
}
# One request on an open keep-alive TLS socket; returns (status, body).
sub ka_get {
	my ($s, $path) = @_;
	print $s "GET $path HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
	my $status = <$s> // return (0, '');
	my ($len, $chunked) = (0, 0);
	while (my $h = <$s>) {
		last if $h =~ /^\r?\n$/;
		$len = $1 if $h =~ /^content-length:\s*(\d+)/i;
		$chunked = 1 if $h =~ /^transfer-encoding:\s*chunked/i;
	}
	my $body = '';
	if ($chunked) {
		while (my $sz = <$s>) {
			my $n = hex($sz);
			last if $n == 0;
			read($s, my $part, $n + 2);
			$body .= substr($part, 0, $n);
		}
		<$s>;
	} elsif ($len) {
		read($s, $body, $len);
	}
	return ($status =~ /^HTTP\/1\.\d (\d+)/ ? $1 : 0, $body);
}

# 1. ssl_protocols TLSv1.3: curl verifies the chain with --cacert; TLS 1.2 is refused
my ($text, $port, $admin) = tls_conf(server => 'ssl_protocols TLSv1.3;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my ($out, $rc) = curl("--cacert $dir/ca.pem https://127.0.0.1:$port/hello");
is($rc, 0, 'curl --cacert with the test CA trusts the listener\'s certificate');
like($out, qr/ok \/hello/, 'and gets the backend\'s answer through TLS');
($out, $rc) = curl("--cacert $dir/ca.pem https://localhost:$port/hello --resolve localhost:$port:127.0.0.1");
is($rc, 0, 'the certificate is valid for the name localhost too');
($out, $rc) = curl("--cacert $dir/ca.pem --tls-max 1.2 https://127.0.0.1:$port/hello");
isnt($rc, 0, 'with "ssl_protocols TLSv1.3;" a client limited to TLS 1.2 fails the handshake');
($out, $rc) = curl("--cacert $dir/otherca.pem https://127.0.0.1:$port/hello");
isnt($rc, 0, 'a client trusting only another CA refuses the listener');
like(serial_of($port), qr/serial=1001\b.*CN\s*=\s*wakegate-one/s, 'openssl s_client sees the first certificate');

# 2. reload with a renewed certificate: new handshakes get it, an open connection keeps working
my $ka = IO::Socket::SSL->new(PeerAddr => '127.0.0.1', PeerPort => $port, SSL_ca_file => "$dir/ca.pem",
	SSL_verifycn_scheme => 'http', SSL_verifycn_name => '127.0.0.1', Timeout => 30);
ok($ka, 'a keep-alive TLS connection opens before the reload') or diag($SSL_ERROR);
my ($st, $body) = ka_get($ka, '/hello');
is($st, 200, 'and is answered');
sh("cp $dir/wakegate-two.pem $dir/cert.pem && cp $dir/wakegate-two.key $dir/key.pem") or die;
(my $text2 = $text) =~ s/\tssl_protocols TLSv1.3;\n//;
spew($g->{conf}, $text2);
kill 'HUP', $g->{pid};
ok(wait_until(sub { gw_log($g) =~ /reload done/ }, 30), 'SIGHUP reloads the conf') or diag(gw_log($g));
like(serial_of($port), qr/serial=2001\b.*CN\s*=\s*wakegate-two/s, 'a new connection after the reload sees the new certificate');
($st, $body) = ka_get($ka, '/hello');
is($st, 200, 'the connection opened before the reload still serves requests after it');
like($body, qr/ok \/hello/, 'with the backend\'s answer');
is($ka->peer_certificate('subject'), '/CN=wakegate-one', 'on its old certificate');
close $ka;
($out, $rc) = curl("--cacert $dir/ca.pem --tls-max 1.2 https://127.0.0.1:$port/hello");
is($rc, 0, 'without ssl_protocols the default (TLSv1.2 TLSv1.3) takes TLS 1.2 clients again');

# a reload with a key that does not match keeps the old certificate and says why
sh("cp $dir/wakegate-one.key $dir/key.pem") or die;
kill 'HUP', $g->{pid};
ok(wait_until(sub { gw_log($g) =~ /reload failed.*key/ }, 30), 'a reload with a mismatched key fails, logged');
like(serial_of($port), qr/serial=2001\b/, 'and the listener keeps the certificate it had');
sh("cp $dir/wakegate-two.key $dir/key.pem") or die;
stop_proc($g->{pid}, 'TERM', 30);

# 3. wakegate -t names the file and line of what OpenSSL refuses
sub conf_test {
	my ($conf) = @_;
	spew("$dir/t.conf", $conf);
	my $msg = `${\ bin('wakegate')} -t -p $dir -c $dir/t.conf 2>&1`;
	return ($msg, $?);
}
sh("cp $dir/wakegate-one.key $dir/wrong.key") or die;
my $lineno = sub { my ($t, $re) = @_; my @l = split /\n/, $t; for (0 .. $#l) { return $_ + 1 if $l[$_] =~ $re } return 0 };
(my $bad = $text) =~ s{ssl_certificate_key $dir/key.pem}{ssl_certificate_key $dir/wrong.key};
($out, $rc) = conf_test($bad);
isnt($rc, 0, 'wakegate -t fails when the key does not match the certificate');
my $ln = $lineno->($bad, qr/ssl_certificate_key/);
like($out, qr/wrong\.key.*in \Q$dir\E\/t\.conf:$ln\b/, 'naming the key file and the line of ssl_certificate_key') or diag($out);
($bad = $text) =~ s{ssl_certificate_key $dir/key.pem}{ssl_certificate_key $dir/missing.key};
($out, $rc) = conf_test($bad);
isnt($rc, 0, 'wakegate -t fails on a missing key');
like($out, qr/missing\.key.*t\.conf:$ln\b/, 'naming the file and its line');
($bad = $text) =~ s{ssl_protocols TLSv1.3;}{ssl_protocols TLSv1.3 SSLv3;};
($out, $rc) = conf_test($bad);
$ln = $lineno->($bad, qr/ssl_protocols/);
like($out, qr/invalid value "SSLv3" in "ssl_protocols" directive.*t\.conf:$ln\b/, 'an unknown protocol is an error at its line');
($bad = $text) =~ s{ssl_protocols TLSv1.3;}{ssl_ciphers "NOSUCHCIPHER";};
($out, $rc) = conf_test($bad);
like($out, qr/invalid ssl_ciphers "NOSUCHCIPHER".*t\.conf:$ln\b/, 'a cipher string OpenSSL rejects is an error at its line') or diag($out);
($bad = $text) =~ s{ssl_protocols TLSv1.3;}{ssl_ciphers "ECDHE+AESGCM:!aNULL";};
$bad =~ s/^daemon off;/daemon off;\nssl_protocols TLSv1.2 TLSv1.3;/m;
($out, $rc) = conf_test($bad);
is($rc, 0, 'ssl_protocols in main and ssl_ciphers in server pass -t') or diag($out);
($bad = $text) =~ s{launch exec "[^\n]*";}{launch command start="true" stop="true" url=http://127.0.0.1:9;\n\ttls on;} or die;
($out, $rc) = conf_test($bad);
$ln = $lineno->($bad, qr/^upstream/);
like($out, qr/upstream "digits": "tls on" but url=http:\S+ is not https:\/\/ in \Q$dir\E\/t\.conf:$ln\b/,
	'"tls on" with an http:// url= is an error') or diag($out);
($bad = $text) =~ s{warmup off;}{warmup off;\n\ttls on;\n\ttls_ca $dir/ext.cnf;} or die;
($out, $rc) = conf_test($bad);
like($out, qr/cannot load CA certificates "\Q$dir\E\/ext\.cnf"/, 'a tls_ca with no certificate in it is an error')
	or diag($out);

# 4. an upstream over https: a second gateway terminates TLS in front of the backend
my ($ttext, $tport, $tadmin) = tls_conf();
my $term = gw_start(conf => $ttext, port => $tport, admin => $tadmin);
spew("$dir/warm.json", "{}");
sub front {
	my ($tls) = @_;
	my ($t, $p, $a) = gw_conf(launch => "true", upstream => "$tls\n\twarmup path=/hello body=$dir/warm.json count=2;\n\thold 10 timeout=60s;");
	$t =~ s{launch exec "[^\n]*";}{launch command start="true" stop="true" url=https://127.0.0.1:$tport;} or die;
	my $sport = free_port();
	$t =~ s{listen 127.0.0.1:$p;}{listen 127.0.0.1:$p;\n\tlisten 127.0.0.1:$sport ssl;\n\tssl_certificate $dir/cert.pem;\n\tssl_certificate_key $dir/key.pem;} or die;
	my $fg = gw_start(conf => $t, port => $p, admin => $a);
	$fg->{sport} = $sport;
	return $fg;
}
my $f = front("tls_ca $dir/ca.pem;");
my $r = http_get("$f->{url}/hello", timeout => 60);
is($r->{status}, 200, 'a gateway reaches an https:// upstream whose certificate tls_ca trusts');
like($r->{content}, qr/ok \/hello/, 'and relays its answer');
like(gw_log($f), qr/health ok.*\n(?s:.*)READY/, 'after the health poll and the warmup, both over TLS');
$r = http_get("$f->{url}/hello", timeout => 60);
is($r->{status}, 200, 'a second request is answered as well');
my $whole = 0;
for (1 .. 8) {
	($out, $rc) = curl("--max-time 10 --cacert $dir/ca.pem https://127.0.0.1:$f->{sport}/hello");
	$whole++ if $rc == 0 && $out =~ /^ok \/hello$/m;
}
is($whole, 8, 'TLS from the client and TLS to the upstream: every answer arrives whole');
# the terminator comes back with a certificate tls_ca did not sign: new connections are refused
stop_proc($term->{pid}, 'TERM', 30);
($ttext, undef, $tadmin) = tls_conf(port => $tport, cert => 'wakegate-other');
$term = gw_start(conf => $ttext, port => $tport, admin => $tadmin);
$r = http_get("$f->{url}/hello", timeout => 60);
is($r->{status}, 502, 'a READY upstream whose new certificate is not trusted gets the request a 502');
like($r->{content}, qr/TLS: certificate verify failed/, 'which says why') or diag($r->{content});
stop_proc($f->{pid}, 'TERM', 30);
stop_proc($term->{pid}, 'TERM', 30);
($ttext, undef, $tadmin) = tls_conf(port => $tport);
$term = gw_start(conf => $ttext, port => $tport, admin => $tadmin);

$f = front("tls_ca $dir/otherca.pem;");
$r = http_get("$f->{url}/hello", timeout => 60);
is($r->{status}, 503, 'with a tls_ca that did not sign the upstream\'s certificate the request gets a 503');
like($r->{content}, qr/certificate verify failed/, 'which says the certificate was not trusted') or diag($r->{content});
like(gw_log($f), qr/upstream "digits".*certificate verify failed/, 'and so does the log');
stop_proc($f->{pid}, 'TERM', 30);

$f = front("tls_ca $dir/otherca.pem;\n\ttls_verify off;");
$r = http_get("$f->{url}/hello", timeout => 60);
is($r->{status}, 200, 'tls_verify off accepts a certificate no tls_ca signed');
stop_proc($f->{pid}, 'TERM', 30);

# an always-on "server https://" line: health, requests, all over TLS, checked against tls_ca
sub server_front {
	my ($tls) = @_;
	my ($t, $p, $a) = gw_conf(launch => 'true', upstream => "$tls\n\thold 10 timeout=10s;");
	$t =~ s{launch exec "[^\n]*";}{server https://127.0.0.1:$tport;} or die;
	return gw_start(conf => $t, port => $p, admin => $a);
}
$f = server_front("tls_ca $dir/ca.pem;");
$r = http_get("$f->{url}/hello", timeout => 60);
is($r->{status}, 200, 'a "server https://" line is reached over TLS, its certificate checked against tls_ca');
like(gw_log($f), qr{STOPPED -> BOOTING \([^\n]* on https://127\.0\.0\.1:$tport\)}, '... its health polled at its https:// address');
stop_proc($f->{pid}, 'TERM', 30);
$f = server_front("tls_ca $dir/otherca.pem;");
ok(wait_until(sub { gw_log($f) =~ /replica 0: BOOTING -> FAILED \([^\n]*certificate verify failed[^\n]*cause=health/ }, 20),
	'a server whose certificate tls_ca did not sign fails its health with the reason') or diag(gw_log($f));
stop_proc($f->{pid}, 'TERM', 30);
stop_proc($term->{pid}, 'TERM', 30);

# 5. "tls on" with launch exec: the gateway starts a replica that serves https://127.0.0.1:$port
# (here a wakegate terminating TLS in front of the test backend, on the port it is given)
my $backend = backend_cmd();
spew("$dir/inner.tmpl", <<"EOC");
daemon off;
error_log $dir/inner.log info;
admin_listen off;	# not the default 127.0.0.1:8081: the outer gateway's tests run beside others
pid off;
server {
	listen 127.0.0.1:PORT ssl;
	ssl_certificate $dir/cert.pem;
	ssl_certificate_key $dir/key.pem;
	location / { proxy_pass b; }
}
upstream b { launch exec "$backend"; warmup off; }
EOC
spew("$dir/inner.sh", "sed s/PORT/\$1/ $dir/inner.tmpl > $dir/inner-\$1.conf\n" .
	"exec ${\ bin('wakegate')} -p $dir -c $dir/inner-\$1.conf\n");
my ($xt, $xp, $xa) = gw_conf(launch => "exec sh $dir/inner.sh \$port", upstream => "tls on;\n\ttls_ca $dir/ca.pem;\n\twarmup off;");
my $x = gw_start(conf => $xt, port => $xp, admin => $xa);
$r = http_get("$x->{url}/hello", timeout => 60);
is($r->{status}, 200, '"tls on" with launch exec: the replica is reached over https');
like(gw_log($x), qr{BOOTING \(woken by a request on https://127\.0\.0\.1:\d+\)}, 'at an https:// URL');
stop_proc($x->{pid}, 'TERM', 30);

# 6. two gateways on one Redis in front of a "tls on" upstream: the one that did
# not start the replica follows the https:// URL the other published, and
# reaches it over TLS too (fleet.c once took only http:// from Redis)
{
	my ($rport, $rpid) = start_redis();
	my @g;
	for my $i (0, 1) {
		my ($t, $p, $a) = gw_conf(launch => "exec sh $dir/inner.sh \$port",
			upstream => "tls on;\n\ttls_ca $dir/ca.pem;\n\twarmup off;",
			extra => "redis 127.0.0.1:$rport prefix=wg65fleet:;");
		push @g, gw_start(conf => $t, port => $p, admin => $a);
	}
	$r = http_get("$g[0]{url}/hello", timeout => 60);
	is($r->{status}, 200, 'fleet: the first gateway starts the https replica and is answered');
	my $lock = `redis-cli -p $rport GET wg65fleet:lock:digits`;
	like($lock, qr{^\w+ READY https://127\.0\.0\.1:\d+ }, 'fleet: Redis names the replica by its https:// URL');
	$r = http_get("$g[1]{url}/hello", timeout => 60);
	is($r->{status}, 200, 'fleet: the second gateway is answered by the replica the first one runs');
	like(gw_log($g[1]), qr{another gateway runs it on https://127\.0\.0\.1:\d+}, 'fleet: it says it follows the other gateway\'s https replica');
	unlike(gw_log($g[1]), qr{launch exec: pid|cannot use}, 'fleet: it launched nothing and refused no URL');
	stop_proc($_->{pid}, 'TERM', 30) for @g;
	stop_proc($rpid, 'TERM', 10);
}

# Two ssl servers on one port, as nginx does it: the certificate follows the
# name the client asks for by SNI; a client that names neither gets the first.
{
	my ($st, $sp, $sa) = tls_conf(server => 'server_name one.test;', cert => 'wakegate-one');
	$st =~ s/(location \/ \{ proxy_pass \S+; \}\n\})/$1\nserver {\n\tlisten 127.0.0.1:$sp ssl;\n\tserver_name two.test;\n\tssl_certificate $dir\/wakegate-two.pem;\n\tssl_certificate_key $dir\/wakegate-two.key;\n\tlocation \/ { return 418; }\n}/ or die 'no server block';
	$st =~ s/\tlocation \/ \{ return 418; \}/\tlocation \/two\/ { proxy_pass digits; }/;
	my $sg = gw_start(conf => $st, port => $sp, admin => $sa);
	my %seen;
	for my $name ('one.test', 'two.test', undef) {
		my $c = IO::Socket::SSL->new(PeerAddr => "127.0.0.1:$sp", SSL_verify_mode => SSL_VERIFY_NONE,
			defined $name ? (SSL_hostname => $name) : (SSL_hostname => ''));
		$seen{$name // 'none'} = $c ? $c->peer_certificate('subject') : "no connection: $SSL_ERROR";
		close $c if $c;
	}
	is($seen{'one.test'}, '/CN=wakegate-one', 'SNI one.test gets the first server\'s certificate');
	is($seen{'two.test'}, '/CN=wakegate-two', 'SNI two.test gets the second server\'s certificate on the same port');
	is($seen{none}, '/CN=wakegate-one', 'a client without SNI gets the first server\'s');
	# and the Host header picks the server: two.test has only /two/
	my %status;
	for my $name ('one.test', 'two.test') {
		my $c = IO::Socket::SSL->new(PeerAddr => "127.0.0.1:$sp", SSL_verify_mode => SSL_VERIFY_NONE, SSL_hostname => $name)
			or die "connect: $SSL_ERROR";
		print $c "GET /hello HTTP/1.1\r\nHost: $name:$sp\r\nConnection: close\r\n\r\n";
		my $line = <$c> // '';
		$status{$name} = $line =~ /^HTTP\/1\.\d (\d+)/ ? $1 : 0;
		close $c;
	}
	is($status{'one.test'}, 200, 'Host one.test is served by the first server\'s location /');
	is($status{'two.test'}, 404, 'Host two.test is routed to the second server, which has no location for /hello');
	stop_proc($sg->{pid}, 'TERM', 30);
}

done_testing;
