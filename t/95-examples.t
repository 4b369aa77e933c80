# conf/examples for the people who watch it: every metric the Grafana
# dashboard and the Prometheus alert rules name, and every label they group
# or match by, exists in a running gateway's /metrics; the rules and the
# scrape config pass promtool where it is installed; the Kubernetes
# manifests hold what the kubernetes launcher needs (model Deployment at 0
# replicas, least RBAC on its scale subresource), their ConfigMap conf passes
# wakegate -t, and kubectl apply --dry-run=client accepts them where kubectl
# has a cluster to ask.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use JSON::PP;

my $ex = src('conf/examples');
my $dir = tmpdir();
my $have = sub { system("command -v $_[0] >/dev/null 2>&1") == 0 };
my $yaml = eval { require YAML::XS; 1 };

# --- the expressions the examples use ------------------------------------
my $dash = decode_json(slurp("$ex/grafana/wakegate-dashboard.json"));
my @exprs;
my $walk;
$walk = sub {
	my ($x) = @_;
	if (ref $x eq 'HASH') {
		for my $k (keys %$x) {
			push @exprs, $x->{$k} if ($k eq 'expr' || $k eq 'definition') && !ref $x->{$k};
			push @exprs, $x->{$k}{query} if $k eq 'query' && ref $x->{$k} eq 'HASH';
			$walk->($x->{$k});
		}
	} elsif (ref $x eq 'ARRAY') { $walk->($_) for @$x }
};
$walk->($dash);
my $ndash = @exprs;
cmp_ok($ndash, '>=', 15, "the dashboard has its queries ($ndash)");
my $rules_text = slurp("$ex/prometheus/wakegate-alerts.yml");
my @rule_exprs;
if ($yaml) {
	my $r = YAML::XS::Load($rules_text);
	@rule_exprs = map { $_->{expr} } map { @{ $_->{rules} } } @{ $r->{groups} };
	my %alerts = map { $_->{alert} => 1 } map { @{ $_->{rules} } } @{ $r->{groups} };
	ok($alerts{$_}, "alert rule $_") for qw(WakegateColdStartSlow WakegateHoldQueueNearFull WakegateWorkerCrashLoop WakegateSavingBelowFloor);
} else {
	@rule_exprs = $rules_text =~ /expr:\s*\|?\s*\n?((?:.+\n)+?)\s*(?:for|labels):/g;
}
cmp_ok(scalar @rule_exprs, '>=', 5, 'the alert rules have their expressions');
push @exprs, @rule_exprs;

