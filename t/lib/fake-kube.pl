# fake-kube.pl CONFIG.json: a STAND-IN for the Kubernetes API server, for the
# tests of "launch kubernetes ... service=" (t/120-*.t ..). No real API server
# can run here; this one speaks the few requests the gateway sends, with the
# JSON shapes of the API reference (autoscaling/v1 Scale, discovery.k8s.io/v1
# EndpointSlice and EndpointSliceList, watch events, meta/v1 Status):
#
#   PATCH /apis/apps/v1/namespaces/NS/deployments/NAME/scale
#         (application/merge-patch+json, {"spec":{"replicas":N}})
#   GET   /apis/apps/v1/namespaces/NS/deployments/NAME/scale
#   GET   /apis/discovery.k8s.io/v1/namespaces/NS/endpointslices?labelSelector=kubernetes.io/service-name=SVC
#   GET   ...&watch=1&resourceVersion=RV[&timeoutSeconds=S]   (chunked, one event a line)
#
# over HTTPS, with a bearer token. Its "pods" are real processes (the
# config's worker command, "$port" replaced) on loopback ports: a scale up
# creates pods (their endpoint not ready), starts each after start_delay
# seconds and marks it ready once its port answers; a scale down marks the
# newest pods terminating (as a ReplicaSet picks them), SIGTERMs them
# term_delay seconds later and deletes their endpoint when they exited.
# Each pod has its own port on 127.0.0.1, so each has its own EndpointSlice
# (a slice's endpoints share its ports).
#
# Files in DIR steer it (each is read, then removed):
#   conflict   N: the next N PATCHes get 409 Conflict with Retry-After: 1
#   break      every watch connection is closed (a broken watch)
#   compact    the resourceVersion moves on and the history is dropped: a watch from before gets 410 Expired
#   down       while it exists, the API server is away (its port closed)
#   delete-pod the oldest ready pod is deleted (terminating, then gone); its ReplicaSet makes another
#   gone-status while it exists, a watch from a compacted version gets HTTP 410 (not a 200 and an ERROR event)
#   forbid     while it exists, a PATCH gets 403 Forbidden (the RBAC lacks patch on deployments/scale)
# It writes DIR/requests (one JSON line a request: t, method, path, query, code, replicas)
# and DIR/events (one JSON line a pod change: t, pod, what).
use strict;
use warnings;
use IO::Socket::SSL;
use IO::Select;
use JSON::PP;
use POSIX qw(setsid WNOHANG);
use Time::HiRes qw(time sleep);

my $cf = decode_json(do { local $/; open my $f, '<', $ARGV[0] or die "$ARGV[0]: $!"; <$f> });
my $dir = $cf->{dir};
my ($ns, $dep, $svc) = @$cf{qw(namespace deployment service)};
my $start_delay = $cf->{start_delay} // 0;
my $term_delay = $cf->{term_delay} // 0.3;
my @free_ports = @{ $cf->{pod_ports} };
$SIG{PIPE} = 'IGNORE';

my $json = JSON::PP->new->canonical;
my $rv = 1000;		# the resourceVersion of the last change
my @history;		# [rv, type, slice] since the last compaction
my $oldest = $rv;	# a watch from before this is too old (410)
my %pods;		# name -> { name, port, pid, phase: pending|running|ready|terminating, created, start_at, term_at }
my $spec = 0;		# the Deployment's spec.replicas
my $podn = 0;
my @watchers;		# { sock, until }
my $conflicts = 0;
my $srv;

sub logline {
	my ($file, $h) = @_;
	open my $f, '>>', "$dir/$file" or die;
	print $f $json->encode({ t => time, %$h }), "\n";
	close $f;
}

