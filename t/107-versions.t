# Versions and recycling (issue 16), as wakegate.conf(5) says under
# model_file and recycle: a flipped model_file symlink plus SIGHUP switches
# warm-first under 8 looping clients with no failed request; a new version
# that cannot start leaves the old one serving (log, /status); POST
# /upstreams/NAME/rollout is a switch too; a worker whose memory grows past
# "recycle memory >" is replaced under load with no failed request.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGFaults;
use JSON::PP;
use POSIX ();
use Time::HiRes qw(time sleep);

my $dir = tmpdir();
my $json = JSON::PP->new;
my $sample;
{
	my $t = decode_json(slurp(src('models/digits-test.json')));
	$sample = encode_json({ inputs => [ { name => 'input', shape => [ 1, 64 ], datatype => 'FP32', data => $t->{inputs}[0] } ] });
}

# The versions: the same model under three names, and one file that is no model.
for my $v (qw(v1 v2 v4)) {
	system('cp', src('models/digits.safetensors'), "$dir/$v.safetensors") == 0 or die;
}
spew("$dir/v3.safetensors", "this is not a safetensors file\n");
sub flip { my ($to) = @_; symlink("$to.safetensors", "$dir/prod.tmp") or die; rename("$dir/prod.tmp", "$dir/production") or die }
flip('v1');

