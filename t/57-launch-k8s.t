# launch kubernetes: scaling a Deployment through the API server's scale
# subresource. No Kubernetes API server can run here, so this test runs a
# STAND-IN for it: a small HTTPS server (Perl, IO::Socket::SSL, with a
# certificate made by the openssl CLI at test time) that accepts only the
# exact request the real API expects -- PATCH
# /apis/apps/v1/namespaces/NS/deployments/NAME/scale, Content-Type
# application/merge-patch+json, the bearer token, body {"spec":{"replicas":N}}
# -- and answers a Scale object, or a Status object on error. Scaling to 1
# runs a real wakegate-worker on the "Service" port; scaling to 0 kills it.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;
use Time::HiRes qw(time sleep);

eval { require IO::Socket::SSL; 1 } or plan skip_all => 'IO::Socket::SSL is not installed (libio-socket-ssl-perl)';
system('openssl version >/dev/null 2>&1') == 0 or plan skip_all => 'no openssl CLI';

my $dir = tmpdir();
my ($body, $label) = digits_input(5);
my $aport = free_port();
my $sport = free_port();

# a certificate for 127.0.0.1, and another one nobody signed for this server
for my $n ('api', 'other') {
	system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 "
		. "-addext subjectAltName=IP:127.0.0.1 -keyout $dir/$n-key.pem -out $dir/$n-cert.pem >/dev/null 2>&1") == 0
		or die "openssl req failed";
}
spew("$dir/token", "k8s-sa-token\n");

spew("$dir/fake-api.pl", <<'EOS');
# fake-api.pl PORT DIR WORKER-CMD...: a stand-in for the Kubernetes API server's deployments/scale
use strict;
use warnings;
use IO::Socket::SSL;
use POSIX qw(setsid);
use JSON::PP;
my ($port, $dir, @worker) = @ARGV;
my $srv = IO::Socket::SSL->new(LocalAddr => '127.0.0.1', LocalPort => $port, Listen => 16, ReuseAddr => 1,
	SSL_cert_file => "$dir/api-cert.pem", SSL_key_file => "$dir/api-key.pem") or die "listen: $SSL_ERROR";