sub slice_of {
	my ($p) = @_;
	my $ready = $p->{phase} eq 'ready' ? JSON::PP::true : JSON::PP::false;
	my $term = $p->{phase} eq 'terminating' ? JSON::PP::true : JSON::PP::false;
	my $serving = ($p->{phase} eq 'ready' || ($p->{phase} eq 'terminating' && $p->{was_ready})) ? JSON::PP::true : JSON::PP::false;
	return {
		kind => 'EndpointSlice', apiVersion => 'discovery.k8s.io/v1',
		metadata => { name => "$p->{name}-slice", namespace => $ns, resourceVersion => "$p->{rv}",
			labels => { 'kubernetes.io/service-name' => $svc,
				'endpointslice.kubernetes.io/managed-by' => 'endpointslice-controller.k8s.io' },
			ownerReferences => [ { apiVersion => 'v1', kind => 'Service', name => $svc } ] },
		addressType => 'IPv4',
		endpoints => [ { addresses => ['127.0.0.1'],
			conditions => { ready => $ready, serving => $serving, terminating => $term },
			targetRef => { kind => 'Pod', namespace => $ns, name => $p->{name} } } ],
		ports => [ { name => 'http', port => $p->{port} + 0, protocol => 'TCP' } ],
	};
}

sub send_chunk {
	my ($w, $data) = @_;
	my $s = $w->{sock};
	my $ok = print $s sprintf("%x\r\n", length $data), $data, "\r\n";
	return $ok;
}

# A change: the slice of pod p was ADDED, MODIFIED or DELETED.
sub change {
	my ($type, $p, $what) = @_;
	$p->{rv} = ++$rv;
	my $slice = slice_of($p);
	push @history, [ $rv, $type, $slice ];
	logline('events', { pod => $p->{name}, what => $what, rv => $rv });
	my $line = $json->encode({ type => $type, object => $slice }) . "\n";
	@watchers = grep { send_chunk($_, $line) || do { close $_->{sock}; 0 } } @watchers;
}

sub new_pod {
	my $port = shift @free_ports or die "fake-kube: no port left for a pod";
	my $name = sprintf('%s-7d9f8b6c5-%05d', $dep, ++$podn);
	my $p = $pods{$name} = { name => $name, port => $port, phase => 'pending', created => time,
		start_at => time + $start_delay };
	change('ADDED', $p, 'created');
}

sub alive { return grep { $_->{phase} ne 'terminating' } values %pods }

sub terminate {
	my ($p, $why) = @_;
	$p->{was_ready} = $p->{phase} eq 'ready';
	$p->{phase} = 'terminating';
	$p->{term_at} = time + $term_delay;
	change('MODIFIED', $p, "terminating ($why)");
}

