# FakeKube: starts t/lib/fake-kube.pl, the STAND-IN for the Kubernetes API
# server (no real one can run here; see that file for what it speaks), with
# a certificate made by the openssl CLI, a token file, and pods that are
# real wakegate-worker processes on free loopback ports.
package FakeKube;
use strict;
use warnings;
use Exporter 'import';
use WG;
use JSON::PP;
use Time::HiRes qw(time sleep);

our @EXPORT = qw(kube_start kube_requests kube_patches kube_events kube_control kube_skip_reason kube_scale kube_pods);

# Why the stand-in cannot run here, or undef.
sub kube_skip_reason {
	eval { require IO::Socket::SSL; 1 } or return 'IO::Socket::SSL is not installed (libio-socket-ssl-perl)';
	system('openssl version >/dev/null 2>&1') == 0 or return 'no openssl CLI';
	return undef;
}

# kube_start(pods => N ports, start_delay => S, term_delay => S, worker => [argv with '$port']) -> { pid, port, dir, ca, token_file, api }
sub kube_start {
	my (%o) = @_;
	my $dir = tmpdir() . '/kube-' . int(rand(1e9));
	mkdir $dir or die "$dir: $!";
	system("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 -subj /CN=127.0.0.1 "
		. "-addext subjectAltName=IP:127.0.0.1 -keyout $dir/key.pem -out $dir/cert.pem >/dev/null 2>&1") == 0
		or die "openssl req failed";
	spew("$dir/token", "k8s-sa-token\n");
	my $port = free_port();
	my $cf = { dir => $dir, port => $port, cert => "$dir/cert.pem", key => "$dir/key.pem", token => 'k8s-sa-token',
		namespace => 'ml', deployment => 'digits', service => 'digits',
		start_delay => $o{start_delay} // 1, term_delay => $o{term_delay} // 0.3,
		pod_ports => [ map { free_port() } 1 .. ($o{pods} // 6) ],
		worker => $o{worker} // [ bin('wakegate-worker'), '--model', src('models/digits.safetensors'),
			'--listen', '127.0.0.1:$port', '--name', 'digits' ] };
	spew("$dir/kube.json", encode_json($cf));
	my $pid = start_proc(name => "fake-kube-$port", cmd => ['perl', src('t/lib/fake-kube.pl'), "$dir/kube.json"],
		log => "$dir/fake-kube.log");
	wait_until(sub { IO::Socket::INET->new(PeerAddr => "127.0.0.1:$port") }, 30) or die "the stand-in did not start: "
		. slurp("$dir/fake-kube.log");
	return { pid => $pid, port => $port, dir => $dir, ca => "$dir/cert.pem", token_file => "$dir/token",
		api => "https://127.0.0.1:$port" };
}

sub lines { my ($f) = @_; return [ map { decode_json($_) } grep { /\S/ } split /\n/, slurp($f) ] }
sub kube_requests { return lines("$_[0]{dir}/requests") }
sub kube_events { return lines("$_[0]{dir}/events") }
# The PATCHes of the scale, as [code, replicas, t].
sub kube_patches {
	return [ map { [ $_->{code}, $_->{replicas}, $_->{t} ] } grep { $_->{method} eq 'PATCH' } @{ kube_requests($_[0]) } ];
}
# The test itself scales the Deployment (as kubectl scale would; the PATCH is in kube_patches too).
sub kube_scale {
	my ($k, $n) = @_;
	system('curl', '-sf', '-o', '/dev/null', '--cacert', $k->{ca}, '-X', 'PATCH', '-H', 'Authorization: Bearer k8s-sa-token',
		'-H', 'Content-Type: application/merge-patch+json', '--data', qq({"spec":{"replicas":$n}}),
		"$k->{api}/apis/apps/v1/namespaces/ml/deployments/digits/scale") == 0 or die "kube_scale: curl failed";
}
# The pods that are not gone yet (their last event is not "deleted").
sub kube_pods {
	my %last;
	$last{ $_->{pod} } = $_->{what} for grep { $_->{pod} } @{ kube_events($_[0]) };
	return grep { $last{$_} ne 'deleted' } sort keys %last;
}
# kube_control($k, 'conflict', 1): see fake-kube.pl's control files.
sub kube_control { my ($k, $name, $v) = @_; spew("$k->{dir}/$name", $v // '') }

1;
