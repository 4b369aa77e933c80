# Logs take no raw client bytes: in the access and error logs, bytes below
# 0x20, from 0x7f up, quotes and backslashes of what the client sent are
# \xHH, as nginx writes them. A client's X-Request-Id that is not a safe
# token is replaced, and the id logged, forwarded and returned is one id.
use strict;
use warnings;
use Test::More;
use WG;
use WGGateway;
use WGRaw;

my $blog = tmpdir() . '/backend.log';
my ($text, $port, $admin) = gw_conf(launch => raw_backend_launch($blog),
	upstream => 'health /wg-health; warmup off; idle_timeout 60s;');
my $g = gw_start(conf => $text, port => $port, admin => $admin);
my $H = "Host: x\r\n";
my ($r) = raw_exchange($port, "GET /warm HTTP/1.1\r\n$H\r\n", quiet => 60);
like($r, qr/^HTTP\/1\.1 200/, 'a plain request is answered (the backend is up)');

# a quote, a backslash and a high byte in the target; an id with ESC and a quote
($r) = raw_exchange($port, "GET /q\"b\\s\xe9 HTTP/1.1\r\n${H}X-Request-Id: ab\x1b[31m\"x\r\n\r\n");
is(statuses($r), '200', 'a target with a quote, a backslash and a high byte is answered');
my ($rid) = $r =~ /^X-Request-Id: (\S+)\r$/mi;
like($rid // '', qr/^[0-9a-f]{16,32}$/, '  with a new request id: the client\'s was not a safe token');
my $al = slurp($g->{access});
my ($line) = grep { /GET \/q/ } split /\n/, $al;
like($line // '', qr{"GET /q\\x22b\\x5Cs\\xE9 HTTP/1\.1"}, 'the access log has the target with \\x22, \\x5C and \\xE9');
unlike($al, qr/\x1b/, 'no ESC byte reaches the access log');
like($line // '', qr/rid=\Q$rid\E$/, 'the access log names the id the client got back');
my ($seen) = grep { /^REQ \d+ GET \/q/ } backend_log($blog);
like($seen // '', qr/X-Request-Id:\Q$rid\E(\||$)/, 'and the backend got that same id');

# a safe id is kept, the same everywhere
($r) = raw_exchange($port, "GET /keep HTTP/1.1\r\n${H}X-Request-Id: req-42.a_b:c\r\n\r\n");
like($r, qr/^X-Request-Id: req-42\.a_b:c\r$/mi, 'a safe client id comes back as it was');
like(slurp($g->{access}), qr{"GET /keep HTTP/1\.1" 200 .*rid=req-42\.a_b:c$}m, '  and is the one logged');

# a refused request's raw bytes in both logs
($r) = raw_exchange($port, "GET /r\x1b[2Jx HTTP/1.1\r\n$H\r\n");
is(statuses($r), '400', 'a control byte in the target is a 400');
$al = slurp($g->{access});
like($al, qr{"GET /r\\x1B\[2Jx HTTP/1\.1" 400}, '  logged with \\x1B in the access log');
unlike($al . gw_log($g), qr/\x1b/, 'no ESC byte in the access or error log');
done_testing();
