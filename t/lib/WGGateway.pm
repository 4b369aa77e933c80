# WGGateway: helpers for the gateway tests (t/40-*.t .. t/49-*.t): write a
# conf, start wakegate on free ports, read /status, find the processes the
# gateway started.
package WGGateway;
use strict;
use warnings;
use Exporter 'import';
use WG;
use JSON::PP;
use Time::HiRes qw(time sleep);

our @EXPORT = qw(gw_conf gw_start gw_status gw_children worker_cmd gw_predict gw_log digits_input argmax_of backend_cmd);

my $n = 0;

# The launch command of a real wakegate-worker serving the digits model.
sub worker_cmd {
	my (%o) = @_;
	my $model = $o{model} // src('models/digits.safetensors');
	return bin('wakegate-worker') . " --model $model --listen 127.0.0.1:\$port --name digits";
}

# gw_conf(upstream => "directives;...", extra => "main directives", ...) -> conf text
# Returns (text, port, admin_port).
sub gw_conf {
	my (%o) = @_;
	my $dir = tmpdir();
	my $port = $o{port} // free_port();
	my $admin = $o{admin} // free_port();
	my $launch = $o{launch} // worker_cmd();
	$launch =~ s/"/\\"/g;
	my $ups = $o{upstream} // '';
	my $main = $o{extra} // '';
	my $name = $o{name} // 'digits';
	my $text = <<"EOC";
daemon off;
pid $dir/wakegate-$port.pid;
error_log $dir/error-$port.log info;
access_log $dir/access-$port.log;
admin_listen 127.0.0.1:$admin;
$main
upstream $name {
	launch exec "$launch";
	$ups
}
server {
	listen 127.0.0.1:$port;
	location / { proxy_pass $name; }
}
EOC
	return ($text, $port, $admin);
}

# gw_start(conf => TEXT, port => P, admin => A) -> hash with pid, url, admin_url, conf, log, access
sub gw_start {
	my (%o) = @_;
	my $dir = tmpdir();
	my $conf = "$dir/gw-$o{port}.conf";
	spew($conf, $o{conf});
	my $g = { port => $o{port}, admin => $o{admin}, conf => $conf,
		url => "http://127.0.0.1:$o{port}", admin_url => "http://127.0.0.1:$o{admin}",
		log => "$dir/error-$o{port}.log", access => "$dir/access-$o{port}.log",
		pidfile => "$dir/wakegate-$o{port}.pid" };
	$g->{pid} = start_proc(name => "wakegate-$o{port}", cmd => [bin('wakegate'), '-p', $dir, '-c', $conf],
		log => "$dir/wakegate-$o{port}.out");
	wait_http("$g->{admin_url}/status", 30) or die "wakegate did not start:\n" . slurp("$dir/wakegate-$o{port}.out") . slurp($g->{log});
	return $g;
}

# The gateway's /status, decoded; {} when it does not answer.
sub gw_status {
	my ($g) = @_;
	my $r = WG::http_get("$g->{admin_url}/status", timeout => 10);
	return {} unless $r->{status} == 200;
	return decode_json($r->{content});
}

# pids of every living descendant of pid (the shells and workers it launched).
sub gw_children {
	my ($pid) = @_;
	my %kids;
	opendir(my $d, '/proc') or return ();
	for my $p (grep { /^\d+$/ } readdir $d) {
		my $stat = slurp("/proc/$p/stat") or next;
		$stat =~ /^\d+ \(.*\) (\S) (\d+)/ or next;
		next if $1 eq 'Z';
		push @{ $kids{$2} }, $p;
	}
	closedir $d;
	my @out;
	my @todo = ($pid);
	while (@todo) {
		my $x = shift @todo;
		for my $k (@{ $kids{$x} // [] }) { push @out, $k; push @todo, $k }
	}
	return @out;
}

# The launch command of t/lib/test-backend.pl (SSE, slow answers, slow boot).
sub backend_cmd {
	my (%o) = @_;
	my $cmd = "exec perl " . src('t/lib/test-backend.pl') . ' $port';
	$cmd .= " --boot $o{boot}" if $o{boot};
	$cmd .= " --log $o{log}" if $o{log};
	return $cmd;
}

# One digits sample from the test set, as a /predict body, and its label.
sub digits_input {
	my $t = decode_json(slurp(src('models/digits-test.json')));
	my $i = $_[0] // 0;
	return (encode_json({ input => [ $t->{inputs}[$i] ] }), $t->{labels}[$i]);
}

# The digit a /predict answer names (argmax of its first result), or undef.
sub argmax_of {
	my ($content) = @_;
	my $j = eval { decode_json($content) } or return undef;
	my $p = $j->{result}[0] or return undef;
	my $best = 0;
	$p->[$_] > $p->[$best] and $best = $_ for 0 .. $#$p;
	return $best;
}

sub gw_predict {
	my ($g, $body, %o) = @_;
	return WG::http_post("$g->{url}/predict", $body, %o);
}

sub gw_log { my ($g) = @_; return slurp($g->{log}) }

1;
