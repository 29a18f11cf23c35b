# lvs-harness's HTTP burst: COUNT requests to URL one after the other, each on a new TCP
# connection that the client closes first once the whole answer is in (as a curl per request
# does: the client keeps TIME_WAIT, so no source port is reused while IPVS still holds its
# entry), from one process — curl's start-up is ~150 ms a request in the UML guest.
# Prints one line per request in the format of lvs_harness.probes.client.parse_requests:
#   <epoch at its end> <curl-like rc> <http code> <seconds> <first word of the body or -> [<body>]
# rc as curl's: 0 answered, 7 no connection, 28 timed out, 52 empty answer, 56 broken answer.
# Usage: perl - URL COUNT TIMEOUT < http-burst.pl
use strict;
use warnings;
use IO::Socket::INET;
use Time::HiRes qw(time);

my ($url, $count, $timeout) = @ARGV;
my ($host, $port, $path) = $url =~ m{^http://([^/:?#]+)(?::(\d+))?([/?][^#]*)?} or die "lvs-harness: not an http URL: $url\n";
$port ||= 80;
$path = '/' unless defined $path && length $path;
$path = "/$path" if $path =~ /^\?/;
$| = 1;

sub answer {
    my ($sock, $deadline) = @_;
    my $data = '';
    my ($head, $body, $length, $chunked);
    while (1) {
        if (!defined $head && (my $at = index($data, "\r\n\r\n")) >= 0) {
            $head = substr($data, 0, $at);
            $data = substr($data, $at + 4);
            ($length) = $head =~ /^content-length:\s*(\d+)/mi;
            $chunked = $head =~ /^transfer-encoding:\s*chunked/mi;
            return ($head, '') if $head =~ m{^HTTP/\S+\s+(1\d\d|204|304)\b};
        }
        if (defined $head) {
            return ($head, substr($data, 0, $length)) if defined $length && length($data) >= $length;
            if ($chunked && $data =~ /(?:^|\r\n)0\r\n\r\n\z/) {
                my $plain = '';
                while ($data =~ /\G([0-9a-fA-F]+)[^\r]*\r\n/gc) {
                    my $n = hex $1;
                    last if $n == 0;
                    $plain .= substr($data, pos($data), $n);
                    pos($data) = pos($data) + $n + 2;
                }
                return ($head, $plain);
            }
        }
        my $left = $deadline - time;
        return (undef, undef, 28) if $left <= 0;
        my $rin = '';
        vec($rin, fileno($sock), 1) = 1;
        return (undef, undef, 28) unless select(my $rout = $rin, undef, undef, $left);
        my $got = sysread($sock, $data, 65536, length $data);
        return (undef, undef, 56) unless defined $got;
        if ($got == 0) {                 # the server closed: the answer ends here
            return (undef, undef, 52) unless defined $head || length $data;
            return (undef, undef, 56) unless defined $head;
            return (undef, undef, 56) if defined $length && length($data) < $length;
            return ($head, $data);
        }
    }
}

for (1 .. $count) {
    my $t0 = time;
    my ($rc, $code, $body) = (0, 0, '');
    my $sock = IO::Socket::INET->new(PeerAddr => $host, PeerPort => $port, Proto => 'tcp', Timeout => $timeout);
    if (!$sock) {
        $rc = ($!{ETIMEDOUT} || $@ =~ /timeout|timed out/i) ? 28 : 7;
    } else {
        my $request = "GET $path HTTP/1.1\r\nHost: $host" . ($port == 80 ? '' : ":$port")
                    . "\r\nUser-Agent: lvs-harness\r\nAccept: */*\r\n\r\n";
        if (!defined syswrite($sock, $request)) {
            $rc = 56;
        } else {
            my ($head, $got, $err) = answer($sock, $t0 + $timeout);
            if ($err) {
                $rc = $err;
            } else {
                ($code) = $head =~ m{^HTTP/\S+\s+(\d{3})};
                $code ||= 0;
                $body = $got;
            }
        }
        close $sock;
    }
    my $t1 = time;
    (my $flat = $body) =~ s/\s+/ /g;
    $flat =~ s/^ //;
    $flat =~ s/ $//;
    my ($first) = $flat =~ /^(\S+)/;
    printf "%.6f %d %03d %.6f %s%s\n", $t1, $rc, $code, $t1 - $t0, $first // '-', length $flat ? " $flat" : '';
}