# The ReplicaSet: as many pods as spec, newest first to go.
sub reconcile {
	my @a = sort { $a->{created} <=> $b->{created} || $a->{name} cmp $b->{name} } alive();
	new_pod() for 1 .. $spec - @a;
	terminate($_, 'scale down') for reverse @a[ $spec .. $#a ];
}

sub pod_tick {
	my $now = time;
	for my $p (values %pods) {
		if ($p->{phase} eq 'pending' && $now >= $p->{start_at} && !$p->{pid}) {
			my $pid = fork // die;
			if (!$pid) {
				setsid();
				open STDIN, '<', '/dev/null';
				open STDOUT, '>>', "$dir/pods.log";
				open STDERR, '>&', \*STDOUT;
				my @cmd = map { s/\$port/$p->{port}/gr } @{ $cf->{worker} };
				exec @cmd;
				exit 127;
			}
			$p->{pid} = $pid;
			$p->{phase} = 'running';
			logline('events', { pod => $p->{name}, what => 'started' });
		}
		if ($p->{phase} eq 'running' && IO::Socket::INET->new(PeerAddr => "127.0.0.1:$p->{port}", Timeout => 1)) {
			$p->{phase} = 'ready';	# the pod's readiness probe passed
			change('MODIFIED', $p, 'ready');
		}
		if ($p->{phase} eq 'terminating' && $p->{term_at} && $now >= $p->{term_at}) {
			$p->{term_at} = 0;
			if ($p->{pid}) { kill 'TERM', $p->{pid}; logline('events', { pod => $p->{name}, what => 'SIGTERM' }) }
			else { $p->{gone} = 1 }
		}
	}
	while ((my $pid = waitpid(-1, WNOHANG)) > 0) {
		my ($p) = grep { ($_->{pid} // 0) == $pid } values %pods or next;
		$p->{pid} = undef;
		$p->{gone} = 1;
		logline('events', { pod => $p->{name}, what => "exited $?" });
	}
	for my $p (grep { $_->{gone} } values %pods) {
		delete $pods{ $p->{name} };
		my $crashed = $p->{phase} ne 'terminating';
		change('DELETED', $p, 'deleted');
		push @free_ports, $p->{port};
		reconcile() if $crashed;	# the ReplicaSet replaces it
	}
}

sub status {
	my ($code, $reason, $msg) = @_;
	return ($code, { kind => 'Status', apiVersion => 'v1', metadata => {}, status => 'Failure',
		message => $msg, reason => $reason, code => $code });
}

sub uri_unescape { my ($s) = @_; $s =~ s/%([0-9A-Fa-f]{2})/chr hex $1/ge; return $s }

sub reply {
	my ($c, $code, $out, @h) = @_;
	my $o = $json->encode($out);
	print $c "HTTP/1.1 $code X\r\nContent-Type: application/json\r\n", map({ "$_\r\n" } @h),
		"Content-Length: " . length($o) . "\r\nConnection: close\r\n\r\n$o";
	close $c;
}

sub handle {
	my ($c) = @_;
	my $head = '';
	while (defined(my $l = <$c>)) { $head .= $l; last if $l eq "\r\n" }
	my ($method, $target) = $head =~ /^(\S+) (\S+)/ or do { close $c; return };
	my %h;
	$h{ lc $1 } = $2 while $head =~ /^([\w-]+): ([^\r\n]*)/mg;
	my $body = '';
	read($c, $body, $h{'content-length'}) if $h{'content-length'};
	my ($path, $query) = split /\?/, $target, 2;
	my %q = map { my ($k, $v) = split /=/, $_, 2; (uri_unescape($k) => uri_unescape($v // '')) } split /&/, $query // '';
	my $j = eval { decode_json($body) };
	my $scale = "/apis/apps/v1/namespaces/$ns/deployments/$dep/scale";
	my $slices = "/apis/discovery.k8s.io/v1/namespaces/$ns/endpointslices";
	my ($code, $out, @hdr);
	if (($h{authorization} // '') ne "Bearer $cf->{token}") {
		($code, $out) = status(401, 'Unauthorized', 'Unauthorized');
	} elsif ($path eq $scale && $method eq 'PATCH') {
		if (-e "$dir/forbid") {
			($code, $out) = status(403, 'Forbidden', "deployments.apps \"$dep\" is forbidden: User "
				. "\"system:serviceaccount:$ns:wakegate\" cannot patch resource \"deployments/scale\" in API group \"apps\" "
				. "in the namespace \"$ns\"");
		} elsif (($h{'content-type'} // '') ne 'application/merge-patch+json') {
			($code, $out) = status(415, 'UnsupportedMediaType', 'the body of the request was in an unknown format');
		} elsif (!$j || join(',', sort keys %$j) ne 'spec' || ref $j->{spec} ne 'HASH'
			|| join(',', keys %{ $j->{spec} }) ne 'replicas' || $j->{spec}{replicas} !~ /^\d+$/) {
			($code, $out) = status(400, 'BadRequest', "unexpected body: $body");
		} elsif ($conflicts > 0) {
			$conflicts--;
			($code, $out) = status(409, 'Conflict', "Operation cannot be fulfilled on deployments.apps \"$dep\": "
				. 'the object has been modified; please apply your changes to the latest version and try again');
			@hdr = ('Retry-After: 1');
		} else {
			$spec = $j->{spec}{replicas};
			reconcile();
			($code, $out) = (200, scale_obj());
		}
	} elsif ($path eq $scale && $method eq 'GET') {
		($code, $out) = (200, scale_obj());
	} elsif ($path eq $slices && $method eq 'GET') {
		if (($q{labelSelector} // '') ne "kubernetes.io/service-name=$svc") {
			($code, $out) = status(400, 'BadRequest', "unexpected labelSelector: " . ($q{labelSelector} // ''));
		} elsif ($q{watch} && ($q{watch} eq '1' || $q{watch} eq 'true')) {
			my $from = $q{resourceVersion} // '';
			if (($from !~ /^\d+$/ || $from < $oldest) && -e "$dir/gone-status") {
				# as older API servers did: the HTTP status itself is 410, with a Status body
				my ($c410, $st) = status(410, 'Gone', "too old resource version: $from ($oldest)");
				logline('requests', { method => $method, path => $path, query => $query, code => 410 });
				reply($c, $c410, $st);
				return;
			}
			logline('requests', { method => $method, path => $path, query => $query, code => 200, watch => $from });
			print $c "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
			my $w = { sock => $c, until => time + ($q{timeoutSeconds} || 1800) };
			if ($from !~ /^\d+$/ || $from < $oldest) {
				my (undef, $st) = status(410, 'Expired', "too old resource version: $from ($oldest)");
				send_chunk($w, $json->encode({ type => 'ERROR', object => $st }) . "\n");
				print $c "0\r\n\r\n";
				close $c;
				return;
			}
			for my $e (grep { $_->[0] > $from } @history) {
				send_chunk($w, $json->encode({ type => $e->[1], object => $e->[2] }) . "\n");
			}
			push @watchers, $w;
			return;
		} else {
			($code, $out) = (200, { kind => 'EndpointSliceList', apiVersion => 'discovery.k8s.io/v1',
				metadata => { resourceVersion => "$rv" },
				items => [ map { slice_of($_) } sort { $a->{name} cmp $b->{name} } values %pods ] });
		}
	} else {
		($code, $out) = status(404, 'NotFound', "the server could not find the requested resource ($path)");
	}
	logline('requests', { method => $method, path => $path, query => $query, code => $code,
		replicas => $j && ref $j eq 'HASH' && ref $j->{spec} eq 'HASH' ? $j->{spec}{replicas} : undef });
	reply($c, $code, $out, @hdr);
}

sub scale_obj {
	return { kind => 'Scale', apiVersion => 'autoscaling/v1',
		metadata => { name => $dep, namespace => $ns, resourceVersion => "$rv" },
		spec => { replicas => $spec + 0 }, status => { replicas => scalar(alive()) + 0,
			selector => "app=$dep" } };
}

sub listen_api {
	my $s = IO::Socket::SSL->new(LocalAddr => '127.0.0.1', LocalPort => $cf->{port}, Listen => 64, ReuseAddr => 1,
		Timeout => 5, SSL_cert_file => $cf->{cert}, SSL_key_file => $cf->{key}) or die "listen: $SSL_ERROR";
	return $s;
}

sub control {
	my ($name) = @_;
	my $f = "$dir/$name";
	return undef unless -e $f;
	my $v = do { local $/; open my $h, '<', $f; <$h> } // '';
	unlink $f;
	return $v eq '' ? 1 : $v;
}

$SIG{TERM} = sub { kill 'TERM', $_->{pid} for grep { $_->{pid} } values %pods; exit 0 };
$srv = listen_api();
my $sel = IO::Select->new($srv);
for (;;) {
	if (-e "$dir/down") {
		if ($srv) {
			$sel->remove($srv);
			close $srv;
			$srv = undef;
			close $_->{sock} for @watchers;
			@watchers = ();
			logline('events', { pod => '', what => 'api server down' });
		}
	} elsif (!$srv) {
		$srv = listen_api();
		$sel->add($srv);
		logline('events', { pod => '', what => 'api server up' });
	}
	if (defined(my $n = control('conflict'))) { $conflicts = $n + 0 }
	if (control('break')) {
		close $_->{sock} for @watchers;
		@watchers = ();
	}
	if (control('compact')) {
		# other objects' writes moved the cluster's resourceVersion on (it is global in etcd), and
		# the history was compacted: a watch from before now is 410, one from now (a new list) is fine
		$rv += 10;
		@history = ();
		$oldest = $rv;
	}
	if (control('delete-pod')) {
		my ($p) = sort { $a->{created} <=> $b->{created} } grep { $_->{phase} eq 'ready' } values %pods;
		if ($p) { terminate($p, 'deleted'); reconcile() }
	}
	for my $w (@watchers) {
		if (time >= $w->{until}) { print { $w->{sock} } "0\r\n\r\n"; close $w->{sock}; $w->{done} = 1 }
	}
	@watchers = grep { !$_->{done} } @watchers;
	if ($srv && $sel->can_read(0.05)) {
		my $c = $srv->accept;
		handle($c) if $c;	# a failed handshake (a client that does not trust us) gives none
	} elsif (!$srv) {
		sleep 0.05;
	}
	pod_tick();
}
