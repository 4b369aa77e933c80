# WGCerts: test certificates made by the openssl CLI (t/65, t/118): a CA, and
# certificates it signs, for 127.0.0.1 and localhost.
package WGCerts;
use strict;
use warnings;
use Exporter 'import';
use WG;

our @EXPORT = qw(cert_ca cert_signed);

my $ec = '-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes';
sub run { my ($cmd) = @_; return system("$cmd >/dev/null 2>&1") == 0 }

# DIR/NAME.pem and DIR/NAME.key: a CA; true when made.
sub cert_ca {
	my ($dir, $name) = @_;
	return run("openssl req -x509 $ec -days 2 -subj /CN=$name -keyout $dir/$name.key -out $dir/$name.pem " .
		"-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign");
}

# DIR/NAME.pem and DIR/NAME.key signed by DIR/CA.pem with serial; a server's
# (subjectAltName 127.0.0.1 and localhost) unless client => 1. True when made.
sub cert_signed {
	my ($dir, $name, $serial, $ca, %o) = @_;
	my $ext = '';
	if (!$o{client}) {
		spew("$dir/ext.cnf", "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n");
		$ext = "-extfile $dir/ext.cnf";
	}
	return run("openssl req $ec -subj /CN=$name -keyout $dir/$name.key -out $dir/$name.csr") &&
		run("openssl x509 -req -in $dir/$name.csr -CA $dir/$ca.pem -CAkey $dir/$ca.key -set_serial $serial " .
		"-days 2 $ext -out $dir/$name.pem");
}

1;
