# WGReplay: helpers for the wakegate-replay tests (t/61, t/71, t/73): run the
# replay and read its --csv back.
package WGReplay;
use strict;
use warnings;
use Exporter 'import';
use Test::More ();
use WG;

our @EXPORT = qw(replay_bin run_replay replay_csv_rows);

# The built tools/wakegate-replay (the test bails out without it).
sub replay_bin {
	my $replay = ($ENV{WG_BUILD} // src('.')) . '/tools/wakegate-replay';
	-x $replay or Test::More::BAIL_OUT("no $replay: build first (make tools/wakegate-replay)");
	return $replay;
}

# Runs wakegate-replay with args; returns (exit status, output with stderr).
sub run_replay {
	my @args = @_;
	my $replay = replay_bin();
	my $pid = open(my $fh, '-|') // die "fork: $!";
	if (!$pid) {
		open STDERR, '>&', \*STDOUT;
		exec $replay, @args or die "exec $replay: $!";
	}
	my $text = do { local $/; <$fh> } // '';
	close $fh;
	return ($? >> 8, $text);
}

# Runs it with args and --csv (dies when it fails); returns
# ({ policy => { col => value } } with cols naming the columns after the
# policy, the header line). A policy's commas are written as ";": put back.
sub replay_csv_rows {
	my ($cols, @args) = @_;
	my ($rc, $text) = run_replay(@args, '--csv');
	die "wakegate-replay @args failed ($rc): $text" if $rc;
	my (%r, $header);
	for (split /\n/, $text) {
		$header //= $_ if /^policy,/;
		next if /^policy,/ || /^#/;
		my ($p, @v) = split /,/;
		$p =~ tr/;/,/;
		@{ $r{$p} }{@$cols} = @v;
	}
	return (\%r, $header);
}

1;
