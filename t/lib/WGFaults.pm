# WGFaults: helpers for the fault tests (t/80-*.t .. t/85-*.t). With
# WG_VALGRIND=1 the gateway runs under valgrind, and fault_gw_stop checks it
# exits 0 with no leak and no invalid access.
package WGFaults;
use strict;
use warnings;
use Exporter 'import';
use WG;
use WGGateway;

our @EXPORT = qw(fault_gw_start fault_gw_stop fault_valgrind manyconn_bin);

sub fault_valgrind { return $ENV{WG_VALGRIND} && -x '/usr/bin/valgrind' }

# Like gw_start; under valgrind when WG_VALGRIND=1.
sub fault_gw_start {
	my (%o) = @_;
	return gw_start(%o) unless fault_valgrind();
	my $dir = tmpdir();
	my $port = $o{port};
	my $conf = "$dir/gw-$port.conf";
	spew($conf, $o{conf});
	my $g = { port => $port, admin => $o{admin}, conf => $conf, url => "http://127.0.0.1:$port",
		admin_url => "http://127.0.0.1:$o{admin}", log => "$dir/error-$port.log",
		access => "$dir/access-$port.log", pidfile => "$dir/wakegate-$port.pid", vglog => "$dir/vg-$port.log" };
	$g->{pid} = start_proc(name => "wakegate-vg-$port", cmd => ['valgrind', '-q', '--leak-check=full',
		'--errors-for-leak-kinds=definite,indirect', '--error-exitcode=99', "--log-file=$g->{vglog}",
		bin('wakegate'), '-p', $dir, '-c', $conf], log => "$dir/wakegate-$port.out");
	wait_http("$g->{admin_url}/status", 60) or die "wakegate did not start under valgrind:\n" . slurp("$dir/wakegate-$port.out");
	return $g;
}

# Sends sig (default TERM; 0: only waits) and returns the exit status (0
# expected), with valgrind's report shown when it is not 0.
sub fault_gw_stop {
	my ($g, $sig) = @_;
	my $st = stop_proc($g->{pid}, $sig // 'TERM', fault_valgrind() ? 60 : 30);
	Test::More::diag(slurp($g->{vglog})) if $g->{vglog} && ($st // -1) != 0;
	return $st;
}

# Compiles t/lib/manyconn.c into the test's tmpdir once; its path, or undef without cc.
my $many;
sub manyconn_bin {
	return $many if $many;
	my ($cc) = grep { -x "$_/cc" } split /:/, $ENV{PATH} // '';
	return undef unless $cc;
	my $out = tmpdir() . '/manyconn';
	system("$cc/cc", '-O2', '-o', $out, src('t/lib/manyconn.c')) == 0 or return undef;
	return $many = $out;
}

1;