my $wpid;
my $replicas = 0;
$SIG{TERM} = sub { kill 'TERM', $wpid if $wpid; exit 0 };
my $path = '/apis/apps/v1/namespaces/ml/deployments/digits/scale';
sub status {
	my ($code, $reason, $msg) = @_;
	return ($code, { kind => 'Status', apiVersion => 'v1', metadata => {}, status => 'Failure',
		message => $msg, reason => $reason, code => $code });
}
for (;;) {
	my $c = $srv->accept or next;	# a failed handshake (a client that does not trust us) or a probe
	my $head = '';
	while (defined(my $l = <$c>)) { $head .= $l; last if $l eq "\r\n" }
	my ($method, $p) = $head =~ /^(\S+) (\S+)/ or next;
	my %h;
	$h{ lc $1 } = $2 while $head =~ /^([\w-]+): ([^\r\n]*)/mg;
	my $body = '';
	read($c, $body, $h{'content-length'}) if $h{'content-length'};
	my $j = eval { decode_json($body) };
	my ($code, $out);
	if (-e "$dir/forbid") {
		($code, $out) = status(403, 'Forbidden', 'deployments.apps "digits" is forbidden: User '
			. '"system:serviceaccount:ml:wakegate" cannot patch resource "deployments/scale" in API group "apps" in the namespace "ml"');
	} elsif (($h{authorization} // '') ne 'Bearer k8s-sa-token') {
		($code, $out) = status(401, 'Unauthorized', 'Unauthorized');
	} elsif ($p ne $path) {
		($code, $out) = status(404, 'NotFound', "the server could not find the requested resource ($p)");
	} elsif ($method ne 'PATCH') {
		($code, $out) = status(405, 'MethodNotAllowed', "$method is not allowed here");
	} elsif (($h{'content-type'} // '') ne 'application/merge-patch+json') {
		($code, $out) = status(415, 'UnsupportedMediaType', "the body of the request was in an unknown format");
	} elsif (!$j || join(',', sort keys %$j) ne 'spec' || ref $j->{spec} ne 'HASH'
		|| join(',', keys %{ $j->{spec} }) ne 'replicas' || $j->{spec}{replicas} !~ /^[01]$/) {
		($code, $out) = status(400, 'BadRequest', "unexpected body: $body");
	} else {
		$replicas = $j->{spec}{replicas};
		if ($replicas == 1 && !$wpid) {
			$wpid = fork // die;
			if (!$wpid) { setsid(); open STDOUT, '>>', "$dir/worker.log"; open STDERR, '>&', \*STDOUT; exec @worker; exit 127 }
		} elsif ($replicas == 0 && $wpid) {
			kill 'TERM', $wpid;
			waitpid($wpid, 0);
			$wpid = undef;
		}
		($code, $out) = (200, { kind => 'Scale', apiVersion => 'autoscaling/v1',
			metadata => { name => 'digits', namespace => 'ml' },
			spec => { replicas => $replicas }, status => { replicas => $replicas } });
	}
	open my $log, '>>', "$dir/requests" or die;
	print $log encode_json({ method => $method, path => $p, code => $code, replicas => $j ? $j->{spec}{replicas} : undef }), "\n";
	close $log;
	my $o = encode_json($out);
	print $c "HTTP/1.1 $code X\r\nContent-Type: application/json\r\nContent-Length: " . length($o)
		. "\r\nConnection: close\r\n\r\n$o";
	close $c;
}
EOS

my $api = start_proc(name => 'fake-api', cmd => ['perl', "$dir/fake-api.pl", $aport, $dir,
	bin('wakegate-worker'), '--model', src('models/digits.safetensors'), '--listen', "127.0.0.1:$sport", '--name', 'digits']);
ok(wait_until(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$aport") }, 30), 'the stand-in API server is up');
sub requests { return [ map { decode_json($_) } grep { /\S/ } split /\n/, slurp("$dir/requests") ] }

# A gateway whose upstream "digits" scales ml/digits; extra: more launch parameters.
sub k8s_gateway {
	my ($extra) = @_;
	my ($text, $port, $admin) = gw_conf(upstream => 'idle_timeout 2s; stop_grace 2s; hold 10 timeout=60s;');
	$text =~ s{launch exec "[^\n]*";}{launch kubernetes deployment=ml/digits url=http://127.0.0.1:$sport token_file=$dir/token $extra;} or die;
	return gw_start(conf => $text, port => $port, admin => $admin);
}

# 1. in-cluster style: the API server from KUBERNETES_SERVICE_HOST/PORT, TLS checked against ca=
{
	local $ENV{KUBERNETES_SERVICE_HOST} = '127.0.0.1';
	local $ENV{KUBERNETES_SERVICE_PORT} = $aport;
	my $g = k8s_gateway("ca=$dir/api-cert.pem");
	my $state = sub { gw_status($g)->{upstreams}{digits}{state} // '' };
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 200, 'the first request scales the Deployment up and is answered through the Service URL');
	is(argmax_of($r->{content}), $label, 'with the right digit');
	my $q = requests();
	is(scalar @$q, 1, 'the API server got one request');
	is($q->[0]{code}, 200, 'it was exactly the PATCH of deployments/scale the API expects (method, path, headers, token, body)');
	is($q->[0]{replicas}, 1, 'asking for 1 replica');
	like(gw_log($g), qr{kubernetes launcher: PATCH https://127\.0\.0\.1:$aport/apis/apps/v1/namespaces/ml/deployments/digits/scale: started},
		'the API server was found through KUBERNETES_SERVICE_HOST and _PORT');
	ok(wait_until(sub { $state->() eq 'STOPPED' }, 30), 'after idle_timeout the replica is STOPPED');
	is(requests()->[-1]{replicas}, 0, 'the Deployment was scaled to 0');
	is(requests()->[-1]{code}, 200, 'with the same exact request');
	ok(wait_until(sub { !IO::Socket::INET->new(PeerAddr => "127.0.0.1:$sport") }, 10), 'and the worker behind the Service is gone');
	like(gw_log($g), qr/DRAINING -> STOPPED \(stopped through the kubernetes launcher/, 'the log says the kubernetes launcher stopped it');
	stop_proc($g->{pid}, 'TERM', 30);
}

# 2. the API server refuses: 403 with a Status message
{
	spew("$dir/forbid", '');
	my $g = k8s_gateway("api=https://127.0.0.1:$aport ca=$dir/api-cert.pem");
	my $t0 = time;
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'a 403 from the API server gets the held request a 503');
	ok(time - $t0 < 20, 'at once');
	like($r->{content}, qr/kubernetes launcher: PATCH \S+: HTTP 403: deployments.apps \\"digits\\" is forbidden: User/,
		'the 503 carries the API server\'s message');
	like(gw_log($g), qr/upstream "digits": kubernetes launcher: PATCH \S+\/scale: HTTP 403: deployments.apps "digits" is forbidden/,
		'the log names the upstream, the request and the message');
	is(gw_status($g)->{upstreams}{digits}{state}, 'FAILED', '/status shows FAILED');
	unlink "$dir/forbid";
	stop_proc($g->{pid}, 'TERM', 30);
}

# 3. an API server whose certificate the CA does not vouch for
{
	my $n = @{ requests() };
	my $g = k8s_gateway("api=https://127.0.0.1:$aport ca=$dir/other-cert.pem");
	my $r = gw_predict($g, $body, timeout => 60);
	is($r->{status}, 503, 'an API server that ca= does not vouch for is not trusted');
	like($r->{content}, qr/kubernetes launcher: PATCH \S+: .*certificate/i, 'the 503 says the certificate was refused');
	is(scalar @{ requests() }, $n, 'no request reached it');
	unlike(gw_log($g), qr/try 1 of 3/, 'a certificate that does not verify is not retried');
	stop_proc($g->{pid}, 'TERM', 30);
}

stop_proc($api, 'TERM', 10);
done_testing;