# --- a gateway with every kind of traffic the examples count -------------
my ($port, $admin) = (free_port(), free_port());
my $w = worker_cmd();
(my $ws = $w) =~ s/digits\.safetensors/digits-small.safetensors/;
$ws =~ s/--name digits$/--name digits-small/;
my $conf = <<"EOC";
daemon off;
pid $dir/ex.pid;
error_log $dir/ex-error.log info;
access_log $dir/ex-access.log;
admin_listen 127.0.0.1:$admin;
limit_req_zone \$binary_remote_addr zone=perip:1m rate=1000r/s;
limit_conn_zone \$binary_remote_addr zone=conn:1m;
upstream digits {
	launch exec "$w";
	idle_timeout 10m;
	price_per_hour 0.35 USD;
}
upstream digits-small {
	launch exec "$ws";
	min_warm 1;
}
server {
	listen 127.0.0.1:$port;
	location / {
		limit_req zone=perip burst=100 nodelay;
		limit_conn conn 100;
		proxy_pass digits;
		degrade to digits-small when cold;
	}
	location /v2/ { proxy_pass digits; }	# no degrade rule: held while cold
}
EOC
my $g = gw_start(conf => $conf, port => $port, admin => $admin);
my $state = sub { gw_status($g)->{upstreams}{$_[0]}{state} // '' };
ok(wait_until(sub { $state->('digits-small') eq 'READY' }, 60), 'digits-small (min_warm 1) is up');
my ($body) = digits_input(0);
is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'a request, degraded to digits-small while digits is cold');
ok(wait_until(sub { $state->('digits') eq 'READY' }, 60), 'digits wakes');
is(gw_predict($g, $body, timeout => 60)->{status}, 200, 'a request to digits');
is(http_post("$g->{admin_url}/upstreams/digits/sleep", '')->{status}, 202, 'digits put to sleep');
ok(wait_until(sub { $state->('digits') eq 'STOPPED' }, 30), 'and stopped');
is(http_get("$g->{url}/v2/health/ready", timeout => 60)->{status}, 200, 'a request held through a cold start');
# cost and hold figures are refreshed on a tick: wait for them
my $metrics = '';
ok(wait_until(sub { $metrics = http_get("$g->{admin_url}/metrics")->{content}; $metrics =~ /^wakegate_saving_ratio\{/m && $metrics =~ /^wakegate_hold_quantile_seconds\{/m }, 20),
	'the cost figures are in /metrics');

my (%type, %labels);
for (split /\n/, $metrics) {
	$type{$1} = $2 if /^# TYPE (\S+) (\S+)/;
	if (/^(\w+)\{([^}]*)\}/) {
		my ($n, $l) = ($1, $2);
		$n =~ s/_(bucket|sum|count)$// unless $type{$n};
		$labels{$n}{$1} = 1 while $l =~ /(\w+)="/g;
	}
}

# --- every metric name, and the labels used with it ----------------------
my %names;
for my $e (@exprs) { $names{$1} = 1 while $e =~ /\b(wakegate_\w+)/g }
cmp_ok(scalar keys %names, '>=', 20, scalar(keys %names) . ' metric names in the dashboard and rules');
for my $n (sort keys %names) {
	my $base = $n;
	if (!$type{$n} && $n =~ /^(.*)_(bucket|sum|count)$/ && ($type{$1} // '') eq 'histogram') {
		$base = $1;
	}
	ok($type{$base}, "$n is exported by the gateway" . ($base ne $n ? " ($base is a histogram)" : ''));
}
my %all = (le => 1);
%all = (%all, %$_) for values %labels;
for my $e (@exprs) {
	my @used;
	push @used, split /\s*,\s*/, $1 while $e =~ /\bby\s*\(([^)]*)\)/g;
	while ($e =~ /\b(wakegate_\w+)\{([^}]*)\}/g) {
		my $sel = $2;
		push @used, $1 while $sel =~ /(\w+)\s*(?:=~|!=|!~|=)/g;
	}
	for my $l (grep { length } @used) {
		ok($all{$l}, "label \"$l\" exists in /metrics (used in: " . substr($e =~ s/\s+/ /gr, 0, 60) . ')') unless $l =~ /^\$/;
	}
}
ok($labels{wakegate_replica_state}{state}, 'wakegate_replica_state has the state label the crash-loop rule uses');
like($metrics, qr/^wakegate_replica_state\{[^}]*state="FAILED"/m, 'with a FAILED series');
stop_proc($g->{pid}, 'TERM', 40);

# --- promtool ------------------------------------------------------------
SKIP: {
	skip 'no promtool (apt-get install prometheus)', 2 unless $have->('promtool');
	my $out = `promtool check rules $ex/prometheus/wakegate-alerts.yml 2>&1`;
	is($?, 0, 'promtool check rules') or diag $out;
	$out = `promtool check config $ex/prometheus/prometheus.yml 2>&1`;
	is($?, 0, 'promtool check config') or diag $out;
}