# 8 clients POST the KServe infer path until $stop exists; each line of their
# files: time status header-version body-version.
my $nload = 0;
sub load {
	my ($g, $n) = @_;
	my $tag = ++$nload;
	my $stop = "$dir/stop-$tag";
	my @kids;
	for my $k (1 .. $n) {
		my $pid = fork // die;
		if ($pid == 0) {
			open my $out, '>', "$dir/load-$tag-$k" or die;
			my $http = HTTP::Tiny->new(timeout => 60, keep_alive => 0);
			until (-e $stop) {
				my $r = $http->post("$g->{url}/v2/models/digits/infer",
					{ content => $sample, headers => { 'Content-Type' => 'application/json' } });
				my ($hv) = ($r->{headers}{'x-wakegate-upstream'} // '') =~ /version=([^;]+)/;
				my $b = eval { decode_json($r->{content}) } // {};
				printf $out "%.3f %d %s %s\n", time, $r->{status}, $hv // '-', $b->{model_version} // '-';
			}
			close $out;
			POSIX::_exit(0);
		}
		push @kids, $pid;
	}
	return sub {
		spew($stop, '');
		waitpid($_, 0) for @kids;
		my @lines;
		for my $k (1 .. $n) {
			my @l = map { [split ' '] } split /\n/, slurp("$dir/load-$tag-$k");
			push @lines, { client => $k, lines => \@l };
		}
		return \@lines;
	};
}
# n clients GET / (any backend) until the returned sub is called: {sent, bad}.
sub load_get {
	my ($g, $n) = @_;
	my $stop = "$dir/stop-get-" . ++$nload;
	my @kids;
	for my $k (1 .. $n) {
		my $pid = fork // die;
		if ($pid == 0) {
			my ($sent, $bad) = (0, 0);
			my $http = HTTP::Tiny->new(timeout => 60, keep_alive => 0);
			until (-e $stop) {
				my $r = $http->get("$g->{url}/x");
				$sent++;
				$bad++ if $r->{status} != 200;
			}
			spew("$stop-$k", "$sent $bad");
			POSIX::_exit(0);
		}
		push @kids, $pid;
	}
	return sub {
		spew($stop, '');
		waitpid($_, 0) for @kids;
		my %r = (sent => 0, bad => 0);
		for my $k (1 .. $n) { my ($s, $b) = split ' ', slurp("$stop-$k"); $r{sent} += $s; $r{bad} += $b }
		return \%r;
	};
}
sub summary {
	my ($res) = @_;
	my %s = (sent => 0, bad => 0, mismatch => 0);
	for my $c (@$res) {
		for my $l (@{ $c->{lines} }) {
			$s{sent}++;
			$s{bad}++ if $l->[1] != 200;
			$s{mismatch}++ if $l->[1] == 200 && $l->[2] ne $l->[3];
			$s{version}{ $l->[2] }++;
		}
		push @{ $s{last} }, $c->{lines}[-1][2] // '-';
	}
	return \%s;
}
sub ups { my ($g) = @_; return gw_status($g)->{upstreams}{digits} // {} }
sub metric {
	my ($g, $re) = @_;
	my $m = WG::http_get("$g->{admin_url}/metrics")->{content} // '';
	my $sum = 0;
	$sum += $1 while $m =~ /^$re (\S+)$/mg;
	return $sum;
}
# Every replica up is READY and runs version $v, and the upstream is not
# switching. (Usually one; a second when held requests restarted a failed
# slot meanwhile, which then starts the current version too.)
sub settled_on {
	my ($g, $v) = @_;
	my $u = ups($g);
	my @up = grep { $_->{state} =~ /^(READY|BOOTING|WARMING|DRAINING)$/ } @{ $u->{replicas} // [] };
	return ($u->{rollout} // '') ne 'switching' && @up >= 1 && !grep { $_->{state} ne 'READY' || ($_->{version} // '') ne $v } @up;
}

my $launch = bin('wakegate-worker') . ' --model $model_file --model-version $model_version --listen 127.0.0.1:$port --name digits';
my ($text, $port, $admin) = gw_conf(launch => $launch,
	upstream => "model_file $dir/production; idle_timeout 120s; max_conns 4; hold 1000 timeout=60s; boot_timeout 20s;");
my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);

# 0. a cold upstream just starts the version the symlink names
{
	my $r = WG::http_post("$g->{url}/v2/models/digits/infer", $sample, headers => { 'Content-Type' => 'application/json' });
	is($r->{status}, 200, 'the first request wakes the upstream');
	like($r->{headers}{'x-wakegate-upstream'} // '', qr/^digits; version=v1; replica=0$/,
		'X-Wakegate-Upstream names the upstream, the version (the resolved file) and the replica');
	is((decode_json($r->{content}))->{model_version}, 'v1', 'the worker says model_version v1 (--model-version $model_version)');
	my $meta = decode_json(WG::http_get("$g->{url}/v2/models/digits")->{content});
	is_deeply($meta->{versions}, ['v1'], 'KServe metadata lists version v1');
	my $u = ups($g);
	is($u->{version}, 'v1', '/status: the upstream runs version v1');
	is($u->{model_file}, "$dir/v1.safetensors", '/status: model_file as resolved at the start');
}

# 1. symlink flip + SIGHUP under 8 looping clients
{
	my $pids_before = join ' ', sort(gw_children($g->{pid}));
	my $done = load($g, 8);
	sleep 1.5;
	flip('v2');
	kill 'HUP', $g->{pid};
	my $t_hup = time;
	ok(wait_until(sub { settled_on($g, 'v2') }, 40), 'the switch ends with every replica up READY on v2');
	my $t_done = time;
	sleep 1.5;
	my $s = summary($done->());
	ok($s->{sent} > 40, "the 8 clients sent $s->{sent} requests across the switch");
	is($s->{bad}, 0, 'not one of them failed');
	is($s->{mismatch}, 0, "the header's version is always the worker's own model_version");
	ok(($s->{version}{v1} // 0) > 0 && ($s->{version}{v2} // 0) > 0,
		"both versions answered (v1: @{[ $s->{version}{v1} // 0 ]}, v2: @{[ $s->{version}{v2} // 0 ]})");
	is_deeply($s->{last}, [ ('v2') x 8 ], "every client's last answer came from v2");
	my $log = gw_log($g);
	like($log, qr/version v1 -> v2 \(reload\): switching warm-first/, 'the log says the reload switches warm-first');
	like($log, qr/replica \d: READY -> DRAINING \(replaced by replica \d \(version v2\)\) cause=rollout/,
		'the old replica drained only once the new one was READY, cause rollout');
	ok(metric($g, 'wakegate_replica_moves_total\{upstream="digits",from="READY",to="DRAINING",cause="rollout"\}') >= 1,
		'wakegate_replica_moves_total counts the drain with cause="rollout"');
	is(metric($g, 'wakegate_rollouts_total\{upstream="digits",result="done"\}'), 1, 'wakegate_rollouts_total{result="done"} is 1');
	is(metric($g, 'wakegate_upstream_version\{upstream="digits",version="v2"\}'), 1, 'wakegate_upstream_version names v2');
	ok(wait_until(sub { ups($g)->{replicas} && !grep { $_->{state} eq 'DRAINING' } @{ ups($g)->{replicas} } }, 20),
		'the old replica is stopped after its drain');
}

# 2. a new version that cannot start leaves the old one serving
{
	my $done = load($g, 8);
	sleep 1;
	flip('v3');
	kill 'HUP', $g->{pid};
	ok(wait_until(sub { (ups($g)->{rollout} // '') eq 'failed' }, 30), '/status says the rollout failed');
	my $u = ups($g);
	like($u->{rollout_error} // '', qr/replica \d of version v3: /, "/status has the error: $u->{rollout_error}");
	is($u->{version}, 'v3', 'the conf\'s version is v3 ...');
	sleep 1.5;
	my $s = summary($done->());
	ok($s->{sent} > 20, "the clients sent $s->{sent} requests while v3 failed");
	is($s->{bad}, 0, '... and not one failed');
	is_deeply([ keys %{ $s->{version} } ], ['v2'], '... all answered by the old version v2');
	my @ready = grep { $_->{state} eq 'READY' } @{ ups($g)->{replicas} };
	ok(@ready == 1 && $ready[0]{version} eq 'v2' && $ready[0]{old_version}, 'the v2 replica is READY, marked old');
	like(gw_log($g), qr/the switch of replica \d failed: replica \d of version v3: .*keeps serving/,
		'the log says the switch failed and the old replica keeps serving');
	is(metric($g, 'wakegate_rollouts_total\{upstream="digits",result="failed"\}'), 1, 'wakegate_rollouts_total{result="failed"} is 1');
}

# 3. POST /upstreams/NAME/rollout: a fixed file, switched without a reload
{
	flip('v4');
	my $done = load($g, 8);
	sleep 1;
	my $r = WG::http_post("$g->{admin_url}/upstreams/digits/rollout", '');
	is($r->{status}, 202, 'POST /upstreams/digits/rollout answers 202');
	is((decode_json($r->{content}))->{version}, 'v4', '... with the version it switches to');
	ok(wait_until(sub { settled_on($g, 'v4') }, 40), 'the admin rollout ends on v4');
	sleep 1;
	my $s = summary($done->());
	is($s->{bad}, 0, "no failed request across the admin rollout ($s->{sent} sent)");
	is_deeply($s->{last}, [ ('v4') x 8 ], "every client's last answer came from v4");
	is(WG::http_post("$g->{admin_url}/upstreams/nope/rollout", '')->{status}, 404, 'an unknown upstream is a 404');
}

# 3b. a reload that changes only the launch command is a new version too
{
	my $drains = 'wakegate_replica_moves_total\{upstream="digits",from="READY",to="DRAINING",cause="rollout"\}';
	my $before = metric($g, $drains);
	my $gen = ups($g)->{generation};
	(my $t2 = $text) =~ s/--name digits/--name digits --warmup 2/ or die;
	spew($g->{conf}, $t2);
	kill 'HUP', $g->{pid};
	ok(wait_until(sub { (ups($g)->{generation} // 0) > $gen && metric($g, $drains) > $before && settled_on($g, 'v4') }, 40),
		'a reload that changes the launch command replaces the running replica warm-first');
	like(gw_log($g), qr/version v4 -> v4 \(reload\): switching warm-first/, 'the log says so');
}
is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));

# 4. recycle memory: a worker that leaks is replaced under load
{
	my $leaky = worker_cmd() . ' --leak-per-request 64k';
	my ($text, $port, $admin) = gw_conf(launch => $leaky,
		upstream => 'recycle memory > 24m | age > 1h; idle_timeout 120s; max_conns 4; hold 1000 timeout=60s;');
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	my $done = load($g, 8);
	ok(wait_until(sub { metric($g, 'wakegate_recycles_total\{upstream="digits",reason="memory"\}') >= 1 }, 60),
		'a replica is found past "recycle memory > 24m"');
	ok(wait_until(sub { gw_log($g) =~ /READY -> DRAINING \(replaced by replica \d \(version [^)]+\)\) cause=recycle/ }, 60),
		'... and drained once its replacement was READY, cause recycle');
	my $s = summary($done->());
	ok($s->{sent} > 100, "the clients sent $s->{sent} requests");
	is($s->{bad}, 0, 'not one failed while the leaking worker was recycled');
	like(gw_log($g), qr/recycle: memory \d+ > 25165824 bytes, replacing it warm-first/, 'the log says why');
	my @r = grep { defined $_->{memory_bytes} } @{ ups($g)->{replicas} };
	ok(@r >= 1, '/status shows the memory each READY replica reports');
	ok(metric($g, 'wakegate_replica_memory_bytes\{upstream="digits",replica="\d"\}') > 0, 'and so does wakegate_replica_memory_bytes');
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
}

# 4b. recycle requests and recycle age, the other two lines
{
	my ($text, $port, $admin) = gw_conf(upstream => 'recycle requests > 40; recycle age > 1h; idle_timeout 120s; max_conns 4;');
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	my $done = load($g, 4);
	ok(wait_until(sub { metric($g, 'wakegate_recycles_total\{upstream="digits",reason="requests"\}') >= 2 }, 60),
		'"recycle requests > 40" replaces a replica every 40-odd requests, twice');
	my $s = summary($done->());
	is($s->{bad}, 0, "no failed request across those recycles ($s->{sent} sent)");
	like(gw_log($g), qr/recycle: requests \d+ > 40, replacing it warm-first/, 'the log says why');
	is(metric($g, 'wakegate_recycles_total\{upstream="digits",reason="age"\}'), 0, 'nothing is an hour old');
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));

	($text, $port, $admin) = gw_conf(upstream => 'recycle age > 1s; idle_timeout 120s; min_warm 1;');
	$g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	ok(wait_until(sub { gw_log($g) =~ /READY -> DRAINING \(replaced by replica \d \(version conf-[0-9a-f]{8}\)\) cause=recycle/ }, 30),
		'"recycle age > 1s" replaces an idle replica too, warm-first');
	like(gw_log($g), qr/recycle: age \d+s > 1s/, 'the log says why');
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
}

# 4b'. a recycle whose replacement cannot start: the old replica keeps
# serving, and the gateway does not try again and again
{
	my $once = "$dir/started-once";
	my $launch = "test -e $once && exit 1; touch $once; exec " . worker_cmd();
	my ($text, $port, $admin) = gw_conf(launch => $launch, upstream => 'recycle age > 1s; idle_timeout 120s; min_warm 1;');
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	ok(wait_until(sub { (ups($g)->{rollout} // '') eq 'failed' }, 30), 'the replacement of the recycled replica fails');
	sleep 3;
	my @fails = gw_log($g) =~ /BOOTING -> FAILED \(exited with status 1 during boot/g;
	is(scalar(@fails), 1, 'and is not tried again and again (one failed boot in 3s)');
	my ($body) = digits_input(0);
	is(gw_predict($g, $body)->{status}, 200, 'the recycled replica still answers');
	my @ready = grep { $_->{state} eq 'READY' } @{ ups($g)->{replicas} };
	ok(@ready == 1 && $ready[0]{id} == 0 && ($ready[0]{recycle} // '') eq 'age', '/status: replica 0 READY, marked for recycle (age)');
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
}

# 4c. recycle memory for a backend that does not report its memory: the
# process tree's RSS (a 64 MB process in the replica's process group)
{
	my $hog = q{perl -e 'our @k = ("a" x (64 << 20)); sleep 1000' & } . backend_cmd();
	my ($text, $port, $admin) = gw_conf(launch => $hog,
		upstream => 'recycle memory > 48m; warmup off; idle_timeout 120s; max_conns 4; stop_grace 2s;');
	my $g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	my $done = load_get($g, 4);
	ok(wait_until(sub { gw_log($g) =~ /READY -> DRAINING \(replaced by replica \d \(version [^)]+\)\) cause=recycle/ }, 60),
		'an exec replica whose process tree holds more than "recycle memory > 48m" is replaced warm-first');
	my $r = $done->();
	is($r->{bad}, 0, "no failed request meanwhile ($r->{sent} sent)");
	like(gw_log($g), qr/recycle: memory (\d+) > 50331648 bytes/, 'the log says why');
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));

	# the control: the backend alone stays far below the line
	($text, $port, $admin) = gw_conf(launch => backend_cmd(),
		upstream => 'recycle memory > 48m; warmup off; idle_timeout 120s; max_conns 4;');
	$g = fault_gw_start(conf => $text, port => $port, admin => $admin);
	$done = load_get($g, 4);
	ok(wait_until(sub { metric($g, 'wakegate_replica_memory_bytes\{upstream="digits",replica="0"\}') > 0 }, 20),
		'without the 64 MB process the group\'s memory is read too ...');
	sleep 2;
	$r = $done->();
	is(metric($g, 'wakegate_recycles_total\{upstream="digits",reason="memory"\}'), 0,
		'... and stays below the line: nothing is recycled (so the line above was crossed by the whole group)');
	is($r->{bad}, 0, "no failed request ($r->{sent} sent)");
	is(fault_gw_stop($g), 0, 'the gateway exits 0' . (fault_valgrind() ? ' with no leak under valgrind' : ''));
}

# 5. the conf refuses what it cannot read
for my $bad ('recycle memory < 5m;', 'recycle memory > lots;', 'recycle color > 5;', 'recycle requests > 0;') {
	my ($text) = gw_conf(upstream => $bad);
	spew("$dir/bad.conf", $text);
	my $out = `@{[ bin('wakegate') ]} -t -p $dir -c $dir/bad.conf 2>&1`;
	isnt($? >> 8, 0, "\"$bad\" is refused");
	chomp $out;
	like($out, qr/recycle.*bad\.conf:\d+/, '... naming the file and line');
}

done_testing;