# --- Kubernetes ----------------------------------------------------------
SKIP: {
	skip 'no YAML::XS (apt-get install libyaml-libyaml-perl)', 1 unless $yaml;
	my @docs = map { YAML::XS::LoadFile("$ex/kubernetes/$_") } qw(rbac.yaml model.yaml gateway.yaml);
	my %k = map { ("$_->{kind}/$_->{metadata}{name}" => $_) } @docs;
	my $model = $k{'Deployment/digits'};
	ok($model, 'a model Deployment');
	is($model->{spec}{replicas}, 0, 'at replicas 0: the gateway scales it');
	my $cm = $k{'ConfigMap/wakegate-conf'}{data}{'wakegate.conf'};
	like($cm, qr{launch kubernetes deployment=wakegate/digits url=http://digits\.wakegate\.svc:8000;}, 'the gateway conf launches that Deployment through its Service');
	ok($k{'Service/digits'} && $k{'Service/digits'}{spec}{ports}[0]{port} == 8000, 'the Service is on 8000');
	my $gwd = $k{'Deployment/wakegate'};
	is($gwd->{spec}{template}{spec}{serviceAccountName}, 'wakegate', 'the gateway runs as the wakegate ServiceAccount');
	ok($k{'ServiceAccount/wakegate'}, 'which exists');
	my $role = $k{'Role/wakegate-scale'};
	is_deeply($role->{rules}, [{ apiGroups => ['apps'], resources => ['deployments/scale'], resourceNames => ['digits'], verbs => ['patch'] }],
		'the Role allows PATCH on deployments/digits/scale and nothing else');
	my $rb = $k{'RoleBinding/wakegate-scale'};
	is_deeply([$rb->{roleRef}{name}, $rb->{subjects}[0]{name}, $rb->{subjects}[0]{kind}], ['wakegate-scale', 'wakegate', 'ServiceAccount'], 'bound to it');
	is($_->{metadata}{namespace} // 'wakegate', 'wakegate', "$_->{kind}/$_->{metadata}{name} in namespace wakegate") for grep { $_->{kind} ne 'Namespace' } @docs;
	spew("$dir/k8s.conf", $cm);
	my $out = `${\ bin('wakegate')} -t -p $dir -c $dir/k8s.conf 2>&1`;
	is($?, 0, 'the ConfigMap\'s conf passes wakegate -t') or diag $out;
}
# the pods as replicas (launch kubernetes ... service=), two gateways on one Redis
SKIP: {
	skip 'no YAML::XS (apt-get install libyaml-libyaml-perl)', 1 unless $yaml;
	my @docs = map { YAML::XS::LoadFile("$ex/kubernetes/pods/$_") } qw(rbac.yaml gateway.yaml);
	my %k = map { ("$_->{kind}/$_->{metadata}{name}" => $_) } @docs;
	is_deeply($k{'Role/wakegate-pods'}{rules}, [
		{ apiGroups => ['apps'], resources => ['deployments/scale'], resourceNames => ['digits'], verbs => ['patch'] },
		{ apiGroups => ['discovery.k8s.io'], resources => ['endpointslices'], verbs => ['get', 'list', 'watch'] } ],
		'pods/: the Role allows PATCH on deployments/digits/scale and get, list, watch on endpointslices, nothing else');
	my $rb = $k{'RoleBinding/wakegate-pods'};
	is_deeply([$rb->{roleRef}{name}, $rb->{subjects}[0]{name}], ['wakegate-pods', 'wakegate'], 'pods/: bound to the wakegate ServiceAccount');
	my $cm = $k{'ConfigMap/wakegate-conf'}{data}{'wakegate.conf'};
	like($cm, qr{launch kubernetes deployment=wakegate/digits service=digits;}, 'pods/: the conf takes the pods of Service digits');
	like($cm, qr{^\s*redis \S+}m, 'pods/: with a redis line, for the two gateways');
	is($k{'Deployment/wakegate'}{spec}{replicas}, 2, 'pods/: two gateways');
	is($k{'Deployment/wakegate'}{spec}{template}{spec}{serviceAccountName}, 'wakegate', 'pods/: under the ServiceAccount');
	spew("$dir/k8s-pods.conf", $cm);
	my $out = `${\ bin('wakegate')} -t -p $dir -c $dir/k8s-pods.conf 2>&1`;
	is($?, 0, 'pods/: the ConfigMap\'s conf passes wakegate -t') or diag $out;
}
SKIP: {
	skip 'no kubectl', 1 unless $have->('kubectl');
	skip 'kubectl has no cluster to ask (apply --dry-run=client needs API discovery)', 1
		unless system('kubectl version --request-timeout=5s >/dev/null 2>&1') == 0;
	my $out = `kubectl apply --dry-run=client -f $ex/kubernetes/ 2>&1`;
	is($?, 0, 'kubectl apply --dry-run=client accepts the manifests') or diag $out;
}

done_testing();
